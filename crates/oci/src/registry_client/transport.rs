//! One HTTP/1.1 request over plain TCP or rustls, under a deadline: all the registry client
//! needs (a HEAD and a small GET), on hyper, which the workspace already builds for tonic.

use http::header::{HOST, USER_AGENT};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::RegistryApiError;

/// A whole exchange (connect, TLS, request, response) must finish within this.
const DEADLINE: Duration = Duration::from_secs(30);
/// Token responses are small JSON documents; anything larger is not one.
const MAX_BODY: usize = 1 << 20;

pub(super) struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Sends `method url` with `headers`; `tls` is used for `https` URLs.
pub(super) async fn send(
    tls: impl FnOnce() -> Result<Arc<rustls::ClientConfig>, RegistryApiError>,
    method: Method,
    url: &str,
    headers: &[(http::HeaderName, String)],
) -> Result<Response, RegistryApiError> {
    let uri: Uri = url.parse().map_err(|e| RegistryApiError::Url {
        url: url.to_string(),
        detail: format!("{e}"),
    })?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => {
            return Err(RegistryApiError::Url {
                url: url.to_string(),
                detail: "scheme must be http or https".into(),
            });
        }
    };
    let (Some(host), Some(authority)) = (uri.host(), uri.authority()) else {
        return Err(RegistryApiError::Url {
            url: url.to_string(),
            detail: "no host".into(),
        });
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let mut request = Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(HOST, authority.as_str())
        .header(USER_AGENT, concat!("mcp/", env!("CARGO_PKG_VERSION")));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| RegistryApiError::Url {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
    let exchange = async {
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| transport(url, &e))?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| transport(url, &e))?;
            let stream = tokio_rustls::TlsConnector::from(tls()?)
                .connect(name, tcp)
                .await
                .map_err(|e| tls_failure(url, authority.as_str(), &e))?;
            exchange(stream, request, url).await
        } else {
            exchange(tcp, request, url).await
        }
    };
    tokio::time::timeout(DEADLINE, exchange)
        .await
        .map_err(|_| RegistryApiError::Timeout {
            url: url.to_string(),
            after: DEADLINE,
        })?
}

async fn exchange<I>(
    io: I,
    request: Request<Empty<Bytes>>,
    url: &str,
) -> Result<Response, RegistryApiError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| transport(url, &e))?;
    // The connection task ends with the response (or with the deadline dropping it).
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| transport(url, &e))?;
    let (parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| RegistryApiError::Transport {
            url: url.to_string(),
            detail: format!("reading the body: {e}"),
        })?
        .to_bytes();
    driver.abort();
    Ok(Response {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// A TLS handshake that failed; an answer that is not TLS at all means a plain-HTTP registry,
/// and the fix is a setting, which the error names.
fn tls_failure(url: &str, registry: &str, e: &std::io::Error) -> RegistryApiError {
    let plain_http = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| {
            matches!(
                tls,
                rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType)
            )
        });
    if !plain_http {
        return transport(url, e);
    }
    RegistryApiError::Transport {
        url: url.to_string(),
        detail: format!(
            "{registry} does not speak TLS (it looks like a plain-HTTP registry); if it is one \
             on a trusted network, list \"{registry}\" in insecure_registries ([build] in the \
             CLI config, [podman] in agent.toml)"
        ),
    }
}

fn transport(url: &str, e: &dyn std::error::Error) -> RegistryApiError {
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    RegistryApiError::Transport {
        url: url.to_string(),
        detail,
    }
}
