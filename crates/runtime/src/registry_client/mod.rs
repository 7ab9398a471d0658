//! A minimal OCI distribution API client: "does this registry hold this tag?", asked with a
//! HEAD of the manifest, following an anonymous Bearer-token challenge. Plain HTTP only for
//! registries configured insecure; HTTPS (system trust store) for every other one.

mod challenge;
mod transport;

use http::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderName, Method, StatusCode};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::ImageRef;
use challenge::Challenge;

/// Every manifest kind a tag may point at: OCI and Docker v2, single-platform and index.
/// Without them a registry may answer 404 for a tag whose manifest is of another kind.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{image} names no registry host (a local-only image)")]
    NoRegistry { image: String },
    #[error("invalid URL {url}: {detail}")]
    Url { url: String, detail: String },
    #[error("cannot reach {url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("{url} did not answer within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("{url} answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("registry {registry} refused anonymous access: {detail}")]
    Auth { registry: String, detail: String },
    #[error("cannot set up TLS: {detail}")]
    Tls { detail: String },
}

/// Asks registries about manifests. `insecure` lists `host[:port]` entries spoken to over plain
/// HTTP (exactly as written in image references, e.g. `127.0.0.1:5000`).
#[derive(Debug, Default)]
pub struct RegistryClient {
    insecure: Vec<String>,
    tls: OnceLock<Arc<rustls::ClientConfig>>,
}

impl RegistryClient {
    pub fn new(insecure: Vec<String>) -> Self {
        Self {
            insecure,
            tls: OnceLock::new(),
        }
    }

    /// Whether `registry` (`host[:port]`) is configured insecure: plain HTTP, no TLS checks.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|r| r == registry)
    }

    /// Whether the image's registry holds its tag (or digest). A 404 is `Ok(false)`; an
    /// unreachable registry or refused access is an error, never a guess.
    pub async fn manifest_exists(&self, image: &ImageRef) -> Result<bool, RegistryError> {
        let (Some(registry), Some(host)) = (image.registry.as_deref(), image.api_host()) else {
            return Err(RegistryError::NoRegistry {
                image: image.repository.clone(),
            });
        };
        let scheme = if self.is_insecure(registry) {
            "http"
        } else {
            "https"
        };
        let repository = image.api_repository();
        let url = format!(
            "{scheme}://{host}/v2/{repository}/manifests/{}",
            image.reference
        );
        let response = self.head_manifest(&url, None).await?;
        let response = if response.status == StatusCode::UNAUTHORIZED {
            let token = self
                .token_for(registry, &repository, &response.headers)
                .await?;
            let retried = self.head_manifest(&url, Some(&token)).await?;
            if retried.status == StatusCode::UNAUTHORIZED || retried.status == StatusCode::FORBIDDEN
            {
                return Err(RegistryError::Auth {
                    registry: registry.to_string(),
                    detail: format!(
                        "an anonymous token does not allow reading {repository} \
                         (it may need credentials)"
                    ),
                });
            }
            retried
        } else {
            response
        };
        match response.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => Err(RegistryError::Status { url, status }),
        }
    }

    async fn head_manifest(
        &self,
        url: &str,
        token: Option<&str>,
    ) -> Result<transport::Response, RegistryError> {
        let mut headers = manifest_headers();
        if let Some(token) = token {
            headers.push((AUTHORIZATION, format!("Bearer {token}")));
        }
        transport::send(|| self.tls(), Method::HEAD, url, &headers).await
    }

    /// Follows a 401's Bearer challenge: fetches an anonymous token from its realm.
    async fn token_for(
        &self,
        registry: &str,
        repository: &str,
        headers: &http::HeaderMap,
    ) -> Result<String, RegistryError> {
        let auth = |detail: String| RegistryError::Auth {
            registry: registry.to_string(),
            detail,
        };
        let header = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| auth("401 without a WWW-Authenticate challenge".into()))?;
        let (realm, service, scope) = match challenge::parse(header) {
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => (realm, service, scope),
            Some(Challenge::Other(scheme)) => {
                return Err(auth(format!(
                    "it asks for {scheme} credentials, which mcp does not send"
                )));
            }
            None => return Err(auth(format!("unreadable challenge {header:?}"))),
        };
        let url = challenge::token_url(&realm, service.as_deref(), scope.as_deref(), repository);
        let response = transport::send(|| self.tls(), Method::GET, &url, &[]).await?;
        if response.status != StatusCode::OK {
            return Err(auth(format!(
                "token endpoint {url} answered {}",
                response.status
            )));
        }
        parse_token(&response.body).ok_or_else(|| auth(format!("no token in the answer of {url}")))
    }

    /// The TLS client configuration, built on first HTTPS use: an insecure-only setup never
    /// needs a trust store.
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, RegistryError> {
        if let Some(config) = self.tls.get() {
            return Ok(Arc::clone(config));
        }
        let config = Arc::new(tls_config()?);
        Ok(Arc::clone(self.tls.get_or_init(|| config)))
    }
}

/// The headers of a manifest HEAD (kept apart so a test can look at them).
fn manifest_headers() -> Vec<(HeaderName, String)> {
    vec![(ACCEPT, MANIFEST_ACCEPT.to_string())]
}

/// `{"token": ...}` (distribution) or `{"access_token": ...}` (OAuth-style servers).
fn parse_token(body: &[u8]) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["token", "access_token"]
        .iter()
        .find_map(|k| json.get(k)?.as_str().filter(|t| !t.is_empty()))
        .map(str::to_string)
}

/// The system's trust store (as podman uses it), aws-lc-rs as the one crypto provider.
fn tls_config() -> Result<rustls::ClientConfig, RegistryError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(RegistryError::Tls {
            detail: format!(
                "no trusted root certificates found in the system store{}",
                found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        });
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Tls {
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests;
