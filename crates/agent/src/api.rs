//! The gRPC service: translates requests to `Deployer` calls and errors to statuses.

use mcp_proto::v1 as pb;
use mcp_proto::v1::agent_server::Agent;
use std::pin::Pin;
use std::sync::Arc;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::AgentError;
use crate::convert;
use crate::deployer::Deployer;
use crate::node::NodeInspector;
use runtime::{PodmanRuntime, RuntimeError};

pub struct AgentApi {
    deployer: Arc<Deployer>,
    node: Arc<NodeInspector>,
    /// Registry credentials of this node's pulls live in podman's auth file.
    logins: Arc<PodmanRuntime>,
}

impl AgentApi {
    pub fn new(
        deployer: Arc<Deployer>,
        node: Arc<NodeInspector>,
        logins: Arc<PodmanRuntime>,
    ) -> Self {
        Self {
            deployer,
            node,
            logins,
        }
    }
}

/// A registry as written in image references (`host[:port]`): it reaches podman's command
/// line and auth file, so only host characters pass.
fn check_registry(registry: &str) -> Result<(), Status> {
    let ok = !registry.is_empty()
        && registry.len() <= 255
        && !registry.starts_with(['-', '.', ':'])
        && registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "registry {registry:?} must be a host[:port] as written in image references"
        )))
    }
}

/// The one place agent errors become gRPC statuses. Registry internals stay in the agent's
/// log; runtime errors carry the backend's own message, which the operator needs.
fn status(err: AgentError) -> Status {
    match &err {
        AgentError::InvalidSpec(_) | AgentError::BadRequest(_) => {
            Status::invalid_argument(err.to_string())
        }
        AgentError::WrongNode { .. }
        | AgentError::RuntimeUnavailable { .. }
        | AgentError::SecretInUse { .. }
        | AgentError::VersionPruned { .. } => Status::failed_precondition(err.to_string()),
        AgentError::Seal(_) => Status::internal(err.to_string()),
        AgentError::ServiceNotFound(_)
        | AgentError::SecretNotFound { .. }
        | AgentError::ComponentNotFound { .. }
        | AgentError::VersionNotFound { .. } => Status::not_found(err.to_string()),
        AgentError::Ports(_) => Status::resource_exhausted(err.to_string()),
        AgentError::Runtime { .. }
        | AgentError::Crashed { .. }
        | AgentError::NeverHealthy { .. }
        | AgentError::Traffic(_) => Status::aborted(err.to_string()),
        AgentError::Registry(inner) => {
            tracing::error!(error = ?inner, "registry failure");
            let what = match inner.condition() {
                registry::Condition::Locked => {
                    "the agent's registry database is locked by another process"
                }
                registry::Condition::DiskFull => {
                    "the disk holding the agent's registry database is full"
                }
                registry::Condition::Corrupt => "the agent's registry database is damaged",
                registry::Condition::Other => "the agent's registry failed",
            };
            Status::internal(format!(
                "{what}; nothing was changed (details in the agent's log)"
            ))
        }
    }
}

/// Who acts, for the history: the client certificate's common name (what mTLS proved), with
/// the user the CLI claims in parentheses (what it says, for a shared operator certificate).
fn actor<T>(request: &Request<T>, claimed: &str) -> String {
    // The authorisation layer put the caller there; nothing reaches a handler without one.
    let proven = request
        .extensions()
        .get::<crate::access::Caller>()
        .map_or_else(|| "unauthenticated".to_string(), |c| c.name.clone());
    if claimed.is_empty() {
        proven
    } else {
        format!("{proven} ({claimed})")
    }
}

type LogStreamOut = Pin<Box<dyn Stream<Item = Result<pb::LogLine, Status>> + Send>>;
type DeployProgressOut = Pin<Box<dyn Stream<Item = Result<pb::DeployProgress, Status>> + Send>>;

/// The spec and the actor of a deploy request.
fn deploy_request(
    request: Request<pb::DeployRequest>,
) -> Result<(servicedef::Service, String), Status> {
    let req_actor = actor(&request, &request.get_ref().actor);
    Ok((spec_of(request.into_inner().spec, "deploy")?, req_actor))
}

/// The validated spec a `what` request carries.
fn spec_of(spec: Option<pb::ServiceSpec>, what: &str) -> Result<servicedef::Service, Status> {
    let spec =
        spec.ok_or_else(|| Status::invalid_argument(format!("{what} request has no spec")))?;
    servicedef::Service::try_from(spec).map_err(|e| status(AgentError::InvalidSpec(e.to_string())))
}

