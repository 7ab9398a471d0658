//! l7 forwarding: HTTP/1.1 and HTTP/2 (optionally over TLS) served with hyper, each request
//! routed by its host and forwarded over pooled HTTP/1.1 connections to the backend.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::uri::{self, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::activity::InFlight;
use crate::error_chain;
use crate::hosts::HostMap;
use crate::listeners::{Backend, Port, PortConfig};

const BACKEND_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new connection may take to complete its first request's head. hyper's header
/// timeout only starts once it knows the HTTP version, which it reads without a deadline.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/2 pings an idle client this often, and closes the connection when a ping goes
/// unanswered this long: dead peers do not hold connections forever.
const H2_KEEP_ALIVE: Duration = Duration::from_secs(20);
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The HTTP server and the pooled backend client, shared by every l7 port.
pub(crate) struct Http {
    client: Client<HttpConnector, Incoming>,
    server: auto::Builder<TokioExecutor>,
}

impl Http {
    pub(crate) fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(BACKEND_CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        let mut server = auto::Builder::new(TokioExecutor::new());
        server
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true);
        server
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(H2_KEEP_ALIVE))
            .keep_alive_timeout(H2_KEEP_ALIVE);
        Self { client, server }
    }
}

/// An l7 port's routes by host, and its TLS acceptor when it terminates TLS.
pub(crate) struct Site {
    pub(crate) hosts: HostMap<Backend>,
    pub(crate) tls: Option<TlsAcceptor>,
}

/// What every request of one client connection shares.
struct Conn {
    port: Arc<Port>,
    http: Arc<Http>,
    client_ip: Option<HeaderValue>,
    proto: HeaderValue,
}

/// Serves one accepted connection of an l7 port until it closes.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    port: Arc<Port>,
    http: Arc<Http>,
) {
    let conn = Arc::new(Conn {
        port,
        http,
        client_ip: ip_header(peer.ip()),
        proto: HeaderValue::from_static(if tls.is_some() { "https" } else { "http" }),
    });
    let Some(acceptor) = tls else {
        return serve_http(TokioIo::new(stream), conn).await;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => serve_http(TokioIo::new(stream), conn).await,
        Ok(Err(err)) => {
            debug!(port = conn.port.number(), %peer, error = %err, "TLS handshake failed")
        }
        Err(_) => debug!(port = conn.port.number(), %peer, "TLS handshake timed out"),
    }
}

async fn serve_http<I>(io: I, conn: Arc<Conn>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = Arc::clone(&conn.http);
    let port = conn.port.number();
    let first_request = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::clone(&first_request);
    let service = service_fn(move |request| {
        seen.store(true, std::sync::atomic::Ordering::Relaxed);
        let conn = Arc::clone(&conn);
        async move { Ok::<_, Infallible>(forward(request, &conn).await) }
    });
    let serving = http.server.serve_connection_with_upgrades(io, service);
    // A client that never completes a first request is dropped (closing the connection);
    // after that, hyper's per-request header timeout and HTTP/2 pings take over.
    let idle = async {
        tokio::time::sleep(FIRST_REQUEST_TIMEOUT).await;
        if first_request.load(std::sync::atomic::Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = serving => {
            if let Err(err) = served {
                debug!(port, error = %error_chain(&*err), "HTTP connection ended with an error");
            }
        }
        () = idle => debug!(port, "no request within {FIRST_REQUEST_TIMEOUT:?}; connection closed"),
    }
}

/// Routes and forwards one request; every failure becomes a response.
async fn forward(request: Request<Incoming>, conn: &Conn) -> Response<Body> {
    if request.method() == Method::CONNECT {
        return text(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported\n");
    }
    let (mut parts, body) = request.into_parts();
    let picked = conn.port.start_on(|config| match config {
        PortConfig::L7(site) => site.hosts.lookup(request_host(&parts)),
        PortConfig::L4(_) => None,
    });
    let Some((backend, in_flight)) = picked else {
        return text(StatusCode::NOT_FOUND, "no route for this host\n");
    };
    let backend = &backend;

    let upgrade = upgrade_protocol(&parts);
    let client_upgrade = match upgrade {
        Some(_) => parts.extensions.remove::<OnUpgrade>(),
        None => None,
    };
    parts.extensions = http::Extensions::new();
    // The request was routed by the URI's authority when it has one (HTTP/2 :authority, an
    // absolute-form target), which then wins over a Host header (RFC 9112 3.2.2, RFC 9113
    // 8.3.1): the backend must see the host the proxy routed by.
    let host = match parts
        .uri
        .authority()
        .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
    {
        Some(authority) => Some(authority),
        None => parts.headers.get(header::HOST).cloned(),
    };
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::EXPECT); // hyper answers 100-continue itself
    if let Some(protocol) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol.clone());
    }
    if let Some(host) = host {
        parts.headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        parts.headers.insert(header::HOST, host);
    }
    if let Some(ip) = &conn.client_ip {
        append_forwarded_for(&mut parts.headers, ip);
    }
    parts
        .headers
        .insert(X_FORWARDED_PROTO.clone(), conn.proto.clone());
    let Some(uri) = backend_uri(&parts.uri, backend) else {
        return text(StatusCode::BAD_REQUEST, "bad request target\n");
    };
    parts.uri = uri;
    parts.version = Version::HTTP_11;

    let response = match conn
        .http
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => response,
        Err(err) => {
            warn!(port = conn.port.number(), backend = %backend.addr, error = %error_chain(&err), "backend request failed");
            return text(StatusCode::BAD_GATEWAY, "bad gateway\n");
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return match client_upgrade {
            Some(client_side) => tunnel(response, client_side, in_flight, backend.addr),
            None => text(StatusCode::BAD_GATEWAY, "unexpected 101 from backend\n"),
        };
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(
        parts,
        Body::Backend {
            inner: body,
            in_flight: Some(in_flight),
        },
    )
}

