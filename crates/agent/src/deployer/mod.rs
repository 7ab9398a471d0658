//! The agent's operations on services: one closed set (deploy, stop, start, restart,
//! undeploy, status, logs), each serialised per service.
//!
//! Architecture invariant: the registry is written only after the runtime did what it
//! records, and a failed deploy removes what it created, so a failure leaves the previous
//! state (or nothing, for a new service).

mod apply;
mod heal;
mod history;
mod ops;
mod plan;
mod ready;
mod recover;
mod routes;
mod secrets;
mod status;
mod traffic;

pub use heal::PassReport;
pub use history::{ComponentPlanView, PlanView, VersionView};
pub use ready::HealthView;
pub use secrets::{MAX_SECRET_BYTES, SecretView};
pub use status::{ComponentView, RouteView, ServiceView, StrayView};

use registry::{Registry, ServiceRecord};
use runtime::{InstanceInfo, LogLine, LogStream, Runtime};
use servicedef::{Component, RuntimeKind, Service};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::StreamMap;

use crate::AgentError;
use crate::ports::PortAllocator;
use crate::traffic::TrafficSwitch;

/// What a deploy did.
#[derive(Debug)]
pub struct DeployOutcome {
    /// False for a redeploy of an identical spec that was already in place.
    pub changed: bool,
    /// Components whose instance was created or re-created.
    pub replaced: Vec<String>,
    pub status: ServiceView,
}

pub struct Deployer {
    node: String,
    registry: Mutex<Registry>,
    /// A read-only connection for reads, so they never queue behind a write that waits on
    /// SQLite's lock (WAL readers do not block); `None` (in-memory registries): reads use
    /// `registry`.
    reader: Option<Mutex<Registry>>,
    podman: Arc<dyn Runtime>,
    /// The unikernel backend, or why this node has none (qemu/ops missing, disabled).
    qemu: Result<Arc<dyn Runtime>, String>,
    ports: PortAllocator,
    stop_timeout: Duration,
    service_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Labelled instances the registry does not know, as of the last monitor pass.
    strays: Mutex<Vec<InstanceInfo>>,
    /// Instances that looked stray in the last pass (confirmed if the next agrees).
    stray_candidates: Mutex<Vec<InstanceInfo>>,
    /// The node proxy, when public routes are served here.
    traffic: Option<Arc<dyn TrafficSwitch>>,
    /// How long a retired instance may finish its in-flight work before it is stopped.
    drain_timeout: Duration,
    /// Serialises building and applying the proxy's table, and holds the public routes of
    /// operations in flight that differ from their service's record (a deploy between its
    /// switch and its record; a stop or undeploy draining): every table includes them, so
    /// no table built meanwhile from the registry alone can undo a switch.
    pending_routes: tokio::sync::Mutex<BTreeMap<String, (Service, registry::HostPorts)>>,
    /// Health of running instances, kept by the health checker (not persisted).
    health_checks: Mutex<HashMap<(String, String), ready::CheckState>>,
    /// Seals and opens secret values (the node key); `None` refuses secrets.
    secrets: Option<crate::secret_box::SecretBox>,
}

impl Deployer {
    pub fn new(
        node: String,
        registry: Registry,
        podman: Arc<dyn Runtime>,
        ports: PortAllocator,
        stop_timeout: Duration,
    ) -> Self {
        Self {
            node,
            registry: Mutex::new(registry),
            reader: None,
            podman,
            qemu: Err("no unikernel runtime was configured".into()),
            ports,
            stop_timeout,
            service_locks: Mutex::new(HashMap::new()),
            strays: Mutex::new(Vec::new()),
            stray_candidates: Mutex::new(Vec::new()),
            traffic: None,
            drain_timeout: Duration::from_secs(30),
            pending_routes: tokio::sync::Mutex::new(BTreeMap::new()),
            health_checks: Mutex::new(HashMap::new()),
            secrets: None,
        }
    }

