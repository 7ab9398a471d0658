//! Command-line arguments (clap derive). Help texts here are the CLI's reference.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// mcp: deploy and operate services on a small fleet of nodes.
///
/// Exit codes: 0 ok, 1 operation failed, 2 bad input or usage, 3 agent unreachable,
/// 4 permission denied. `-n` always means `--node`.
#[derive(Debug, Parser)]
#[command(name = "mcp", version, about, long_about = None, after_help = "Exit codes: 0 ok, 1 operation failed, 2 bad input or usage, 3 agent unreachable, 4 permission denied.")]
pub struct Cli {
    /// CLI configuration (nodes, TLS identity, services directory).
    #[arg(long, global = true, env = "MCP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Deploy a service from its definition (FILE.toml, or SERVICE from the services directory).
    /// Component images missing from their registry are built and pushed first.
    Deploy(DeployArgs),
    /// Build and push a service's images ([build.images]), or only SERVICE/IMAGE.
    Build(BuildArgs),
    /// Show services and their components, on every node or one service.
    Status(StatusArgs),
    /// List every component instance on every node, one line each.
    Ps(PsArgs),
    /// Show a service's output (all components, or SERVICE/COMPONENT).
    Logs(LogsArgs),
    /// Stop every component of a service; it stays stopped.
    Stop(ServiceArgs),
    /// Start a stopped service.
    Start(ServiceArgs),
    /// Stop and start every component of a service.
    Restart(ServiceArgs),
    /// Remove a service's components and forget it (asks first on a terminal; --yes skips).
    Undeploy(UndeployArgs),
    /// The history: deploys, operations, drift, restarts, strays (newest first).
    Events(EventsArgs),
    /// Show what deploying a definition would do, per component; changes nothing.
    Plan(PlanArgs),
    /// The deployed versions of a service, newest first.
    History(HistoryArgs),
    /// Redeploy an earlier version of a service (default: the one before the current),
    /// replacing routed components without downtime as a deploy does.
    Rollback(RollbackArgs),
    /// Secrets of a service, kept on its node and passed to components as environment
    /// variables (`secrets = ["VAR", "VAR=NAME"]`); values are never shown.
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Credentials the nodes use to pull from private registries.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Node commands.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Certificates for mutual TLS between the CLI and agents.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Print a shell completion script, e.g. `mcp completions bash > /etc/bash_completion.d/mcp`
    /// (the Debian package installs them for bash, zsh and fish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Definition file, or a service name resolved in the services directory.
    pub target: String,
    /// Deploy to this node instead of the definition's.
    #[arg(short = 'n', long = "node")]
    pub node: Option<String>,
    /// Accepted for compatibility: calls always go straight to the agent.
    #[arg(long)]
    pub direct: bool,
    /// Do not check the registry for the component images (nor build missing ones).
    #[arg(long)]
    pub no_build: bool,
    /// Only show what the deploy would do (as `mcp plan`); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The service runs on another node: deploy it here, then undeploy it there (if this
    /// deploy fails, the other node keeps running it). Without it such a deploy is refused.
    #[arg(long = "move")]
    pub move_service: bool,
    /// With --dry-run: machine-readable output.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Definition file, or a service name resolved in the services directory.
    pub target: String,
    /// Plan for this node instead of the definition's.
    #[arg(short = 'n', long = "node")]
    pub node: Option<String>,
    /// Machine-readable output with stable field names.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub service: String,
    /// The node running the service (default: found from the definition or by asking).
    #[arg(short = 'n', long = "node")]
    pub node: Option<String>,
    /// Machine-readable output with stable field names.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    pub service: String,
    /// The version to go back to (see `mcp history`); default: the one before the current.
    #[arg(long = "to", value_name = "VERSION", value_parser = clap::value_parser!(u32).range(1..))]
    pub to: Option<u32>,
    /// The node running the service (default: found from the definition or by asking).
    #[arg(short = 'n', long = "node")]
    pub node: Option<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// SERVICE or SERVICE/IMAGE; SERVICE is a definition file or a name in the services
    /// directory, IMAGE a key of its [build.images].
    pub target: String,
    /// Rebuild and push tags the registry already holds (they are skipped otherwise).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this service.
    pub service: Option<String>,
    /// Only this node.
    #[arg(short = 'n', long = "node")]
    pub node: Option<String>,
    /// Machine-readable output with stable field names.
    #[arg(long)]
    pub json: bool,
    /// Exit 3 when any node failed to answer (default: only when every node did).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Only this node.
    #[arg(short = 'n', long = "node")]
    pub node: Option<String>,
    /// Machine-readable output with stable field names.
    #[arg(long)]
    pub json: bool,
    /// Exit 3 when any node failed to answer (default: only when every node did).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// SERVICE or SERVICE/COMPONENT.
    pub target: String,
    /// Keep streaming new lines.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines from the end (default: all).
    #[arg(long = "tail", value_name = "N")]
    pub tail: Option<u32>,
    /// Only lines written since then: a duration back from now (`10m`, `2h`) or unix seconds
    /// (containers).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Prefix each line with when it was written (containers).
    #[arg(long)]
    pub timestamps: bool,
    /// The node running the service (default: found from the definition or by asking).
    #[arg(short = 'n', long)]
    pub node: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Only this service.
    pub service: Option<String>,
    /// How many events (per node).
    #[arg(long = "limit", default_value_t = 50)]
    pub limit: u32,
    /// Only this node.
    #[arg(short = 'n', long)]
    pub node: Option<String>,
    /// Machine-readable output with stable field names.
    #[arg(long)]
    pub json: bool,
    /// Exit 3 when any node failed to answer (default: only when every node did).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    pub service: String,
    /// The node running the service (default: found from the definition or by asking).
    #[arg(short = 'n', long = "node")]
    pub node: Option<String>,
}

