//! Host ports for the components a plan runs: kept when possible, re-allocated otherwise.
//!
//! Invariant: a port is reserved in memory from allocation until the registry records it
//! (or the operation fails); a recorded port is never handed to another route.

use registry::{HostPorts, RouteKey, ServiceRecord};
use servicedef::Service;
use std::collections::BTreeSet;

use super::Deployer;
use super::plan::Plan;
use crate::AgentError;
use crate::nat::ForwardedPorts;
use crate::ports::{Reservation, Wanted};

impl Deployer {
    /// Reserves a host port for every route of every component that `plan` creates or
    /// starts, and returns the reservation plus the service's complete port map (kept
    /// components keep theirs). A stopped instance whose old ports are gone is moved from
    /// "start" to "replace", since a container's published ports are fixed at creation.
    /// Components created side by side get new ports; their old ones stay held. `redirected`
    /// are the ports the host's NAT table sends elsewhere, read by the caller just before.
    pub(super) fn reserve_ports<'a>(
        &self,
        spec: &'a Service,
        plan: &mut Plan<'a>,
        previous: Option<&ServiceRecord>,
        redirected: &ForwardedPorts,
    ) -> Result<(Reservation, HostPorts), AgentError> {
        let current: HostPorts = previous.map(ServiceRecord::host_ports).unwrap_or_default();
        let last: HostPorts = previous
            .map(|p| {
                p.routes
                    .iter()
                    .filter_map(|r| r.last_host_port.map(|port| (r.key(), port)))
                    .collect()
            })
            .unwrap_or_default();
        let runs = |c: &servicedef::Component| {
            plan.create.iter().any(|created| created.name == c.name)
                || plan.start.iter().any(|i| i.component == c.name.as_str())
        };
        let mut wanted = Vec::new();
        for component in spec.components.iter().filter(|c| runs(c)) {
            for route in &component.routes {
                let key = RouteKey::of(component, route);
                // A port is "owned" (kept without a bind check) only while the instance this
                // plan replaces in place still holds it; a vanished instance's port must be
                // free again, and a side-by-side replacement needs a port of its own.
                let replaced_in_place = plan
                    .replace_old
                    .iter()
                    .any(|i| i.component == component.name.as_str());
                let recorded = current.get(&key).copied();
                let owned = recorded.filter(|_| replaced_in_place);
                wanted.push(Wanted {
                    preferred: recorded
                        .filter(|_| !plan.side_by_side(component.name.as_str()))
                        .or_else(|| last.get(&key).copied()),
                    owned: owned.is_some(),
                    key,
                });
            }
        }
        let wanted_keys: BTreeSet<_> = wanted.iter().map(|w| w.key.clone()).collect();
        // Everything recorded stays off-limits except the ports of the routes being placed.
        let mut held = self.read(|r| r.held_host_ports(None))?;
        for (key, port) in &current {
            if wanted_keys.contains(key) && !plan.side_by_side(&key.component) {
                held.remove(port);
            }
        }
        let reservation = self
            .ports
            .allocate(&held, redirected, &wanted)
            .map_err(|e| AgentError::Ports(e.to_string()))?;

        for instance in plan.start.clone() {
            let Some(component) = spec
                .components
                .iter()
                .find(|c| c.name.as_str() == instance.component)
            else {
                continue;
            };
            let moved = component.routes.iter().any(|route| {
                let key = RouteKey::of(component, route);
                let before = current.get(&key).or_else(|| last.get(&key));
                before != reservation.ports.get(&key)
            });
            if moved {
                plan.start.retain(|i| *i != instance);
                plan.replace_old.push(instance);
                plan.create.push(component);
            }
        }
        let mut all: HostPorts = current
            .into_iter()
            .filter(|(key, _)| !wanted_keys.contains(key))
            .collect();
        all.extend(reservation.ports.clone());
        Ok((reservation, all))
    }
}
