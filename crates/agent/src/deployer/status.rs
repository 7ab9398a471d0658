//! Status views: the registry's desired state merged with the runtime's listing, and the
//! history and logs read through them.
//!
//! Invariant: a view is built from one listing per runtime and the registry's reader
//! connection; building it changes nothing.

use registry::{DesiredState, Health, ServiceRecord};
use runtime::{InstanceInfo, InstanceState, PortBinding};
use servicedef::{RestartPolicy, RuntimeKind};

use runtime::{LogLine, LogStream};
use servicedef::Component;
use tokio_stream::StreamMap;

use super::ready::HealthState;
use super::{Deployer, plan};
use crate::AgentError;

/// What a component's instance is doing, as status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedState {
    /// No instance exists.
    Missing,
    /// Exited, and the monitor waits out its restart back-off.
    Backoff,
    Instance(InstanceState),
}

impl ObservedState {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Missing => "missing",
            Self::Backoff => "backoff",
            Self::Instance(state) => state.as_str(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ComponentView {
    pub name: String,
    pub instance: String,
    pub image: String,
    pub runtime: RuntimeKind,
    pub desired_state: DesiredState,
    pub state: ObservedState,
    pub started_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub ports: Vec<PortBinding>,
    pub id: String,
    pub routes: Vec<RouteView>,
    /// VMs: "kvm" or "tcg".
    pub accelerator: Option<String>,
    pub restart_policy: RestartPolicy,
    pub restart_count: u32,
    pub last_exit_code: Option<i32>,
    pub last_exit_at: Option<i64>,
    /// Kind of drift seen by the last monitor pass, if any.
    pub drift: Option<String>,
    pub drift_detail: Option<String>,
    /// Unix milliseconds before which the monitor will not restart it.
    pub backoff_until: Option<i64>,
    /// `None` without a health check.
    pub health: Option<HealthState>,
    pub health_detail: Option<String>,
}

/// A labelled instance no deployed service describes.
#[derive(Debug, Clone)]
pub struct StrayView {
    pub instance: String,
    pub service: String,
    pub component: String,
    pub state: InstanceState,
    pub image: String,
    pub id: String,
}

impl From<&InstanceInfo> for StrayView {
    fn from(info: &InstanceInfo) -> Self {
        Self {
            instance: info.name.clone(),
            service: info.service().unwrap_or_default().to_string(),
            component: info.component().unwrap_or_default().to_string(),
            state: info.state.clone(),
            image: info.image.clone(),
            id: info.id.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RouteView {
    pub name: Option<String>,
    pub port: u16,
    pub mode: String,
    pub hostname: Option<String>,
    pub host_port: Option<u16>,
    pub env: String,
}

#[derive(Debug, Clone)]
pub struct ServiceView {
    pub name: String,
    pub node: String,
    pub desired_state: DesiredState,
    pub spec_hash: String,
    pub updated_at: i64,
    pub components: Vec<ComponentView>,
}

pub(crate) fn service_view(
    record: &ServiceRecord,
    listing: &[InstanceInfo],
    health: &[(String, String, Health)],
) -> ServiceView {
    let spec = &record.spec;
    let components = record
        .components
        .iter()
        .filter_map(|c| spec.component(&c.name).map(|component| (c, component)))
        .map(|(rec, component)| {
            let observed = super::plan::instance_of(spec.name.as_str(), component, listing);
            let instance =
                observed.map_or_else(|| spec.container_name(&component.name), |i| i.name.clone());
            let default = Health::default();
            let h = health
                .iter()
                .find(|(s, c, _)| s == spec.name.as_str() && c == &rec.name)
                .map_or(&default, |(_, _, h)| h);
            let state = match observed {
                None => ObservedState::Missing,
                Some(i) if super::heal::in_backoff(h, &i.state) => ObservedState::Backoff,
                Some(i) => ObservedState::Instance(i.state.clone()),
            };
            ComponentView {
                accelerator: observed.and_then(|i| i.accelerator.clone()),
                restart_policy: component.restart,
                restart_count: h.restart_count,
                last_exit_code: h.last_exit_code,
                last_exit_at: h.last_exit_at,
                drift: h.drift.clone(),
                drift_detail: h.drift_detail.clone(),
                backoff_until: h.backoff_until,
                health: None,
                health_detail: None,
                name: rec.name.clone(),
                image: observed.map_or_else(|| rec.image.clone(), |i| i.image.clone()),
                runtime: component.runtime,
                desired_state: rec.desired,
                state,
                started_at: observed.and_then(|i| i.started_at),
                exit_code: observed.and_then(|i| i.exit_code),
                ports: observed.map(|i| i.ports.clone()).unwrap_or_default(),
                id: observed.map(|i| i.id.clone()).unwrap_or_default(),
                routes: component
                    .routes
                    .iter()
                    .map(|route| {
                        let recorded = record
                            .routes
                            .iter()
                            .find(|r| r.component == rec.name && r.route == route.name);
                        RouteView {
                            name: route.name.clone(),
                            port: route.port,
                            mode: route.mode.to_string(),
                            hostname: route.hostname.clone(),
                            host_port: recorded.and_then(|r| r.host_port),
                            env: route.env_var(),
                        }
                    })
                    .collect(),
                instance,
            }
        })
        .collect();
    ServiceView {
        name: spec.name.to_string(),
        node: spec.node.clone(),
        desired_state: record.desired,
        spec_hash: record.spec_hash.clone(),
        updated_at: record.updated_at,
        components,
    }
}

impl Deployer {
    /// Every service (or one), from the observed state (`observed.rs`): containers are
    /// listed only when something unknown may have changed them.
    pub async fn status(&self, only: Option<&str>) -> Result<Vec<ServiceView>, AgentError> {
        let listing = self.observed_listing().await?;
        self.status_from(only, &listing)
    }

    /// Every instance of ours: the containers from the observed state, the VMs scanned now.
    pub(super) async fn observed_listing(&self) -> Result<Vec<InstanceInfo>, AgentError> {
        let containers = self
            .observed
            .containers(
                || self.podman_listing(None),
                |service| async move { self.podman_listing(Some(&service)).await },
                &|service| self.service_busy(service),
            )
            .await?;
        let mut listing = Vec::clone(&containers);
        listing.extend(self.list_vms().await?);
        Ok(listing)
    }

    fn status_from(
        &self,
        only: Option<&str>,
        listing: &[InstanceInfo],
    ) -> Result<Vec<ServiceView>, AgentError> {
        let records = match only {
            Some(name) => vec![self.record(name)?],
            None => self.read(|r| r.services())?,
        };
        let health = self.read(|r| r.all_health())?;
        Ok(records
            .iter()
            .map(|record| self.with_checks(record, service_view(record, listing, &health)))
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

    /// The service's view from a new listing (operations hold its lock: what they changed is
    /// not in the kept listing yet).
    pub(super) async fn view_of(&self, name: &str) -> Result<ServiceView, AgentError> {
        let listing = self.service_instances(name).await?;
        let mut views = self.status_from(Some(name), &listing)?;
        views
            .pop()
            .ok_or_else(|| AgentError::ServiceNotFound(name.to_string()))
    }

    /// The service's view from a listing of its instances taken just now, when there is one
    /// (no second listing); from a new listing otherwise.
    pub(super) async fn view_from(
        &self,
        name: &str,
        listing: Option<Vec<InstanceInfo>>,
    ) -> Result<ServiceView, AgentError> {
        let Some(listing) = listing else {
            return self.view_of(name).await;
        };
        let record = self.record(name)?;
        let health = self.read(|r| r.all_health())?;
        Ok(self.with_checks(&record, service_view(&record, &listing, &health)))
    }

    /// Output of one component, or of all (lines tagged with their component).
    pub async fn logs(
        &self,
        service: &str,
        component: Option<&str>,
        options: &runtime::LogOptions,
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
        // A VM's console has no timestamps: asking for them (or a time filter) is bad input,
        // named, rather than an answer that silently ignores them.
        let timed = options.timestamps || options.since.is_some();
        if timed
            && let Some(vm) = components
                .iter()
                .find(|c| c.runtime == servicedef::RuntimeKind::Unikernel)
        {
            return Err(AgentError::BadRequest(format!(
                "component {} is a unikernel, whose console log has no timestamps: \
                 --timestamps and --since apply to containers",
                vm.name
            )));
        }
        let mut streams: StreamMap<String, LogStream> = StreamMap::new();
        let instances = self.service_instances(service).await?;
        for component in components {
            let instance = plan::instance_of(service, component, &instances).map_or_else(
                || record.spec.container_name(&component.name),
                |i| i.name.clone(),
            );
            let stream = self
                .runtime_for(component)?
                .logs(&instance, options)
                .await
                .map_err(AgentError::runtime(format!("logs of {instance}")))?;
            streams.insert(component.name.to_string(), stream);
        }
        Ok(streams)
    }
}