/// After a 101: hands both upgraded connections to a task that copies between them.
fn tunnel(
    response: Response<Incoming>,
    client_side: OnUpgrade,
    in_flight: InFlight,
    backend: SocketAddr,
) -> Response<Body> {
    let (mut parts, _empty) = response.into_parts();
    let Some(backend_side) = parts.extensions.remove::<OnUpgrade>() else {
        return text(
            StatusCode::BAD_GATEWAY,
            "backend connection cannot upgrade\n",
        );
    };
    let protocol = parts.headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Some(protocol) = protocol {
        parts.headers.insert(header::UPGRADE, protocol);
    }
    tokio::spawn(async move {
        let _in_flight = in_flight;
        match tokio::try_join!(client_side, backend_side) {
            Ok((client, upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                if let Err(err) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    debug!(%backend, error = %err, "upgraded connection ended with an error");
                }
            }
            Err(err) => debug!(%backend, error = %err, "upgrade failed"),
        }
    });
    Response::from_parts(parts, Body::Full(None))
}

/// The host a request is for: the URI's authority (HTTP/2 `:authority`, absolute-form), else
/// the Host header; without port.
fn request_host(parts: &Parts) -> Option<&str> {
    if let Some(authority) = parts.uri.authority() {
        return Some(authority.host());
    }
    let host = parts.headers.get(header::HOST)?.to_str().ok()?;
    Some(strip_port(host))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The protocol of an HTTP/1.1 `Connection: upgrade` request.
fn upgrade_protocol(parts: &Parts) -> Option<HeaderValue> {
    if parts.version != Version::HTTP_11 {
        return None;
    }
    let wants = parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|value| has_token(value, "upgrade"));
    if wants {
        parts.headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value.to_str().is_ok_and(|value| {
        value
            .split(',')
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    })
}

/// Removes the headers that only concern one connection (RFC 9110 7.6.1): the fixed list and
/// the ones the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    for name in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// Appends the client's address to X-Forwarded-For (all existing values kept, in order).
fn append_forwarded_for(headers: &mut HeaderMap, ip: &HeaderValue) {
    let value = if headers.contains_key(&X_FORWARDED_FOR) {
        let mut joined = Vec::with_capacity(64);
        for existing in headers.get_all(&X_FORWARDED_FOR) {
            joined.extend_from_slice(existing.as_bytes());
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(ip.as_bytes());
        HeaderValue::from_maybe_shared(Bytes::from(joined)).unwrap_or_else(|_| ip.clone())
    } else {
        ip.clone()
    };
    headers.insert(X_FORWARDED_FOR.clone(), value);
}

fn ip_header(ip: IpAddr) -> Option<HeaderValue> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    HeaderValue::from_maybe_shared(Bytes::from(ip.to_string())).ok()
}

/// `http://<backend><path and query>`.
fn backend_uri(original: &Uri, backend: &Backend) -> Option<Uri> {
    let mut parts = uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(backend.authority.clone());
    parts.path_and_query = Some(
        original
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).ok()
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::Full(Some(Bytes::from_static(body.as_bytes()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A response body: the backend's, counted as in flight until finished or dropped, or a
/// short one of the proxy's own.
pub(crate) enum Body {
    Backend {
        inner: Incoming,
        in_flight: Option<InFlight>,
    },
    Full(Option<Bytes>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Backend { inner, in_flight } => {
                let polled = Pin::new(&mut *inner).poll_frame(cx);
                let finished = match &polled {
                    Poll::Ready(None | Some(Err(_))) => true,
                    Poll::Ready(Some(Ok(_))) => http_body::Body::is_end_stream(inner),
                    Poll::Pending => false,
                };
                if finished {
                    in_flight.take();
                }
                polled
            }
            Body::Full(data) => Poll::Ready(data.take().map(|data| Ok(Frame::data(data)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Backend { inner, .. } => http_body::Body::is_end_stream(inner),
            Body::Full(data) => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Backend { inner, .. } => http_body::Body::size_hint(inner),
            Body::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("a.example:8443"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-private"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key(header::CONTENT_TYPE));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let ip = HeaderValue::from_static("127.0.0.1");
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, &ip);
        assert_eq!(headers[&X_FORWARDED_FOR], "127.0.0.1");
        let mut headers = HeaderMap::new();
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.2"));
        append_forwarded_for(&mut headers, &ip);
        assert_eq!(headers[&X_FORWARDED_FOR], "10.0.0.1, 10.0.0.2, 127.0.0.1");
    }

    #[test]
    fn mapped_ipv4_is_written_as_ipv4() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().expect("ip");
        assert_eq!(ip_header(mapped).expect("header"), "10.1.2.3");
    }
}
