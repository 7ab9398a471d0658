//! Services and their components: deploy, lookup, desired-state changes, removal.

use rusqlite::{Connection, OptionalExtension, Row, params};
use servicedef::Service;

use crate::error::ServiceContext;
use crate::{
    ComponentRecord, DesiredState, EventAction, HostPorts, Registry, RegistryError, ServiceRecord,
    events, health, routes, time,
};

impl Registry {
    /// Records a deploy in one transaction: upserts the service row (keeping `created_at`),
    /// replaces its component and route rows (routes get `host_ports`; a route missing
    /// there has none) and appends a "deploy" event carrying the spec.
    /// The desired state is Running if `spec.active`, else Stopped, for the service and every
    /// component.
    pub fn record_deploy(
        &mut self,
        spec: &Service,
        host_ports: &HostPorts,
        actor: &str,
    ) -> Result<ServiceRecord, RegistryError> {
        self.record_deploy_with(spec, host_ports, actor, None)
    }

    /// `record_deploy` with a detail on its history entry (e.g. "rollback to 2").
    pub fn record_deploy_with(
        &mut self,
        spec: &Service,
        host_ports: &HostPorts,
        actor: &str,
        detail: Option<&str>,
    ) -> Result<ServiceRecord, RegistryError> {
        let name = spec.name.as_str();
        let desired = DesiredState::from_active(spec.active);
        let spec_json =
            serde_json::to_string(spec).map_err(|source| RegistryError::EncodeSpec {
                service: name.to_owned(),
                source,
            })?;
        let spec_hash = spec.spec_hash();
        let now = time::now();

        // Dropping `tx` on any early return rolls back, so a failure leaves nothing behind.
        let tx = self.conn.transaction().for_service(name)?;
        let created_at: i64 = tx
            .query_row(
                "INSERT INTO services
                     (name, node, active, desired_state, spec_json, spec_hash, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT (name) DO UPDATE SET
                     node = excluded.node, active = excluded.active,
                     desired_state = excluded.desired_state, spec_json = excluded.spec_json,
                     spec_hash = excluded.spec_hash, updated_at = excluded.updated_at
                 RETURNING created_at",
                params![name, spec.node, spec.active, desired, spec_json, spec_hash, now],
                |row| row.get(0),
            )
            .for_service(name)?;
        // An upsert does not cascade, so components dropped from the spec are removed here.
        tx.execute("DELETE FROM components WHERE service = ?1", [name])
            .for_service(name)?;
        let mut components = Vec::with_capacity(spec.components.len());
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO components
                         (service, name, image, desired_state, spec_hash, position)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .for_service(name)?;
            for (position, component) in spec.components.iter().enumerate() {
                let record = ComponentRecord {
                    name: component.name.as_str().to_owned(),
                    image: component.image.to_string(),
                    desired,
                    spec_hash: component.spec_hash(),
                };
                insert
                    .execute(params![
                        name,
                        record.name,
                        record.image,
                        desired,
                        record.spec_hash,
                        // A Vec index always fits; saturating keeps this infallible.
                        i64::try_from(position).unwrap_or(i64::MAX),
                    ])
                    .for_service(name)?;
                components.push(record);
            }
        }
        routes::replace(&tx, spec, host_ports)?;
        // A new spec starts with a clean restart history.
        health::clear(&tx, name)?;
        events::insert(
            &tx,
            name,
            EventAction::Deploy,
            actor,
            Some(&spec_json),
            detail,
        )?;
        let routes = routes::load(&tx, name)?;
        tx.commit().for_service(name)?;

        Ok(ServiceRecord {
            spec: spec.clone(),
            desired,
            spec_hash,
            created_at,
            updated_at: now,
            components,
            routes,
        })
    }

    /// The service named `name`, or None if it is not deployed here.
    pub fn service(&self, name: &str) -> Result<Option<ServiceRecord>, RegistryError> {
        // One read transaction so the service row and its components come from one snapshot.
        let tx = self.conn.unchecked_transaction().for_service(name)?;
        let raw = tx
            .query_row(
                &format!("{SELECT_SERVICE} WHERE name = ?1"),
                [name],
                RawService::from_row,
            )
            .optional()
            .for_service(name)?;
        raw.map(|raw| raw.assemble(&tx)).transpose()
    }

