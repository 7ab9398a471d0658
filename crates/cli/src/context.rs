//! What every command needs: the CLI config, the node a command targets, a connection,
//! definition files, and the local podman that builds images.

use mcp_client::{CliConfig, NodeEntry};
use mcp_proto::v1 as pb;
use oci::{PodmanBuilder, PodmanBuilderConfig};
use podman_cli::PodmanCli;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{CliError, ExitCode};

/// How long a fan-out waits for a node's connection (TCP, TLS, HTTP/2) unless the CLI config
/// says otherwise: a stopped or hung agent never completes the handshake, a busy one does.
const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connected node may take to answer: a busy node is slow (its `podman ps` under
/// load), not gone; this only bounds an agent that hangs mid-call.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// Commands warn when a certificate expires within this many days.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

pub struct Context {
    pub config: CliConfig,
    pub config_path: PathBuf,
    /// The operator certificate's verdict, made at the first connection: None when usable,
    /// else why not (expired).
    operator_certificate: std::sync::OnceLock<Option<String>>,
    /// The operator certificate as read once per process (None: unreadable; the connection
    /// reports that).
    operator_certificate_info: std::sync::OnceLock<Option<pki::CertInfo>>,
}

impl Context {
    pub fn load(path: Option<&Path>) -> Result<Self, CliError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => default_config_path().ok_or_else(|| {
                CliError::bad_input(
                    "no CLI config: pass --config FILE or set MCP_CONFIG \
                     (mcp-agent --dev writes one as DIR/mcp.toml)",
                )
            })?,
        };
        Ok(Self {
            config: CliConfig::load(&path)?,
            config_path: path,
            operator_certificate: std::sync::OnceLock::new(),
            operator_certificate_info: std::sync::OnceLock::new(),
        })
    }

    pub fn node(&self, name: &str) -> Result<&NodeEntry, CliError> {
        Ok(self.config.node(name, &self.config_path)?)
    }

    /// The nodes a fan-out command talks to: one, or all of them.
    pub fn nodes(&self, only: Option<&str>) -> Result<Vec<NodeEntry>, CliError> {
        match only {
            Some(name) => Ok(vec![self.node(name)?.clone()]),
            None => Ok(self.config.nodes.clone()),
        }
    }

    /// How long a fan-out waits for each node.
    pub fn node_timeout(&self) -> Duration {
        self.config
            .node_timeout_ms
            .map_or(DEFAULT_NODE_TIMEOUT, Duration::from_millis)
    }

    pub async fn connect(&self, node: &NodeEntry) -> Result<mcp_client::AgentConn, CliError> {
        self.operator_certificate_usable()?;
        Ok(mcp_client::connect(node, &self.config.tls).await?)
    }

    /// Err when the operator certificate has expired (checked once per process).
    pub fn operator_certificate_usable(&self) -> Result<(), CliError> {
        let verdict = self
            .operator_certificate
            .get_or_init(|| self.check_operator_certificate());
        match verdict {
            Some(refusal) => Err(CliError::permission_denied(refusal.clone())),
            None => Ok(()),
        }
    }

    fn operator_certificate_info(&self) -> Option<&pki::CertInfo> {
        self.operator_certificate_info
            .get_or_init(|| {
                let pem = std::fs::read_to_string(&self.config.tls.cert).ok()?;
                pki::inspect_pem(&pem)
            })
            .as_ref()
    }

    /// Err (exit 4) when the operator certificate's role is below `needed` for `what`. The
    /// agents decide every call; this only stops a multi-step command before its first step
    /// when a later one is sure to be refused. An unreadable certificate is left to them.
    pub fn require_role(&self, needed: pki::OperatorRole, what: &str) -> Result<(), CliError> {
        let role = self.operator_certificate_info().map(|info| info.role);
        match role {
            Some(Some(role)) if role < needed => Err(CliError::permission_denied(format!(
                "permission denied: {what} needs role {needed}; the operator certificate {} \
                 has role {role}",
                self.config.tls.cert.display()
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses an expired operator certificate here, where the reason can be named (an
    /// agent's TLS refusal only says the handshake failed), and warns once when it expires
    /// within `EXPIRY_WARNING_DAYS`. An unreadable file is left to the connection to report.
    fn check_operator_certificate(&self) -> Option<String> {
        let path = &self.config.tls.cert;
        let info = self.operator_certificate_info()?;
        let now = crate::output::now_unix();
        let expiry = crate::commands::tls::expiry_text(info.not_after_unix, now);
        let renew = format!(
            "renew it with `mcp tls cert renew {} --ca CA.pem --ca-key CA.key`",
            path.display()
        );
        if info.not_after_unix <= now {
            return Some(format!(
                "permission denied: the operator certificate {} {expiry}; {renew}",
                path.display()
            ));
        }
        if info.days_left(now) < EXPIRY_WARNING_DAYS {
            eprintln!(
                "warning: the operator certificate {} {expiry}; {renew}",
                path.display()
            );
        }
        None
    }

    /// A path-looking target is a file; a bare name is looked up in the services directory.
    pub fn definition_file(&self, target: &str) -> Result<PathBuf, CliError> {
        let as_path = PathBuf::from(target);
        if target.ends_with(".toml") || target.contains('/') || as_path.is_file() {
            return Ok(as_path);
        }
        self.definition_path(target).ok_or_else(|| {
            let dir = self.config.services_dir.as_ref().map_or_else(
                || format!("{} sets no services_dir", self.config_path.display()),
                |d| format!("{} has no {target}.toml", d.display()),
            );
            CliError::bad_input(format!("no definition for service {target}: {dir}"))
        })
    }

    /// The build workspace (`[build] workspace`), when configured.
    pub fn workspace(&self) -> Option<&Path> {
        self.config.build.as_ref()?.workspace.as_deref()
    }

    /// podman on this (the operator's) machine, for builds, pushes and registry checks.
    pub fn local_podman(&self) -> PodmanBuilder {
        let build = self.config.build.clone().unwrap_or_default();
        let defaults = PodmanCli::default();
        PodmanBuilder::new(PodmanBuilderConfig {
            podman: PodmanCli {
                binary: build.podman.unwrap_or(defaults.binary),
                global_args: build.podman_args,
                ..defaults
            },
            insecure_registries: build.insecure_registries,
        })
    }

    /// `<services_dir>/<service>.toml`, when such a file exists.
    pub fn definition_path(&self, service: &str) -> Option<PathBuf> {
        let path = self
            .config
            .services_dir
            .as_ref()?
            .join(format!("{service}.toml"));
        path.is_file().then_some(path)
    }

    /// The node a service-level command goes to: `--node`, else the definition's node,
    /// else the only node, else whichever node reports the service.
    pub async fn node_of_service(
        &self,
        service: &str,
        explicit: Option<&str>,
    ) -> Result<NodeEntry, CliError> {
        if let Some(name) = explicit {
            return Ok(self.node(name)?.clone());
        }
        if let Some(path) = self.definition_path(service) {
            let def = servicedef::load_file(&path)?;
            return Ok(self.node(&def.node)?.clone());
        }
        if let [only] = self.config.nodes.as_slice() {
            return Ok(only.clone());
        }
        let mut unreachable = Vec::new();
        for (node, result) in fan_out_status(self, None, service).await {
            match result {
                Ok(resp) if !resp.services.is_empty() => return Ok(node),
                Ok(_) => {}
                Err(e) if e.not_found => {}
                Err(e) => unreachable.push(e.message),
            }
        }
        if unreachable.is_empty() {
            Err(CliError::bad_input(format!(
                "no node runs a service named {service}"
            )))
        } else {
            Err(CliError {
                not_found: false,
                code: crate::ExitCode::Unreachable,
                message: format!(
                    "service {service} not found on reachable nodes; {}",
                    unreachable.join("; ")
                ),
            })
        }
    }
}

/// `$XDG_CONFIG_HOME/mcp/mcp.toml` (default `~/.config`), when it exists.
fn default_config_path() -> Option<PathBuf> {
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    let path = config_home.join("mcp/mcp.toml");
    path.is_file().then_some(path)
}

/// Who is acting, for the agents' deploy history.
pub fn actor() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let host = nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{user}@{host}")
}

/// Runs `call` against every node in `nodes` at once. Each connection is bounded by the node
/// timeout (a node that is down or hangs, e.g. a stopped agent whose kernel still accepts
/// connections, becomes an "unreachable" error while the others answer) and each answer by
/// `ANSWER_TIMEOUT`. Results in `nodes` order.
pub async fn fan_out<T, F, Fut>(
    ctx: &Context,
    nodes: Vec<NodeEntry>,
    call: F,
) -> Vec<(NodeEntry, Result<T, CliError>)>
where
    T: Send + 'static,
    F: Fn(mcp_client::AgentConn) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<T, tonic::Status>> + Send,
{
    if let Err(refusal) = ctx.operator_certificate_usable() {
        return nodes
            .into_iter()
            .map(|node| {
                (
                    node,
                    Err(CliError::permission_denied(refusal.message.clone())),
                )
            })
            .collect();
    }
    let timeout = ctx.node_timeout();
    let tasks: Vec<_> = nodes
        .into_iter()
        .map(|node| {
            let tls = ctx.config.tls.clone();
            let call = call.clone();
            tokio::spawn(async move {
                let silent = |after: Duration| CliError {
                    code: ExitCode::Unreachable,
                    message: format!(
                        "agent of node {} did not answer within {} ms",
                        node.name,
                        after.as_millis()
                    ),
                    not_found: false,
                };
                let result = async {
                    let client = tokio::time::timeout(timeout, mcp_client::connect(&node, &tls))
                        .await
                        .map_err(|_| silent(timeout))??;
                    tokio::time::timeout(ANSWER_TIMEOUT, call(client))
                        .await
                        .map_err(|_| silent(ANSWER_TIMEOUT))?
                        .map_err(|s| CliError::from_status(&node.name, &s))
                }
                .await;
                (node, result)
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        if let Ok(pair) = task.await {
            out.push(pair);
        }
    }
    out
}

/// The exit code of a fan-out: a failing node fails the command only when every node failed,
/// or with `--strict`; the others' answers are shown either way.
pub fn fan_out_code(failures: &[ExitCode], asked: usize, strict: bool) -> ExitCode {
    match failures.first() {
        Some(first) if strict || failures.len() == asked => *first,
        _ => ExitCode::Ok,
    }
}

/// Asks every node (or one) for status in parallel; results in config order.
pub async fn fan_out_status(
    ctx: &Context,
    only_node: Option<&str>,
    service: &str,
) -> Vec<(NodeEntry, Result<pb::StatusResponse, CliError>)> {
    let nodes = match ctx.nodes(only_node) {
        Ok(nodes) => nodes,
        Err(e) => {
            return vec![(
                NodeEntry {
                    name: only_node.unwrap_or_default().to_string(),
                    address: String::new(),
                    tls_server_name: None,
                },
                Err(e),
            )];
        }
    };
    fan_out_status_to(ctx, nodes, service).await
}

/// Asks `nodes` for the status of `service` ("" for all) in parallel.
pub async fn fan_out_status_to(
    ctx: &Context,
    nodes: Vec<NodeEntry>,
    service: &str,
) -> Vec<(NodeEntry, Result<pb::StatusResponse, CliError>)> {
    let service = service.to_string();
    fan_out(ctx, nodes, move |mut client| {
        let request = pb::StatusRequest {
            service: service.clone(),
        };
        async move {
            client
                .status(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await
}
