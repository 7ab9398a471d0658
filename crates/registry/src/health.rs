//! The monitor's per-component bookkeeping: restarts, back-off and current drift.

use rusqlite::{OptionalExtension, params};

use crate::error::ServiceContext;
use crate::{Registry, RegistryError};

/// What the monitor remembers about one component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    pub restart_count: u32,
    pub last_exit_code: Option<i32>,
    /// Unix seconds.
    pub last_exit_at: Option<i64>,
    /// Unix seconds.
    pub last_restart_at: Option<i64>,
    /// The delay that was applied before the latest restart.
    pub backoff_ms: i64,
    /// Unix milliseconds before which the monitor does not restart the component.
    pub backoff_until: Option<i64>,
    /// Kind of drift observed now ("missing", "exited", ...); None when in line.
    pub drift: Option<String>,
    pub drift_detail: Option<String>,
    /// Unix seconds since this drift was first seen.
    pub drift_since: Option<i64>,
}

impl Registry {
    /// The component's bookkeeping; default (all clear) when none was written.
    pub fn health(&self, service: &str, component: &str) -> Result<Health, RegistryError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT restart_count, last_exit_code, last_exit_at, last_restart_at,
                        backoff_ms, backoff_until, drift, drift_detail, drift_since
                 FROM component_health WHERE service = ?1 AND component = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row([service, component], |row| {
                    Ok(Health {
                        restart_count: row.get(0)?,
                        last_exit_code: row.get(1)?,
                        last_exit_at: row.get(2)?,
                        last_restart_at: row.get(3)?,
                        backoff_ms: row.get(4)?,
                        backoff_until: row.get(5)?,
                        drift: row.get(6)?,
                        drift_detail: row.get(7)?,
                        drift_since: row.get(8)?,
                    })
                })
                .optional()
            })
            .for_service(service)?;
        Ok(row.unwrap_or_default())
    }

    /// Every component's bookkeeping that differs from the default, as (service, component).
    pub fn all_health(&self) -> Result<Vec<(String, String, Health)>, RegistryError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT service, component, restart_count, last_exit_code, last_exit_at,
                    last_restart_at, backoff_ms, backoff_until, drift, drift_detail, drift_since
             FROM component_health ORDER BY service, component",
        )?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    Health {
                        restart_count: row.get(2)?,
                        last_exit_code: row.get(3)?,
                        last_exit_at: row.get(4)?,
                        last_restart_at: row.get(5)?,
                        backoff_ms: row.get(6)?,
                        backoff_until: row.get(7)?,
                        drift: row.get(8)?,
                        drift_detail: row.get(9)?,
                        drift_since: row.get(10)?,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Stores the component's bookkeeping, and appends `events` (action, detail) to the
    /// history in the same transaction. A service that is gone is not an error:
    /// the monitor may race an undeploy, and then there is nothing left to track.
    pub fn set_health(
        &mut self,
        service: &str,
        component: &str,
        health: &Health,
        events: &[(crate::EventAction, &str)],
    ) -> Result<(), RegistryError> {
        let tx = self.conn.transaction().for_service(service)?;
        let known: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM services WHERE name = ?1)",
                [service],
                |row| row.get(0),
            )
            .for_service(service)?;
        if !known {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO component_health
                 (service, component, restart_count, last_exit_code, last_exit_at,
                  last_restart_at, backoff_ms, backoff_until, drift, drift_detail, drift_since)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (service, component) DO UPDATE SET
                 restart_count = excluded.restart_count, last_exit_code = excluded.last_exit_code,
                 last_exit_at = excluded.last_exit_at, last_restart_at = excluded.last_restart_at,
                 backoff_ms = excluded.backoff_ms, backoff_until = excluded.backoff_until,
                 drift = excluded.drift, drift_detail = excluded.drift_detail,
                 drift_since = excluded.drift_since",
            params![
                service,
                component,
                health.restart_count,
                health.last_exit_code,
                health.last_exit_at,
                health.last_restart_at,
                health.backoff_ms,
                health.backoff_until,
                health.drift,
                health.drift_detail,
                health.drift_since,
            ],
        )
        .for_service(service)?;
        for (action, detail) in events {
            crate::events::insert(&tx, service, *action, "monitor", None, Some(detail))?;
        }
        tx.commit().for_service(service)
    }
}

/// Forgets the service's bookkeeping (a new deploy or an explicit start starts afresh).
pub(crate) fn clear(tx: &rusqlite::Transaction<'_>, service: &str) -> Result<(), RegistryError> {
    tx.execute("DELETE FROM component_health WHERE service = ?1", [service])
        .for_service(service)?;
    Ok(())
}
