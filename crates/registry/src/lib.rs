//! SQLite registry of each node's desired state: services, components and the deploy history.
//!
//! One [`Registry`] owns one connection. Every mutating call is a single transaction, so a
//! failure never leaves a half-applied deploy behind. The agent keeps the registry in a
//! `std::sync::Mutex`; it is `Send` but not `Sync`, like the connection it wraps.

mod backup;
mod error;
mod events;
mod health;
mod migrations;
mod open;
mod pending;
mod records;
mod routes;
mod secrets;
mod services;
mod state;
mod time;

pub use error::{Condition, RegistryError};
pub use events::EventAction;
pub use health::Health;
pub use pending::{Operation, PendingOperation};
pub use records::{ComponentRecord, EventRecord, ServiceRecord};
pub use routes::{HostPorts, RouteKey, RouteRecord};
pub use secrets::{SealedSecret, SecretRecord};
pub use state::{DesiredState, ParseDesiredStateError};

use std::path::{Path, PathBuf};

use rusqlite::Connection;

/// The node's store of desired state and deploy history.
#[derive(Debug)]
pub struct Registry {
    conn: Connection,
}

impl Registry {
    /// Opens (creating if needed) the database at `path` with owner-only permissions, WAL
    /// journaling and foreign keys on, then applies any pending migrations.
    /// A database with data at an older schema version is first copied to
    /// `<file>.pre-v<N>-<time>.bak` (0600), so an upgrade can always be undone.
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        let mut conn = open::open_file(path)?;
        let from = migrations::version(&conn)?;
        if from > 0 && migrations::pending(&conn)? {
            backup::write_copy(&conn, &backup::pre_migration_path(path, from))?;
        }
        migrations::apply(&mut conn, path)?;
        Ok(Self { conn })
    }

    /// A second connection to a database another `Registry` opened (and migrated), for reads
    /// only (`query_only`): in WAL mode its reads never wait for a writer, so status and
    /// history answer while a deploy's write waits on a lock.
    pub fn open_reader(path: &Path) -> Result<Self, RegistryError> {
        let conn = open::open_file(path)?;
        conn.pragma_update(None, "query_only", true)
            .map_err(|source| RegistryError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self { conn })
    }

    /// A private in-memory database, fully migrated; for tests.
    pub fn open_in_memory() -> Result<Self, RegistryError> {
        let path = PathBuf::from(":memory:");
        let mut conn = open::open_memory(&path)?;
        migrations::apply(&mut conn, &path)?;
        Ok(Self { conn })
    }

    /// The number of the last applied migration (SQLite's `user_version`).
    pub fn schema_version(&self) -> Result<u32, RegistryError> {
        migrations::version(&self.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_send() {
        // The agent shares it across tasks behind a Mutex, which needs Send.
        fn assert_send<T: Send>() {}
        assert_send::<Registry>();
    }
}
