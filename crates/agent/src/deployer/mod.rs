//! The agent's operations on services: one closed set (deploy, stop, start, restart,
//! undeploy, status, logs), each serialised per service.
//!
//! Architecture invariant: the registry is written only after the runtime did what it
//! records, and a failed deploy removes what it created, so a failure leaves the previous
//! state (or nothing, for a new service).

mod plan;
mod routes;
mod status;

pub use status::{ComponentView, RouteView, ServiceView};

use registry::{DesiredState, Registry, ServiceRecord};
use runtime::{ContainerInfo, InstanceState, LogLine, LogStream, Runtime};
use servicedef::{Component, RuntimeKind, Service};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_stream::{StreamExt, StreamMap};

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

/// Lines of a crashed component's output shown in the error.
const CRASH_LOG_LINES: u32 = 20;

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

    /// Precondition: `spec` names this node. Makes the node run `spec` and records it.
    pub async fn deploy(&self, spec: Service, actor: &str) -> Result<DeployOutcome, AgentError> {
        spec.validate()
            .map_err(|e| AgentError::InvalidSpec(e.to_string()))?;
        if spec.node != self.node {
            return Err(AgentError::WrongNode {
                service: spec.name.to_string(),
                wanted: spec.node.clone(),
                this: self.node.clone(),
            });
        }
        for component in &spec.components {
            self.runtime_for(component)?;
        }
        let name = spec.name.to_string();
        let _guard = self.lock_service(&name).await;
        let previous = self.registry(|r| r.service(&name))?;
        let instances = self.service_instances(&name).await?;
        let mut plan = plan::plan(&spec, &instances);
        let unchanged = previous
            .as_ref()
            .is_some_and(|p| p.spec_hash == spec.spec_hash() && p.spec.active == spec.active);
        if unchanged && plan.is_empty() {
            return Ok(DeployOutcome {
                changed: false,
                replaced: Vec::new(),
                status: self.view_of(&name).await?,
            });
        }
        // Ports and images first: either failing fails the deploy before anything changes.
        let (reservation, host_ports) = if spec.active {
            self.reserve_ports(&spec, &mut plan, previous.as_ref())?
        } else {
            self.reserve_ports(&spec, &mut plan::Plan::default(), None)?
        };
        self.pull_images(&plan).await?;
        if let Err(err) = self.apply(&spec, &plan, &host_ports).await {
            self.roll_back(&spec, &plan, previous.as_ref()).await;
            let detail = err.to_string();
            let _ = self.registry(|r| r.record_event(&name, "deploy-failed", actor, Some(&detail)));
            return Err(err);
        }
        self.registry(|r| r.record_deploy(&spec, &host_ports, actor))?;
        drop(reservation);
        Ok(DeployOutcome {
            changed: true,
            replaced: plan.create.iter().map(|c| c.name.to_string()).collect(),
            status: self.view_of(&name).await?,
        })
    }

    async fn pull_images(&self, plan: &plan::Plan<'_>) -> Result<(), AgentError> {
        for component in &plan.create {
            self.runtime_for(component)?
                .pull(&component.image)
                .await
                .map_err(AgentError::runtime(format!("component {}", component.name)))?;
        }
        Ok(())
    }

    async fn apply(
        &self,
        spec: &Service,
        plan: &plan::Plan<'_>,
        host_ports: &registry::HostPorts,
    ) -> Result<(), AgentError> {
        for instance in plan.remove.iter().chain(plan.replace_old.iter()) {
            self.podman
                .stop(instance, self.stop_timeout)
                .await
                .map_err(AgentError::runtime(format!("stopping {instance}")))?;
            self.podman
                .remove(instance)
                .await
                .map_err(AgentError::runtime(format!("removing {instance}")))?;
        }
        for instance in &plan.stop {
            self.podman
                .stop(instance, self.stop_timeout)
                .await
                .map_err(AgentError::runtime(format!("stopping {instance}")))?;
        }
        for instance in &plan.start {
            self.podman
                .start(instance)
                .await
                .map_err(AgentError::runtime(format!("starting {instance}")))?;
        }
        for component in &plan.create {
            let container =
                plan::container_spec(spec, component, host_ports, self.ports.bind_address());
            self.runtime_for(component)?
                .run(&container)
                .await
                .map_err(AgentError::runtime(format!("component {}", component.name)))?;
        }
        self.check_started(spec, &plan.create).await
    }

    /// A component that already exited right after `run` failed to start; say why.
    async fn check_started(
        &self,
        spec: &Service,
        created: &[&Component],
    ) -> Result<(), AgentError> {
        if created.is_empty() {
            return Ok(());
        }
        let instances = self.service_instances(spec.name.as_str()).await?;
        for component in created {
            if component.restart == servicedef::RestartPolicy::No {
                continue;
            }
            let name = spec.container_name(&component.name);
            let Some(info) = instances.iter().find(|i| i.name == name) else {
                continue;
            };
            if info.state == InstanceState::Exited {
                return Err(AgentError::Crashed {
                    component: component.name.to_string(),
                    exit_code: info.exit_code.unwrap_or(-1),
                    logs: self.last_lines(&name, CRASH_LOG_LINES).await,
                });
            }
        }
        Ok(())
    }

    async fn last_lines(&self, instance: &str, n: u32) -> Vec<String> {
        let Ok(mut stream) = self.podman.logs(instance, Some(n), false).await else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        while let Some(Ok(LogLine { line, .. })) = stream.next().await {
            lines.push(line);
        }
        lines
    }

    /// Undo a failed deploy: remove what it created, then bring back the previous spec.
    async fn roll_back(
        &self,
        spec: &Service,
        plan: &plan::Plan<'_>,
        previous: Option<&ServiceRecord>,
    ) {
        for component in &plan.create {
            let _ = self
                .podman
                .remove(&spec.container_name(&component.name))
                .await;
        }
        let Some(previous) = previous else { return };
        let Ok(instances) = self.service_instances(spec.name.as_str()).await else {
            return;
        };
        let restore = plan::plan(&previous.spec, &instances);
        if let Err(err) = self
            .apply(&previous.spec, &restore, &previous.host_ports())
            .await
        {
            tracing::warn!(service = %spec.name, error = %err, "could not restore the previous spec");
        }
    }

    /// Precondition: the service is deployed. Stops every component; they stay stopped.
    pub async fn stop(&self, name: &str, actor: &str) -> Result<ServiceView, AgentError> {
        let _guard = self.lock_service(name).await;
        let record = self.record(name)?;
        for instance in self.service_instances(name).await? {
            self.podman
                .stop(&instance.name, self.stop_timeout)
                .await
                .map_err(AgentError::runtime(format!("stopping {}", instance.name)))?;
        }
        self.registry(|r| r.set_desired_state(name, DesiredState::Stopped, None, "stop", actor))?;
        drop(record);
        self.view_of(name).await
    }

    /// Precondition: the service is deployed. Starts every component that is not running,
    /// re-creating any that disappeared.
    pub async fn start(&self, name: &str, actor: &str) -> Result<ServiceView, AgentError> {
        let _guard = self.lock_service(name).await;
        let record = self.record(name)?;
        let mut spec = record.spec.clone();
        spec.active = true;
        let instances = self.service_instances(name).await?;
        let mut plan = plan::plan(&spec, &instances);
        let (reservation, host_ports) = self.reserve_ports(&spec, &mut plan, Some(&record))?;
        self.pull_images(&plan).await?;
        self.apply(&spec, &plan, &host_ports).await?;
        self.registry(|r| {
            r.set_desired_state(
                name,
                DesiredState::Running,
                Some(&host_ports),
                "start",
                actor,
            )
        })?;
        drop(reservation);
        self.view_of(name).await
    }

    /// Precondition: the service is deployed. Stops then starts every component, keeping
    /// instances (and their ports).
    pub async fn restart(&self, name: &str, actor: &str) -> Result<ServiceView, AgentError> {
        {
            let _guard = self.lock_service(name).await;
            self.record(name)?;
            for instance in self.service_instances(name).await? {
                self.podman
                    .stop(&instance.name, self.stop_timeout)
                    .await
                    .map_err(AgentError::runtime(format!("stopping {}", instance.name)))?;
            }
        }
        let view = self.start(name, actor).await?;
        self.registry(|r| r.record_event(name, "restart", actor, None))?;
        Ok(view)
    }

    /// Removes every instance labelled with the service, then forgets it. An unknown service
    /// with no instances left is an error; leftover instances of a forgotten one are removed.
    pub async fn undeploy(&self, name: &str, actor: &str) -> Result<(), AgentError> {
        let _guard = self.lock_service(name).await;
        let known = self.registry(|r| r.service(name))?.is_some();
        let instances = self.service_instances(name).await?;
        if !known && instances.is_empty() {
            return Err(AgentError::ServiceNotFound(name.to_string()));
        }
        for instance in &instances {
            self.podman
                .stop(&instance.name, self.stop_timeout)
                .await
                .map_err(AgentError::runtime(format!("stopping {}", instance.name)))?;
            self.podman
                .remove(&instance.name)
                .await
                .map_err(AgentError::runtime(format!("removing {}", instance.name)))?;
        }
        self.registry(|r| r.delete_service(name, actor))?;
        Ok(())
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
