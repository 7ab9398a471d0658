//! Domain types of a service definition: what the CLI sends and the agent runs, independent of
//! the TOML text they came from.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::name::{ComponentName, NameError, ServiceName};

/// A semantic rule broken by a definition; `field` is a path such as `components[1].routes[0].mode`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// Path of the offending field.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl SpecError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A keyword that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} \"{value}\": expected one of {}", quoted(.allowed))]
pub struct ParseEnumError {
    /// What was being parsed, e.g. "runtime".
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
    /// Every accepted spelling.
    pub allowed: &'static [&'static str],
}

fn quoted(allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
    quoted.join(", ")
}

// The TOML layer reads these keywords as strings so that an unknown one can be reported with its
// field path; this keeps their spellings in one place, agreeing with the serde renames.
macro_rules! keyword_enum {
    ($ty:ident, $kind:literal, $($variant:ident => $text:literal),+) => {
        impl $ty {
            /// Every accepted spelling, in declaration order.
            pub const ALLOWED: &'static [&'static str] = &[$($text),+];

            /// The keyword as written in a definition.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, ParseEnumError> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(ParseEnumError { kind: $kind, value: s.to_owned(), allowed: Self::ALLOWED }),
                }
            }
        }
    };
}

/// Which backend runs a component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// A podman container.
    #[default]
    Container,
    /// A unikernel VM under QEMU.
    Unikernel,
}
keyword_enum!(RuntimeKind, "runtime", Container => "container", Unikernel => "unikernel");

/// How a route's public port is proxied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteMode {
    /// TCP pass-through.
    #[default]
    L4,
    /// HTTP-aware proxying.
    L7,
}
keyword_enum!(RouteMode, "mode", L4 => "l4", L7 => "l7");

/// When the runtime restarts a stopped component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    /// Never.
    No,
    /// When it exits with an error.
    #[default]
    OnFailure,
    /// Whenever it stops.
    Always,
}
keyword_enum!(RestartPolicy, "restart policy", No => "no", OnFailure => "on-failure", Always => "always");

/// A public port of a component; the agent picks a host port and passes it in [`Route::env_var`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Optional only when it is the component's sole route.
    pub name: Option<String>,
    /// The public port.
    pub port: u16,
    /// Proxy mode.
    pub mode: RouteMode,
    /// Host name an L7 proxy matches on.
    pub hostname: Option<String>,
}

impl Route {
    /// The environment variable carrying the assigned host port: `PORT`, or `PORT_<NAME>` with
    /// the name upper-cased and `-` turned into `_` (e.g. `rest-api` -> `PORT_REST_API`).
    pub fn env_var(&self) -> String {
        match &self.name {
            None => "PORT".to_owned(),
            Some(name) => format!("PORT_{}", name.to_ascii_uppercase().replace('-', "_")),
        }
    }

    /// Every variable carrying this route's host port: its own (`env_var`), and `PORT` too
    /// when it is its component's only route, named or not ("single route → $PORT").
    pub fn env_vars(&self, only_route: bool) -> Vec<String> {
        let own = self.env_var();
        if only_route && own != "PORT" {
            vec!["PORT".to_owned(), own]
        } else {
            vec![own]
        }
    }
}

/// What a health check asks of a component's route host port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    /// `GET path`; a 2xx or 3xx answer is healthy.
    Http(String),
    /// A TCP connection is accepted.
    Tcp,
}

/// `secrets = ["VAR", "VAR=NAME"]`: the node's secret `NAME` (default: `VAR`) of the service,
/// passed to the component as the environment variable `VAR`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretEnv {
    pub var: String,
    pub secret: String,
    /// The secret's version on the node, filled in by the agent when it deploys (0 in a
    /// definition): part of the spec hash, so a changed value replaces the component.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl SecretEnv {
    /// `VAR` or `VAR=NAME`; both parts are checked by validation.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (var, secret) = entry.split_once('=').unwrap_or((entry, entry));
        let parsed = Self {
            var: var.to_string(),
            secret: secret.to_string(),
            version: 0,
        };
        parsed.check()?;
        Ok(parsed)
    }

    /// The canonical `VAR=NAME` form (the wire's).
    pub fn entry(&self) -> String {
        format!("{}={}", self.var, self.secret)
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        crate::validate::env_var_name(&self.var)?;
        crate::validate::check_secret_name(&self.secret)
    }
}

/// `[components.health]`: how the agent tells that an instance is ready and stays healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub probe: Probe,
    /// The route whose host port is probed; `None`: the component's only route.
    pub route: Option<String>,
    /// Time between checks of a running instance.
    pub interval_ms: u64,
    /// One check's deadline.
    pub timeout_ms: u64,
    /// Consecutive failures before the instance counts as unhealthy.
    pub retries: u32,
    /// How long a new instance may take to become healthy (the deploy's deadline).
    pub start_period_ms: u64,
}

impl HealthCheck {
    pub const DEFAULT_INTERVAL_MS: u64 = 2_000;
    pub const DEFAULT_TIMEOUT_MS: u64 = 1_000;
    pub const DEFAULT_RETRIES: u32 = 3;
    pub const DEFAULT_START_PERIOD_MS: u64 = 30_000;

