//! podman's REST API (libpod) over its unix socket, for the calls the node makes often:
//! listing containers, asking whether an image exists, the event stream, and creating,
//! starting, stopping and removing containers. One HTTP/1.1 request per connection (a
//! unix-socket connect costs microseconds), each bounded by a timeout, so a hung podman
//! service fails the call instead of stalling the monitor or a deploy.
//!
//! Why hand-written over hyper rather than bollard or podman-api: the node needs four
//! endpoints; hyper is already linked (health checks), bollard speaks the Docker-compatible
//! API whose listing lacks libpod's fields (exit codes, StartedAt as podman ps reports them),
//! and podman-api's last release predates podman 4.3's API.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixStream;

/// The libpod API version the paths are written for (podman 4.x serves it).
const PREFIX: &str = "/v4.0.0/libpod";

/// How long a call that changes a container may take. Longer than a read's: starting a
/// container sets up its network and mounts, and podman serialises that under load (20
/// concurrent deploys take seconds each), but still bounded, so a hung service fails a
/// deploy instead of holding it forever.
const MUTATION_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("podman API socket {socket} does not answer: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("podman API {what}: no answer within {} ms", .after.as_millis())]
    Timeout { what: String, after: Duration },
    #[error("podman API {what}: {detail}")]
    Http { what: String, detail: String },
    #[error("podman API {what}: abandoned, the service stopped answering")]
    Abandoned { what: String },
    #[error("podman API {what} answered {status}: {message}")]
    Status {
        what: String,
        status: u16,
        message: String,
    },
}

/// What a request carries.
enum Body {
    Empty,
    Json(Bytes),
    Bytes(Bytes),
}

/// A client of one podman API socket.
#[derive(Debug, Clone)]
pub struct PodmanApi {
    socket: PathBuf,
    timeout: Duration,
}

