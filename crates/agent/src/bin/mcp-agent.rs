//! `mcp-agent`: parse arguments, build the deployer, serve until SIGTERM/SIGINT.

use agent::config::AgentConfig;
use anyhow::Context;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The mcp node agent: runs services' components as podman containers or unikernel VMs.
///
/// Exit codes: 0 after a clean shutdown, 1 on failure, 2 on bad arguments or config.
#[derive(Parser)]
#[command(name = "mcp-agent", version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<AgentCommand>,
    /// Agent configuration file (production).
    #[arg(long, short, conflicts_with_all = ["dev", "dir"], required_unless_present = "dev")]
    config: Option<PathBuf>,
    /// Self-contained local mode: creates DIR with a CA, agent and operator certificates,
    /// a registry, and DIR/mcp.toml for the CLI (node "local").
    #[arg(long, requires = "dir")]
    dev: bool,
    /// Directory for --dev.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Address to listen on (--dev; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:7443")]
    listen: SocketAddr,
    /// Extra global podman argument for --dev, e.g. --podman-arg=--root=/var/tmp/store.
    #[arg(long = "podman-arg", allow_hyphen_values = true)]
    podman_args: Vec<String>,
    /// A registry (HOST[:PORT], as written in images) to pull from over plain HTTP, for
    /// --dev; repeatable. Only for registries on trusted networks, e.g. 127.0.0.1:5000.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// Host ports for routes, for --dev: START-END.
    #[arg(long, value_parser = parse_range, default_value = "20000-32000")]
    port_range: (u16, u16),
    /// Monitor interval for --dev, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    monitor_interval_ms: u64,
    /// First restart back-off for --dev, in milliseconds (doubles per restart).
    #[arg(long, default_value_t = 10_000)]
    backoff_base_ms: u64,
    /// Back-off cap for --dev, in milliseconds.
    #[arg(long, default_value_t = 300_000)]
    backoff_max_ms: u64,
    /// Address the node proxy binds routes' public ports on, for --dev.
    #[arg(long, default_value = "127.0.0.1")]
    proxy_bind: std::net::IpAddr,
    /// For --dev: a TOML file with any of agent.toml's [podman], [ports], [monitor] and
    /// [qemu] sections and stop_timeout_secs, overriding the defaults and flags above.
    #[arg(long, value_name = "FILE")]
    settings: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum AgentCommand {
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
fn parse_args() -> Args {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if args.config.is_some() {
        for (id, flag) in DEV_ONLY {
            if matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine) {
                let err = Args::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("{flag} configures --dev only; with --config, set it in agent.toml"),
                );
                err.exit();
            }
        }
    }
    args
}

fn main() -> ExitCode {
    let args = parse_args();
    // Colours only for a person at a terminal: log files and journald get plain text.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if let Some(AgentCommand::Backup { file }) = &args.command {
        return exit_code(backup(&args, file));
    }
    pki::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-agent: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    exit_code(runtime.block_on(run(args)))
}

/// 0, or the error on stderr and 2 for bad config, 1 otherwise.
fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-agent: {e:#}");
            let bad_input = e.downcast_ref::<agent::config::ConfigError>().is_some();
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

/// `mcp-agent backup FILE`: the registry named by `--config` (or `--dev --dir DIR`), never a
/// new one.
fn backup(args: &Args, file: &std::path::Path) -> anyhow::Result<()> {
    let db = match (&args.config, &args.dir) {
        (Some(path), _) => AgentConfig::load(path)?.registry_path(),
        (None, Some(dir)) => dir.join("state").join("registry.db"),
        (None, None) => anyhow::bail!("give --config FILE or --dev --dir DIR"),
    };
    anyhow::ensure!(db.is_file(), "no registry at {}", db.display());
    let registry =
        registry::Registry::open(&db).with_context(|| format!("opening {}", db.display()))?;
    registry
        .backup(file)
        .with_context(|| format!("copying {}", db.display()))?;
    println!("{} copied to {}", db.display(), file.display());
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (config, dev_dir) = match (&args.config, &args.dir) {
        (Some(path), _) => (AgentConfig::load(path)?, None),
        (None, Some(dir)) => (
            agent::dev::prepare(
                dir,
                args.listen,
                agent::config::PodmanSection {
                    global_args: args.podman_args.clone(),
                    insecure_registries: args.insecure_registries.clone(),
                    ..Default::default()
                },
                agent::config::PortsSection {
                    range_start: args.port_range.0,
                    range_end: args.port_range.1,
                    ..Default::default()
                },
                agent::config::MonitorSection {
                    interval_ms: args.monitor_interval_ms,
                    backoff_base_ms: args.backoff_base_ms,
                    backoff_max_ms: args.backoff_max_ms,
                    ..Default::default()
                },
                args.proxy_bind,
                args.settings
                    .as_deref()
                    .map(agent::config::DevSettings::load)
                    .transpose()?,
            )
            .context("preparing the --dev directory")?,
            Some(dir.clone()),
        ),
        (None, None) => anyhow::bail!("give --config FILE or --dev --dir DIR"),
    };
    // The TLS files are read before anything starts: a config that cannot serve leaves no
    // proxy, registry or probe behind.
    let tls = (
        agent::server::tls_config(&config.tls)?,
        agent::server::access_policy(&config.tls),
    );
    let started = agent::startup::start(&config).await?;
    for line in &started.recovered {
        tracing::warn!("recovered: {line}");
    }
    let (deployer, node, proxy, podman) = (
        started.deployer,
        started.node,
        started.proxy,
        started.podman,
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr().context("reading the bound address")?;
    if let Some(dir) = &dev_dir {
        let cli = agent::dev::write_cli_config(dir, &config, bound)?;
        println!("CLI config: {}", cli.display());
    }
    // Tests and scripts wait for this exact line.
    println!("mcp-agent listening on {bound} as node {}", config.node);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let monitor = tokio::spawn(agent::monitor::run(
        Arc::clone(&deployer),
        config.monitor.interval(),
        config.monitor.policy(),
        stop_rx.clone(),
    ));
    let health = tokio::spawn(agent::monitor::run_health(
        Arc::clone(&deployer),
        config.monitor.policy(),
        stop_rx.clone(),
    ));
    let watchdog =
        proxy.map(|link| tokio::spawn(link.watch(Arc::clone(&deployer), stop_rx.clone())));
    let shutdown = async move {
        shutdown_signal().await;
        // The monitor finishes the pass it is in, then stops.
        let _ = stop_tx.send(true);
    };
    agent::server::serve(deployer, node, podman, listener, tls, shutdown).await?;
    for (task, handle) in [("monitor", monitor), ("health checker", health)] {
        if let Err(e) = handle.await {
            tracing::error!(task, error = %e, "ended abnormally");
        }
    }
    if let Some(watchdog) = watchdog
        && let Err(e) = watchdog.await
    {
        tracing::error!(error = %e, "the proxy watchdog ended abnormally");
    }
    tracing::info!("stopped; workloads and the node proxy keep running");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the agent with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