    /// The check a routed component without `[components.health]` gets: its route's host
    /// port accepts a TCP connection, within the default start period.
    pub fn default_tcp() -> Self {
        Self {
            probe: Probe::Tcp,
            route: None,
            interval_ms: Self::DEFAULT_INTERVAL_MS,
            timeout_ms: Self::DEFAULT_TIMEOUT_MS,
            retries: Self::DEFAULT_RETRIES,
            start_period_ms: Self::DEFAULT_START_PERIOD_MS,
        }
    }

    /// What the check asks, for messages: `GET /up` or `TCP connect`.
    pub fn describe(&self) -> String {
        match &self.probe {
            Probe::Http(path) => format!("GET {path}"),
            Probe::Tcp => "TCP connect".to_string(),
        }
    }
}

/// One workload of a service: a container or a unikernel VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Unique within the service.
    pub name: ComponentName,
    /// Image reference, parsed.
    pub image: crate::Image,
    /// Resolved runtime: the component's own, else the service's, else container.
    pub runtime: RuntimeKind,
    /// Memory limit; required for unikernels.
    pub memory_mb: Option<u32>,
    /// Virtual CPUs, 1..=64.
    pub vcpus: u32,
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// Secrets passed as environment variables (values live on the node, never here). Left
    /// out of the JSON when empty, so earlier components keep their spec hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretEnv>,
    /// `/host:/container[:opts]` mounts.
    pub volumes: Vec<String>,
    /// Legacy explicit mappings `[ip:]hostport:containerport[/tcp|udp]`.
    pub ports: Vec<String>,
    /// Network to join.
    pub network: Option<String>,
    /// User to run as.
    pub user: Option<String>,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Public ports.
    pub routes: Vec<Route>,
    /// Unikernel: path of the ELF inside the image.
    pub binary: Option<String>,
    /// Readiness and liveness check. Left out of the JSON when absent, so components
    /// deployed before health checks existed keep their spec hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthCheck>,
}

/// The virtual CPUs of a component that names none.
pub const DEFAULT_VCPUS: u32 = 1;

impl Component {
    /// The runtime a component runs on: its own, else its service's, else a container. The
    /// one place this inheritance is decided (definitions and the wire both use it).
    pub fn effective_runtime(
        own: Option<RuntimeKind>,
        service: Option<RuntimeKind>,
    ) -> RuntimeKind {
        own.or(service).unwrap_or_default()
    }

    /// The route a health check probes: the one it names, else the component's only route.
    pub fn health_route(&self) -> Option<&Route> {
        match self.health.as_ref().and_then(|h| h.route.as_deref()) {
            Some(name) => self.routes.iter().find(|r| r.name.as_deref() == Some(name)),
            None if self.routes.len() == 1 => self.routes.first(),
            None => None,
        }
    }

    /// The check gating this component's readiness: its own, or a TCP connect on its first
    /// route when it has routes; `None` for a component without routes.
    pub fn readiness(&self) -> Option<HealthCheck> {
        match &self.health {
            Some(h) => Some(h.clone()),
            None if !self.routes.is_empty() => Some(HealthCheck::default_tcp()),
            None => None,
        }
    }

    /// Fingerprint of the whole spec, so the agent can tell whether a running component drifted.
    pub fn spec_hash(&self) -> String {
        hash_json(self)
    }
}

/// A service: one or more components deployed together on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Service name.
    pub name: ServiceName,
    /// Node whose agent runs it.
    pub node: String,
    /// False: recorded with desired state "stopped".
    pub active: bool,
    /// Source dir under the CLI's build workspace.
    pub path: Option<String>,
    /// Service-level runtime default, as written.
    pub runtime: Option<RuntimeKind>,
    /// `[build.images]`: image repo name -> build file, relative to `path`.
    pub build_images: BTreeMap<String, String>,
    /// The components, in definition order.
    pub components: Vec<Component>,
}

impl Service {
    /// `<service>-<component>`, or just `<service>` when the two names are equal.
    pub fn container_name(&self, component: &ComponentName) -> String {
        if self.name.as_str() == component.as_str() {
            self.name.to_string()
        } else {
            format!("{}-{}", self.name, component)
        }
    }

    /// The component with this name.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name.as_str() == name)
    }

    /// Checks every semantic rule; for specs that arrive without TOML positions.
    pub fn validate(&self) -> Result<(), SpecError> {
        crate::validate::service(self)
    }

    /// Fingerprint of the whole service spec.
    pub fn spec_hash(&self) -> String {
        hash_json(self)
    }
}

/// First 16 hex chars of the sha256 of the JSON encoding; JSON of these types is deterministic
/// (struct fields in order, maps are `BTreeMap`), so equal specs hash equal.
fn hash_json<T: Serialize>(value: &T) -> String {
    // Serializing plain structs of strings and numbers to JSON has no failure path.
    let json = serde_json::to_vec(value).expect("spec types always serialize to JSON");
    let digest = Sha256::digest(&json);
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip_and_name_allowed_values() {
        for p in [
            RestartPolicy::No,
            RestartPolicy::OnFailure,
            RestartPolicy::Always,
        ] {
            assert_eq!(p.as_str().parse::<RestartPolicy>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        assert_eq!(RuntimeKind::default().to_string(), "container");
        assert_eq!(serde_json::to_string(&RouteMode::L7).unwrap(), "\"l7\"");
        let err = "l5".parse::<RouteMode>().unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unknown mode "l5": expected one of "l4", "l7""#
        );
    }
}
