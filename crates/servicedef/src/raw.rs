//! The TOML file's shape as serde sees it, and its conversion into the domain types. Keywords and
//! numbers are read loosely (strings, i64) so that a bad value gets a rule's message and a field
//! path instead of a serde type error.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Deserialize;

use crate::duration::parse_duration_ms;
use crate::model::{
    Component, ComponentName, HealthCheck, Probe, RestartPolicy, Route, RouteMode, RuntimeKind,
    SecretEnv, Service, ServiceName, SpecError,
};
use crate::validate::{check_memory, check_port, check_vcpus};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    name: String,
    node: String,
    active: Option<bool>,
    path: Option<String>,
    runtime: Option<String>,
    build: Option<RawBuild>,
    #[serde(default)]
    components: Vec<RawComponent>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    #[serde(default)]
    images: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    name: String,
    image: String,
    runtime: Option<String>,
    memory_mb: Option<i64>,
    vcpus: Option<i64>,
    #[serde(default)]
    cmd: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    volumes: Vec<String>,
    #[serde(default)]
    ports: Vec<String>,
    network: Option<String>,
    user: Option<String>,
    restart: Option<String>,
    binary: Option<String>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    health: Option<RawHealth>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    http: Option<String>,
    tcp: Option<bool>,
    route: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
    retries: Option<i64>,
    start_period: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Option<String>,
    port: i64,
    mode: Option<String>,
    hostname: Option<String>,
}

/// Parses an optional keyword, reporting an unknown one at `field`.
fn keyword<T: FromStr<Err = crate::model::ParseEnumError>>(
    field: &str,
    value: Option<&str>,
) -> Result<Option<T>, SpecError> {
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| SpecError::new(field, e.to_string()))
        })
        .transpose()
}

impl RawService {
    /// Converts to the domain type; only value-level failures here, the rules run afterwards.
    pub(crate) fn into_service(self) -> Result<Service, SpecError> {
        let name =
            ServiceName::new(self.name).map_err(|e| SpecError::new("name", e.to_string()))?;
        let runtime = keyword::<RuntimeKind>("runtime", self.runtime.as_deref())?;
        let components = self
            .components
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_component(&format!("components[{i}]"), runtime))
            .collect::<Result<_, _>>()?;
        Ok(Service {
            name,
            node: self.node,
            active: self.active.unwrap_or(true),
            path: self.path,
            runtime,
            build_images: self.build.map(|b| b.images).unwrap_or_default(),
            components,
        })
    }
}

impl RawComponent {
    fn into_component(
        self,
        at: &str,
        service_runtime: Option<RuntimeKind>,
    ) -> Result<Component, SpecError> {
        let field = |f: &str| format!("{at}.{f}");
        let name = ComponentName::new(self.name)
            .map_err(|e| SpecError::new(field("name"), e.to_string()))?;
        let runtime = keyword::<RuntimeKind>(&field("runtime"), self.runtime.as_deref())?;
        let memory_mb = self
            .memory_mb
            .map(|m| check_memory(m).map_err(|msg| SpecError::new(field("memory_mb"), msg)))
            .transpose()?;
        let vcpus = match self.vcpus {
            Some(v) => check_vcpus(v).map_err(|msg| SpecError::new(field("vcpus"), msg))?,
            None => crate::model::DEFAULT_VCPUS,
        };
        let restart = keyword::<RestartPolicy>(&field("restart"), self.restart.as_deref())?;
        let routes = self
            .routes
            .into_iter()
            .enumerate()
            .map(|(k, r)| r.into_route(&field(&format!("routes[{k}]"))))
            .collect::<Result<_, _>>()?;
        let health = self
            .health
            .map(|h| h.into_health(&field("health")))
            .transpose()?;
        let secrets = self
            .secrets
            .iter()
            .enumerate()
            .map(|(k, s)| {
                SecretEnv::parse(s).map_err(|m| SpecError::new(field(&format!("secrets[{k}]")), m))
            })
            .collect::<Result<_, _>>()?;
        Ok(Component {
            name,
            image: crate::Image::parse(&self.image)
                .map_err(|e| SpecError::new(field("image"), e.to_string()))?,
            runtime: Component::effective_runtime(runtime, service_runtime),
            memory_mb,
            vcpus,
            cmd: self.cmd,
            env: self.env,
            secrets,
            volumes: self.volumes,
            ports: self.ports,
            network: self.network,
            user: self.user,
            restart: restart.unwrap_or_default(),
            routes,
            binary: self.binary,
            health,
        })
    }
}

impl RawHealth {
    fn into_health(self, at: &str) -> Result<HealthCheck, SpecError> {
        let field = |f: &str| format!("{at}.{f}");
        let probe = match (self.http, self.tcp) {
            (Some(path), None | Some(false)) => Probe::Http(path),
            (None, Some(true)) => Probe::Tcp,
            (Some(_), Some(true)) => {
                return Err(SpecError::new(
                    field("tcp"),
                    "give either http = \"/path\" or tcp = true, not both",
                ));
            }
            (None, _) => {
                return Err(SpecError::new(
                    at,
                    "a health check needs http = \"/path\" or tcp = true",
                ));
            }
        };
        let duration = |name: &str, value: Option<String>, default: u64| {
            value.map_or(Ok(default), |v| {
                parse_duration_ms(&v).map_err(|m| SpecError::new(field(name), m))
            })
        };
        let retries = match self.retries {
            None => HealthCheck::DEFAULT_RETRIES,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| (1..=100).contains(n))
                .ok_or_else(|| {
                    SpecError::new(
                        field("retries"),
                        format!("retries {n} is out of range 1..=100"),
                    )
                })?,
        };
        Ok(HealthCheck {
            probe,
            route: self.route,
            interval_ms: duration("interval", self.interval, HealthCheck::DEFAULT_INTERVAL_MS)?,
            timeout_ms: duration("timeout", self.timeout, HealthCheck::DEFAULT_TIMEOUT_MS)?,
            retries,
            start_period_ms: duration(
                "start_period",
                self.start_period,
                HealthCheck::DEFAULT_START_PERIOD_MS,
            )?,
        })
    }
}

impl RawRoute {
    fn into_route(self, at: &str) -> Result<Route, SpecError> {
        let port = check_port(self.port).map_err(|m| SpecError::new(format!("{at}.port"), m))?;
        let mode = keyword::<RouteMode>(&format!("{at}.mode"), self.mode.as_deref())?;
        Ok(Route {
            name: self.name,
            port,
            mode: mode.unwrap_or_default(),
            hostname: self.hostname,
        })
    }
}
