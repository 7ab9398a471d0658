//! A minimal OCI distribution API client: "does this registry hold this tag?", asked with a
//! HEAD of the manifest. A 401 is answered with the operator's registry credentials (those
//! `podman login` stores, see `credentials.rs`): directly for a Basic challenge, through the
//! token endpoint for a Bearer one (anonymously when there are none). Plain HTTP only for
//! registries configured insecure; HTTPS (system trust store) for every other one.

mod challenge;
pub mod credentials;
mod transport;

use http::header::{ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderName, Method, StatusCode};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use challenge::Challenge;
pub use credentials::{AuthEnv, Credentials};
use servicedef::ImageRef;

/// Every manifest kind a tag may point at: OCI and Docker v2, single-platform and index.
/// Without them a registry may answer 404 for a tag whose manifest is of another kind.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// No variant ever holds a password or an `Authorization` value.
#[derive(Debug, thiserror::Error)]
pub enum RegistryApiError {
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
    /// `detail` reads on from the registry's name ("requires credentials and ...").
    #[error("registry {registry} {detail}")]
    Auth { registry: String, detail: String },
    #[error("cannot set up TLS: {detail}")]
    Tls { detail: String },
    #[error("cannot read registry credentials from {}: {detail}", path.display())]
    Credentials { path: PathBuf, detail: String },
}

/// Asks registries about manifests. `insecure` lists `host[:port]` entries spoken to over plain
/// HTTP (exactly as written in image references, e.g. `127.0.0.1:5000`).
#[derive(Debug, Default)]
pub struct RegistryClient {
    insecure: Vec<String>,
    /// Where credentials are looked for; `None`: the process environment, read at each
    /// lookup, so a `podman login` while mcp runs is seen.
    auth_env: Option<AuthEnv>,
    tls: OnceLock<Arc<rustls::ClientConfig>>,
}

impl RegistryClient {
    pub fn new(insecure: Vec<String>) -> Self {
        Self {
            insecure,
            auth_env: None,
            tls: OnceLock::new(),
        }
    }

    /// Looks credentials up in `env` instead of the process environment.
    pub fn with_auth_env(mut self, env: AuthEnv) -> Self {
        self.auth_env = Some(env);
        self
    }

