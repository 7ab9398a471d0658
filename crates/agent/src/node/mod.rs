//! Node status: host facts, runtime versions, the accelerator verdict and component counts,
//! gathered for one `NodeStatus` call (the accelerator probe runs once, at agent start).

mod host;

pub use host::HostFacts;

use runtime::{Accel, PodmanRuntime, QemuRuntime, RuntimeError, ToolVersion};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use crate::deployer::Deployer;

/// Longest the start-up probe lets its guest take before calling the accelerator unusable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// States always present in `components_by_state`, so a reader finds 0 rather than nothing.
const COUNTED_STATES: [&str; 3] = ["running", "exited", "missing"];

/// Which binaries node status asks about.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The filesystem whose space is reported.
    pub state_dir: PathBuf,
    pub qemu: PathBuf,
    pub ops: PathBuf,
    /// An accelerator the agent config imposes; the probe is skipped then.
    pub forced_accel: Option<Accel>,
    /// Unix seconds the TLS certificate the agent serves with (read at start) ends.
    pub certificate_not_after: Option<i64>,
}

impl NodeConfig {
    /// `qemu-system-x86_64` and `ops` looked up in PATH.
    pub fn new(state_dir: PathBuf) -> Self {
        Self {
            state_dir,
            qemu: PathBuf::from("qemu-system-x86_64"),
            ops: PathBuf::from("ops"),
            forced_accel: None,
            certificate_not_after: None,
        }
    }
}

/// The accelerator this node would give VMs, as decided by the start-up probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelVerdict {
    pub kvm_usable: bool,
    /// One line: "probing" until the probe is done, then why KVM is (not) usable.
    pub detail: String,
    /// "kvm" or "tcg"; "none" without QEMU; "probing" until the probe is done.
    pub accelerator: String,
}

impl AccelVerdict {
    pub const PROBING: &'static str = "probing";

    fn probing() -> Self {
        Self {
            kvm_usable: false,
            detail: Self::PROBING.to_string(),
            accelerator: Self::PROBING.to_string(),
        }
    }
}

/// Everything `NodeStatus` reports.
#[derive(Debug, Clone)]
pub struct NodeReport {
    pub node: String,
    pub hostname: String,
    pub agent_version: String,
    pub agent_uptime_secs: u64,
    pub host: HostFacts,
    pub state_dir: PathBuf,
    pub runtimes: Vec<ToolVersion>,
    pub accel: AccelVerdict,
    /// Components of every service by observed state ("running", "exited", "missing", ...).
    pub components_by_state: BTreeMap<String, u32>,
    /// Facts that could not be gathered (their fields stay zero), with the reason.
    pub warnings: Vec<String>,
    pub certificate_not_after: Option<i64>,
}

/// Gathers node status; holds the accelerator verdict the start-up probe left.
pub struct NodeInspector {
    config: NodeConfig,
    podman: Arc<PodmanRuntime>,
    deployer: Arc<Deployer>,
    started: Instant,
    accel: watch::Receiver<AccelVerdict>,
    /// The unikernel runtime, which may have found KVM unable to boot a real guest after
    /// the probe said it could.
    vms: Option<Arc<QemuRuntime>>,
}

impl NodeInspector {
    /// Starts the accelerator probe in the background (needs a tokio runtime); status calls
    /// answer "probing" until it is done.
    pub fn start(config: NodeConfig, podman: Arc<PodmanRuntime>, deployer: Arc<Deployer>) -> Self {
        let (tx, rx) = watch::channel(AccelVerdict::probing());
        let qemu = config.qemu.clone();
        let forced = config.forced_accel;
        let scratch = config.state_dir.clone();
        tokio::spawn(async move {
            let verdict = match forced {
                Some(accel) => AccelVerdict {
                    kvm_usable: accel == Accel::Kvm,
                    detail: format!("{accel} imposed by the agent config (probe skipped)"),
                    accelerator: accel.as_str().to_string(),
                },
                None => probe(&qemu, PROBE_TIMEOUT, Some(&scratch)).await,
            };
            tracing::info!(
                kvm_usable = verdict.kvm_usable,
                accelerator = %verdict.accelerator,
                detail = %verdict.detail,
                "accelerator probe done"
            );
            let _ = tx.send(verdict);
        });
        Self {
            config,
            podman,
            deployer,
            started: Instant::now(),
            accel: rx,
            vms: None,
        }
    }

    /// Reports the unikernel runtime's own finding about KVM over the probe's.
    pub fn with_vms(mut self, vms: Option<Arc<QemuRuntime>>) -> Self {
        self.vms = vms;
        self
    }

    /// The probe's verdict, unless a real guest then failed to boot under KVM.
    fn verdict(&self) -> AccelVerdict {
        let verdict = self.accel.borrow().clone();
        match self.vms.as_ref().and_then(|vms| vms.kvm_fallback()) {
            Some(reason) if verdict.kvm_usable => AccelVerdict {
                kvm_usable: false,
                detail: reason,
                accelerator: Accel::Tcg.as_str().to_string(),
            },
            _ => verdict,
        }
    }

