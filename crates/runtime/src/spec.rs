//! What the agent asks a runtime to run (`ContainerSpec`), what it observes (`InstanceInfo`),
//! and the secrets it passes.

use futures_core::Stream;
use servicedef::RuntimeKind;
use std::collections::BTreeMap;
use std::pin::Pin;

use crate::RuntimeError;

/// Label naming the owning service; its presence is what makes an instance "ours".
pub const LABEL_SERVICE: &str = "mcp.service";
pub const LABEL_COMPONENT: &str = "mcp.component";
/// Hash of the component spec the instance was created from: a redeploy replaces exactly the
/// instances whose hash differs.
pub const LABEL_SPEC_HASH: &str = "mcp.spec-hash";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    /// Arguments to the image's entrypoint.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    pub volumes: Vec<String>,
    pub network: Option<String>,
    pub user: Option<String>,
    /// Restart policy as written; the agent's monitor enforces it, not the backend.
    pub restart: String,
    /// Legacy explicit mappings, `[ip:]host:container[/proto]`.
    pub ports: Vec<String>,
    pub memory_mb: Option<u32>,
    pub vcpus: u32,
    pub labels: BTreeMap<String, String>,
    /// Unikernels: the program's path inside the image (default: its entrypoint).
    pub binary: Option<String>,
    /// Secrets passed as environment variables, never through `env`.
    pub secrets: Vec<SecretEnv>,
}

/// A secret's value: never printed (`Debug` shows its length only).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValue(<{} bytes>)", self.0.len())
    }
}

/// One secret an instance receives as the environment variable `var`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnv {
    pub var: String,
    /// Names this version of the secret in the backend's own secret store (podman's):
    /// `mcp.<service>.<secret>.<version>`, so a new version is a new entry.
    pub handle: String,
    pub value: SecretValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    Created,
    Running,
    Paused,
    Stopping,
    Exited,
    Other(String),
}

impl InstanceState {
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "created" | "configured" | "initialized" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "stopping" => Self::Stopping,
            "exited" | "stopped" => Self::Exited,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopping => "stopping",
            Self::Exited => "exited",
            Self::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

/// A container or a VM as its runtime observes it (one entry of `Runtime::list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceInfo {
    pub name: String,
    pub id: String,
    pub image: String,
    pub state: InstanceState,
    /// Unix seconds, from the runtime's own record; `None` when never started.
    pub started_at: Option<i64>,
    pub exit_code: Option<i32>,
    /// Unix seconds of the last exit, when it has exited.
    pub exited_at: Option<i64>,
    pub ports: Vec<PortBinding>,
    pub runtime: RuntimeKind,
    pub labels: BTreeMap<String, String>,
    /// VMs: the accelerator QEMU runs them under ("kvm" or "tcg").
    pub accelerator: Option<String>,
}

impl InstanceInfo {
    pub fn service(&self) -> Option<&str> {
        self.labels.get(LABEL_SERVICE).map(String::as_str)
    }

    pub fn component(&self) -> Option<&str> {
        self.labels.get(LABEL_COMPONENT).map(String::as_str)
    }

    pub fn spec_hash(&self) -> Option<&str> {
        self.labels.get(LABEL_SPEC_HASH).map(String::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStreamKind {
    Stdout,
    Stderr,
}

impl LogStreamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub stream: LogStreamKind,
    pub line: String,
}

pub type LogStream = Pin<Box<dyn Stream<Item = Result<LogLine, RuntimeError>> + Send>>;

/// Which output `Runtime::logs` returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// The last lines only (all when `None`).
    pub tail: Option<u32>,
    /// Then new lines as they come.
    pub follow: bool,
    /// Each line prefixed with when it was written (backends that record it).
    pub timestamps: bool,
    /// Only lines written since this unix time (backends that record it).
    pub since: Option<i64>,
}
