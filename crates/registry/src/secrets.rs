//! Secrets of services: names, versions and sealed values. The agent seals and opens values;
//! this store never sees one in clear, and no read returns a sealed value except
//! [`Registry::sealed_secret`], which only the agent's deploy path calls.

use rusqlite::{OptionalExtension, params};

use crate::error::ServiceContext;
use crate::{EventAction, Registry, RegistryError, events, time};

/// A secret as listed: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    pub service: String,
    pub name: String,
    /// Grows by one with every set; never reused for a name, even after a removal.
    pub version: u64,
    /// Unix seconds.
    pub set_at: i64,
}

/// A secret's current version and its sealed value.
pub struct SealedSecret {
    pub version: u64,
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SealedSecret(v{}, <{} bytes>)",
            self.version,
            self.sealed.len()
        )
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl Registry {
    /// Stores a new version of `service`'s secret `name` and records a "secret-set" event
    /// (its name and version only), in one transaction.
    pub fn set_secret(
        &mut self,
        service: &str,
        name: &str,
        sealed: &[u8],
        actor: &str,
    ) -> Result<SecretRecord, RegistryError> {
        let now = time::now();
        let tx = self.conn.transaction().for_service(service)?;
        let version: i64 = tx
            .query_row(
                "INSERT INTO secrets (service, name, version, sealed, set_at)
                 VALUES (?1, ?2, 1, ?3, ?4)
                 ON CONFLICT (service, name) DO UPDATE SET
                     version = version + 1, sealed = excluded.sealed, set_at = excluded.set_at
                 RETURNING version",
                params![service, name, sealed, now],
                |row| row.get(0),
            )
            .for_service(service)?;
        let detail = format!("secret {name} version {version}");
        events::insert(
            &tx,
            service,
            EventAction::SecretSet,
            actor,
            None,
            Some(&detail),
        )?;
        tx.commit().for_service(service)?;
        Ok(SecretRecord {
            service: service.to_string(),
            name: name.to_string(),
            version: to_u64(version),
            set_at: now,
        })
    }

    /// The service's secrets (removed ones left out), by name.
    pub fn secrets(&self, service: &str) -> Result<Vec<SecretRecord>, RegistryError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT name, version, set_at FROM secrets
                 WHERE service = ?1 AND sealed IS NOT NULL ORDER BY name",
            )
            .for_service(service)?;
        let rows = stmt
            .query_map([service], |row| {
                Ok(SecretRecord {
                    service: service.to_string(),
                    name: row.get(0)?,
                    version: to_u64(row.get(1)?),
                    set_at: row.get(2)?,
                })
            })
            .for_service(service)?;
        rows.collect::<Result<_, _>>().for_service(service)
    }

    /// The current version of a secret and its sealed value; `None` when it is not set.
    pub fn sealed_secret(
        &self,
        service: &str,
        name: &str,
    ) -> Result<Option<SealedSecret>, RegistryError> {
        self.conn
            .query_row(
                "SELECT version, sealed FROM secrets
                 WHERE service = ?1 AND name = ?2 AND sealed IS NOT NULL",
                params![service, name],
                |row| {
                    Ok(SealedSecret {
                        version: to_u64(row.get(0)?),
                        sealed: row.get(1)?,
                    })
                },
            )
            .optional()
            .for_service(service)
    }

    /// Removes a secret's value (its version counter stays); false when it was not set.
    pub fn remove_secret(
        &mut self,
        service: &str,
        name: &str,
        actor: &str,
    ) -> Result<bool, RegistryError> {
        let tx = self.conn.transaction().for_service(service)?;
        let removed = tx
            .execute(
                "UPDATE secrets SET sealed = NULL, set_at = ?3
                 WHERE service = ?1 AND name = ?2 AND sealed IS NOT NULL",
                params![service, name, time::now()],
            )
            .for_service(service)?;
        if removed > 0 {
            let detail = format!("secret {name}");
            events::insert(
                &tx,
                service,
                EventAction::SecretRemoved,
                actor,
                None,
                Some(&detail),
            )?;
        }
        tx.commit().for_service(service)?;
        Ok(removed > 0)
    }
}