#[derive(Debug, Args)]
pub struct UndeployArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret (a new version) on the service's node. The value is read from stdin
    /// (one trailing newline dropped) or from --from-file (exactly). Running components keep
    /// the value they started with until the service is deployed again.
    Set {
        service: String,
        name: String,
        /// Read the value from this file instead of stdin.
        #[arg(long, value_name = "FILE")]
        from_file: Option<PathBuf>,
        /// The node (default: the service's, else the only one).
        #[arg(short = 'n', long = "node")]
        node: Option<String>,
    },
    /// The service's secrets: names, versions, when each was set, who uses it. Never values.
    #[command(alias = "ls")]
    List {
        service: String,
        #[arg(short = 'n', long = "node")]
        node: Option<String>,
        /// Machine-readable output with stable field names.
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret the deployed spec does not use.
    #[command(alias = "remove")]
    Rm {
        service: String,
        name: String,
        #[arg(short = 'n', long = "node")]
        node: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Check credentials with the registry and store them on the nodes (every node, or
    /// -n NODE) for their pulls. The password is read from stdin.
    Login {
        /// The registry as written in image references: host[:port].
        registry: String,
        #[arg(short = 'u', long)]
        username: String,
        /// Read the password from stdin (the only way: never on a command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Only this node.
        #[arg(short = 'n', long = "node", conflicts_with = "all")]
        node: Option<String>,
        /// Every node of the CLI config (the default).
        #[arg(long)]
        all: bool,
    },
    /// Forget the nodes' credentials for a registry.
    Logout {
        registry: String,
        #[arg(short = 'n', long = "node", conflicts_with = "all")]
        node: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// One line per node: reachable, agent version, uptime, load, free memory and disk,
    /// accelerator, components running/total, days until the agent's certificate ends.
    List {
        /// Machine-readable output with stable field names.
        #[arg(long)]
        json: bool,
        /// Exit 3 when any node failed to answer (default: only when every node did).
        #[arg(long)]
        strict: bool,
    },
    /// Agent and host facts of every node (or one).
    Status {
        #[arg(short = 'n', long = "node")]
        node: Option<String>,
        /// Machine-readable output with stable field names.
        #[arg(long)]
        json: bool,
        /// Exit 3 when any node failed to answer (default: only when every node did).
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Certificate authorities.
    #[command(subcommand)]
    Ca(TlsCaCommand),
    /// Node and operator certificates.
    #[command(subcommand)]
    Cert(TlsCertCommand),
}

#[derive(Debug, Subcommand)]
pub enum TlsCaCommand {
    /// Create a CA: writes DIR/ca.pem and DIR/ca.key (0600).
    Create {
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[arg(long, default_value = "mcp CA")]
        common_name: String,
    },
}

/// The CA that signs, for `cert create` and `cert renew`.
#[derive(Debug, Args)]
pub struct CaFiles {
    /// CA certificate.
    #[arg(long, default_value = "ca.pem")]
    pub ca: PathBuf,
    /// CA private key.
    #[arg(long, default_value = "ca.key")]
    pub ca_key: PathBuf,
}

/// What an operator certificate allows on the agents.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    /// Read-only: status, ps, logs, events, node status, plan, history, secret names.
    Viewer,
    /// A viewer who also deploys, builds, stops, starts, restarts, rolls back, sets secrets.
    Deployer,
    /// Everything, undeploy, secret removal and registry logins included.
    Admin,
}

impl From<RoleArg> for pki::OperatorRole {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Viewer => Self::Viewer,
            RoleArg::Deployer => Self::Deployer,
            RoleArg::Admin => Self::Admin,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TlsCertCommand {
    /// Issue a certificate signed by the CA: writes DIR/NAME.pem and DIR/NAME.key (0600).
    Create {
        #[command(flatten)]
        ca: CaFiles,
        /// A node (agent) certificate for this node name.
        #[arg(
            long,
            conflicts_with = "operator",
            required_unless_present = "operator"
        )]
        node: Option<String>,
        /// Extra DNS names or IP addresses the node is reached at (node certificates).
        #[arg(long, requires = "node")]
        san: Vec<String>,
        /// An operator (CLI client) certificate with this name.
        #[arg(long, requires = "role")]
        operator: Option<String>,
        /// The operator's role (operator certificates).
        #[arg(long, value_enum, requires = "operator")]
        role: Option<RoleArg>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = pki::LEAF_DAYS, value_parser = clap::value_parser!(i64).range(1..=3650))]
        days: i64,
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Replace a certificate before it expires: same name and role (or node names), a new
    /// key, valid for --days from now. Writes over CERT and its key (KEY: CERT with .key).
    Renew {
        /// The certificate to renew (e.g. ann.pem).
        cert: PathBuf,
        /// Its private key (default: CERT with the extension .key).
        #[arg(long)]
        key: Option<PathBuf>,
        #[command(flatten)]
        ca: CaFiles,
        /// Give the operator another role while renewing.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// Days the new certificate is valid.
        #[arg(long, default_value_t = pki::LEAF_DAYS, value_parser = clap::value_parser!(i64).range(1..=3650))]
        days: i64,
    },
    /// Show who a certificate names, its role, serial (for `revoked_serials`) and expiry.
    Show {
        cert: PathBuf,
        /// Machine-readable output with stable field names.
        #[arg(long)]
        json: bool,
    },
}
