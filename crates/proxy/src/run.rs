//! Starting and stopping the proxy: the state dir, restoring the saved table, the control
//! socket, and the termination signals.

use std::future::Future;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::{UnixListener, UnixStream};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::control::server;
use crate::state::State;
use crate::store::{Store, StoreError};
use crate::table::TableError;
use crate::workers::Workers;

/// The file name of the control socket inside the state dir.
pub const SOCKET_FILE: &str = "control.sock";

/// The control socket of the proxy whose state dir is `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_FILE)
}

/// What the proxy is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Holds `routes.json` and `control.sock`; created with mode 0700 when missing.
    pub state_dir: PathBuf,
    /// The address public ports are bound on.
    pub bind: IpAddr,
    /// Forwarding threads; 0: one per CPU.
    pub workers: usize,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the state dir {path:?}: {source}")]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another proxy already serves {0:?}")]
    AlreadyRunning(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the saved table {path:?} is inconsistent: {source}")]
    SavedTable { path: PathBuf, source: TableError },
    #[error("cannot serve the control socket {path:?}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot watch termination signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the forwarding threads: {0}")]
    Workers(#[source] std::io::Error),
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(options: Options) -> Result<(), Error> {
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: stopping"),
            _ = int.recv() => info!("SIGINT: stopping"),
        }
    };
    serve(options, shutdown).await
}

/// Runs until `shutdown` resolves: prepares the state dir, serves the saved table, then the
/// control socket; at the end removes the socket.
pub async fn serve(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let dir = &options.state_dir;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::StateDir {
            path: dir.clone(),
            source,
        })?;
    let socket = socket_path(dir);
    if UnixStream::connect(&socket).await.is_ok() {
        return Err(Error::AlreadyRunning(socket));
    }

    let store = Store::new(dir);
    let count = match options.workers {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let workers = Workers::start(count).map_err(Error::Workers)?;
    let state = Arc::new(State::new(options.bind, store.clone(), Arc::new(workers)));
    if let Some(saved) = store.load()? {
        saved.validate().map_err(|source| Error::SavedTable {
            path: store.path(),
            source,
        })?;
        let served = state.restore(&saved).await;
        info!(
            routes = served.routes.len(),
            saved = saved.routes.len(),
            "saved routing table restored"
        );
    }

    let listener = bind_socket(&socket)?;
    info!(socket = %socket.display(), bind = %options.bind, pid = std::process::id(), "mcp-proxy ready");
    server::serve(listener, state, shutdown).await;
    if let Err(err) = std::fs::remove_file(&socket) {
        warn!(socket = %socket.display(), error = %err, "cannot remove the control socket");
    }
    Ok(())
}

/// Binds the control socket, replacing a stale socket file, with mode 0600.
fn bind_socket(path: &Path) -> Result<UnixListener, Error> {
    let socket_err = |source| Error::Socket {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(socket_err(err)),
    }
    let listener = UnixListener::bind(path).map_err(socket_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(socket_err)?;
    Ok(listener)
}
