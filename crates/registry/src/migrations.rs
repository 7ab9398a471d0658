//! Numbered schema migrations.
//!
//! Migrations are never edited once landed; later ones are appended.
//! `user_version` holds the applied version (rusqlite_migration's bookkeeping); each migration
//! also inserts its own row into `schema_migrations` so operators can see what ran and when.

use std::path::Path;

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

use crate::RegistryError;

const STEPS: &[M<'static>] = &[
    M::up(include_str!("../migrations/0001_services.sql")),
    M::up(include_str!("../migrations/0002_deploy_events.sql")),
    M::up(include_str!("../migrations/0003_component_routes.sql")),
    M::up(include_str!("../migrations/0004_monitor.sql")),
    M::up(include_str!("../migrations/0005_component_runtime.sql")),
];

const MIGRATIONS: Migrations<'static> = Migrations::from_slice(STEPS);

/// Applies every pending migration, each in its own transaction; a no-op when up to date.
pub(crate) fn apply(conn: &mut Connection, path: &Path) -> Result<(), RegistryError> {
    MIGRATIONS
        .to_latest(conn)
        .map_err(|source| RegistryError::Migration {
            path: path.to_path_buf(),
            source,
        })
}

/// The applied schema version.
pub(crate) fn version(conn: &Connection) -> Result<u32, RegistryError> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().unwrap();
    }

    #[test]
    fn each_migration_logs_its_own_number() {
        // A migration that forgets its schema_migrations row, or copies the wrong number,
        // would make the operator-visible log lie.
        let mut conn = Connection::open_in_memory().unwrap();
        for (i, _) in STEPS.iter().enumerate() {
            let target = i + 1;
            MIGRATIONS.to_version(&mut conn, target).unwrap();
            let max: i64 = conn
                .query_row("SELECT max(version) FROM schema_migrations", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(max, i64::try_from(target).unwrap());
        }
    }
}