    /// Serves public routes through `switch`; retired instances get `drain_timeout` to
    /// finish their in-flight work.
    pub fn with_traffic(mut self, switch: Arc<dyn TrafficSwitch>, drain_timeout: Duration) -> Self {
        self.traffic = Some(switch);
        self.drain_timeout = drain_timeout;
        self
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The backend that runs `component`; the one place a component meets its runtime.
    pub fn runtime_for(&self, component: &Component) -> Result<&Arc<dyn Runtime>, AgentError> {
        self.backend(component.runtime).map_err(|e| match e {
            AgentError::RuntimeUnavailable {
                runtime, reason, ..
            } => AgentError::RuntimeUnavailable {
                component: component.name.to_string(),
                runtime,
                reason,
            },
            other => other,
        })
    }

    fn backend(&self, kind: RuntimeKind) -> Result<&Arc<dyn Runtime>, AgentError> {
        match kind {
            RuntimeKind::Container => Ok(&self.podman),
            RuntimeKind::Unikernel => {
                self.qemu
                    .as_ref()
                    .map_err(|reason| AgentError::RuntimeUnavailable {
                        component: String::new(),
                        runtime: kind.to_string(),
                        reason: reason.clone(),
                    })
            }
        }
    }

    /// Adds the unikernel backend (when qemu and ops are present), or records why there is
    /// none, so deploys of unikernel components fail early with that reason.
    pub fn with_unikernels(mut self, qemu: Result<Arc<dyn Runtime>, String>) -> Self {
        self.qemu = qemu;
        self
    }

    /// Reads through the read-only connection (`registry` is opened and migrated first).
    pub fn with_reader(mut self, reader: Registry) -> Self {
        self.reader = Some(Mutex::new(reader));
        self
    }

    /// Runs a read-only `f` on the reader connection (or the registry without one), off the
    /// async workers as `registry` does.
    fn read<T>(
        &self,
        f: impl FnOnce(&Registry) -> Result<T, registry::RegistryError>,
    ) -> Result<T, AgentError> {
        let Some(reader) = &self.reader else {
            return self.registry(|r| f(r));
        };
        Ok(off_the_workers(|| {
            let guard = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&guard)
        })?)
    }

    /// Runs `f` on the registry. SQLite may block (an fsync, or waiting up to its busy
    /// timeout for another writer), so the call runs under `block_in_place`: tokio moves this
    /// worker's other tasks (status calls, the monitor, the health checker) to another thread
    /// first, and a slow write stalls only the operation that made it.
    fn registry<T>(
        &self,
        f: impl FnOnce(&mut Registry) -> Result<T, registry::RegistryError>,
    ) -> Result<T, AgentError> {
        Ok(off_the_workers(|| {
            let mut guard = self
                .registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        })?)
    }

