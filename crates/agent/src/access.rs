//! Who may call what: the operator's role from its client certificate, checked against one
//! table of RPCs before any handler runs.
//!
//! Architecture invariant: authorisation is default deny. Every request passes through
//! `Authorize` (a tower layer around the whole gRPC router); an RPC missing from `RPC_ROLES`
//! is refused, whatever the caller's role, so a new RPC is closed until it is classified.

use pki::OperatorRole;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

/// The least role each RPC of `mcp.v1.Agent` needs.
const RPC_ROLES: &[(&str, OperatorRole)] = &[
    ("Status", OperatorRole::Viewer),
    ("Logs", OperatorRole::Viewer),
    ("NodeStatus", OperatorRole::Viewer),
    ("Events", OperatorRole::Viewer),
    ("Plan", OperatorRole::Viewer),
    ("History", OperatorRole::Viewer),
    // Names and versions only; values never leave the agent.
    ("ListSecrets", OperatorRole::Viewer),
    ("Deploy", OperatorRole::Deployer),
    ("DeployWatch", OperatorRole::Deployer),
    ("Stop", OperatorRole::Deployer),
    ("Start", OperatorRole::Deployer),
    ("Restart", OperatorRole::Deployer),
    ("Rollback", OperatorRole::Deployer),
    // A deploy that brings a new secret needs it set first.
    ("SetSecret", OperatorRole::Deployer),
    ("Undeploy", OperatorRole::Admin),
    ("RemoveSecret", OperatorRole::Admin),
    ("RegistryLogin", OperatorRole::Admin),
    ("RegistryLogout", OperatorRole::Admin),
];

/// The least role `path` (`/mcp.v1.Agent/<Method>`) needs; None for anything else.
pub fn required_role(path: &str) -> Option<OperatorRole> {
    let method = path
        .strip_prefix('/')?
        .strip_prefix(mcp_proto::v1::agent_server::SERVICE_NAME)?
        .strip_prefix('/')?;
    RPC_ROLES
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, role)| *role)
}

/// The operator a request comes from, as its certificate proves; handlers read it from the
/// request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: OperatorRole,
}

/// The agent's access rules: the role table plus the serials it refuses; and what every
/// answer tells the caller about the agent (its version, its certificate's end).
#[derive(Debug, Default)]
pub struct AccessPolicy {
    revoked: HashSet<String>,
    certificate_not_after: Option<i64>,
}

impl AccessPolicy {
    /// `revoked` holds normalised serials (`pki::normalize_serial`).
    pub fn new(revoked: impl IntoIterator<Item = String>) -> Self {
        Self {
            revoked: revoked.into_iter().collect(),
            certificate_not_after: None,
        }
    }

    /// Answers carry when the agent's own certificate ends, for the CLI's warning.
    pub fn with_certificate_not_after(mut self, not_after: Option<i64>) -> Self {
        self.certificate_not_after = not_after;
        self
    }

    /// Who calls `path` with the certificate `peer` (DER), or why not.
    pub fn authorize(&self, path: &str, peer: Option<&[u8]>) -> Result<Caller, Status> {
        let Some(info) = peer.and_then(pki::inspect_der) else {
            return Err(Status::permission_denied(
                "permission denied: no client certificate",
            ));
        };
        let name = info.common_name;
        if self.revoked.contains(&info.serial) {
            return Err(Status::permission_denied(format!(
                "permission denied: the certificate of operator {name} (serial {}) is revoked",
                info.serial
            )));
        }
        let Some(role) = info.role else {
            return Err(Status::permission_denied(format!(
                "permission denied: the certificate of {name} carries no mcp role (issued \
                 before roles); issue one with `mcp tls cert create --operator {name} --role ROLE`"
            )));
        };
        let Some(needed) = required_role(path) else {
            // Still refused; for a method of our service the code says "not here" so that a
            // newer CLI can fall back to an older RPC (as `mcp deploy` does to `Deploy`).
            let ours = path
                .strip_prefix('/')
                .and_then(|p| p.strip_prefix(mcp_proto::v1::agent_server::SERVICE_NAME))
                .is_some_and(|rest| rest.starts_with('/'));
            let message = format!("{path} is not an RPC this agent serves");
            return Err(if ours {
                Status::unimplemented(message)
            } else {
                Status::permission_denied(format!("permission denied: {message}"))
            });
        };
        if role < needed {
            let method = path.rsplit('/').next().unwrap_or(path);
            return Err(Status::permission_denied(format!(
                "permission denied: operator {name} has role {role}; {method} needs role \
                 {needed} or above"
            )));
        }
        Ok(Caller { name, role })
    }
}

/// Tower layer that runs `AccessPolicy::authorize` before the router.
#[derive(Clone)]
pub struct AuthorizeLayer {
    policy: Arc<AccessPolicy>,
}

impl AuthorizeLayer {
    pub fn new(policy: Arc<AccessPolicy>) -> Self {
        Self { policy }
    }
}

