//! Status views: the registry's desired state merged with the runtime's listing.

use registry::{Health, ServiceRecord};
use runtime::{InstanceInfo, PortBinding};

#[derive(Debug, Clone)]
pub struct ComponentView {
    pub name: String,
    pub instance: String,
    pub image: String,
    pub runtime: String,
    pub desired_state: String,
    /// Observed state; "missing" when no instance exists.
    pub state: String,
    pub started_at: Option<i64>,
    pub exit_code: Option<i32>,
    pub ports: Vec<PortBinding>,
    pub id: String,
    pub routes: Vec<RouteView>,
    /// VMs: "kvm" or "tcg".
    pub accelerator: Option<String>,
    pub restart_policy: String,
    pub restart_count: u32,
    pub last_exit_code: Option<i32>,
    pub last_exit_at: Option<i64>,
    /// Kind of drift seen by the last monitor pass, if any.
    pub drift: Option<String>,
    pub drift_detail: Option<String>,
    /// Unix milliseconds before which the monitor will not restart it.
    pub backoff_until: Option<i64>,
    /// "" without a health check; "starting", "healthy" or "unhealthy".
    pub health: String,
    pub health_detail: Option<String>,
}

/// A labelled instance no deployed service describes.
#[derive(Debug, Clone)]
pub struct StrayView {
    pub instance: String,
    pub service: String,
    pub component: String,
    pub state: String,
    pub image: String,
    pub id: String,
}

impl From<&InstanceInfo> for StrayView {
    fn from(info: &InstanceInfo) -> Self {
        Self {
            instance: info.name.clone(),
            service: info.service().unwrap_or_default().to_string(),
            component: info.component().unwrap_or_default().to_string(),
            state: info.state.as_str().to_string(),
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
    pub desired_state: String,
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
            let state =
                observed.map_or_else(|| "missing".to_string(), |i| i.state.as_str().to_string());
            let state = if super::heal::in_backoff(h, &state) {
                "backoff".to_string()
            } else {
                state
            };
            ComponentView {
                accelerator: observed.and_then(|i| i.accelerator.clone()),
                restart_policy: component.restart.to_string(),
                restart_count: h.restart_count,
                last_exit_code: h.last_exit_code,
                last_exit_at: h.last_exit_at,
                drift: h.drift.clone(),
                drift_detail: h.drift_detail.clone(),
                backoff_until: h.backoff_until,
                health: String::new(),
                health_detail: None,
                name: rec.name.clone(),
                image: observed.map_or_else(|| rec.image.clone(), |i| i.image.clone()),
                runtime: component.runtime.to_string(),
                desired_state: rec.desired.to_string(),
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
        desired_state: record.desired.to_string(),
        spec_hash: record.spec_hash.clone(),
        updated_at: record.updated_at,
        components,
    }
}
