//! l4 forwarding: one backend connection per client connection, bytes copied both ways.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use crate::activity::InFlight;
use crate::listeners::Backend;

/// How long a backend may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Copy buffer per direction (HAProxy's default size). 32 KiB helped bulk transfers little
/// and cost ~15% of new connections per second: each connection allocates (and zeroes) two.
const BUFFER: usize = 16 * 1024;

/// Forwards a connection on a port with a single l4 route; `_in_flight` counts it on
/// `backend` until it ends.
pub(crate) async fn serve(mut client: TcpStream, backend: Backend, _in_flight: InFlight) {
    if let Some(mut upstream) = connect(&backend).await {
        splice(&mut client, &mut upstream, &backend).await;
    }
}

/// Connects to the backend with TCP_NODELAY; `None` (logged) when it cannot be reached, in
/// which case the caller drops, and so closes, the client connection.
pub(crate) async fn connect(backend: &Backend) -> Option<TcpStream> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(backend.addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Ok(Err(err)) => {
            warn!(backend = %backend.addr, error = %err, "backend unreachable; client connection closed");
            None
        }
        Err(_) => {
            warn!(backend = %backend.addr, "backend connect timed out; client connection closed");
            None
        }
    }
}

/// Copies both ways until both sides have finished.
pub(crate) async fn splice<A, B>(client: &mut A, upstream: &mut B, backend: &Backend)
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    if let Err(err) =
        tokio::io::copy_bidirectional_with_sizes(client, upstream, BUFFER, BUFFER).await
    {
        debug!(backend = %backend.addr, error = %err, "l4 connection ended with an error");
    }
}