impl PodmanApi {
    pub fn new(socket: PathBuf, timeout: Duration) -> Self {
        Self { socket, timeout }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Whether the service answers at all.
    pub async fn ping(&self) -> Result<(), ApiError> {
        self.get("/_ping", "ping").await.map(|_| ())
    }

    /// `podman ps -a --format json` with `filters` (podman's filter JSON, e.g.
    /// `{"label":["mcp.service"]}`): the same entries, from the same code in podman.
    pub async fn list_containers(&self, filters: &str) -> Result<Bytes, ApiError> {
        let path = format!(
            "{PREFIX}/containers/json?all=true&filters={}",
            encode(filters)
        );
        self.get(&path, "container list").await
    }

    /// Whether `image` (a reference as written, or an id) is in the node's store.
    pub async fn image_exists(&self, image: &str) -> Result<bool, ApiError> {
        let path = format!("{PREFIX}/images/{}/exists", encode_path(image));
        match self.get(&path, "image exists").await {
            Ok(_) => Ok(true),
            Err(ApiError::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `podman image inspect`'s entry for `image` (one object, not the CLI's array).
    pub async fn inspect_image(&self, image: &str) -> Result<Bytes, ApiError> {
        let path = format!("{PREFIX}/images/{}/json", encode_path(image));
        self.get(&path, "image inspect").await
    }

    /// How podman records its events (`events_logger`: "file", "journald" or "none").
    pub async fn event_logger(&self) -> Result<String, ApiError> {
        let body = self.get(&format!("{PREFIX}/info"), "info").await?;
        let info: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::Http {
                what: "info".into(),
                detail: format!("unreadable answer: {e}"),
            })?;
        info.pointer("/host/eventLogger")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| ApiError::Http {
                what: "info".into(),
                detail: "no host.eventLogger in the answer".into(),
            })
    }

    /// The names of every secret in podman's store.
    pub async fn secret_names(&self) -> Result<Vec<String>, ApiError> {
        #[derive(serde::Deserialize)]
        struct Secret {
            #[serde(rename = "Spec")]
            spec: SecretSpec,
        }
        #[derive(serde::Deserialize)]
        struct SecretSpec {
            #[serde(rename = "Name")]
            name: String,
        }
        let body = self
            .get(&format!("{PREFIX}/secrets/json"), "secret list")
            .await?;
        serde_json::from_slice::<Vec<Secret>>(&body)
            .map(|secrets| secrets.into_iter().map(|s| s.spec.name).collect())
            .map_err(|e| ApiError::Http {
                what: "secret list".into(),
                detail: format!("unreadable answer: {e}"),
            })
    }

    /// Removes podman secret `name`; one that is gone is not an error.
    pub async fn remove_secret(&self, name: &str) -> Result<(), ApiError> {
        let path = format!("{PREFIX}/secrets/{}", encode(name));
        let what = format!("removal of secret {name}");
        match self
            .change(http::Method::DELETE, &path, &what, MUTATION_TIMEOUT)
            .await
        {
            Err(ApiError::Status { status: 404, .. }) => Ok(()),
            other => other,
        }
    }

    /// Creates a container from libpod's SpecGenerator JSON (`specgen.rs`); returns its id.
    pub async fn create_container(
        &self,
        name: &str,
        spec: &serde_json::Value,
    ) -> Result<String, ApiError> {
        #[derive(serde::Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        let what = format!("create of container {name}");
        let body = Body::Json(Bytes::from(spec.to_string()));
        let path = format!("{PREFIX}/containers/create");
        let answer = self
            .call(http::Method::POST, &path, body, &what, MUTATION_TIMEOUT)
            .await?;
        serde_json::from_slice::<Created>(&answer)
            .map(|created| created.id)
            .map_err(|e| ApiError::Http {
                what,
                detail: format!("unreadable answer: {e}"),
            })
    }

    /// Stores `value` as podman secret `name` with `labels`; false when a secret of that
    /// name exists already (its value is not compared). The value travels in the body only.
    pub async fn create_secret(
        &self,
        name: &str,
        labels: &std::collections::BTreeMap<String, String>,
        value: &[u8],
    ) -> Result<bool, ApiError> {
        let labels = serde_json::to_string(labels).unwrap_or_default();
        let path = format!(
            "{PREFIX}/secrets/create?name={}&labels={}",
            encode(name),
            encode(&labels)
        );
        let what = format!("creation of secret {name}");
        let body = Body::Bytes(Bytes::copy_from_slice(value));
        match self
            .call(http::Method::POST, &path, body, &what, MUTATION_TIMEOUT)
            .await
        {
            Ok(_) => Ok(true),
            Err(ApiError::Status { message, .. }) if message.contains("secret name in use") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Starts container `name`; one already running is left as it is (podman answers 304).
    pub async fn start_container(&self, name: &str) -> Result<(), ApiError> {
        let path = format!("{PREFIX}/containers/{}/start", encode(name));
        let what = format!("start of container {name}");
        self.change(http::Method::POST, &path, &what, MUTATION_TIMEOUT)
            .await
    }

    /// Stops container `name`, killing it after `grace`; one already stopped is left as
    /// it is. A missing container is `Status { status: 404 }`.
    pub async fn stop_container(&self, name: &str, grace: Duration) -> Result<(), ApiError> {
        self.with_grace(name, "stop", "timeout", grace).await
    }

    /// Restarts container `name`, killing it after `grace` if it does not stop.
    pub async fn restart_container(&self, name: &str, grace: Duration) -> Result<(), ApiError> {
        self.with_grace(name, "restart", "t", grace).await
    }

    /// `POST /containers/NAME/ACTION?PARAM=SECONDS`, given the grace on top of the bound.
    async fn with_grace(
        &self,
        name: &str,
        action: &str,
        param: &str,
        grace: Duration,
    ) -> Result<(), ApiError> {
        let path = format!(
            "{PREFIX}/containers/{}/{action}?{param}={}",
            encode(name),
            grace.as_secs()
        );
        let what = format!("{action} of container {name}");
        self.change(http::Method::POST, &path, &what, MUTATION_TIMEOUT + grace)
            .await
    }

    /// Removes container `name` whatever its state (`podman rm --force --time 0`). A missing
    /// container is `Status { status: 404 }`.
    pub async fn remove_container(&self, name: &str) -> Result<(), ApiError> {
        let path = format!("{PREFIX}/containers/{}?force=true&timeout=0", encode(name));
        let what = format!("removal of container {name}");
        self.change(http::Method::DELETE, &path, &what, MUTATION_TIMEOUT)
            .await
    }

    /// A request without a body whose answer's body does not matter.
    async fn change(
        &self,
        method: http::Method,
        path: &str,
        what: &str,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        self.call(method, path, Body::Empty, what, timeout)
            .await
            .map(drop)
    }

    /// Opens the event stream (`podman events`, filtered as `filters`): each item is one
    /// event's JSON. Only opening it is bounded by the timeout; the stream lasts until the
    /// service ends it.
    pub async fn events(
        &self,
        filters: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<Result<Bytes, ApiError>>, ApiError> {
        let path = format!("{PREFIX}/events?stream=true&filters={}", encode(filters));
        let what = "event stream".to_string();
        let response = tokio::time::timeout(
            self.timeout,
            self.send(http::Method::GET, &path, Body::Empty, &what),
        )
        .await
        .map_err(|_| ApiError::Timeout {
            what: what.clone(),
            after: self.timeout,
        })??;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let mut body = response.into_body();
        tokio::spawn(async move {
            let mut pending: Vec<u8> = Vec::new();
            loop {
                let frame = tokio::select! {
                    frame = body.frame() => frame,
                    () = tx.closed() => return,
                };
                let data = match frame {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(_) => continue,
                    },
                    Some(Err(e)) => {
                        let _ = tx
                            .send(Err(ApiError::Http {
                                what: what.clone(),
                                detail: e.to_string(),
                            }))
                            .await;
                        return;
                    }
                    None => return,
                };
                pending.extend_from_slice(&data);
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let line = line.trim_ascii();
                    if !line.is_empty() && tx.send(Ok(Bytes::copy_from_slice(line))).await.is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn get(&self, path: &str, what: &str) -> Result<Bytes, ApiError> {
        self.call(http::Method::GET, path, Body::Empty, what, self.timeout)
            .await
    }

    /// One request and its whole answer within `timeout`; a status of 2xx or 304 ("already
    /// so") is success, any other names podman's message.
    async fn call(
        &self,
        method: http::Method,
        path: &str,
        body: Body,
        what: &str,
        timeout: Duration,
    ) -> Result<Bytes, ApiError> {
        let call = async {
            let response = self.send(method, path, body, what).await?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ApiError::Http {
                    what: what.to_string(),
                    detail: e.to_string(),
                })?
                .to_bytes();
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                Ok(body)
            } else {
                Err(ApiError::Status {
                    what: what.to_string(),
                    status: status.as_u16(),
                    message: error_message(&body),
                })
            }
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| ApiError::Timeout {
                what: what.to_string(),
                after: timeout,
            })?
    }

    async fn send(
        &self,
        method: http::Method,
        path: &str,
        body: Body,
        what: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ApiError> {
        let http = |detail: String| ApiError::Http {
            what: what.to_string(),
            detail,
        };
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ApiError::Connect {
                    socket: self.socket.clone(),
                    source,
                })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(e.to_string()))?;
        // Drives the connection until the response (and its body) is done; ends with it.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "d");
        let body = match body {
            Body::Empty => Bytes::new(),
            Body::Json(json) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                json
            }
            // libpod reads a secret's value only when it is declared as raw bytes.
            Body::Bytes(bytes) => {
                request = request.header(http::header::CONTENT_TYPE, "application/octet-stream");
                bytes
            }
        };
        let request = request
            .body(Full::new(body))
            .map_err(|e| http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http(e.to_string()))?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            return Err(http("unexpected protocol switch".into()));
        }
        Ok(response)
    }
}

/// podman's error body is `{"cause": …, "message": …, "response": 404}`.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Error {
        #[serde(default)]
        message: String,
    }
    serde_json::from_slice::<Error>(body)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_string())
}

