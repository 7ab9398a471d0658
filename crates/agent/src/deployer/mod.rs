//! The agent's operations on services: one closed set (deploy, stop, start, restart,
//! undeploy, status, logs), each serialised per service.
//!
//! Architecture invariant: the registry is written only after the runtime did what it
//! records, and a failed deploy removes what it created, so a failure leaves the previous
//! state (or nothing, for a new service).

mod apply;
mod ops;
mod plan;
mod recover;
mod routes;
mod status;

pub use status::{ComponentView, RouteView, ServiceView};

use registry::{Registry, ServiceRecord};
use runtime::{ContainerInfo, LogLine, LogStream, Runtime};
use servicedef::{Component, RuntimeKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::StreamMap;

use crate::AgentError;
use crate::ports::PortAllocator;

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
    podman: Arc<dyn Runtime>,
    ports: PortAllocator,
    stop_timeout: Duration,
    service_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
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
            podman,
            ports,
            stop_timeout,
            service_locks: Mutex::new(HashMap::new()),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The backend that runs `component`.
    pub fn runtime_for(&self, component: &Component) -> Result<&Arc<dyn Runtime>, AgentError> {
        match component.runtime {
            RuntimeKind::Container => Ok(&self.podman),
            RuntimeKind::Unikernel => Err(AgentError::RuntimeUnavailable {
                component: component.name.to_string(),
                runtime: component.runtime.to_string(),
            }),
        }
    }

    /// Runs `f` on the registry. SQLite calls are short; holding a std mutex is fine.
    fn registry<T>(
        &self,
        f: impl FnOnce(&mut Registry) -> Result<T, registry::RegistryError>,
    ) -> Result<T, AgentError> {
        let mut guard = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(f(&mut guard)?)
    }

    async fn lock_service(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .service_locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.entry(name.to_string()).or_default().clone()
        };
        lock.lock_owned().await
    }

    fn record(&self, name: &str) -> Result<ServiceRecord, AgentError> {
        self.registry(|r| r.service(name))?
            .ok_or_else(|| AgentError::ServiceNotFound(name.to_string()))
    }

    /// Every instance of ours, from every runtime, in one listing per runtime.
    async fn listing(&self) -> Result<Vec<ContainerInfo>, AgentError> {
        self.podman
            .list()
            .await
            .map_err(AgentError::runtime("listing containers"))
    }

    async fn service_instances(&self, service: &str) -> Result<Vec<ContainerInfo>, AgentError> {
        let mut list = self.listing().await?;
        list.retain(|info| info.service() == Some(service));
        Ok(list)
    }

    /// Every service (or one), merged with one listing of what runs.
    pub async fn status(&self, only: Option<&str>) -> Result<Vec<ServiceView>, AgentError> {
        let records = match only {
            Some(name) => vec![self.record(name)?],
            None => self.registry(|r| r.services())?,
        };
        let listing = self.listing().await?;
        Ok(records
            .iter()
            .map(|record| status::service_view(record, &listing))
            .collect())
    }

    async fn view_of(&self, name: &str) -> Result<ServiceView, AgentError> {
        let mut views = self.status(Some(name)).await?;
        views
            .pop()
            .ok_or_else(|| AgentError::ServiceNotFound(name.to_string()))
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
        for component in components {
            let instance = record.spec.container_name(&component.name);
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