impl<S> tower::Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            policy: self.policy.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authorize<S> {
    inner: S,
    policy: Arc<AccessPolicy>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S> tower::Service<http::Request<Body>> for Authorize<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let certs = request
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs());
        let peer = certs.as_ref().and_then(|certs| certs.first());
        let protocol = request
            .headers()
            .get(mcp_proto::PROTOCOL_HEADER)
            .map(|v| v.to_str().unwrap_or("?"));
        let verdict = check_protocol(protocol).and_then(|()| {
            self.policy
                .authorize(request.uri().path(), peer.map(|c| c.as_ref()))
        });
        let answer: Self::Future = match verdict {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => {
                tracing::warn!(
                    path = request.uri().path(),
                    reason = status.message(),
                    "refused"
                );
                Box::pin(std::future::ready(Ok(status.into_http())))
            }
        };
        let not_after = self.policy.certificate_not_after;
        Box::pin(async move {
            let mut response = answer.await?;
            let headers = response.headers_mut();
            headers.insert(
                mcp_proto::AGENT_VERSION_HEADER,
                http::HeaderValue::from_static(env!("CARGO_PKG_VERSION")),
            );
            if let Some(not_after) = not_after {
                headers.insert(
                    mcp_proto::AGENT_CERT_NOT_AFTER_HEADER,
                    http::HeaderValue::from(not_after),
                );
            }
            Ok(response)
        })
    }
}

/// Refuses a caller that speaks another protocol version. A caller that does not say (a
/// generic gRPC client) is served: it gets what the proto file describes.
fn check_protocol(theirs: Option<&str>) -> Result<(), Status> {
    let ours = mcp_proto::PROTOCOL_VERSION;
    match theirs {
        None => Ok(()),
        Some(theirs) if theirs == ours.to_string() => Ok(()),
        Some(theirs) => Err(Status::failed_precondition(format!(
            "the CLI speaks mcp protocol {theirs} but this agent (mcp-agent {}) speaks protocol \
             {ours}: install the same mcp version on both sides",
            env!("CARGO_PKG_VERSION")
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use pki::{CertPair, Role};

    fn der(pair: &CertPair) -> Vec<u8> {
        pki::certificate_der(&pair.cert_pem).unwrap()
    }

    #[test]
    fn every_rpc_of_the_proto_is_in_the_table() {
        let proto = include_str!("../../proto/proto/mcp/v1/agent.proto");
        let rpcs: Vec<&str> = proto
            .lines()
            .filter_map(|l| l.trim().strip_prefix("rpc "))
            .filter_map(|l| l.split('(').next())
            .collect();
        assert!(rpcs.len() >= 17, "{rpcs:?}");
        for rpc in &rpcs {
            assert!(
                required_role(&format!("/mcp.v1.Agent/{rpc}")).is_some(),
                "{rpc} is not classified in RPC_ROLES"
            );
        }
        assert_eq!(
            RPC_ROLES.len(),
            rpcs.len(),
            "the table names no RPC twice or extra"
        );
    }

    #[test]
    fn roles_allow_their_rpcs_and_deny_the_rest() {
        let ca = pki::create_ca("ca").unwrap();
        let cert = |role| der(&pki::issue(&ca, "ann", &Role::Operator { role }).unwrap());
        let policy = AccessPolicy::default();
        let viewer = cert(OperatorRole::Viewer);
        let deployer = cert(OperatorRole::Deployer);
        let admin = cert(OperatorRole::Admin);
        let call = |path: &str, who: &[u8]| policy.authorize(path, Some(who));

        assert!(call("/mcp.v1.Agent/Status", &viewer).is_ok());
        let denied = call("/mcp.v1.Agent/Deploy", &viewer).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(
            denied.message().contains("role viewer"),
            "{}",
            denied.message()
        );
        assert!(call("/mcp.v1.Agent/Deploy", &deployer).is_ok());
        assert!(call("/mcp.v1.Agent/Undeploy", &deployer).is_err());
        assert_eq!(
            call("/mcp.v1.Agent/Undeploy", &admin).unwrap(),
            Caller {
                name: "ann".into(),
                role: OperatorRole::Admin
            }
        );
        // Default deny: not in the table, whoever asks.
        for path in [
            "/mcp.v1.Agent/Shutdown",
            "/grpc.reflection.v1.ServerReflection/x",
            "/",
        ] {
            assert!(call(path, &admin).is_err(), "{path}");
        }
        // A certificate issued before roles, and none at all.
        let legacy = der(&pki::issue(
            &ca,
            "old",
            &Role::Node {
                sans: vec!["old".into()],
            },
        )
        .unwrap());
        assert!(call("/mcp.v1.Agent/Status", &legacy).is_err());
        assert_eq!(
            policy
                .authorize("/mcp.v1.Agent/Status", None)
                .unwrap_err()
                .code(),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn another_protocol_version_is_refused_naming_both() {
        assert!(check_protocol(None).is_ok());
        assert!(check_protocol(Some(&mcp_proto::PROTOCOL_VERSION.to_string())).is_ok());
        let err = check_protocol(Some("999")).unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(err.message().contains("protocol 999"), "{}", err.message());
    }

    #[test]
    fn a_revoked_serial_is_refused_whatever_its_role() {
        let ca = pki::create_ca("ca").unwrap();
        let pair = pki::issue(
            &ca,
            "lost",
            &Role::Operator {
                role: OperatorRole::Admin,
            },
        )
        .unwrap();
        let serial = pki::inspect_pem(&pair.cert_pem).unwrap().serial;
        let policy = AccessPolicy::new([serial]);
        let err = policy
            .authorize("/mcp.v1.Agent/Status", Some(&der(&pair)))
            .unwrap_err();
        assert!(err.message().contains("revoked"), "{}", err.message());
    }
}