    /// The accelerator VMs get, once decided: `None` while probing (or without QEMU).
    pub fn accelerator(&self) -> watch::Receiver<Option<Accel>> {
        let mut verdicts = self.accel.clone();
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            loop {
                let decided = match verdicts.borrow_and_update().accelerator.as_str() {
                    "kvm" => Some(Accel::Kvm),
                    "tcg" => Some(Accel::Tcg),
                    _ => None,
                };
                if decided.is_some() {
                    let _ = tx.send(decided);
                    return;
                }
                if verdicts.changed().await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// The node's status now. Never fails: a fact that cannot be read becomes a warning.
    pub async fn report(&self) -> NodeReport {
        let state_dir = std::path::absolute(&self.config.state_dir)
            .unwrap_or_else(|_| self.config.state_dir.clone());
        let host_dir = state_dir.clone();
        let host = tokio::task::spawn_blocking(move || host::collect(&host_dir));
        let (podman, qemu, ops, components) = tokio::join!(
            self.podman_version(),
            runtime::tools::qemu_version(&self.config.qemu),
            runtime::tools::ops_version(&self.config.ops),
            self.components_by_state(),
        );
        let mut warnings = Vec::new();
        let host = match host.await {
            Ok((facts, errors)) => {
                warnings.extend(errors.iter().map(ToString::to_string));
                facts
            }
            Err(e) => {
                warnings.push(format!("host facts: {e}"));
                HostFacts::default()
            }
        };
        let components_by_state = components.unwrap_or_else(|e| {
            warnings.push(format!("component states: {e}"));
            BTreeMap::new()
        });
        NodeReport {
            node: self.deployer.node().to_string(),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|e| {
                    warnings.push(format!("hostname: {e}"));
                    String::new()
                }),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            agent_uptime_secs: self.started.elapsed().as_secs(),
            host,
            state_dir,
            runtimes: vec![podman, qemu, ops],
            accel: self.verdict(),
            components_by_state,
            warnings,
            certificate_not_after: self.config.certificate_not_after,
        }
    }

    async fn podman_version(&self) -> ToolVersion {
        match self.podman.version().await {
            Ok(version) => {
                let line = format!("podman version {version}");
                ToolVersion::available("podman", version, line)
            }
            Err(RuntimeError::Podman(podman_cli::PodmanError::Unavailable { binary, source })) => {
                ToolVersion::unavailable("podman", runtime::tools::spawn_failure(&binary, &source))
            }
            Err(e) => ToolVersion::unavailable("podman", e.to_string()),
        }
    }

    /// One status call (one listing per runtime), counted by observed state.
    async fn components_by_state(&self) -> Result<BTreeMap<String, u32>, crate::AgentError> {
        let views = self.deployer.status(None).await?;
        Ok(count_states(views.iter().flat_map(|s| {
            s.components.iter().map(|c| c.state.as_str())
        })))
    }
}

fn count_states<'a>(states: impl Iterator<Item = &'a str>) -> BTreeMap<String, u32> {
    let mut counts: BTreeMap<String, u32> = COUNTED_STATES
        .iter()
        .map(|s| ((*s).to_string(), 0))
        .collect();
    for state in states {
        *counts.entry(state.to_string()).or_default() += 1;
    }
    counts
}

/// Boots the probe guest under KVM once: KVM when it runs, TCG when QEMU is there but KVM
/// is not usable, none without QEMU.
pub async fn probe(qemu: &Path, timeout: Duration, scratch: Option<&Path>) -> AccelVerdict {
    let version = runtime::tools::qemu_version(qemu).await;
    if !version.available {
        return AccelVerdict {
            kvm_usable: false,
            detail: format!("no QEMU: {}", version.detail),
            accelerator: "none".to_string(),
        };
    }
    let result = runtime::probe_accelerator_in(qemu, Accel::Kvm, timeout, scratch).await;
    AccelVerdict {
        kvm_usable: result.usable,
        accelerator: if result.usable {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
        .as_str()
        .to_string(),
        detail: result.detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_start_from_zero_for_the_usual_states() {
        let counts = count_states(["running", "running", "paused"].into_iter());
        assert_eq!(counts["running"], 2);
        assert_eq!(counts["paused"], 1);
        assert_eq!(counts["exited"], 0);
        assert_eq!(counts["missing"], 0);
    }

    #[tokio::test]
    async fn without_qemu_there_is_no_accelerator() {
        let verdict = probe(Path::new("mcp-no-such-qemu"), Duration::from_secs(1), None).await;
        assert!(!verdict.kvm_usable);
        assert_eq!(verdict.accelerator, "none");
        assert_eq!(
            verdict.detail,
            "no QEMU: mcp-no-such-qemu not found in PATH"
        );
    }
}
