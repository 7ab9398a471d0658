//! `mcp-agent`'s command line (clap): here rather than in the binary so that man pages
//! and completions are generated from the same definition.

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The mcp node agent: runs services' components as podman containers or unikernel VMs.
///
/// Exit codes: 0 after a clean shutdown, 1 on failure, 2 on bad arguments or config.
#[derive(Debug, Parser)]
#[command(name = "mcp-agent", version, about)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
    /// Agent configuration file (production).
    #[arg(long, short, conflicts_with_all = ["dev", "dir"], required_unless_present = "dev")]
    pub config: Option<PathBuf>,
    /// Self-contained local mode: creates DIR with a CA, agent and operator certificates,
    /// a registry, and DIR/mcp.toml for the CLI (node "local").
    #[arg(long, requires = "dir")]
    pub dev: bool,
    /// Directory for --dev.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Address to listen on (--dev; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: SocketAddr,
    /// Extra global podman argument for --dev, e.g. --podman-arg=--root=/var/tmp/store.
    #[arg(long = "podman-arg", allow_hyphen_values = true)]
    pub podman_args: Vec<String>,
    /// A registry (HOST[:PORT], as written in images) to pull from over plain HTTP, for
    /// --dev; repeatable. Only for registries on trusted networks, e.g. 127.0.0.1:5000.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    pub insecure_registries: Vec<String>,
    /// Host ports for routes, for --dev: START-END.
    #[arg(long, value_parser = parse_range, default_value = "20000-32000")]
    pub port_range: (u16, u16),
    /// Monitor interval for --dev, in milliseconds.
    /// Without it: 5000 while podman's event stream is down, 60000 while it is up (changes
    /// wake the monitor at once then); with it, that one interval either way.
    #[arg(long)]
    pub monitor_interval_ms: Option<u64>,
    /// First restart back-off for --dev, in milliseconds (doubles per restart).
    #[arg(long, default_value_t = 10_000)]
    pub backoff_base_ms: u64,
    /// Back-off cap for --dev, in milliseconds.
    #[arg(long, default_value_t = 300_000)]
    pub backoff_max_ms: u64,
    /// Address the node proxy binds routes' public ports on, for --dev.
    #[arg(long, default_value = "127.0.0.1")]
    pub proxy_bind: std::net::IpAddr,
    /// For --dev: a TOML file with any of agent.toml's [podman], [ports], [monitor] and
    /// [qemu] sections and stop_timeout_secs, overriding the defaults and flags above.
    #[arg(long, value_name = "FILE")]
    pub settings: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum AgentCommand {
    /// Write a consistent copy of the node's registry (services, history) to FILE, which
    /// must not exist, while the agent keeps running; FILE gets mode 0600. Restore by
    /// stopping the agent and putting the copy in place of `<state_dir>/registry.db`.
    Backup {
        /// Where the copy goes.
        file: PathBuf,
    },
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or("expected START-END, e.g. 20000-32000")?;
    let start: u16 = a.trim().parse().map_err(|e| format!("start {a:?}: {e}"))?;
    let end: u16 = b.trim().parse().map_err(|e| format!("end {b:?}: {e}"))?;
    if start == 0 || start > end {
        return Err(format!("{s} is empty or starts at 0"));
    }
    Ok((start, end))
}

/// Flags that configure `--dev` only; with `--config`, agent.toml holds these settings.
const DEV_ONLY: [(&str, &str); 9] = [
    ("listen", "--listen"),
    ("podman_args", "--podman-arg"),
    ("insecure_registries", "--insecure-registry"),
    ("port_range", "--port-range"),
    ("monitor_interval_ms", "--monitor-interval-ms"),
    ("backoff_base_ms", "--backoff-base-ms"),
    ("backoff_max_ms", "--backoff-max-ms"),
    ("proxy_bind", "--proxy-bind"),
    ("settings", "--settings"),
];

/// The arguments; a `--dev` flag given with `--config` is refused (exit 2) rather than
/// silently ignored.
pub fn parse() -> AgentArgs {
    use clap::{CommandFactory, FromArgMatches};
    let matches = AgentArgs::command().get_matches();
    let args = AgentArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if args.config.is_some() {
        for (id, flag) in DEV_ONLY {
            if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                let err = AgentArgs::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("{flag} configures --dev only; with --config, set it in agent.toml"),
                );
                err.exit();
            }
        }
    }
    args
}
