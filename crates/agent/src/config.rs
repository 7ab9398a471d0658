//! The agent's configuration file (`mcp-agent --config agent.toml`).

use runtime::PodmanConfig;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This node's name; deploys of services for another node are refused.
    pub node: String,
    pub listen: SocketAddr,
    /// Registry database and per-workload state live here.
    pub state_dir: PathBuf,
    pub tls: ServerTls,
    #[serde(default)]
    pub podman: PodmanSection,
    #[serde(default)]
    pub ports: PortsSection,
    #[serde(default)]
    pub monitor: MonitorSection,
    #[serde(default)]
    pub qemu: QemuSection,
    #[serde(default)]
    pub proxy: ProxySection,
    /// Seconds a component gets to exit after SIGTERM before it is killed.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_secs: u64,
    /// Deployed versions per service whose spec is kept for `mcp rollback` (older ones keep
    /// their place in `mcp history` without it), so the history does not grow without bound.
    #[serde(default = "default_keep_versions")]
    pub keep_versions: u32,
}

fn default_keep_versions() -> u32 {
    20
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// CA whose signature a client certificate must carry.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Serials (hex, `:` optional) of client certificates refused although the CA signed
    /// them: lost or retired operator certificates (`mcp tls cert show` prints a serial).
    #[serde(default)]
    pub revoked_serials: Vec<String>,
}