    /// A registry write the operation does not depend on (history, health bookkeeping): a
    /// failure is logged, never dropped silently, and does not fail the caller.
    fn record_best_effort<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Registry) -> Result<T, registry::RegistryError>,
    ) {
        if let Err(e) = self.registry(f) {
            tracing::warn!(error = %e, what, "registry write failed");
        }
    }

    fn service_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .service_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(name.to_string()).or_default().clone()
    }

    async fn lock_service(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        self.service_lock(name).lock_owned().await
    }

    /// The service's lock if no operation holds it (the monitor never waits for one).
    fn try_lock_service(&self, name: &str) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        self.service_lock(name).try_lock_owned().ok()
    }

    /// Remembers (and returns the names of) labelled instances no registry record describes.
    /// An instance counts as a stray only when two passes in a row saw it so, because a deploy
    /// in flight creates instances before the registry records them; a new stray is recorded
    /// as an event once.
    fn note_strays(&self, records: &[ServiceRecord], listing: &[InstanceInfo]) -> Vec<String> {
        let known = |i: &InstanceInfo| {
            records.iter().any(|r| {
                i.service() == Some(r.spec.name.as_str())
                    && i.component().is_some_and(|c| r.spec.component(c).is_some())
            })
        };
        let candidates: Vec<InstanceInfo> = listing
            .iter()
            .filter(|i| !known(i))
            .filter(|i| {
                i.service()
                    .is_none_or(|s| self.try_lock_service(s).is_some())
            })
            .cloned()
            .collect();
        let mut seen = self
            .stray_candidates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let confirmed: Vec<InstanceInfo> = candidates
            .iter()
            .filter(|c| seen.iter().any(|p| p.id == c.id))
            .cloned()
            .collect();
        *seen = candidates;
        drop(seen);
        let mut strays = self
            .strays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for stray in &confirmed {
            if !strays.iter().any(|p| p.id == stray.id) {
                let detail = format!(
                    "{} ({}) carries our labels but no deployed service describes it; left alone",
                    stray.name, stray.image
                );
                let service = stray.service().unwrap_or("?").to_string();
                self.record_best_effort("stray event", |r| {
                    r.record_event(&service, "stray", "monitor", Some(&detail))
                });
            }
        }
        let names = confirmed.iter().map(|s| s.name.clone()).collect();
        *strays = confirmed;
        names
    }

    fn record(&self, name: &str) -> Result<ServiceRecord, AgentError> {
        self.read(|r| r.service(name))?
            .ok_or_else(|| AgentError::ServiceNotFound(name.to_string()))
    }

    /// Every instance of ours, from every runtime, in one listing per runtime.
    async fn listing(&self) -> Result<Vec<InstanceInfo>, AgentError> {
        let mut list = self
            .podman
            .list()
            .await
            .map_err(AgentError::runtime("listing containers"))?;
        if let Ok(qemu) = &self.qemu {
            list.extend(
                qemu.list()
                    .await
                    .map_err(AgentError::runtime("listing VMs"))?,
            );
        }
        Ok(list)
    }

    async fn service_instances(&self, service: &str) -> Result<Vec<InstanceInfo>, AgentError> {
        let mut list = self.listing().await?;
        list.retain(|info| info.service() == Some(service));
        Ok(list)
    }

    /// Every service (or one), merged with one listing of what runs.
    pub async fn status(&self, only: Option<&str>) -> Result<Vec<ServiceView>, AgentError> {
        let records = match only {
            Some(name) => vec![self.record(name)?],
            None => self.read(|r| r.services())?,
        };
        let listing = self.listing().await?;
        let health = self.read(|r| r.all_health())?;
        Ok(records
            .iter()
            .map(|record| self.with_checks(record, status::service_view(record, &listing, &health)))
            .collect())
    }

    /// `view` with the health checker's verdict on each component.
    fn with_checks(&self, record: &ServiceRecord, mut view: ServiceView) -> ServiceView {
        for component in &mut view.components {
            if let Some(spec) = record.spec.component(&component.name) {
                let checked = self.health_view(record.spec.name.as_str(), spec);
                component.health = checked.state;
                component.health_detail = checked.detail;
            }
        }
        view
    }

    /// The history, newest first.
    pub fn events(
        &self,
        service: Option<&str>,
        limit: u32,
    ) -> Result<Vec<registry::EventRecord>, AgentError> {
        self.read(|r| r.events(service, limit))
    }

    /// Stray instances as of the last monitor pass.
    pub fn strays(&self) -> Vec<StrayView> {
        self.strays
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(StrayView::from)
            .collect()
    }

    async fn view_of(&self, name: &str) -> Result<ServiceView, AgentError> {
        let mut views = self.status(Some(name)).await?;
        views
            .pop()
            .ok_or_else(|| AgentError::ServiceNotFound(name.to_string()))
    }

    /// The service's view from a listing of its instances taken just now, when there is one
    /// (no second listing); from a new listing otherwise.
    async fn view_from(
        &self,
        name: &str,
        listing: Option<Vec<InstanceInfo>>,
    ) -> Result<ServiceView, AgentError> {
        let Some(listing) = listing else {
            return self.view_of(name).await;
        };
        let record = self.record(name)?;
        let health = self.read(|r| r.all_health())?;
        Ok(self.with_checks(&record, status::service_view(&record, &listing, &health)))
    }

    /// Output of one component, or of all (lines tagged with their component).
    pub async fn logs(
        &self,
        service: &str,
        component: Option<&str>,
        tail: Option<u32>,
        follow: bool,
    ) -> Result<
        impl tokio_stream::Stream<Item = (String, Result<LogLine, runtime::RuntimeError>)> + use<>,
        AgentError,
    > {
        let record = self.record(service)?;
        let components: Vec<&Component> = match component {
            Some(wanted) => vec![record.spec.component(wanted).ok_or_else(|| {
                AgentError::ComponentNotFound {
                    service: service.to_string(),
                    component: wanted.to_string(),
                }
            })?],
            None => record.spec.components.iter().collect(),
        };
        let mut streams: StreamMap<String, LogStream> = StreamMap::new();
        let instances = self.service_instances(service).await?;
        for component in components {
            let instance = plan::instance_of(service, component, &instances).map_or_else(
                || record.spec.container_name(&component.name),
                |i| i.name.clone(),
            );
            let stream = self
                .runtime_for(component)?
                .logs(&instance, tail, follow)
                .await
                .map_err(AgentError::runtime(format!("logs of {instance}")))?;
            streams.insert(component.name.to_string(), stream);
        }
        Ok(streams)
    }
}

/// Runs blocking `work` (SQLite) without holding up the async workers: under
/// `block_in_place` on a multi-threaded runtime; directly on a single-threaded one (tests),
/// which has no other worker to hand its tasks to.
fn off_the_workers<T>(work: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}
