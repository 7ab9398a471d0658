//! One health check of an instance: a TCP connect, or an HTTP GET answered 2xx/3xx, on the
//! host port of one of its routes, within a deadline.

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use servicedef::Probe;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Ok when `addr` passes `probe` within `timeout`; otherwise why not, in a few words.
pub async fn check(probe: &Probe, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, attempt(probe, addr)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

async fn attempt(probe: &Probe, addr: SocketAddr) -> Result<(), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let Probe::Http(path) = probe else {
        return still_open(stream, addr).await;
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    // The connection task ends with the request (the probe asks to close it).
    let driver = tokio::spawn(connection);
    let request = http::Request::get(path.as_str())
        .header(http::header::HOST, addr.to_string())
        .header(http::header::CONNECTION, "close")
        .header(http::header::USER_AGENT, "mcp-agent health check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("GET {path}: {e}"))?;
    let response = sender.send_request(request).await;
    driver.abort();
    let status = response
        .map_err(|e| format!("GET {path} on {addr}: {e}"))?
        .status();
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("GET {path} on {addr} answered {status}"))
    }
}

/// How long a TCP check watches an accepted connection for being closed at once.
const SETTLE: Duration = Duration::from_millis(50);

/// A TCP check passes when the connection stays open a moment (or the server speaks first):
/// a port forwarder (rootless podman, QEMU's user-mode network) accepts for an instance that
/// does not listen yet and then closes the connection, which must not count as ready.
async fn still_open(stream: TcpStream, addr: SocketAddr) -> Result<(), String> {
    still_open_for(stream, addr, SETTLE).await
}

/// `still_open` watching for `window`.
async fn still_open_for(
    mut stream: TcpStream,
    addr: SocketAddr,
    window: Duration,
) -> Result<(), String> {
    let mut byte = [0u8; 1];
    match tokio::time::timeout(window, stream.read(&mut byte)).await {
        Err(_) | Ok(Ok(1..)) => Ok(()),
        Ok(Ok(0)) => Err(format!("{addr} accepted and closed the connection at once")),
        Ok(Err(e)) => Err(format!("{addr} reset the connection: {e}")),
    }
}

/// Whether something listens on `addr`: it accepts within `timeout` and keeps the connection
/// open for `window` (a forwarder in front of nothing closes it at once).
pub async fn listens(addr: SocketAddr, timeout: Duration, window: Duration) -> bool {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => still_open_for(stream, addr, window).await.is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server that answers every connection with `status`.
    async fn server(status: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn http_status_decides_and_tcp_only_connects() {
        let t = Duration::from_secs(2);
        let up = Probe::Http("/up".into());
        assert_eq!(check(&up, server("200 OK").await, t).await, Ok(()));
        assert_eq!(check(&up, server("302 Found").await, t).await, Ok(()));
        let err = check(&up, server("503 Service Unavailable").await, t)
            .await
            .unwrap_err();
        assert!(err.contains("503"), "{err}");
        assert_eq!(check(&Probe::Tcp, server("500 x").await, t).await, Ok(()));
        // A forwarder that accepts and hangs up at once is not a ready instance.
        let hangs_up = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let forwarder = hangs_up.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((conn, _)) = hangs_up.accept().await {
                drop(conn);
            }
        });
        let err = check(&Probe::Tcp, forwarder, t).await.unwrap_err();
        assert!(err.contains("closed the connection at once"), "{err}");
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(check(&Probe::Tcp, closed, t).await.is_err());
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let err = check(&Probe::Http("/".into()), addr, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(err.contains("no answer within 200 ms"), "{err}");
    }
}
