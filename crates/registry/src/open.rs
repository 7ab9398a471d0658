//! Creating the database file with safe permissions and configuring the connection.

use std::fs::{self, OpenOptions, Permissions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::RegistryError;

/// The registry holds deploy specs (env vars may carry secrets): owner-only.
const FILE_MODE: u32 = 0o600;

/// How long a writer waits for another connection's lock before failing with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Opens the on-disk database, creating the file (and its directory) with owner-only access.
pub(crate) fn open_file(path: &Path) -> Result<Connection, RegistryError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| io_err(parent, source))?;
    }
    secure_file(path)?;
    let conn = Connection::open(path).map_err(|source| open_err(path, source))?;
    configure(&conn).map_err(|source| open_err(path, source))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|source| open_err(path, source))?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Without WAL, the CLI's readers would block the agent's writers; refuse rather than
        // run degraded (e.g. on a filesystem without shared-memory support).
        return Err(RegistryError::JournalMode {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(conn)
}

/// Opens a private in-memory database with the same pragmas (WAL does not apply).
pub(crate) fn open_memory(path: &Path) -> Result<Connection, RegistryError> {
    let conn = Connection::open_in_memory().map_err(|source| open_err(path, source))?;
    configure(&conn).map_err(|source| open_err(path, source))?;
    Ok(conn)
}

/// Creates the file with mode 0600 before SQLite sees it, so it is never briefly readable by
/// others; tightens an existing file that is looser. SQLite gives the -wal and -shm files the
/// same mode as the database.
fn secure_file(path: &Path) -> Result<(), RegistryError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|source| io_err(path, source))?;
    let meta = file.metadata().map_err(|source| io_err(path, source))?;
    if meta.permissions().mode() & 0o777 & !FILE_MODE != 0 {
        file.set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(|source| io_err(path, source))?;
    }
    Ok(())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // Off by default in SQLite, per connection; the component cascade depends on it.
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // NORMAL is durable across application crashes in WAL mode; only power loss can drop the
    // last commits, which the agent re-derives from the operator's next deploy.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

fn io_err(path: &Path, source: std::io::Error) -> RegistryError {
    RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn open_err(path: &Path, source: rusqlite::Error) -> RegistryError {
    RegistryError::Open {
        path: path.to_path_buf(),
        source,
    }
}