/// The serials in the form certificates are compared in (`pki::normalize_serial`), or the
/// first that is not one, named by its place.
fn normalize_serials(serials: &[String]) -> Result<Vec<String>, String> {
    serials
        .iter()
        .enumerate()
        .map(|(i, serial)| {
            pki::normalize_serial(serial).ok_or_else(|| {
                format!("tls.revoked_serials[{i}]: {serial:?} is not a hexadecimal serial number")
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PodmanSection {
    #[serde(default)]
    pub binary: Option<PathBuf>,
    #[serde(default)]
    pub global_args: Vec<String>,
    #[serde(default)]
    pub run_args: Vec<String>,
    #[serde(default)]
    pub containers_conf: Option<PathBuf>,
    /// Registries (`host[:port]` as written in images) pulled from over plain HTTP, with
    /// `--tls-verify=false`; every other registry is pulled from with TLS checks.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// The size a container's log file may reach (podman `--log-opt max-size`, e.g. "10mb");
    /// "" leaves podman's default (no limit).
    #[serde(default = "default_log_max_size")]
    pub log_max_size: String,
    /// Listings and image checks through podman's API socket (else every call is a podman
    /// process).
    #[serde(default = "default_true")]
    pub api: bool,
    /// A podman API socket to use (e.g. `/run/podman/podman.sock` of `podman.socket`); by
    /// default the agent runs `podman system service` on `<state_dir>/podman.sock` itself,
    /// with the store and containers.conf of its CLI calls.
    #[serde(default)]
    pub api_socket: Option<PathBuf>,
    /// podman's event log file (containers.conf `events_logfile_path`), when podman logs
    /// events to a file somewhere else than its default `<tmp_dir>/events/events.log`. The
    /// agent follows that file; without one it follows the API's event stream.
    #[serde(default)]
    pub events_file: Option<PathBuf>,
    /// Seconds without a request after which the agent's own podman service exits (the next
    /// call starts it again, ~50 ms); 0 keeps it running.
    #[serde(default = "default_api_idle_secs")]
    pub api_idle_secs: u64,
}

impl PodmanSection {
    /// Relative `api_socket` and `events_file` are taken as neighbours of the file that named
    /// them, as the config's other paths are.
    fn resolve_paths(&mut self, base: &Path) {
        for path in [self.api_socket.as_mut(), self.events_file.as_mut()]
            .into_iter()
            .flatten()
        {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }
}

fn default_api_idle_secs() -> u64 {
    60
}

fn default_log_max_size() -> String {
    "10mb".into()
}

impl PodmanSection {
    /// Whether the CLI calls use a store or settings of their own (not podman's defaults).
    pub fn has_own_store(&self) -> bool {
        !self.global_args.is_empty() || self.containers_conf.is_some()
    }
}

impl Default for PodmanSection {
    fn default() -> Self {
        Self {
            binary: None,
            global_args: Vec::new(),
            run_args: Vec::new(),
            containers_conf: None,
            insecure_registries: Vec::new(),
            log_max_size: default_log_max_size(),
            api: true,
            api_socket: None,
            events_file: None,
            api_idle_secs: default_api_idle_secs(),
        }
    }
}

/// Overrides for `mcp-agent --dev --settings FILE`: any of agent.toml's tunable sections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSettings {
    pub podman: Option<PodmanSection>,
    pub ports: Option<PortsSection>,
    pub monitor: Option<MonitorSection>,
    pub qemu: Option<QemuSection>,
    pub proxy: Option<ProxySection>,
    pub stop_timeout_secs: Option<u64>,
    pub keep_versions: Option<u32>,
    /// As agent.toml's `[tls] revoked_serials` (the dev directory's TLS files are its own).
    pub revoked_serials: Option<Vec<String>>,
}

impl DevSettings {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut settings: Self = servicedef::parse_toml(&path.display().to_string(), &text)
            .map_err(ConfigError::Parse)?;
        if let Some(serials) = &mut settings.revoked_serials {
            *serials = normalize_serials(serials).map_err(invalid)?;
        }
        if let Some(qemu) = &settings.qemu {
            qemu.console_max_bytes().map_err(invalid)?;
        }
        if let Some(podman) = &mut settings.podman {
            podman.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        }
        Ok(settings)
    }

    /// `config` with every section given here replacing its own.
    pub fn apply(self, mut config: AgentConfig) -> AgentConfig {
        if let Some(mut podman) = self.podman {
            // Flags' store arguments come first; the file adds to them.
            let mut args = config.podman.global_args.clone();
            args.append(&mut podman.global_args);
            podman.global_args = args;
            config.podman = podman;
        }
        if let Some(ports) = self.ports {
            config.ports = ports;
        }
        if let Some(monitor) = self.monitor {
            config.monitor = monitor;
        }
        if let Some(qemu) = self.qemu {
            config.qemu = qemu;
        }
        if let Some(mut proxy) = self.proxy {
            // The dev CA keeps issuing l7 certificates unless the file names its own issuer.
            if proxy.issuer.is_none() {
                proxy.issuer = config.proxy.issuer.clone();
            }
            config.proxy = proxy;
        }
        if let Some(keep) = self.keep_versions {
            config.keep_versions = keep;
        }
        if let Some(secs) = self.stop_timeout_secs {
            config.stop_timeout_secs = secs;
        }
        if let Some(serials) = self.revoked_serials {
            config.tls.revoked_serials = serials;
        }
        config
    }
}

/// The node proxy (`mcp-proxy`): public ports of routes, switched by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxySection {
    /// `false`: routes get host ports but nothing listens on their public ports.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Address the public ports are bound on.
    #[serde(default = "default_proxy_bind")]
    pub bind: IpAddr,
    /// The `mcp-proxy` binary; default: beside `mcp-agent`.
    #[serde(default)]
    pub binary: Option<PathBuf>,
    /// How long a replaced instance may finish in-flight work before it is stopped.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// Certificates for l7 routes' host names.
    #[serde(default)]
    pub certs: Vec<ProxyCert>,
    /// A CA that issues certificates for l7 host names `certs` does not cover (`--dev`
    /// uses its own CA); without it such a route fails its deploy.
    #[serde(default)]
    pub issuer: Option<CertFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyCert {
    pub hostname: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for ProxySection {
    fn default() -> Self {
        Self {
            enabled: true,
            bind: default_proxy_bind(),
            binary: None,
            drain_timeout_ms: default_drain_timeout_ms(),
            certs: Vec::new(),
            issuer: None,
        }
    }
}

impl ProxySection {
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

fn default_proxy_bind() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}

fn default_drain_timeout_ms() -> u64 {
    30_000
}

/// The unikernel runtime: enabled when qemu and ops are found (or forced off).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QemuSection {
    /// `false` turns unikernels off even where qemu and ops exist.
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_qemu")]
    pub qemu: PathBuf,
    #[serde(default = "default_ops")]
    pub ops: PathBuf,
    /// HOME for ops (its kernel and image cache live in `$HOME/.ops`); default: the agent's.
    #[serde(default)]
    pub ops_home: Option<PathBuf>,
    /// "auto" (boot-probe KVM, else TCG), "kvm" or "tcg".
    #[serde(default = "default_accelerator")]
    pub accelerator: String,
    /// How long a VM with ports gets to answer on the first one.
    #[serde(default = "default_boot_timeout_ms")]
    pub boot_timeout_ms: u64,
    /// How long an ACPI power-down may take before QEMU is told to quit.
    #[serde(default = "default_powerdown_timeout_ms")]
    pub powerdown_timeout_ms: u64,
    /// The size a VM's console log may reach before it is rotated (one older generation,
    /// `console.log.1`, is kept), e.g. "10mb"; "0" for no limit.
    #[serde(default = "default_console_max_size")]
    pub console_max_size: String,
}

fn default_console_max_size() -> String {
    "10mb".into()
}

/// A size as podman writes them: a number with an optional unit b, k/kb, m/mb, g/gb
/// (powers of 1024, any case).
pub fn parse_size(text: &str) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let scale: u64 = match unit.trim() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(scale)
}

impl Default for QemuSection {
    fn default() -> Self {
        Self {
            enabled: true,
            qemu: default_qemu(),
            ops: default_ops(),
            ops_home: None,
            accelerator: default_accelerator(),
            boot_timeout_ms: default_boot_timeout_ms(),
            powerdown_timeout_ms: default_powerdown_timeout_ms(),
            console_max_size: default_console_max_size(),
        }
    }
}

impl QemuSection {
    /// `console_max_size` in bytes, or what is wrong with it.
    pub fn console_max_bytes(&self) -> Result<u64, String> {
        parse_size(&self.console_max_size).ok_or_else(|| {
            format!(
                "qemu.console_max_size {:?}: expected a size such as \"10mb\", \"512kb\" or \"0\"",
                self.console_max_size
            )
        })
    }

    /// The accelerator the config imposes, if any.
    pub fn forced_accel(&self) -> Result<Option<runtime::Accel>, String> {
        match self.accelerator.as_str() {
            "auto" => Ok(None),
            "kvm" => Ok(Some(runtime::Accel::Kvm)),
            "tcg" => Ok(Some(runtime::Accel::Tcg)),
            other => Err(format!(
                "qemu.accelerator {other:?}: expected auto, kvm or tcg"
            )),
        }
    }

    pub fn runtime_config(&self, state_dir: &Path, bind: IpAddr) -> runtime::QemuConfig {
        runtime::QemuConfig {
            qemu: self.qemu.clone(),
            ops: self.ops.clone(),
            ops_home: self.ops_home.clone().unwrap_or_else(|| {
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from)
            }),
            state_dir: state_dir.to_path_buf(),
            default_bind: bind,
            boot_timeout: Duration::from_millis(self.boot_timeout_ms),
            powerdown_timeout: Duration::from_millis(self.powerdown_timeout_ms),
            // Validated when the config was read.
            console_max_bytes: self.console_max_bytes().unwrap_or(10 << 20),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_qemu() -> PathBuf {
    PathBuf::from("qemu-system-x86_64")
}

fn default_ops() -> PathBuf {
    PathBuf::from("ops")
}

fn default_accelerator() -> String {
    "auto".to_string()
}

fn default_boot_timeout_ms() -> u64 {
    32_000
}

fn default_powerdown_timeout_ms() -> u64 {
    20_000
}

/// How often the monitor looks and how it backs off restarts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSection {
    /// The full reconcile interval while podman's event stream is not connected.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// The full reconcile interval while it is (changes wake the monitor at once then);
    /// never shorter than `interval_ms`.
    #[serde(default = "default_reconcile_ms")]
    pub reconcile_ms: u64,
    /// How often a reconcile lists podman's containers afresh while podman's events are
    /// followed; the passes between compare the registry with the state those events keep
    /// (podman's event log loses none). Never shorter than `reconcile_ms`.
    #[serde(default = "default_relist_ms")]
    pub relist_ms: u64,
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// A component up this long has its restart count reset.
    #[serde(default = "default_backoff_reset_ms")]
    pub backoff_reset_ms: u64,
}

impl Default for MonitorSection {
    fn default() -> Self {
        Self {
            interval_ms: default_interval_ms(),
            reconcile_ms: default_reconcile_ms(),
            relist_ms: default_relist_ms(),
            backoff_base_ms: default_backoff_base_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            backoff_reset_ms: default_backoff_reset_ms(),
        }
    }
}

impl MonitorSection {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(10))
    }

    pub fn reconcile(&self) -> Duration {
        Duration::from_millis(self.reconcile_ms.max(self.interval_ms).max(10))
    }

    pub fn relist(&self) -> Duration {
        self.reconcile().max(Duration::from_millis(self.relist_ms))
    }

    pub fn policy(&self) -> crate::monitor::BackoffPolicy {
        crate::monitor::BackoffPolicy {
            base: Duration::from_millis(self.backoff_base_ms),
            max: Duration::from_millis(self.backoff_max_ms.max(self.backoff_base_ms)),
            reset_after: Duration::from_millis(self.backoff_reset_ms),
        }
    }
}

fn default_interval_ms() -> u64 {
    5_000
}

fn default_reconcile_ms() -> u64 {
    60_000
}

fn default_relist_ms() -> u64 {
    300_000
}

fn default_backoff_base_ms() -> u64 {
    20_000
}

fn default_backoff_max_ms() -> u64 {
    300_000
}

fn default_backoff_reset_ms() -> u64 {
    600_000
}

/// Where routes' host ports come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsSection {
    #[serde(default = "default_range_start")]
    pub range_start: u16,
    #[serde(default = "default_range_end")]
    pub range_end: u16,
    /// Host address the ports are published on; loopback unless the operator says otherwise.
    #[serde(default = "default_bind")]
    pub bind_address: IpAddr,
}

impl Default for PortsSection {
    fn default() -> Self {
        Self {
            range_start: default_range_start(),
            range_end: default_range_end(),
            bind_address: default_bind(),
        }
    }
}

fn default_range_start() -> u16 {
    20_000
}

fn default_range_end() -> u16 {
    32_000
}

fn default_bind() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

fn default_stop_timeout() -> u64 {
    10
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read agent config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid agent config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// Not TOML, an unknown key or a value of the wrong type, located by line, column and key.
    #[error("invalid agent config {0}")]
    Parse(servicedef::DefinitionError),
}

impl AgentConfig {
    /// Reads `path`; relative paths inside are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let mut config: AgentConfig = servicedef::parse_toml(&path.display().to_string(), &text)
            .map_err(ConfigError::Parse)?;
        servicedef::validate_node_name(&config.node).map_err(|e| invalid(e.to_string()))?;
        config.qemu.forced_accel().map_err(invalid)?;
        config.qemu.console_max_bytes().map_err(invalid)?;
        if config.podman.api && config.podman.api_socket.is_some() && config.podman.has_own_store()
        {
            return Err(invalid(
                "podman.api_socket names a service with its own store and settings, while \
                 podman.global_args/containers_conf give the CLI calls others: listings would \
                 not see what runs. Drop api_socket (the agent then runs a service with the \
                 same settings) or those keys"
                    .into(),
            ));
        }
        config.tls.revoked_serials =
            normalize_serials(&config.tls.revoked_serials).map_err(invalid)?;
        if config.ports.range_start == 0 || config.ports.range_start > config.ports.range_end {
            return Err(invalid(format!(
                "ports: range {}-{} is empty or starts at 0",
                config.ports.range_start, config.ports.range_end
            )));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.state_dir,
            &mut config.tls.ca,
            &mut config.tls.cert,
            &mut config.tls.key,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        config.podman.resolve_paths(base);
        Ok(config)
    }

    pub fn stop_timeout(&self) -> Duration {
        Duration::from_secs(self.stop_timeout_secs)
    }

    pub fn podman_config(&self) -> PodmanConfig {
        let defaults = podman_cli::PodmanCli::default();
        PodmanConfig {
            cli: podman_cli::PodmanCli {
                binary: self.podman.binary.clone().unwrap_or(defaults.binary),
                global_args: self.podman.global_args.clone(),
                containers_conf: self.podman.containers_conf.clone(),
            },
            run_args: self.run_args_with_log_limit(),
            insecure_registries: self.podman.insecure_registries.clone(),
            auth_file: Some(self.registry_auth_path()),
        }
    }

    /// `[podman] run_args` plus the log size limit, unless the operator set a `--log-opt`.
    fn run_args_with_log_limit(&self) -> Vec<String> {
        let mut args = self.podman.run_args.clone();
        let own = args.iter().any(|a| a.starts_with("--log-opt"));
        if !own && !self.podman.log_max_size.is_empty() {
            args.push(format!("--log-opt=max-size={}", self.podman.log_max_size));
        }
        args
    }

    pub fn port_allocator(&self) -> crate::ports::PortAllocator {
        crate::ports::PortAllocator::new(
            self.ports.range_start..=self.ports.range_end,
            self.ports.bind_address,
        )
    }

    pub fn registry_path(&self) -> PathBuf {
        self.state_dir.join("registry.db")
    }

    /// Credentials of `mcp registry login`, for this node's pulls (podman's auth.json, 0600).
    pub fn registry_auth_path(&self) -> PathBuf {
        self.state_dir.join("registry-auth.json")
    }

    /// The podman API socket the agent uses, and whether it runs the service on it itself;
    /// None when `[podman] api = false`.
    pub fn podman_api_socket(&self) -> Option<(PathBuf, bool)> {
        if !self.podman.api {
            return None;
        }
        Some(match &self.podman.api_socket {
            Some(socket) => (socket.clone(), false),
            None => (self.state_dir.join("podman.sock"), true),
        })
    }

    /// The key that seals secret values in the registry database (0600).
    pub fn secrets_key_path(&self) -> PathBuf {
        self.state_dir.join("secrets.key")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loads_with_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "node = \"node1\"\nlisten = \"127.0.0.1:7443\"\nstate_dir = \"state\"\n\
             [tls]\nca = \"ca.pem\"\ncert = \"agent.pem\"\nkey = \"agent.key\"\n",
        )
        .unwrap();
        let config = AgentConfig::load(&path).unwrap();
        assert_eq!(config.state_dir, dir.path().join("state"));
        assert_eq!(config.stop_timeout(), Duration::from_secs(10));
        assert_eq!(config.podman_config().cli.binary, PathBuf::from("podman"));
        assert!(config.podman_config().insecure_registries.is_empty());

        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(
            "[podman]\ninsecure_registries = [\"127.0.0.1:5000\"]\n\
             events_file = \"events.log\"\napi_socket = \"/run/podman/podman.sock\"\n",
        );
        std::fs::write(&path, text).unwrap();
        let config = AgentConfig::load(&path).unwrap();
        assert_eq!(
            config.podman_config().insecure_registries,
            ["127.0.0.1:5000"]
        );
        // Relative paths are the config file's neighbours, as the others are.
        assert_eq!(
            config.podman.events_file,
            Some(dir.path().join("events.log"))
        );
        assert_eq!(
            config.podman.api_socket,
            Some(PathBuf::from("/run/podman/podman.sock"))
        );

        std::fs::write(&path, "node = \"n\"\nlisten = \"127.0.0.1:1\"\nstate_dir = \"s\"\nbogus = 1\n[tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\n").unwrap();
        let err = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn dev_settings_resolve_their_paths_and_name_a_bad_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.toml");
        std::fs::write(&path, "[podman]\nevents_file = \"events.log\"\n").unwrap();
        let settings = DevSettings::load(&path).unwrap();
        assert_eq!(
            settings.podman.unwrap().events_file,
            Some(dir.path().join("events.log"))
        );
        std::fs::write(&path, "[monitor]\nrelist_ms = \"often\"\n").unwrap();
        let err = DevSettings::load(&path).unwrap_err().to_string();
        assert!(
            err.contains(":2:13: monitor.relist_ms: invalid type"),
            "{err}"
        );
    }

    #[test]
    fn a_foreign_api_socket_with_a_store_of_our_own_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let base = "node = \"n\"\nlisten = \"127.0.0.1:1\"\nstate_dir = \"s\"\n\
                    [tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\n[podman]\n\
                    api_socket = \"/run/podman/podman.sock\"\n";
        std::fs::write(&path, base).unwrap();
        assert!(AgentConfig::load(&path).is_ok());
        std::fs::write(&path, format!("{base}global_args = [\"--root=/srv/c\"]\n")).unwrap();
        let err = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("podman.api_socket"), "{err}");
    }

    #[test]
    fn sizes_read_as_podman_writes_them() {
        assert_eq!(parse_size("10mb"), Some(10 << 20));
        assert_eq!(parse_size("512KB"), Some(512 << 10));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0"), Some(0));
        for bad in ["", "mb", "10tb", "-1", "1.5mb", "99999999999999999999"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn revoked_serials_are_normalised_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let base = "node = \"n\"\nlisten = \"127.0.0.1:1\"\nstate_dir = \"s\"\n\
                    [tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\n";
        std::fs::write(
            &path,
            format!("{base}revoked_serials = [\"0A:FF\", \"1b\"]\n"),
        )
        .unwrap();
        let config = AgentConfig::load(&path).unwrap();
        assert_eq!(config.tls.revoked_serials, ["aff", "1b"]);
        std::fs::write(
            &path,
            format!("{base}revoked_serials = [\"1b\", \"ann\"]\n"),
        )
        .unwrap();
        let err = AgentConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("tls.revoked_serials[1]"), "{err}");
    }
}
