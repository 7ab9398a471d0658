//! Public traffic: the proxy's routing table derived from the registry (plus the spec a
//! deploy is about to record), the atomic switch, and draining a retired backend.
//!
//! Invariant: the table is always a function of recorded state, so after any failure or
//! crash, pushing it again restores what the registry says (`sync_traffic`).

use registry::{DesiredState, HostPorts, RouteKey};
use servicedef::Service;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Deployer;
use crate::AgentError;
use crate::traffic::{PublicRoute, TrafficSwitch};

/// How often a drain asks the proxy about the old backend's in-flight work.
const DRAIN_POLL: Duration = Duration::from_millis(20);

/// What this part owns: the switch to the node proxy, the drain timeout, and the routes of
/// operations in flight.
pub(super) struct Traffic {
    /// The node proxy, when public routes are served here.
    switch: Option<Arc<dyn TrafficSwitch>>,
    /// How long a retired instance may finish its in-flight work before it is stopped.
    drain_timeout: Duration,
    /// Serialises building and applying the proxy's table, and holds the public routes of
    /// operations in flight that differ from their service's record (a deploy between its
    /// switch and its record; a stop or undeploy draining): every table includes them, so
    /// no table built meanwhile from the registry alone can undo a switch.
    pending: tokio::sync::Mutex<BTreeMap<String, (Service, HostPorts)>>,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            switch: None,
            drain_timeout: Duration::from_secs(30),
            pending: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }
}

impl Traffic {
    pub(super) fn new(switch: Arc<dyn TrafficSwitch>, drain_timeout: Duration) -> Self {
        Self {
            switch: Some(switch),
            drain_timeout,
            ..Self::default()
        }
    }
}

/// Where this host reaches a port bound on `ip`: loopback for "every address".
pub(crate) fn reachable(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

impl Deployer {
    /// Where the proxy reaches a host port: the ports' bind address, or loopback when they
    /// are bound on every address.
    pub(crate) fn upstream(&self, host_port: u16) -> SocketAddr {
        SocketAddr::new(reachable(self.ports.bind_address()), host_port)
    }

    /// Every public route the node serves: recorded services that should run, each
    /// replaced by its pending routes when an operation in flight has some.
    fn public_routes(
        &self,
        pending: &BTreeMap<String, (Service, HostPorts)>,
    ) -> Result<Vec<PublicRoute>, AgentError> {
        let records = self.read(|r| r.services())?;
        let mut routes = Vec::new();
        for record in &records {
            if pending.contains_key(record.spec.name.as_str())
                || record.desired != DesiredState::Running
            {
                continue;
            }
            self.push_routes(&record.spec, &record.host_ports(), &mut routes);
        }
        for (spec, ports) in pending.values().filter(|(spec, _)| spec.active) {
            self.push_routes(spec, ports, &mut routes);
        }
        Ok(routes)
    }

    fn push_routes(&self, spec: &Service, ports: &HostPorts, out: &mut Vec<PublicRoute>) {
        for component in &spec.components {
            for route in &component.routes {
                let name = route.name.clone().unwrap_or_default();
                let Some(&host_port) = ports.get(&RouteKey::of(component, route)) else {
                    continue;
                };
                out.push(PublicRoute {
                    service: spec.name.to_string(),
                    component: component.name.to_string(),
                    route: name,
                    port: route.port,
                    mode: route.mode,
                    hostname: route.hostname.clone(),
                    backend: self.upstream(host_port),
                });
            }
        }
    }

    /// Refuses a spec whose public port + hostname another deployed service claims, or
    /// whose port another service uses in the other mode.
    pub(super) fn check_public_claims(&self, spec: &Service) -> Result<(), AgentError> {
        let records = self.read(|r| r.services())?;
        let others = records
            .iter()
            .map(|r| &r.spec)
            .filter(|other| other.name != spec.name);
        claims_conflict(spec, others)
    }

    /// Points the proxy at the recorded backends, with `pending` (a service's spec and
    /// ports, not recorded yet) in place of that service's record until `settle_traffic`.
    /// The claim check is repeated here, under the table's lock, against both the registry
    /// and other operations' pending routes: two deploys racing for one port+hostname
    /// cannot both switch. When the apply fails, `pending` is not kept.
    pub(super) async fn switch_traffic(
        &self,
        pending: Option<(&Service, &HostPorts)>,
    ) -> Result<(), AgentError> {
        let Some(traffic) = &self.traffic.switch else {
            return Ok(());
        };
        // Timed from before the table is computed: the whole "healthy → switched" step.
        let started = Instant::now();
        let mut overrides = self.traffic.pending.lock().await;
        let mut replaced = None;
        if let Some((spec, ports)) = pending {
            let records = self.read(|r| r.services())?;
            let others = records
                .iter()
                .map(|r| &r.spec)
                .chain(overrides.values().map(|(s, _)| s))
                .filter(|other| other.name != spec.name);
            claims_conflict(spec, others)?;
            replaced = overrides.insert(spec.name.to_string(), (spec.clone(), ports.clone()));
        }
        let applied = match self.public_routes(&overrides) {
            Ok(routes) => traffic
                .apply(&routes)
                .await
                .map(|()| routes.len())
                .map_err(AgentError::from),
            Err(err) => Err(err),
        };
        match applied {
            Ok(count) => {
                tracing::debug!(
                    routes = count,
                    elapsed_us = started.elapsed().as_micros(),
                    "proxy switched"
                );
                Ok(())
            }
            Err(err) => {
                if let Some((spec, _)) = pending {
                    match replaced {
                        Some(previous) => overrides.insert(spec.name.to_string(), previous),
                        None => overrides.remove(spec.name.as_str()),
                    };
                }
                Err(err)
            }
        }
    }

    /// The registry now says what `service`'s pending routes said, or its operation gave
    /// up: tables are built from the record again.
    pub(super) async fn settle_traffic(&self, service: &str) {
        self.traffic.pending.lock().await.remove(service);
    }

    /// Re-points the proxy at what the registry records (after an operation that may have
    /// moved ports, at start, or when the proxy came back). Failures are logged: the
    /// operation itself succeeded, and the next sync tries again.
    pub async fn sync_traffic(&self) {
        if let Err(err) = self.switch_traffic(None).await {
            tracing::warn!(error = %err, "cannot program the node proxy");
        }
    }

    /// Waits until the proxy has no work in flight to `backends`, at most the drain timeout.
    pub(super) async fn drain(&self, backends: &[SocketAddr]) {
        let Some(traffic) = &self.traffic.switch else {
            return;
        };
        if backends.is_empty() {
            return;
        }
        let deadline = Instant::now() + self.traffic.drain_timeout;
        loop {
            match traffic.in_flight(backends).await {
                Ok(0) => return,
                Ok(n) if Instant::now() >= deadline => {
                    tracing::warn!(in_flight = n, ?backends, "drain timed out; stopping anyway");
                    return;
                }
                Ok(_) => tokio::time::sleep(DRAIN_POLL).await,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot ask the proxy about in-flight work");
                    return;
                }
            }
        }
    }
}

