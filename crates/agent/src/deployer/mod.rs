//! The agent's operations on services, in parts, each in its module with the state it owns
//! and its invariants at its top: the operator's verbs (`ops.rs`, carried out by `apply.rs`
//! from `plan.rs`, with host ports from `routes.rs`), traffic through the node proxy
//! (`traffic.rs`), readiness and health checks (`ready.rs`), the monitor's passes
//! (`heal.rs`), crash recovery (`recover.rs`), status views (`status.rs`), history, rollback
//! and plans (`history.rs`), and secrets (`secrets.rs`). This module holds what they share:
//! the registry connections, the runtimes, the port allocator and the per-service locks.
//!
//! Architecture invariant: the registry is written only after the runtime did what it
//! records, and a failed deploy removes what it created, so a failure leaves the previous
//! state (or nothing, for a new service). Every mutating operation holds its service's lock.

mod apply;
mod heal;
mod history;
mod noted;
mod observed;
mod ops;
mod plan;
mod ready;
mod recover;
mod routes;
mod secrets;
mod status;
mod traffic;

pub(crate) use heal::now_ms;
pub use heal::{Noticed, Noticing, PassReport};
pub use history::{ComponentPlanView, PlanView, VersionView};
pub use observed::{ContainerEvent, ObservedCache};
pub use ready::{HealthState, HealthView};
pub use secrets::{MAX_SECRET_BYTES, SecretView};
pub use status::{ComponentView, ObservedState, RouteView, ServiceView, StrayView};

use registry::{Registry, ServiceRecord};
use runtime::{InstanceInfo, Runtime};
use servicedef::{Component, RuntimeKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// The monitor's view of strays (`heal.rs`).
    strays: heal::StrayWatch,
    /// The node proxy and the routes of operations in flight (`traffic.rs`).
    traffic: traffic::Traffic,
    /// Health of running instances, kept by the health checker (`ready.rs`, not persisted).
    health_checks: ready::HealthBook,
    /// Seals and opens secret values (the node key); `None` refuses secrets (`secrets.rs`).
    secrets: Option<crate::secret_box::SecretBox>,
    /// Deployed versions per service whose spec the history keeps.
    keep_versions: u32,
    /// The listing status answers from (`observed.rs`).
    observed: Arc<ObservedCache>,
    /// Registry writes so far, and the service records as of a count of them: the health
    /// checker reads the records every second, and they change only with a write.
    writes: std::sync::atomic::AtomicU64,
    services_read: Mutex<Option<(u64, Arc<Vec<ServiceRecord>>)>>,
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
            strays: heal::StrayWatch::default(),
            traffic: traffic::Traffic::default(),
            health_checks: ready::HealthBook::default(),
            secrets: None,
            keep_versions: 20,
            observed: Arc::new(ObservedCache::default()),
            writes: std::sync::atomic::AtomicU64::new(0),
            services_read: Mutex::new(None),
        }
    }

    /// Status answers from a kept listing while `events_connected` says podman's event stream
    /// tells of changes (`observed.rs`).
    pub fn with_event_stream(
        mut self,
        events_connected: Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        self.observed = Arc::new(ObservedCache::new(events_connected));
        self.podman = Arc::new(noted::Noted::new(
            Arc::clone(&self.podman),
            Arc::clone(&self.observed),
        ));
        self
    }

    /// The observed state status answers from; the event watcher keeps it current.
    pub fn observed(&self) -> Arc<ObservedCache> {
        Arc::clone(&self.observed)
    }

    /// Serves public routes through `switch`; retired instances get `drain_timeout` to
    /// finish their in-flight work.
    pub fn with_traffic(mut self, switch: Arc<dyn TrafficSwitch>, drain_timeout: Duration) -> Self {
        self.traffic = traffic::Traffic::new(switch, drain_timeout);
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

    /// Keeps the specs of only the newest `keep` versions of each service (at least 1).
    pub fn with_history_limit(mut self, keep: u32) -> Self {
        self.keep_versions = keep.max(1);
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
        let result = off_the_workers(|| {
            let mut guard = self
                .registry
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        });
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(result?)
    }

    /// Every service record, read again only after a registry write.
    fn services_as_written(&self) -> Result<Arc<Vec<ServiceRecord>>, AgentError> {
        let writes = self.writes.load(std::sync::atomic::Ordering::SeqCst);
        let mut kept = self
            .services_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, records)) = kept.as_ref()
            && *at == writes
        {
            return Ok(Arc::clone(records));
        }
        let records = Arc::new(self.read(|r| r.services())?);
        *kept = Some((writes, Arc::clone(&records)));
        Ok(records)
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

    /// Whether an operation (or a monitor pass) holds the service's lock now.
    fn service_busy(&self, name: &str) -> bool {
        let locks = self
            .service_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.get(name).is_some_and(|lock| lock.try_lock().is_err())
    }

    fn record(&self, name: &str) -> Result<ServiceRecord, AgentError> {
        self.read(|r| r.service(name))?
            .ok_or_else(|| AgentError::ServiceNotFound(name.to_string()))
    }

    /// Every instance of ours, from every runtime, in one listing per runtime.
    async fn listing(&self) -> Result<Vec<InstanceInfo>, AgentError> {
        let mut list = self.list_containers().await?;
        list.extend(self.list_vms().await?);
        Ok(list)
    }

    /// Every container of ours, listed now (and recorded in the observed state).
    async fn list_containers(&self) -> Result<Vec<InstanceInfo>, AgentError> {
        let began = self.observed.begin();
        let list = self.podman_listing(None).await?;
        self.observed.record_all(began, &list);
        Ok(list)
    }

    /// `service`'s containers, listed now (and recorded in the observed state).
    async fn list_service_containers(
        &self,
        service: &str,
    ) -> Result<Vec<InstanceInfo>, AgentError> {
        let began = self.observed.begin();
        let list = self.podman_listing(Some(service)).await?;
        self.observed.record_service(service, began, &list);
        Ok(list)
    }

    /// podman's listing of every container of ours, or of `service`'s only.
    async fn podman_listing(&self, service: Option<&str>) -> Result<Vec<InstanceInfo>, AgentError> {
        match service {
            None => self
                .podman
                .list()
                .await
                .map_err(AgentError::runtime("listing containers")),
            Some(service) => self
                .podman
                .list_service(service)
                .await
                .map_err(AgentError::runtime(format!(
                    "listing the containers of {service}"
                ))),
        }
    }

    /// Every VM of ours (a scan of the VM directories; no process).
    async fn list_vms(&self) -> Result<Vec<InstanceInfo>, AgentError> {
        match &self.qemu {
            Ok(qemu) => qemu
                .list()
                .await
                .map_err(AgentError::runtime("listing VMs")),
            Err(_) => Ok(Vec::new()),
        }
    }

    async fn service_instances(&self, service: &str) -> Result<Vec<InstanceInfo>, AgentError> {
        let mut list = self.list_service_containers(service).await?;
        list.extend(
            self.list_vms()
                .await?
                .into_iter()
                .filter(|info| info.service() == Some(service)),
        );
        Ok(list)
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
