//! Operations in flight: journaled before the runtime is touched, cleared when they end, so an
//! agent killed half-way knows on restart what to finish or undo.

use rusqlite::params;
use servicedef::Service;

use crate::error::ServiceContext;
use crate::{Registry, RegistryError, time};

/// An operation that started and did not end.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingOperation {
    pub service: String,
    /// "deploy", "stop", "start", "restart" or "undeploy".
    pub action: String,
    pub actor: String,
    pub started_at: i64,
    /// The spec being deployed, for "deploy".
    pub spec: Option<Service>,
}

impl Registry {
    /// Journals `action` on `service` (replacing any older entry for it).
    pub fn begin_operation(
        &mut self,
        service: &str,
        action: &str,
        actor: &str,
        spec: Option<&Service>,
    ) -> Result<(), RegistryError> {
        let spec_json = spec
            .map(serde_json::to_string)
            .transpose()
            .map_err(|source| RegistryError::EncodeSpec {
                service: service.to_owned(),
                source,
            })?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO pending_operations (service, action, actor, started_at, spec_json)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![service, action, actor, time::now(), spec_json],
            )
            .for_service(service)?;
        Ok(())
    }

    /// Clears the journal entry of `service`.
    pub fn end_operation(&mut self, service: &str) -> Result<(), RegistryError> {
        self.conn
            .execute(
                "DELETE FROM pending_operations WHERE service = ?1",
                [service],
            )
            .for_service(service)?;
        Ok(())
    }

    /// The journal entry of `service`, if any.
    pub fn pending_operation(
        &self,
        service: &str,
    ) -> Result<Option<PendingOperation>, RegistryError> {
        Ok(self
            .pending_operations()?
            .into_iter()
            .find(|op| op.service == service))
    }

    /// Every unfinished operation, oldest first.
    pub fn pending_operations(&self) -> Result<Vec<PendingOperation>, RegistryError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT service, action, actor, started_at, spec_json FROM pending_operations
             ORDER BY started_at, service",
        )?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(service, action, actor, started_at, spec_json)| {
                let spec = spec_json
                    .map(|json| serde_json::from_str(&json))
                    .transpose()
                    .map_err(|source| RegistryError::CorruptSpec {
                        service: service.clone(),
                        source,
                    })?;
                Ok(PendingOperation {
                    service,
                    action,
                    actor,
                    started_at,
                    spec,
                })
            })
            .collect()
    }
}