/// Percent-encodes a query value (everything but RFC 3986's unreserved characters).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Percent-encodes an image reference for a path: its `/`, `:` and `@` stay (libpod's
/// route takes the rest of the path as the name).
fn encode_path(text: &str) -> String {
    text.split('/')
        .map(|part| {
            part.split(':')
                .map(|p| p.split('@').map(encode).collect::<Vec<_>>().join("@"))
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn queries_and_paths_are_encoded() {
        assert_eq!(
            encode(r#"{"label":["mcp.service"]}"#),
            "%7B%22label%22%3A%5B%22mcp.service%22%5D%7D"
        );
        assert_eq!(
            encode_path("127.0.0.1:5000/team/app:v1"),
            "127.0.0.1:5000/team/app:v1"
        );
        assert_eq!(encode_path("app@sha256:ab c"), "app@sha256:ab%20c");
    }

    #[test]
    fn podman_error_bodies_give_their_message() {
        assert_eq!(
            error_message(
                br#"{"cause":"no such image","message":"x: no such image","response":404}"#
            ),
            "x: no such image"
        );
        assert_eq!(error_message(b"plain\n"), "plain");
    }

    #[tokio::test]
    async fn a_missing_socket_is_a_connect_error_and_a_silent_one_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let api = PodmanApi::new(dir.path().join("absent.sock"), Duration::from_millis(200));
        assert!(matches!(api.ping().await, Err(ApiError::Connect { .. })));
        // A listener that accepts and never answers: a hung podman.
        let path = dir.path().join("hung.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let api = PodmanApi::new(path, Duration::from_millis(200));
        assert!(matches!(api.ping().await, Err(ApiError::Timeout { .. })));
    }
}