    /// Whether `registry` (`host[:port]`) is configured insecure: plain HTTP, no TLS checks.
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|r| r == registry)
    }

    /// Whether the image's registry holds its tag (or digest). A 404 is `Ok(false)`; an
    /// unreachable registry or refused access is an error, never a guess.
    pub async fn manifest_exists(&self, image: &ImageRef) -> Result<bool, RegistryApiError> {
        let (Some(registry), Some(host)) = (image.registry.as_deref(), image.api_host()) else {
            return Err(RegistryApiError::NoRegistry {
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
            self.authenticated_head(registry, &repository, &url, &response.headers)
                .await?
        } else {
            response
        };
        match response.status {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            status => Err(RegistryApiError::Status { url, status }),
        }
    }

    /// Answers a 401 (whose `headers` hold the challenge): looks the credentials up, then
    /// retries once, with them (Basic) or with a token obtained with them (Bearer).
    async fn authenticated_head(
        &self,
        registry: &str,
        repository: &str,
        url: &str,
        headers: &http::HeaderMap,
    ) -> Result<transport::Response, RegistryApiError> {
        let challenge = read_challenge(registry, headers)?;
        // Looked up only now: public images never need them, and a lookup may run a helper.
        let env = self.auth_env.clone().unwrap_or_else(AuthEnv::from_process);
        let credentials = credentials::lookup_in(&env, registry).await?;
        let denied = || self.denied(&env, registry, repository, credentials.as_ref());
        let authorization = match challenge {
            Challenge::Basic { .. } => credentials
                .as_ref()
                .ok_or_else(denied)?
                .basic_authorization(),
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let url =
                    challenge::token_url(&realm, service.as_deref(), scope.as_deref(), repository);
                let token = self
                    .token(registry, &url, credentials.as_ref(), denied)
                    .await?;
                format!("Bearer {token}")
            }
            Challenge::Other(scheme) => {
                return Err(auth_error(
                    registry,
                    format!("asks for {scheme} authentication, which mcp does not support"),
                ));
            }
        };
        let retried = self.head_manifest(url, Some(&authorization)).await?;
        if retried.status == StatusCode::UNAUTHORIZED || retried.status == StatusCode::FORBIDDEN {
            return Err(denied());
        }
        Ok(retried)
    }

    /// `authorization` is a whole `Authorization` header value.
    async fn head_manifest(
        &self,
        url: &str,
        authorization: Option<&str>,
    ) -> Result<transport::Response, RegistryApiError> {
        let mut headers = manifest_headers();
        if let Some(value) = authorization {
            headers.push((AUTHORIZATION, value.to_string()));
        }
        transport::send(|| self.tls(), Method::HEAD, url, &headers).await
    }

    /// Fetches a token from the Bearer challenge's token endpoint `url`, sending the
    /// credentials (if any) with the Basic scheme, as the distribution token flow expects.
    async fn token(
        &self,
        registry: &str,
        url: &str,
        credentials: Option<&Credentials>,
        denied: impl FnOnce() -> RegistryApiError,
    ) -> Result<String, RegistryApiError> {
        let headers: Vec<(HeaderName, String)> = credentials
            .map(|c| (AUTHORIZATION, c.basic_authorization()))
            .into_iter()
            .collect();
        let response = transport::send(|| self.tls(), Method::GET, url, &headers).await?;
        match response.status {
            StatusCode::OK => parse_token(&response.body)
                .ok_or_else(|| auth_error(registry, format!("gave no token at {url}"))),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(denied()),
            status => Err(auth_error(
                registry,
                format!("answered {status} at its token endpoint {url}"),
            )),
        }
    }

    /// The error for access refused after the credentials (or their absence) were tried:
    /// names where they came from, or where none were found, and the `podman login` to run.
    fn denied(
        &self,
        env: &AuthEnv,
        registry: &str,
        repository: &str,
        credentials: Option<&Credentials>,
    ) -> RegistryApiError {
        // podman login speaks HTTPS unless told otherwise, as mcp does.
        let login = if self.is_insecure(registry) {
            format!("podman login --tls-verify=false {registry}")
        } else {
            format!("podman login {registry}")
        };
        let detail = match credentials {
            None => format!(
                "requires credentials and none were found for it (looked in {}): \
                 log in with `{login}`",
                env.describe_files()
            ),
            Some(c) => format!(
                "refused the credentials of user {} (from {}) for {repository}: \
                 log in again with `{login}`",
                c.username, c.source
            ),
        };
        auth_error(registry, detail)
    }

    /// The TLS client configuration, built on first HTTPS use: an insecure-only setup never
    /// needs a trust store.
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, RegistryApiError> {
        if let Some(config) = self.tls.get() {
            return Ok(Arc::clone(config));
        }
        let config = Arc::new(tls_config()?);
        Ok(Arc::clone(self.tls.get_or_init(|| config)))
    }
}

/// The challenge of a 401's `WWW-Authenticate` header.
fn read_challenge(
    registry: &str,
    headers: &http::HeaderMap,
) -> Result<Challenge, RegistryApiError> {
    let header = headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            auth_error(
                registry,
                "answered 401 without a WWW-Authenticate challenge".into(),
            )
        })?;
    challenge::parse(header)
        .ok_or_else(|| auth_error(registry, format!("sent an unreadable challenge {header:?}")))
}

fn auth_error(registry: &str, detail: String) -> RegistryApiError {
    RegistryApiError::Auth {
        registry: registry.to_string(),
        detail,
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
fn tls_config() -> Result<rustls::ClientConfig, RegistryApiError> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(RegistryApiError::Tls {
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
        .map_err(|e| RegistryApiError::Tls {
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests;
