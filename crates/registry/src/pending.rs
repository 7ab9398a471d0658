//! Operations in flight: journaled before the runtime is touched, cleared when they end, so an
//! agent killed half-way knows on restart what to finish or undo.

use rusqlite::params;
use servicedef::Service;

use crate::error::ServiceContext;
use crate::{Registry, RegistryError, time};

/// The operations the journal knows; recovery handles each (the compiler checks it does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Deploy,
    /// Removing a recorded deploy's old instances.
    Retire,
    Stop,
    Start,
    Restart,
    Undeploy,
}

impl Operation {
    pub const ALL: [Self; 6] = [
        Self::Deploy,
        Self::Retire,
        Self::Stop,
        Self::Start,
        Self::Restart,
        Self::Undeploy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Retire => "retire",
            Self::Stop => "stop",
            Self::Start => "start",
            Self::Restart => "restart",
            Self::Undeploy => "undeploy",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.as_str() == text)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation that started and did not end.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingOperation {
    pub service: String,
    pub action: Operation,
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
        action: Operation,
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
                params![service, action.as_str(), actor, time::now(), spec_json],
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
                // An entry this agent cannot read (a newer agent's, after a downgrade) stops
                // the start: guessing how to recover from it could lose work.
                let action =
                    Operation::parse(&action).ok_or_else(|| RegistryError::UnknownOperation {
                        service: service.clone(),
                        action: action.clone(),
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
