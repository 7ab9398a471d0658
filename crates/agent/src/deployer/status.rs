//! Status views: the registry's desired state merged with the runtime's listing.

use registry::ServiceRecord;
use runtime::{ContainerInfo, PortBinding};

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

pub(crate) fn service_view(record: &ServiceRecord, listing: &[ContainerInfo]) -> ServiceView {
    let spec = &record.spec;
    let components = record
        .components
        .iter()
        .filter_map(|c| spec.component(&c.name).map(|component| (c, component)))
        .map(|(rec, component)| {
            let instance = spec.container_name(&component.name);
            let observed = listing.iter().find(|i| i.name == instance);
            ComponentView {
                name: rec.name.clone(),
                image: observed.map_or_else(|| rec.image.clone(), |i| i.image.clone()),
                runtime: component.runtime.to_string(),
                desired_state: rec.desired.to_string(),
                state: observed
                    .map_or_else(|| "missing".to_string(), |i| i.state.as_str().to_string()),
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
