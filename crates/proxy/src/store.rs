//! The persisted routing table, `<state dir>/routes.json`: loaded at start, replaced atomically.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::table::Table;

/// The file name of the persisted table inside the state dir.
pub const ROUTES_FILE: &str = "routes.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path:?}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path:?} is not a routing table: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path:?}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the routing table: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Where the table lives.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(ROUTES_FILE)
    }

    /// The persisted table, `None` when there is none yet.
    pub fn load(&self) -> Result<Option<Table>, StoreError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StoreError::Parse { path, source })
    }

    /// Replaces the file: a temp file in the dir (mode 0600), fsync, rename, fsync of the dir.
    /// Either the old or the new table is on disk at any moment.
    pub fn save(&self, table: &Table) -> Result<(), StoreError> {
        let mut json = serde_json::to_vec_pretty(table).map_err(StoreError::Encode)?;
        json.push(b'\n');
        let path = self.path();
        let write_err = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        // tempfile creates the file with mode 0600.
        let mut temp = tempfile::Builder::new()
            .prefix(".routes.")
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(write_err)?;
        temp.write_all(&json).map_err(write_err)?;
        temp.as_file().sync_all().map_err(write_err)?;
        temp.persist(&path).map_err(|err| write_err(err.error))?;
        sync_dir(&self.dir).map_err(write_err)
    }

    /// `save` on a blocking thread.
    pub async fn save_async(&self, table: &Table) -> Result<(), StoreError> {
        let store = self.clone();
        let table = table.clone();
        tokio::task::spawn_blocking(move || store.save(&table))
            .await
            .map_err(|join| StoreError::Write {
                path: self.path(),
                source: std::io::Error::other(join.to_string()),
            })?
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Mode, Route};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn save_then_load_round_trips_with_mode_0600_and_no_leftovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path());
        assert!(store.load().expect("load").is_none());
        let table = Table {
            routes: vec![Route {
                service: "s".into(),
                component: "c".into(),
                route: "r".into(),
                port: 8080,
                mode: Mode::L7,
                hostname: Some("a.example".into()),
                backend: "127.0.0.1:9000".parse().expect("addr"),
                tls: None,
            }],
        };
        store.save(&Table::default()).expect("save empty");
        store.save(&table).expect("save");
        assert_eq!(store.load().expect("load"), Some(table));
        let mode = std::fs::metadata(store.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![ROUTES_FILE]);
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(ROUTES_FILE), "{").expect("write");
        assert!(matches!(
            Store::new(dir.path()).load(),
            Err(StoreError::Parse { .. })
        ));
    }
}
