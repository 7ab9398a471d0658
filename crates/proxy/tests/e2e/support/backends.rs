//! In-test backends that say who they are: a TCP line echo, the same over TLS, and an HTTP/1.1
//! server echoing the forwarding headers (with upgrades, and a request held until released).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::{CONNECTION, HOST, UPGRADE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// A listening backend; it stops accepting when dropped (open connections carry on).
pub struct Backend {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn listen() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// Answers each line `x` with `<tag>:x`; closes when the client has finished.
pub async fn tcp_echo(tag: &'static str) -> Backend {
    let (listener, addr) = listen().await;
    let accept = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(echo_lines(stream, tag));
        }
    });
    Backend { addr, accept }
}

/// `tcp_echo` behind TLS with the given server config.
pub async fn tls_echo(tag: &'static str, config: Arc<rustls::ServerConfig>) -> Backend {
    let (listener, addr) = listen().await;
    let acceptor = TlsAcceptor::from(config);
    let accept = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(stream).await {
                    echo_lines(stream, tag).await;
                }
            });
        }
    });
    Backend { addr, accept }
}

async fn echo_lines<S: AsyncRead + AsyncWrite + Unpin>(stream: S, tag: &'static str) {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if write
            .write_all(format!("{tag}:{line}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
    let _ = write.shutdown().await;
}

/// An HTTP/1.1 backend. Its body is its tag; `x-seen-*` response headers report the request's
/// forwarding headers; `/hold` sends its headers and the tag, then waits for `release` before
/// ending its body with `!`; an `Upgrade` request gets a 101 and then
/// every byte echoed.
pub struct HttpBackend {
    pub backend: Backend,
    hold: Arc<Semaphore>,
}

impl HttpBackend {
    pub fn addr(&self) -> SocketAddr {
        self.backend.addr
    }

    /// Lets one held `/hold` request answer.
    pub fn release(&self) {
        self.hold.add_permits(1);
    }
}

pub async fn http(tag: &'static str) -> HttpBackend {
    let (listener, addr) = listen().await;
    let hold = Arc::new(Semaphore::new(0));
    let held = Arc::clone(&hold);
    let accept = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let hold = Arc::clone(&held);
            tokio::spawn(async move {
                let service = service_fn(move |request| answer(request, tag, Arc::clone(&hold)));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    HttpBackend {
        backend: Backend { addr, accept },
        hold,
    }
}

async fn answer(
    request: Request<Incoming>,
    tag: &'static str,
    hold: Arc<Semaphore>,
) -> Result<Response<Either<Full<Bytes>, HeldBody>>, Infallible> {
    if let Some(protocol) = request.headers().get(UPGRADE).cloned() {
        let upgrade = hyper::upgrade::on(request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut read, &mut write).await;
            }
        });
        let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
        response.headers_mut().insert(UPGRADE, protocol);
        return Ok(response);
    }
    let tag = Bytes::from_static(tag.as_bytes());
    let mut response = if request.uri().path() == "/hold" {
        Response::new(Either::Right(HeldBody {
            first: Some(tag),
            wait: Some(Box::pin(async move {
                hold.acquire().await.expect("semaphore").forget();
            })),
        }))
    } else {
        Response::new(Either::Left(Full::new(tag)))
    };
    for (seen, name) in [
        ("x-seen-xff", "x-forwarded-for"),
        ("x-seen-proto", "x-forwarded-proto"),
        ("x-seen-xfh", "x-forwarded-host"),
        ("x-seen-host", HOST.as_str()),
        ("x-seen-private", "x-private"),
    ] {
        let value = request
            .headers()
            .get(name)
            .cloned()
            .unwrap_or(HeaderValue::from_static("absent"));
        response.headers_mut().insert(seen, value);
    }
    Ok(response)
}

/// A body that sends its first chunk, then waits before a last `!`.
pub struct HeldBody {
    first: Option<Bytes>,
    wait: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Body for HeldBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(wait) = self.wait.as_mut() {
            ready!(wait.as_mut().poll(cx));
            self.wait = None;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"!")))));
        }
        Poll::Ready(None)
    }
}
