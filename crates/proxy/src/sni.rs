//! l4 SNI passthrough: read the TLS ClientHello (without terminating TLS), pick the route by
//! its server name, then replay the bytes read to the backend and copy both ways.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::l4;
use crate::listeners::{Port, PortConfig};

/// The most bytes read while looking for a complete ClientHello.
const MAX_HELLO: usize = 16 * 1024;
/// Read size while looking for the ClientHello.
const CHUNK: usize = 4096;
/// How long a client may take to send its ClientHello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the start of a TLS stream said.
#[derive(Debug)]
pub(crate) struct Hello {
    /// Everything read from the client so far, to be replayed to the backend.
    pub(crate) bytes: Vec<u8>,
    /// The SNI, if the client sent one.
    pub(crate) server_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HelloError {
    #[error("connection closed before a complete ClientHello")]
    Eof,
    #[error("no complete ClientHello in the first {MAX_HELLO} bytes")]
    TooLong,
    #[error("not a TLS ClientHello: {0}")]
    NotTls(rustls::Error),
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    #[error("no ClientHello within {HELLO_TIMEOUT:?}")]
    Timeout,
}

/// Forwards a connection on an l4 port with hostnames.
/// Reads the ClientHello, then routes by its server name on the port's config *as it is
/// then* (a switch during the read must not send the connection to a drained backend).
pub(crate) async fn serve(mut client: TcpStream, port: Arc<Port>) {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, read_hello(&mut client)).await {
        Ok(Ok(hello)) => hello,
        Ok(Err(err)) => {
            debug!(error = %err, "SNI connection closed");
            return;
        }
        Err(_) => {
            debug!(error = %HelloError::Timeout, "SNI connection closed");
            return;
        }
    };
    let picked = port.start_on(|config| match config {
        PortConfig::L4(hosts) => hosts.lookup(hello.server_name.as_deref()),
        PortConfig::L7(_) => None,
    });
    let Some((backend, _in_flight)) = picked else {
        debug!(sni = ?hello.server_name, "no route for this server name; connection closed");
        return;
    };
    let backend = &backend;
    let Some(mut upstream) = l4::connect(backend).await else {
        return;
    };
    if let Err(err) = upstream.write_all(&hello.bytes).await {
        debug!(backend = %backend.addr, error = %err, "replaying the ClientHello failed");
        return;
    }
    drop(hello);
    l4::splice(&mut client, &mut upstream, backend).await;
}

/// Reads until rustls' `Acceptor` has a complete ClientHello, keeping every byte read.
pub(crate) async fn read_hello<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Hello, HelloError> {
    let mut acceptor = Acceptor::default();
    let mut bytes = Vec::with_capacity(2048);
    let mut chunk = [0u8; CHUNK];
    let mut fed = 0;
    loop {
        let room = MAX_HELLO - bytes.len();
        if room == 0 {
            return Err(HelloError::TooLong);
        }
        let read = stream.read(&mut chunk[..room.min(CHUNK)]).await?;
        if read == 0 {
            return Err(HelloError::Eof);
        }
        bytes.extend_from_slice(&chunk[..read]);
        // The acceptor reads from a copy; the bytes themselves stay for the backend.
        while fed < bytes.len() {
            let taken = acceptor.read_tls(&mut Cursor::new(&bytes[fed..]))?;
            if taken == 0 {
                break;
            }
            fed += taken;
        }
        match acceptor.accept() {
            Ok(None) => {}
            Ok(Some(accepted)) => {
                let server_name = accepted.client_hello().server_name().map(str::to_owned);
                return Ok(Hello { bytes, server_name });
            }
            Err((err, _alert)) => return Err(HelloError::NotTls(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use tokio::io::AsyncWriteExt;

    fn client_hello(name: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_owned()).expect("name");
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let mut out = Vec::new();
        conn.write_tls(&mut out).expect("write_tls");
        out
    }

    #[tokio::test]
    async fn server_name_is_read_from_a_hello_arriving_in_pieces() {
        let hello = client_hello("a.example");
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let sent = hello.clone();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(7) {
                tx.write_all(piece).await.expect("write");
            }
            tx.write_all(b"after").await.expect("write");
            tx
        });
        let got = read_hello(&mut rx).await.expect("hello");
        assert_eq!(got.server_name.as_deref(), Some("a.example"));
        assert!(got.bytes.starts_with(&hello), "all bytes kept for replay");
        drop(writer);
    }

    #[tokio::test]
    async fn ip_address_gives_no_server_name() {
        let hello = client_hello("127.0.0.1");
        let got = read_hello(&mut hello.as_slice()).await.expect("hello");
        assert_eq!(got.server_name, None);
    }

    #[tokio::test]
    async fn plain_http_is_not_a_hello() {
        let mut input: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(matches!(
            read_hello(&mut input).await,
            Err(HelloError::NotTls(_))
        ));
    }

    #[tokio::test]
    async fn truncated_hello_is_eof() {
        let hello = client_hello("a.example");
        let mut input = &hello[..hello.len() / 2];
        assert!(matches!(read_hello(&mut input).await, Err(HelloError::Eof)));
    }
}
