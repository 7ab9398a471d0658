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
    M::up(include_str!("../migrations/0006_secrets.sql")),
    M::up(include_str!("../migrations/0007_drop_component_sizing.sql")),
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

/// Whether migrations are waiting to be applied.
pub(crate) fn pending(conn: &Connection) -> Result<bool, RegistryError> {
    Ok(usize::try_from(version(conn)?).unwrap_or(usize::MAX) < STEPS.len())
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
    fn an_older_database_is_copied_before_it_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("registry.db");
        {
            let mut conn = Connection::open(&db).unwrap();
            MIGRATIONS.to_version(&mut conn, 4).unwrap();
            conn.execute(
                "INSERT INTO deploy_events (service, action, actor, at) VALUES ('old', 'deploy', 'me', 1)",
                [],
            )
            .unwrap();
        }
        let registry = crate::Registry::open(&db).unwrap();
        assert_eq!(registry.schema_version().unwrap(), 7);
        let copies: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("registry.db.pre-v4-") && n.ends_with(".bak"))
            .collect();
        assert_eq!(copies.len(), 1, "{copies:?}");
        let copy = Connection::open(dir.path().join(&copies[0])).unwrap();
        assert_eq!(
            version(&copy).unwrap(),
            4,
            "the copy is the database as it was"
        );
        let kept: i64 = copy
            .query_row("SELECT count(*) FROM deploy_events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, 1);
        // Up to date: no further copy.
        drop(registry);
        crate::Registry::open(&db).unwrap();
        let count = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".bak")
            })
            .count();
        assert_eq!(count, 1);
    }

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
