//! Rows of the registry as returned to callers.

use servicedef::Service;

use crate::{DesiredState, RouteRecord};

/// One component of a deployed service.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentRecord {
    pub name: String,
    pub image: String,
    pub desired: DesiredState,
    pub spec_hash: String,
}

/// A deployed service: the spec as last deployed plus the operator's current intent.
///
/// `desired` can differ from `spec.active`: a later stop/start changes the desired state but
/// not the deployed spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRecord {
    pub spec: Service,
    pub desired: DesiredState,
    pub spec_hash: String,
    /// Unix seconds of the first deploy; kept across redeploys.
    pub created_at: i64,
    /// Unix seconds of the last change to this row.
    pub updated_at: i64,
    /// In the order they appear in the spec.
    pub components: Vec<ComponentRecord>,
    /// Every route of every component, with its host port.
    pub routes: Vec<RouteRecord>,
}

impl ServiceRecord {
    /// The host ports currently held by the service's routes.
    pub fn host_ports(&self) -> crate::HostPorts {
        self.routes
            .iter()
            .filter_map(|r| r.host_port.map(|port| (r.key(), port)))
            .collect()
    }
}

/// One entry of the deploy history.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Increases with every event; the ordering key.
    pub id: i64,
    pub service: String,
    pub action: String,
    pub actor: String,
    /// Unix seconds.
    pub at: i64,
    /// The spec deployed, for "deploy" events.
    pub spec: Option<Service>,
    pub detail: Option<String>,
}
