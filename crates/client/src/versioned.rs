//! The channel the CLI calls agents over: it states the CLI's protocol version on every
//! request and notes each agent's version from its answers, so a CLI and an agent of
//! different releases are pointed out (and refused by the agent when incompatible).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::transport::Channel;

/// A `Channel` that stamps requests and reads the agent's version off responses.
#[derive(Clone)]
pub struct VersionedChannel {
    inner: Channel,
    node: Arc<str>,
}

impl VersionedChannel {
    pub fn new(inner: Channel, node: &str) -> Self {
        Self {
            inner,
            node: node.into(),
        }
    }
}

/// Agents whose version differs from this CLI's, by node, as seen in this process.
static MISMATCHES: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
/// When each answering agent's certificate ends, by node.
static CERTIFICATES: Mutex<BTreeMap<String, i64>> = Mutex::new(BTreeMap::new());

/// Node → agent version, for every agent answered so far whose version is not this CLI's.
pub fn version_mismatches() -> BTreeMap<String, String> {
    MISMATCHES.lock().map(|m| m.clone()).unwrap_or_default()
}

/// Node → unix seconds its agent's certificate ends, for every agent answered so far.
pub fn agent_certificates() -> BTreeMap<String, i64> {
    CERTIFICATES.lock().map(|m| m.clone()).unwrap_or_default()
}

fn note_agent_version(node: &str, version: &str) {
    if version != env!("CARGO_PKG_VERSION")
        && let Ok(mut seen) = MISMATCHES.lock()
    {
        seen.insert(node.to_string(), version.to_string());
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl tower::Service<http::Request<Body>> for VersionedChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        request.headers_mut().insert(
            mcp_proto::PROTOCOL_HEADER,
            http::HeaderValue::from(mcp_proto::PROTOCOL_VERSION),
        );
        let answer = self.inner.call(request);
        let node = Arc::clone(&self.node);
        Box::pin(async move {
            let response = answer.await?;
            let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
            if let Some(version) = header(mcp_proto::AGENT_VERSION_HEADER) {
                note_agent_version(&node, version);
            }
            if let Some(not_after) =
                header(mcp_proto::AGENT_CERT_NOT_AFTER_HEADER).and_then(|v| v.parse().ok())
                && let Ok(mut seen) = CERTIFICATES.lock()
            {
                seen.insert(node.to_string(), not_after);
            }
            Ok(response)
        })
    }
}
