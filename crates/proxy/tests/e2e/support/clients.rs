//! Test clients: TLS connections verifying the test CA, line conversations, hyper HTTP/1.1 and
//! HTTP/2 client connections.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf,
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub async fn tcp(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the proxy")
}

/// TLS to the proxy's `port` with SNI `name`, verified against the client config's roots.
pub async fn tls(
    port: u16,
    name: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let stream = tcp(port).await;
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    TlsConnector::from(config).connect(name, stream).await
}

/// A line-by-line conversation.
pub struct Lines<S> {
    reader: BufReader<ReadHalf<S>>,
    writer: WriteHalf<S>,
}

impl<S: AsyncRead + AsyncWrite> Lines<S> {
    pub fn new(stream: S) -> Self {
        let (read, writer) = tokio::io::split(stream);
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    /// Sends `line`, returns the answer line ("<eof>" when the connection closed instead).
    pub async fn ask(&mut self, line: &str) -> String {
        if self
            .writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .is_err()
        {
            return "<eof>".into();
        }
        let mut answer = String::new();
        match self.reader.read_line(&mut answer).await {
            Ok(0) | Err(_) => "<eof>".into(),
            Ok(_) => answer.trim_end().to_owned(),
        }
    }
}

pub async fn h1<S>(stream: S) -> http1::SendRequest<Empty<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn.with_upgrades());
    sender
}

pub async fn h2<S>(stream: S) -> http2::SendRequest<Empty<Bytes>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

pub fn get(uri: &str) -> http::request::Builder {
    Request::get(uri)
}

/// A response read to its end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("ascii header"))
            .unwrap_or("<missing>")
    }
}

pub async fn read(response: Response<Incoming>) -> Answer {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Answer {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).expect("utf-8 body"),
    }
}
