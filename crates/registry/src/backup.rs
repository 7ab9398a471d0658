//! Consistent copies of the registry: `VACUUM INTO` a new owner-only file, while the agent
//! keeps running (WAL readers do not block it), and automatically before a migration.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::{Registry, RegistryError};

/// Copies of the registry hold deploy specs (env vars may carry secrets): owner-only.
const BACKUP_MODE: u32 = 0o600;

impl Registry {
    /// Writes a consistent copy of the database to `dest`, a file that must not exist yet.
    /// The copy is a complete database (no WAL needed) with mode 0600.
    pub fn backup(&self, dest: &Path) -> Result<(), RegistryError> {
        write_copy(&self.conn, dest)
    }
}

/// `VACUUM INTO dest`; `dest` is created empty with mode 0600 first (SQLite accepts an
/// empty file and would otherwise create it with the umask's mode).
pub(crate) fn write_copy(conn: &Connection, dest: &Path) -> Result<(), RegistryError> {
    let io = |source| RegistryError::Io {
        path: dest.to_path_buf(),
        source,
    };
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(BACKUP_MODE)
        .open(dest)
        .map_err(io)?;
    let target = dest.to_str().ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the backup path is not valid UTF-8",
        ))
    })?;
    if let Err(source) = conn.execute("VACUUM INTO ?1", [target]) {
        let _ = std::fs::remove_file(dest);
        return Err(RegistryError::Backup {
            path: dest.to_path_buf(),
            source,
        });
    }
    Ok(())
}

/// Where the automatic copy taken before migrating `db` from version `from` goes:
/// `<db>.pre-v<from>-<unix seconds>.bak`, beside the database.
pub(crate) fn pre_migration_path(db: &Path, from: u32) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".pre-v{from}-{}.bak", crate::time::now()));
    db.with_file_name(name)
}
