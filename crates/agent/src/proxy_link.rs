//! The node proxy as the agent sees it: a separate `mcp-proxy` process (so traffic outlives
//! an agent crash or restart) that the agent starts when it is not answering, programs over
//! its owner-only control socket, and watches: a proxy that died is started again, restores
//! its own table from disk, and is re-programmed from the registry.
//!
//! Certificates of l7 host names come from agent config, or are issued once from the
//! configured CA (`--dev`) into `<state>/proxy/certs` (keys 0600).

use async_trait::async_trait;
use proxy::table::{Mode, Route, Table, Tls};
use servicedef::RouteMode;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::{CertFiles, ProxyCert};
use crate::deployer::Deployer;
use crate::traffic::{PublicRoute, TrafficError, TrafficSwitch};

/// How long a freshly started proxy may take to answer its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the watchdog pings the proxy on its held connection (a wedged proxy keeps the
/// connection open; a dead one closes it, which is seen at once).
const PING_EVERY: Duration = Duration::from_secs(2);
/// The pause before the watchdog tries again when it has no connection.
const WATCH_RETRY: Duration = Duration::from_millis(250);
/// A ping or an in-flight count: a proxy that takes longer is wedged, not busy.
const QUICK_CALL: Duration = Duration::from_secs(2);
/// An apply binds ports and writes the table to disk.
const APPLY_CALL: Duration = Duration::from_secs(10);

/// `call` within `limit`, or an error saying the proxy did not answer.
async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, TrafficError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result.map_err(err),
        Err(_) => Err(err(format!(
            "{what}: no answer within {} s",
            limit.as_secs()
        ))),
    }
}

pub struct ProxySettings {
    pub binary: PathBuf,
    /// `<state>/proxy`: control socket, routes.json, log, issued certificates.
    pub dir: PathBuf,
    pub bind: IpAddr,
    pub certs: Vec<ProxyCert>,
    pub issuer: Option<CertFiles>,
}

pub struct ProxyLink {
    settings: ProxySettings,
    /// Serialises starting the process (the watchdog and an apply may both find it down).
    starting: tokio::sync::Mutex<()>,
}

fn err(what: impl std::fmt::Display) -> TrafficError {
    TrafficError(what.to_string())
}

impl ProxyLink {
    pub fn new(settings: ProxySettings) -> Self {
        Self {
            settings,
            starting: tokio::sync::Mutex::new(()),
        }
    }

    fn socket(&self) -> PathBuf {
        self.settings.dir.join("control.sock")
    }

    async fn client(&self) -> Result<proxy::control::Client, TrafficError> {
        within(
            QUICK_CALL,
            "connecting to the proxy",
            proxy::control::Client::connect(self.socket()),
        )
        .await
    }

    async fn answers(&self) -> bool {
        match self.client().await {
            Ok(mut client) => within(QUICK_CALL, "ping", client.ping()).await.is_ok(),
            Err(_) => false,
        }
    }

    /// Starts the proxy unless it answers; true when it had to be started.
    pub async fn ensure_running(&self) -> Result<bool, TrafficError> {
        if self.answers().await {
            return Ok(false);
        }
        let _starting = self.starting.lock().await;
        if self.answers().await {
            return Ok(false);
        }
        self.spawn().await?;
        Ok(true)
    }

