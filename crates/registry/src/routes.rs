//! Routes and their host ports: written with each deploy, released on stop, re-assigned on
//! start. The unique index on `host_port` makes a double assignment impossible.

use rusqlite::{Transaction, params};
use std::collections::{BTreeMap, BTreeSet};

use crate::error::ServiceContext;
use crate::{Registry, RegistryError};

/// Identifies a route within a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteKey {
    pub component: String,
    /// The route's name; "" for a component's single unnamed route.
    pub route: String,
}

impl RouteKey {
    pub fn new(component: impl Into<String>, route: impl Into<String>) -> Self {
        Self {
            component: component.into(),
            route: route.into(),
        }
    }

    /// The key of `route` of `component` in a spec.
    pub fn of(component: &servicedef::Component, route: &servicedef::Route) -> Self {
        Self::new(
            component.name.as_str(),
            route.name.clone().unwrap_or_default(),
        )
    }
}

/// Host ports by route, for one service.
pub type HostPorts = BTreeMap<RouteKey, u16>;

/// One route of a deployed component and its host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRecord {
    pub component: String,
    /// None for a component's single unnamed route.
    pub route: Option<String>,
    pub port: u16,
    pub mode: String,
    pub hostname: Option<String>,
    /// None while released (service stopped).
    pub host_port: Option<u16>,
    /// The port held before the last release; a start tries to get it back.
    pub last_host_port: Option<u16>,
}

impl RouteRecord {
    pub fn key(&self) -> RouteKey {
        RouteKey::new(
            self.component.clone(),
            self.route.clone().unwrap_or_default(),
        )
    }
}

/// Replaces the service's route rows with the spec's routes and the given host ports.
pub(crate) fn replace(
    tx: &Transaction<'_>,
    spec: &servicedef::Service,
    host_ports: &HostPorts,
) -> Result<(), RegistryError> {
    let name = spec.name.as_str();
    tx.execute("DELETE FROM component_routes WHERE service = ?1", [name])
        .for_service(name)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO component_routes
                 (service, component, route, port, mode, hostname, host_port, last_host_port)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )
        .for_service(name)?;
    for component in &spec.components {
        for route in &component.routes {
            let key = RouteKey::of(component, route);
            insert
                .execute(params![
                    name,
                    key.component,
                    key.route,
                    route.port,
                    route.mode.as_str(),
                    route.hostname,
                    host_ports.get(&key),
                ])
                .for_service(name)?;
        }
    }
    Ok(())
}

pub(crate) fn load(
    conn: &rusqlite::Connection,
    service: &str,
) -> Result<Vec<RouteRecord>, RegistryError> {
    conn.prepare_cached(
        "SELECT component, route, port, mode, hostname, host_port, last_host_port
         FROM component_routes WHERE service = ?1 ORDER BY component, route",
    )
    .and_then(|mut stmt| {
        stmt.query_map([service], |row| {
            let route: String = row.get(1)?;
            Ok(RouteRecord {
                component: row.get(0)?,
                route: (!route.is_empty()).then_some(route),
                port: row.get(2)?,
                mode: row.get(3)?,
                hostname: row.get(4)?,
                host_port: row.get(5)?,
                last_host_port: row.get(6)?,
            })
        })?
        .collect()
    })
    .for_service(service)
}

/// Releases every host port of the service, remembering each as its last one.
pub(crate) fn release(tx: &Transaction<'_>, service: &str) -> Result<(), RegistryError> {
    tx.execute(
        "UPDATE component_routes
         SET last_host_port = coalesce(host_port, last_host_port), host_port = NULL
         WHERE service = ?1",
        [service],
    )
    .for_service(service)?;
    Ok(())
}

/// Records the host ports given to the service's routes (a start after a stop).
pub(crate) fn assign(
    tx: &Transaction<'_>,
    service: &str,
    host_ports: &HostPorts,
) -> Result<(), RegistryError> {
    let mut update = tx
        .prepare_cached(
            "UPDATE component_routes SET host_port = ?1, last_host_port = ?1
             WHERE service = ?2 AND component = ?3 AND route = ?4",
        )
        .for_service(service)?;
    for (RouteKey { component, route }, port) in host_ports {
        update
            .execute(params![port, service, component, route])
            .for_service(service)?;
    }
    Ok(())
}

impl Registry {
    /// Records host ports given to some of the service's routes outside a deploy (the
    /// monitor re-creating a component whose old port was taken).
    pub fn assign_host_ports(
        &mut self,
        service: &str,
        host_ports: &HostPorts,
    ) -> Result<(), RegistryError> {
        let tx = self.conn.transaction().for_service(service)?;
        assign(&tx, service, host_ports)?;
        tx.commit().for_service(service)
    }

    /// Every host port recorded for a route of any service except `except`.
    pub fn held_host_ports(&self, except: Option<&str>) -> Result<BTreeSet<u16>, RegistryError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT host_port FROM component_routes
             WHERE host_port IS NOT NULL AND service IS NOT ?1",
        )?;
        let ports = stmt
            .query_map([except], |row| row.get::<_, u16>(0))?
            .collect::<Result<_, _>>()?;
        Ok(ports)
    }
}