    /// Every deployed service, sorted by name.
    pub fn services(&self) -> Result<Vec<ServiceRecord>, RegistryError> {
        let tx = self.conn.unchecked_transaction()?;
        let raws = tx
            .prepare_cached(&format!("{SELECT_SERVICE} ORDER BY name"))?
            .query_map([], RawService::from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        raws.into_iter().map(|raw| raw.assemble(&tx)).collect()
    }

    /// Sets the desired state of a service and all its components and appends an event named
    /// `action` (e.g. "stop", "start", "restart"), in one transaction. Stopped releases every
    /// host port of the service; `host_ports` (a start) records the ports given out.
    /// Errors with [`RegistryError::NotFound`] if the service is unknown.
    pub fn set_desired_state(
        &mut self,
        name: &str,
        desired: DesiredState,
        host_ports: Option<&HostPorts>,
        action: EventAction,
        actor: &str,
    ) -> Result<(), RegistryError> {
        let tx = self.conn.transaction().for_service(name)?;
        let changed = tx
            .execute(
                "UPDATE services SET desired_state = ?1, updated_at = ?2 WHERE name = ?3",
                params![desired, time::now(), name],
            )
            .for_service(name)?;
        if changed == 0 {
            return Err(RegistryError::NotFound {
                service: name.to_owned(),
            });
        }
        tx.execute(
            "UPDATE components SET desired_state = ?1 WHERE service = ?2",
            params![desired, name],
        )
        .for_service(name)?;
        if desired == DesiredState::Stopped {
            routes::release(&tx, name)?;
        }
        if let Some(ports) = host_ports {
            routes::assign(&tx, name, ports)?;
        }
        // An operator's stop/start/restart resets the back-off: it is a fresh intent.
        health::clear(&tx, name)?;
        events::insert(&tx, name, action, actor, None, None)?;
        tx.commit().for_service(name)
    }

    /// Deletes a service (its components cascade) and appends an "undeploy" event, in one
    /// transaction. Returns false, recording nothing, if the service did not exist.
    pub fn delete_service(&mut self, name: &str, actor: &str) -> Result<bool, RegistryError> {
        let tx = self.conn.transaction().for_service(name)?;
        let deleted = tx
            .execute("DELETE FROM services WHERE name = ?1", [name])
            .for_service(name)?;
        if deleted == 0 {
            return Ok(false);
        }
        events::insert(&tx, name, EventAction::Undeploy, actor, None, None)?;
        tx.commit().for_service(name)?;
        Ok(true)
    }
}

const SELECT_SERVICE: &str =
    "SELECT name, desired_state, spec_json, spec_hash, created_at, updated_at FROM services";

/// A service row before its spec is parsed and its components are loaded.
struct RawService {
    name: String,
    desired: DesiredState,
    spec_json: String,
    spec_hash: String,
    created_at: i64,
    updated_at: i64,
}

impl RawService {
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: row.get(0)?,
            desired: row.get(1)?,
            spec_json: row.get(2)?,
            spec_hash: row.get(3)?,
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
        })
    }

    fn assemble(self, conn: &Connection) -> Result<ServiceRecord, RegistryError> {
        let spec =
            serde_json::from_str(&self.spec_json).map_err(|source| RegistryError::CorruptSpec {
                service: self.name.clone(),
                source,
            })?;
        let components = conn
            .prepare_cached(
                "SELECT name, image, desired_state, spec_hash FROM components
                 WHERE service = ?1 ORDER BY position",
            )
            .and_then(|mut stmt| {
                stmt.query_map([&self.name], |row| {
                    Ok(ComponentRecord {
                        name: row.get(0)?,
                        image: row.get(1)?,
                        desired: row.get(2)?,
                        spec_hash: row.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            })
            .for_service(&self.name)?;
        let routes = routes::load(conn, &self.name)?;
        Ok(ServiceRecord {
            routes,
            spec,
            desired: self.desired,
            spec_hash: self.spec_hash,
            created_at: self.created_at,
            updated_at: self.updated_at,
            components,
        })
    }
}
