//! Assembling a running agent from its configuration: registry, runtimes (podman always,
//! QEMU where qemu and ops exist), deployer, crash recovery, node inspector. The binary only
//! parses arguments, calls this, and serves.

use std::sync::Arc;

use runtime::{PodmanRuntime, QemuRuntime, Runtime};

use crate::AgentError;
use crate::config::AgentConfig;
use crate::deployer::Deployer;
use crate::node::{NodeConfig, NodeInspector};
use crate::podman_api::PodmanApiLink;
use crate::proxy_link::{ProxyLink, ProxySettings};
use crate::traffic::TrafficSwitch;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the registry in {dir}: {source}")]
    Registry {
        dir: std::path::PathBuf,
        #[source]
        source: registry::RegistryError,
    },
    #[error("recovering interrupted operations: {0}")]
    Recover(#[source] AgentError),
    #[error("invalid agent config: {0}")]
    Config(String),
}

pub struct Started {
    pub deployer: Arc<Deployer>,
    /// The node proxy, unless `[proxy] enabled = false`; its watchdog is the caller's.
    pub proxy: Option<Arc<ProxyLink>>,
    pub node: Arc<NodeInspector>,
    /// The podman backend, which also keeps this node's registry logins.
    pub podman: Arc<PodmanRuntime>,
    /// podman's API service, unless `[podman] api = false`; its watchdog is the caller's.
    pub podman_api: Option<Arc<PodmanApiLink>>,
    /// The unikernel runtime, where unikernels can run (the monitor watches its VMs).
    pub vms: Option<Arc<QemuRuntime>>,
    /// Whether podman's event stream is connected (`monitor::watch` sets it; the monitor and
    /// the observed state read it).
    pub events_connected: Arc<std::sync::atomic::AtomicBool>,
    /// One line per operation a crash had interrupted, now finished or undone.
    pub recovered: Vec<String>,
}