#[tonic::async_trait]
impl Agent for AgentApi {
    async fn deploy(
        &self,
        request: Request<pb::DeployRequest>,
    ) -> Result<Response<pb::DeployResponse>, Status> {
        let (spec, req_actor) = deploy_request(request)?;
        let deployer = Arc::clone(&self.deployer);
        // Its own task, as for DeployWatch: a caller that goes away does not cut it short.
        let outcome = tokio::spawn(async move { deployer.deploy(spec, &req_actor).await })
            .await
            .map_err(|e| Status::internal(format!("the deploy task failed: {e}")))?
            .map_err(status)?;
        Ok(Response::new(convert::outcome_to_wire(outcome)))
    }

    type DeployWatchStream = DeployProgressOut;

    async fn deploy_watch(
        &self,
        request: Request<pb::DeployRequest>,
    ) -> Result<Response<Self::DeployWatchStream>, Status> {
        let (spec, req_actor) = deploy_request(request)?;
        let (out, answers) = tokio::sync::mpsc::unbounded_channel();
        let deployer = Arc::clone(&self.deployer);
        // Its own task: a caller that goes away (Ctrl-C) does not cut the deploy short.
        tokio::spawn(async move {
            let (steps_tx, mut steps) = tokio::sync::mpsc::unbounded_channel();
            let deploy = crate::progress::watched(steps_tx, deployer.deploy(spec, &req_actor));
            tokio::pin!(deploy);
            let forward = |step| {
                let _ = out.send(Ok(pb::DeployProgress {
                    kind: Some(pb::deploy_progress::Kind::Step(convert::step_to_wire(step))),
                }));
            };
            let outcome = loop {
                tokio::select! {
                    biased;
                    Some(step) = steps.recv() => forward(step),
                    outcome = &mut deploy => break outcome,
                }
            };
            while let Ok(step) = steps.try_recv() {
                forward(step);
            }
            let last = outcome.map_err(status).map(|outcome| pb::DeployProgress {
                kind: Some(pb::deploy_progress::Kind::Done(convert::outcome_to_wire(
                    outcome,
                ))),
            });
            let _ = out.send(last);
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::UnboundedReceiverStream::new(answers),
        )))
    }

    async fn plan(
        &self,
        request: Request<pb::DeployRequest>,
    ) -> Result<Response<pb::PlanResponse>, Status> {
        let spec = spec_of(request.into_inner().spec, "plan")?;
        let plan = self.deployer.plan_deploy(&spec).await.map_err(status)?;
        Ok(Response::new(convert::plan_to_wire(plan)))
    }

    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResponse>, Status> {
        let versions = self
            .deployer
            .history(&request.into_inner().service)
            .map_err(status)?;
        Ok(Response::new(pb::HistoryResponse {
            versions: versions.into_iter().map(convert::version_to_wire).collect(),
        }))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::DeployResponse>, Status> {
        let who = actor(&request, &request.get_ref().actor);
        let req = request.into_inner();
        let outcome = self
            .deployer
            .rollback(&req.service, req.version, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::outcome_to_wire(outcome)))
    }

    async fn undeploy(
        &self,
        request: Request<pb::ServiceRef>,
    ) -> Result<Response<pb::OperationResponse>, Status> {
        let who = actor(&request, &request.get_ref().actor);
        let req = request.into_inner();
        self.deployer
            .undeploy(&req.name, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::OperationResponse { status: None }))
    }

    async fn stop(
        &self,
        request: Request<pb::ServiceRef>,
    ) -> Result<Response<pb::OperationResponse>, Status> {
        let who = actor(&request, &request.get_ref().actor);
        let req = request.into_inner();
        let view = self.deployer.stop(&req.name, &who).await.map_err(status)?;
        Ok(Response::new(pb::OperationResponse {
            status: Some(convert::view_to_wire(view)),
        }))
    }

    async fn start(
        &self,
        request: Request<pb::ServiceRef>,
    ) -> Result<Response<pb::OperationResponse>, Status> {
        let who = actor(&request, &request.get_ref().actor);
        let req = request.into_inner();
        let view = self.deployer.start(&req.name, &who).await.map_err(status)?;
        Ok(Response::new(pb::OperationResponse {
            status: Some(convert::view_to_wire(view)),
        }))
    }

    async fn restart(
        &self,
        request: Request<pb::ServiceRef>,
    ) -> Result<Response<pb::OperationResponse>, Status> {
        let who = actor(&request, &request.get_ref().actor);
        let req = request.into_inner();
        let view = self
            .deployer
            .restart(&req.name, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::OperationResponse {
            status: Some(convert::view_to_wire(view)),
        }))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let req = request.into_inner();
        let only = (!req.service.is_empty()).then_some(req.service.as_str());
        let views = self.deployer.status(only).await.map_err(status)?;
        let strays = self
            .deployer
            .strays()
            .into_iter()
            .filter(|s| only.is_none_or(|name| s.service == name))
            .map(convert::stray_to_wire)
            .collect();
        Ok(Response::new(pb::StatusResponse {
            services: views.into_iter().map(convert::view_to_wire).collect(),
            strays,
        }))
    }

    type LogsStream = LogStreamOut;

    async fn logs(
        &self,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let req = request.into_inner();
        let component = (!req.component.is_empty()).then_some(req.component.as_str());
        let options = runtime::LogOptions {
            tail: (req.tail > 0).then_some(req.tail),
            follow: req.follow,
            timestamps: req.timestamps,
            since: (req.since > 0).then_some(req.since),
        };
        let lines = self
            .deployer
            .logs(&req.service, component, &options)
            .await
            .map_err(status)?;
        let out = lines.map(|(component, item)| match item {
            Ok(line) => Ok(pb::LogLine {
                component,
                stream: line.stream.as_str().to_string(),
                line: line.line,
            }),
            Err(e) => Err(Status::aborted(format!("logs of {component}: {e}"))),
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn events(
        &self,
        request: Request<pb::EventsRequest>,
    ) -> Result<Response<pb::EventsResponse>, Status> {
        let req = request.into_inner();
        let only = (!req.service.is_empty()).then_some(req.service.as_str());
        let limit = if req.limit == 0 {
            50
        } else {
            req.limit.min(10_000)
        };
        let events = self.deployer.events(only, limit).map_err(status)?;
        Ok(Response::new(pb::EventsResponse {
            events: events.into_iter().map(convert::event_to_wire).collect(),
        }))
    }

    async fn node_status(
        &self,
        _request: Request<pb::NodeStatusRequest>,
    ) -> Result<Response<pb::NodeStatusResponse>, Status> {
        Ok(Response::new(convert::node_to_wire(
            self.node.report().await,
        )))
    }

    async fn set_secret(
        &self,
        request: Request<pb::SetSecretRequest>,
    ) -> Result<Response<pb::SecretInfo>, Status> {
        let who = actor(&request, &request.get_ref().actor);
        let req = request.into_inner();
        let view = self
            .deployer
            .set_secret(&req.service, &req.name, &req.value, &who)
            .map_err(status)?;
        Ok(Response::new(convert::secret_to_wire(view)))
    }

    async fn list_secrets(
        &self,
        request: Request<pb::ListSecretsRequest>,
    ) -> Result<Response<pb::ListSecretsResponse>, Status> {
        let views = self
            .deployer
            .list_secrets(&request.into_inner().service)
            .map_err(status)?;
        Ok(Response::new(pb::ListSecretsResponse {
            secrets: views.into_iter().map(convert::secret_to_wire).collect(),
        }))
    }

    async fn remove_secret(
        &self,
        request: Request<pb::RemoveSecretRequest>,
    ) -> Result<Response<pb::RemoveSecretResponse>, Status> {
        let who = actor(&request, &request.get_ref().actor);
        let req = request.into_inner();
        self.deployer
            .remove_secret(&req.service, &req.name, &who)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RemoveSecretResponse {}))
    }

    async fn registry_login(
        &self,
        request: Request<pb::RegistryLoginRequest>,
    ) -> Result<Response<pb::RegistryLoginResponse>, Status> {
        let who = actor(&request, "");
        let req = request.into_inner();
        check_registry(&req.registry)?;
        let bad_user = req.username.is_empty()
            || req.username.len() > 255
            || req.username.chars().any(|c| c.is_control() || c == ':');
        if bad_user {
            return Err(Status::invalid_argument(
                "username must be 1 to 255 characters, without ':' or control characters",
            ));
        }
        if req.password.is_empty() || req.password.contains(['\n', '\r']) {
            return Err(Status::invalid_argument(
                "the password must be non-empty and a single line",
            ));
        }
        match self
            .logins
            .login(&req.registry, &req.username, req.password.as_bytes())
            .await
        {
            Ok(()) => {
                tracing::info!(registry = %req.registry, username = %req.username, actor = %who, "registry login stored");
                Ok(Response::new(pb::RegistryLoginResponse {}))
            }
            // The registry's refusal, not mcp's: PermissionDenied is kept for roles (exit 4).
            Err(e @ RuntimeError::LoginRefused { .. }) => {
                Err(Status::unauthenticated(e.to_string()))
            }
            Err(e) => Err(Status::aborted(format!(
                "logging in to {}: {e}",
                req.registry
            ))),
        }
    }

    async fn registry_logout(
        &self,
        request: Request<pb::RegistryLogoutRequest>,
    ) -> Result<Response<pb::RegistryLogoutResponse>, Status> {
        let req = request.into_inner();
        check_registry(&req.registry)?;
        let was_logged_in = self
            .logins
            .logout(&req.registry)
            .await
            .map_err(|e| Status::aborted(format!("logging out of {}: {e}", req.registry)))?;
        Ok(Response::new(pb::RegistryLogoutResponse { was_logged_in }))
    }
}
