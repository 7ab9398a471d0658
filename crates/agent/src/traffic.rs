//! The seam between the deployer and whatever carries public traffic (the node proxy): the
//! deployer says which backend serves each public route and asks how much work an old
//! backend still has; `proxy_link` implements it over the proxy's control socket.

use async_trait::async_trait;
use servicedef::RouteMode;
use std::net::SocketAddr;

/// One public route and the host port (backend) that serves it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRoute {
    pub service: String,
    pub component: String,
    /// "" for a component's single unnamed route.
    pub route: String,
    pub port: u16,
    pub mode: RouteMode,
    pub hostname: Option<String>,
    pub backend: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
#[error("node proxy: {0}")]
pub struct TrafficError(pub String);

#[async_trait]
pub trait TrafficSwitch: Send + Sync {
    /// Makes the node's public ports carry exactly `routes`, all or nothing: when it fails,
    /// the previous routes keep serving. Returns once new connections follow `routes`.
    async fn apply(&self, routes: &[PublicRoute]) -> Result<(), TrafficError>;

    /// Work in flight to `backends`: open connections (l4) plus requests (l7). A drain
    /// polls this until it is zero.
    async fn in_flight(&self, backends: &[SocketAddr]) -> Result<u64, TrafficError>;
}