/// Builds everything and runs crash recovery; needs a tokio runtime (it spawns the
/// accelerator probe).
pub async fn start(config: &AgentConfig) -> Result<Started, StartError> {
    let registry = registry::Registry::open(&config.registry_path()).map_err(|source| {
        StartError::Registry {
            dir: config.state_dir.clone(),
            source,
        }
    })?;
    // Opened after the writer, which created and migrated the database.
    let reader = registry::Registry::open_reader(&config.registry_path()).map_err(|source| {
        StartError::Registry {
            dir: config.state_dir.clone(),
            source,
        }
    })?;
    let podman_config = config.podman_config();
    let cli = podman_config.cli.clone();
    let (podman, podman_api) = match config.podman_api_socket() {
        Some((socket, managed)) => {
            let log = config.state_dir.join("podman-service.log");
            let idle = std::time::Duration::from_secs(config.podman.api_idle_secs);
            let (runtime, link) = PodmanApiLink::start(
                PodmanRuntime::new(podman_config),
                cli,
                socket,
                managed.then_some(idle),
                log,
            )
            .await;
            (runtime, Some(link))
        }
        None => (Arc::new(PodmanRuntime::new(podman_config)), None),
    };
    match podman.version().await {
        Ok(v) => tracing::info!(podman = %v, "podman found"),
        Err(e) => {
            tracing::warn!(error = %e, "podman is not usable; container operations will fail")
        }
    }
    let forced = config.qemu.forced_accel().map_err(StartError::Config)?;
    let (accel_tx, accel_rx) = tokio::sync::watch::channel(forced);
    let vms: Result<Arc<QemuRuntime>, String> = match unikernel_tools(config).await {
        Ok(()) => Ok(Arc::new(QemuRuntime::new(
            config
                .qemu
                .runtime_config(&config.state_dir, config.ports.bind_address),
            Arc::clone(&podman),
            accel_rx,
        ))),
        Err(reason) => {
            tracing::info!(%reason, "unikernel runtime disabled");
            Err(reason)
        }
    };
    let unikernels = vms.clone().map(|vms| vms as Arc<dyn Runtime>);
    let events_connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut deployer = Deployer::new(
        config.node.clone(),
        registry,
        Arc::clone(&podman) as Arc<dyn Runtime>,
        config.port_allocator(),
        config.stop_timeout(),
    )
    .with_reader(reader)
    .with_event_stream(Arc::clone(&events_connected))
    .with_history_limit(config.keep_versions)
    .with_unikernels(unikernels)
    .with_secrets(
        crate::secret_box::SecretBox::load_or_create(&config.secrets_key_path())
            .map_err(|e| StartError::Config(e.to_string()))?,
    );
    let proxy = if config.proxy.enabled {
        let link = Arc::new(ProxyLink::new(
            proxy_settings(config).map_err(StartError::Config)?,
        ));
        deployer = deployer.with_traffic(
            Arc::clone(&link) as Arc<dyn TrafficSwitch>,
            config.proxy.drain_timeout(),
        );
        Some(link)
    } else {
        None
    };
    let deployer = Arc::new(deployer);
    // Public routes follow the registry before recovery touches anything: a deploy killed
    // after its switch has the proxy pointing at an instance that recovery removes, so the
    // proxy goes back to the recorded (still running) one first.
    if let Some(link) = &proxy {
        if let Err(e) = link.ensure_running().await {
            tracing::warn!(error = %e, "the node proxy is not running; public routes are not served");
        }
        deployer.sync_traffic().await;
    }
    let recovered = deployer.recover().await.map_err(StartError::Recover)?;
    if proxy.is_some() && !recovered.is_empty() {
        deployer.sync_traffic().await;
    }
    let node = Arc::new(
        NodeInspector::start(
            NodeConfig {
                state_dir: config.state_dir.clone(),
                qemu: config.qemu.qemu.clone(),
                ops: config.qemu.ops.clone(),
                forced_accel: forced,
                certificate_not_after: crate::server::certificate_not_after(&config.tls.cert),
            },
            Arc::clone(&podman),
            Arc::clone(&deployer),
        )
        .with_vms(vms.clone().ok()),
    );
    if let Ok(vms) = &vms {
        // Console logs grow with the guests' output; they are kept within their size here.
        let vms = Arc::clone(vms);
        let every = config.monitor.interval();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let vms = Arc::clone(&vms);
                let _ = tokio::task::spawn_blocking(move || vms.rotate_consoles()).await;
            }
        });
    }
    // VMs wait for the probe's verdict (or the config's) before their first boot.
    let mut decided = node.accelerator();
    tokio::spawn(async move {
        if let Ok(accel) = decided.wait_for(Option::is_some).await {
            let _ = accel_tx.send(*accel);
        }
    });
    Ok(Started {
        deployer,
        proxy,
        node,
        podman,
        podman_api,
        vms: vms.ok(),
        events_connected,
        recovered,
    })
}

/// Where the proxy binary is (config, else beside this executable) and what it serves.
fn proxy_settings(config: &AgentConfig) -> Result<ProxySettings, String> {
    let binary = match &config.proxy.binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("mcp-proxy")))
            .ok_or("cannot locate mcp-proxy: set [proxy] binary")?,
    };
    Ok(ProxySettings {
        binary,
        dir: config.state_dir.join("proxy"),
        bind: config.proxy.bind,
        certs: config.proxy.certs.clone(),
        issuer: config.proxy.issuer.clone(),
    })
}

/// Why unikernels cannot run here, if they cannot: disabled, or qemu/ops missing.
async fn unikernel_tools(config: &AgentConfig) -> Result<(), String> {
    if !config.qemu.enabled {
        return Err("unikernels are disabled in the agent config ([qemu] enabled = false)".into());
    }
    let qemu = runtime::tools::qemu_version(&config.qemu.qemu).await;
    if !qemu.available {
        return Err(qemu.detail);
    }
    let ops = runtime::tools::ops_version(&config.qemu.ops).await;
    if !ops.available {
        return Err(ops.detail);
    }
    Ok(())
}
