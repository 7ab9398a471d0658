//! The deploy history: appending events and reading them back.

use rusqlite::{Connection, params};

use crate::error::ServiceContext;
use crate::{EventRecord, Operation, Registry, RegistryError, time};

/// What a history event records. The history stores `as_str()`; every writer names one of
/// these, so the set of actions is listed here once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventAction {
    /// A spec was recorded (the event carries it).
    Deploy,
    /// A journaled operation failed and was undone or left as it was.
    Failed(Operation),
    Stop,
    Start,
    /// The operator's restart, or the monitor's restart of a crashed or unhealthy instance.
    Restart,
    Undeploy,
    /// An interrupted deploy was undone at start and the previous spec brought back.
    DeployRolledBack,
    /// Crash recovery finished or undid an operation.
    Recovered,
    Drift,
    DriftCleared,
    Healthy,
    Unhealthy,
    /// A spare instance (left by a side-by-side replace) was removed.
    RemovedSpare,
    Stray,
    SecretSet,
    SecretRemoved,
}

impl EventAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Failed(op) => match op {
                Operation::Deploy => "deploy-failed",
                Operation::Retire => "retire-failed",
                Operation::Stop => "stop-failed",
                Operation::Start => "start-failed",
                Operation::Restart => "restart-failed",
                Operation::Undeploy => "undeploy-failed",
            },
            Self::Stop => "stop",
            Self::Start => "start",
            Self::Restart => "restart",
            Self::Undeploy => "undeploy",
            Self::DeployRolledBack => "deploy-rolled-back",
            Self::Recovered => "recovered",
            Self::Drift => "drift",
            Self::DriftCleared => "drift-cleared",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
            Self::RemovedSpare => "removed-spare",
            Self::Stray => "stray",
            Self::SecretSet => "secret-set",
            Self::SecretRemoved => "secret-removed",
        }
    }
}

impl std::fmt::Display for EventAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Appends one event on `conn`, which may be a transaction so the event commits (or not) with
/// the state change it describes.
pub(crate) fn insert(
    conn: &Connection,
    service: &str,
    action: EventAction,
    actor: &str,
    spec_json: Option<&str>,
    detail: Option<&str>,
) -> Result<(), RegistryError> {
    conn.prepare_cached(
        "INSERT INTO deploy_events (service, action, actor, at, spec_json, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            service,
            action.as_str(),
            actor,
            time::now(),
            spec_json,
            detail
        ])
    })
    .for_service(service)?;
    Ok(())
}

impl Registry {
    /// Appends an event without changing any state, e.g. "deploy-failed" with a detail.
    pub fn record_event(
        &mut self,
        service: &str,
        action: EventAction,
        actor: &str,
        detail: Option<&str>,
    ) -> Result<(), RegistryError> {
        insert(&self.conn, service, action, actor, None, detail)
    }

    /// Every deploy of `service`, oldest first: its versions, numbered from 1 in this order.
    /// Kept across undeploys, like the rest of the history; a version whose spec was pruned
    /// (`prune_deploy_specs`) keeps its place, with `spec` `None`.
    pub fn deploys(&self, service: &str) -> Result<Vec<EventRecord>, RegistryError> {
        let mut all = self.events_where(Some(service), u32::MAX, true)?;
        all.reverse();
        Ok(all)
    }

    /// Keeps the specs of `service`'s newest `keep` deploys and drops the older ones' (the
    /// bulk of the history); their events stay, so versions keep their numbers. Returns how
    /// many specs were dropped.
    pub fn prune_deploy_specs(&mut self, service: &str, keep: u32) -> Result<usize, RegistryError> {
        let dropped = self
            .conn
            .execute(
                "UPDATE deploy_events SET spec_json = NULL
                 WHERE service = ?1 AND action = 'deploy' AND spec_json IS NOT NULL
                   AND id NOT IN (SELECT id FROM deploy_events
                                  WHERE service = ?1 AND action = 'deploy'
                                  ORDER BY id DESC LIMIT ?2)",
                params![service, keep],
            )
            .for_service(service)?;
        Ok(dropped)
    }

    /// Up to `limit` events, newest first, optionally only those of one service.
    pub fn events(
        &self,
        service: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EventRecord>, RegistryError> {
        self.events_where(service, limit, false)
    }

    fn events_where(
        &self,
        service: Option<&str>,
        limit: u32,
        deploys_only: bool,
    ) -> Result<Vec<EventRecord>, RegistryError> {
        // Ordered by id, not time: ids are monotonic even when the clock steps back.
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, service, action, actor, at, spec_json, detail FROM deploy_events
             WHERE (?1 IS NULL OR service = ?1)
               AND (?3 = 0 OR action = 'deploy')
             ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![service, limit, deploys_only], |row| {
                let record = EventRecord {
                    id: row.get(0)?,
                    service: row.get(1)?,
                    action: row.get(2)?,
                    actor: row.get(3)?,
                    at: row.get(4)?,
                    spec: None,
                    detail: row.get(6)?,
                };
                Ok((record, row.get::<_, Option<String>>(5)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        // The spec is parsed outside the row closure so a corrupt one can name its service.
        rows.into_iter()
            .map(|(mut record, spec_json)| {
                if let Some(json) = spec_json {
                    let spec = serde_json::from_str(&json).map_err(|source| {
                        RegistryError::CorruptSpec {
                            service: record.service.clone(),
                            source,
                        }
                    })?;
                    record.spec = Some(spec);
                }
                Ok(record)
            })
            .collect()
    }
}