    async fn spawn(&self) -> Result<(), TrafficError> {
        let dir = &self.settings.dir;
        create_private_dir(dir)?;
        let log_path = dir.join("proxy.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| err(format!("opening {}: {e}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| err(format!("opening {}: {e}", log_path.display())))?;
        let started = Instant::now();
        // The proxy puts itself in its own session (setsid), so signals to the agent's
        // process group (a terminal's Ctrl-C, a service manager) do not reach it. It is not
        // waited for: the runtime reaps it if it exits while the agent runs.
        let child = tokio::process::Command::new(&self.settings.binary)
            .arg("--state-dir")
            .arg(dir)
            .arg("--bind")
            .arg(self.settings.bind.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| {
                err(format!(
                    "cannot start {}: {e}",
                    self.settings.binary.display()
                ))
            })?;
        let pid = child.id();
        drop(child);
        while started.elapsed() < START_TIMEOUT {
            if self.answers().await {
                tracing::info!(
                    ?pid,
                    elapsed_ms = started.elapsed().as_millis(),
                    "node proxy started"
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(err(format!(
            "{} did not answer on {} within {} s; see {}",
            self.settings.binary.display(),
            self.socket().display(),
            START_TIMEOUT.as_secs(),
            log_path.display()
        )))
    }

    /// Watches the proxy: one connection to its control socket is held, whose closing says
    /// at once that the proxy died, and pinged every `PING_EVERY` (a wedged proxy does not
    /// answer). A proxy that died or does not answer is started again (it reloads its last
    /// table itself) and re-programmed from the registry, as are the routes of whatever
    /// changed while it was down.
    pub async fn watch(
        self: Arc<Self>,
        deployer: Arc<Deployer>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            match self.client().await {
                Ok(mut held) => loop {
                    let ping_due = tokio::select! {
                        () = held.closed() => false,
                        () = tokio::time::sleep(PING_EVERY) => true,
                        _ = stop.wait_for(|stopping| *stopping) => return,
                    };
                    if !ping_due || within(QUICK_CALL, "ping", held.ping()).await.is_err() {
                        break;
                    }
                },
                Err(_) => tokio::select! {
                    () = tokio::time::sleep(WATCH_RETRY) => {}
                    _ = stop.wait_for(|stopping| *stopping) => return,
                },
            }
            match self.ensure_running().await {
                Ok(true) => {
                    tracing::warn!("the node proxy was not answering; started it again");
                    deployer.sync_traffic().await;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "node proxy"),
            }
        }
    }

    /// The certificate for an l7 host name: configured, or issued once from the issuer.
    fn cert_for(&self, hostname: &str) -> Result<Tls, TrafficError> {
        let host = hostname.to_ascii_lowercase();
        if let Some(c) = self
            .settings
            .certs
            .iter()
            .find(|c| c.hostname.eq_ignore_ascii_case(&host))
        {
            return Ok(Tls {
                cert: c.cert.clone(),
                key: c.key.clone(),
            });
        }
        let Some(issuer) = &self.settings.issuer else {
            return Err(err(format!(
                "no certificate for l7 host name {host}: add a [[proxy.certs]] entry for it to agent.toml"
            )));
        };
        // Host names become file names: only what DNS allows.
        let safe = !host.is_empty()
            && host.len() <= 253
            && !host.starts_with('.')
            && host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !safe {
            return Err(err(format!(
                "cannot issue a certificate for host name {host:?}"
            )));
        }
        let dir = self.settings.dir.join("certs");
        create_private_dir(&dir)?;
        let (cert, key) = pki::identity_paths(&dir, &host);
        if !cert.exists() {
            let ca = pki::load(&issuer.cert, &issuer.key).map_err(err)?;
            let pair = pki::issue(
                &ca,
                &host,
                &pki::Role::Node {
                    sans: vec![host.clone()],
                },
            )
            .map_err(err)?;
            pki::save(&pair, &cert, &key).map_err(err)?;
        }
        Ok(Tls { cert, key })
    }

    fn table(&self, routes: &[PublicRoute]) -> Result<Table, TrafficError> {
        let routes = routes
            .iter()
            .map(|r| {
                let tls = match (&r.mode, &r.hostname) {
                    (RouteMode::L7, Some(host)) => Some(self.cert_for(host)?),
                    _ => None,
                };
                Ok(Route {
                    service: r.service.clone(),
                    component: r.component.clone(),
                    route: r.route.clone(),
                    port: r.port,
                    mode: match r.mode {
                        RouteMode::L4 => Mode::L4,
                        RouteMode::L7 => Mode::L7,
                    },
                    hostname: r.hostname.clone(),
                    backend: r.backend,
                    tls,
                })
            })
            .collect::<Result<Vec<_>, TrafficError>>()?;
        Ok(Table { routes })
    }
}

#[async_trait]
impl TrafficSwitch for ProxyLink {
    async fn apply(&self, routes: &[PublicRoute]) -> Result<(), TrafficError> {
        let table = self.table(routes)?;
        self.ensure_running().await?;
        let mut client = self.client().await?;
        within(
            APPLY_CALL,
            "applying the routing table",
            client.apply(&table),
        )
        .await
    }

    async fn in_flight(&self, backends: &[SocketAddr]) -> Result<u64, TrafficError> {
        let mut client = self.client().await?;
        let active = within(
            QUICK_CALL,
            "asking for in-flight work",
            client.active(backends),
        )
        .await?;
        Ok(active.values().copied().sum())
    }
}

fn create_private_dir(dir: &Path) -> Result<(), TrafficError> {
    pki::create_private_dir(dir).map_err(|e| err(format!("creating {}: {e}", dir.display())))
}
