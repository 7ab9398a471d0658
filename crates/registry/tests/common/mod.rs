//! Shared helpers for the registry integration tests: temp databases and service specs.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;

use registry::Registry;
use servicedef::Service;
use tempfile::TempDir;

/// A registry in a fresh temp dir; keep the TempDir alive for the test's duration.
pub fn temp_registry() -> (TempDir, PathBuf, Registry) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("registry.db");
    let reg = Registry::open(&path).unwrap();
    (dir, path, reg)
}

/// A service named `name` with the given (component, image) pairs.
pub fn service(name: &str, active: bool, components: &[(&str, &str)]) -> Service {
    let mut toml = format!("name = \"{name}\"\nnode = \"local\"\nactive = {active}\n");
    for (component, image) in components {
        toml.push_str(&format!(
            "[[components]]\nname = \"{component}\"\nimage = \"{image}\"\n"
        ));
    }
    servicedef::parse_str("t.toml", &toml).unwrap()
}

/// The brief's minimal one-component service.
pub fn svc() -> Service {
    servicedef::parse_str(
        "t.toml",
        "name = \"svc\"\nnode = \"local\"\n[[components]]\nname = \"web\"\nimage = \"img:1\"\n",
    )
    .unwrap()
}

/// Number of rows in `table` (a fixed name from the test, never input).
pub fn count(conn: &rusqlite::Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}