/// Whether `spec` claims a public port + hostname that one of `others` holds, or uses a port
/// in the other mode than they do.
fn claims_conflict<'a>(
    spec: &Service,
    others: impl Iterator<Item = &'a Service>,
) -> Result<(), AgentError> {
    for other in others {
        for (component, route) in spec
            .components
            .iter()
            .flat_map(|c| c.routes.iter().map(move |r| (c, r)))
        {
            let host = route.hostname.as_ref().map(|h| h.to_ascii_lowercase());
            for theirs in other.components.iter().flat_map(|c| &c.routes) {
                if theirs.port != route.port {
                    continue;
                }
                let what = format!(
                    "component {} route {}: public port {}",
                    component.name,
                    route.name.as_deref().unwrap_or("(unnamed)"),
                    route.port
                );
                if theirs.mode != route.mode {
                    return Err(AgentError::InvalidSpec(format!(
                        "{what} is served as {} for service {}; one port has one mode",
                        theirs.mode, other.name
                    )));
                }
                if theirs.hostname.as_ref().map(|h| h.to_ascii_lowercase()) == host {
                    let host = host.as_deref().map_or(String::new(), |h| format!(" ({h})"));
                    return Err(AgentError::InvalidSpec(format!(
                        "{what}{host} is already claimed by service {}",
                        other.name
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn service(name: &str, route: &str) -> Service {
        servicedef::parse_str(
            "t.toml",
            &format!(
                "name = \"{name}\"\nnode = \"n\"\n[[components]]\nname = \"web\"\nimage = \"i\"\n\
                 [[components.routes]]\n{route}\n"
            ),
        )
        .unwrap()
    }

    #[test]
    fn a_port_and_host_name_belong_to_one_service_and_a_port_to_one_mode() {
        let a = service("a", "port = 443\nhostname = \"A.test\"");
        let same = service("b", "port = 443\nhostname = \"a.TEST\"");
        let other_host = service("c", "port = 443\nhostname = \"c.test\"");
        let l7 = service("d", "port = 443\nmode = \"l7\"\nhostname = \"d.test\"");
        let err = claims_conflict(&same, [&a].into_iter())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("public port 443 (a.test) is already claimed by service a"),
            "{err}"
        );
        assert!(claims_conflict(&other_host, [&a].into_iter()).is_ok());
        let err = claims_conflict(&l7, [&a].into_iter())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is served as l4 for service a"), "{err}");
    }
}
