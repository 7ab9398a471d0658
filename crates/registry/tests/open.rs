//! Opening the database file: permissions, pragmas and migration bookkeeping.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use registry::HostPorts;
use registry::Registry;
use rusqlite::Connection;

#[test]
fn creates_parent_dir_and_file_with_mode_0600() {
    let (_dir, path, _reg) = common::temp_registry();
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // SQLite copies the database's mode onto its WAL file, which holds recent writes.
    let wal = path.with_extension("db-wal");
    let wal_mode = fs::metadata(&wal).unwrap().permissions().mode();
    assert_eq!(wal_mode & 0o777, 0o600);
}

#[test]
fn tightens_existing_loose_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.db");
    fs::write(&path, b"").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let _reg = Registry::open(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn wal_mode_and_foreign_keys_active() {
    let (_dir, path, mut reg) = common::temp_registry();
    // journal_mode=WAL is persistent in the file, so a second connection sees it.
    let other = Connection::open(&path).unwrap();
    let mode: String = other
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // foreign_keys is per connection: prove ours has it through the cascade.
    reg.record_deploy(&common::svc(), &HostPorts::new(), "test")
        .unwrap();
    reg.delete_service("svc", "test").unwrap();
    assert_eq!(common::count(&other, "components"), 0);
}

#[test]
fn migrations_run_once_and_reopen_is_a_no_op() {
    let (_dir, path, reg) = common::temp_registry();
    assert_eq!(reg.schema_version().unwrap(), 7);
    drop(reg);

    let conn = Connection::open(&path).unwrap();
    // Backdate the log so a re-run of a migration would be visible.
    conn.execute("UPDATE schema_migrations SET applied_at = 7", [])
        .unwrap();
    let reg = Registry::open(&path).unwrap();
    assert_eq!(reg.schema_version().unwrap(), 7);

    let rows: Vec<(i64, String, i64)> = conn
        .prepare("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (1, "services".into(), 7),
            (2, "deploy_events".into(), 7),
            (3, "component_routes".into(), 7),
            (4, "monitor".into(), 7),
            (5, "component_runtime".into(), 7),
            (6, "secrets".into(), 7),
            (7, "drop_component_sizing".into(), 7)
        ]
    );
}

#[test]
fn data_survives_reopen() {
    let (_dir, path, mut reg) = common::temp_registry();
    reg.record_deploy(&common::svc(), &HostPorts::new(), "test")
        .unwrap();
    drop(reg);
    let reg = Registry::open(&path).unwrap();
    assert_eq!(reg.service("svc").unwrap().unwrap().spec, common::svc());
}

#[test]
fn in_memory_is_migrated() {
    let reg = Registry::open_in_memory().unwrap();
    assert_eq!(reg.schema_version().unwrap(), 7);
    assert!(reg.services().unwrap().is_empty());
}

#[test]
fn backup_is_a_complete_owner_only_copy_and_never_overwrites() {
    let (dir, _path, mut reg) = common::temp_registry();
    let spec = servicedef::parse_str(
        "t.toml",
        "name = \"kept\"\nnode = \"n\"\n[[components]]\nname = \"web\"\nimage = \"i\"\n",
    )
    .unwrap();
    reg.record_deploy(&spec, &HostPorts::new(), "test").unwrap();
    let copy = dir.path().join("copy.db");
    reg.backup(&copy).unwrap();
    assert_eq!(
        fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // A plain reader of the copy sees the service, without the WAL of the original.
    let conn = Connection::open(&copy).unwrap();
    let name: String = conn
        .query_row("SELECT name FROM services", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "kept");
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    // An existing file is never overwritten.
    let err = reg.backup(&copy).unwrap_err().to_string();
    assert!(err.contains("copy.db"), "{err}");
    assert_eq!(Registry::open(&copy).unwrap().services().unwrap().len(), 1);
}
