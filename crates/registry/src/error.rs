//! The registry's error type; variants carry the database path or service name they concern.

use std::path::PathBuf;

/// Anything that can go wrong opening or using the registry.
#[derive(thiserror::Error, Debug)]
pub enum RegistryError {
    /// SQLite could not open or configure the database file.
    #[error("cannot open registry database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// SQLite refused to switch the database to WAL journaling.
    #[error("registry database {path} stays in journal mode {mode:?}, WAL is required")]
    JournalMode { path: PathBuf, mode: String },
    /// A filesystem operation around the database file failed.
    #[error("registry file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bringing the schema up to date failed; the database is left at its previous version.
    #[error("cannot migrate registry database {path}")]
    Migration {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },
    /// Writing a copy of the database failed.
    #[error("cannot write a copy of the registry to {path}")]
    Backup {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A statement touching one service failed.
    #[error("registry operation on service {service:?} failed")]
    Service {
        service: String,
        #[source]
        source: rusqlite::Error,
    },
    /// A statement not tied to one service failed.
    #[error("registry query failed")]
    Sqlite(#[from] rusqlite::Error),
    /// The named service is not in the registry.
    #[error("service {service:?} is not deployed on this node")]
    NotFound { service: String },
    /// A stored spec no longer deserializes (e.g. written by an incompatible version).
    #[error("stored spec of service {service:?} is unreadable")]
    CorruptSpec {
        service: String,
        #[source]
        source: serde_json::Error,
    },
    /// A journal entry names an operation this version does not know.
    #[error("the journal holds an unknown operation {action:?} for service {service:?}")]
    UnknownOperation { service: String, action: String },
    /// The spec could not be serialized for storage.
    #[error("cannot serialize spec of service {service:?}")]
    EncodeSpec {
        service: String,
        #[source]
        source: serde_json::Error,
    },
}

/// What an operator can act on, told without the registry's internals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Another process holds a lock on the database file (past the busy timeout).
    Locked,
    /// The filesystem holding the database is full.
    DiskFull,
    /// The file is not a database, or damaged.
    Corrupt,
    /// Anything else.
    Other,
}

impl RegistryError {
    /// The condition behind this error, for messages that must not leak internals.
    pub fn condition(&self) -> Condition {
        use rusqlite::ErrorCode;
        let sqlite = match self {
            Self::Open { source, .. }
            | Self::Service { source, .. }
            | Self::Backup { source, .. }
            | Self::Sqlite(source) => source.sqlite_error_code(),
            Self::Migration {
                source: rusqlite_migration::Error::RusqliteError { err, .. },
                ..
            } => err.sqlite_error_code(),
            Self::CorruptSpec { .. } | Self::UnknownOperation { .. } => return Condition::Corrupt,
            _ => None,
        };
        match sqlite {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Condition::Locked,
            Some(ErrorCode::DiskFull) => Condition::DiskFull,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Condition::Corrupt,
            _ => Condition::Other,
        }
    }
}

/// Attaches a service name to a SQLite error.
pub(crate) trait ServiceContext<T> {
    fn for_service(self, service: &str) -> Result<T, RegistryError>;
}

impl<T> ServiceContext<T> for Result<T, rusqlite::Error> {
    fn for_service(self, service: &str) -> Result<T, RegistryError> {
        self.map_err(|source| RegistryError::Service {
            service: service.to_owned(),
            source,
        })
    }
}
