//! The agent's operation errors; `api` maps them to gRPC statuses in one place.

use runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid service spec: {0}")]
    InvalidSpec(String),
    #[error("service {service} is for node {wanted}, but this agent is node {this}")]
    WrongNode {
        service: String,
        wanted: String,
        this: String,
    },
    #[error("no service named {0} on this node")]
    ServiceNotFound(String),
    #[error("service {service} has no component named {component}")]
    ComponentNotFound { service: String, component: String },
    #[error(
        "component {component} needs the {runtime} runtime, which this node does not have: {reason}"
    )]
    RuntimeUnavailable {
        component: String,
        runtime: String,
        reason: String,
    },
    #[error("{context}: {source}")]
    Runtime {
        context: String,
        #[source]
        source: RuntimeError,
    },
    #[error("component {component} exited right after starting (exit code {exit_code}){}", log_tail(.logs))]
    Crashed {
        component: String,
        exit_code: i32,
        logs: Vec<String>,
    },
    #[error("{0}")]
    Ports(String),
    #[error(
        "component {component} never became healthy within {deadline_ms} ms ({check}: {reason}); the previous version keeps serving{}",
        log_tail(.logs)
    )]
    NeverHealthy {
        component: String,
        check: String,
        reason: String,
        deadline_ms: u64,
        logs: Vec<String>,
    },
    #[error(transparent)]
    Traffic(#[from] crate::traffic::TrafficError),
    #[error("no version {version} of service {service} in its history ({known} recorded)")]
    VersionNotFound {
        service: String,
        version: u32,
        known: usize,
    },
    #[error(
        "version {version} of service {service} is older than the {keep} versions whose spec \
         the node keeps (keep_versions in agent.toml)"
    )]
    VersionPruned {
        service: String,
        version: u32,
        keep: u32,
    },
    #[error("registry: {0}")]
    Registry(#[from] registry::RegistryError),
    #[error("{0}")]
    BadRequest(String),
    #[error("service {service} has no secret named {name} on this node")]
    SecretNotFound { service: String, name: String },
    #[error(
        "secret {name} of service {service} is used by component(s) {components} of the \
         deployed spec; deploy a spec without it (or undeploy the service) first"
    )]
    SecretInUse {
        service: String,
        name: String,
        components: String,
    },
    #[error(transparent)]
    Seal(#[from] crate::secret_box::SealError),
}

fn log_tail(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; last log lines:\n  {}", lines.join("\n  "))
    }
}

impl AgentError {
    pub(crate) fn runtime(context: impl Into<String>) -> impl FnOnce(RuntimeError) -> Self {
        let context = context.into();
        move |source| Self::Runtime { context, source }
    }
}
