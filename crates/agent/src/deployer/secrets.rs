//! Secrets of services on this node: set, list and remove (values sealed in the registry by
//! the node key), and their use at deploy: each component's secret versions go into its spec
//! (so the spec hash, and a redeploy, see a new value), their values into the runtime's spec.
//!
//! Invariant: a value is in clear only in memory, on its way from the caller to the registry
//! (sealed) or from the registry to a runtime; no view, event, error or log line holds one.

use registry::ServiceRecord;
use runtime::{SecretEnv as RuntimeSecret, SecretValue};
use servicedef::{Component, Service, ServiceName};

use super::Deployer;
use crate::AgentError;
use crate::secret_box::SecretBox;

/// Larger values are files, not secrets (podman's own limit is 512 KB).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// A secret as the operator sees it: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretView {
    pub service: String,
    pub name: String,
    pub version: u64,
    pub set_at: i64,
    /// Components of the deployed spec that receive it.
    pub used_by: Vec<String>,
}

/// The name of one version of a secret in a runtime's store.
fn handle(service: &str, secret: &str, version: u64) -> String {
    format!("mcp.{service}.{secret}.{version}")
}

fn check_names(service: &str, name: Option<&str>) -> Result<(), AgentError> {
    ServiceName::new(service.to_string())
        .map_err(|e| AgentError::BadRequest(format!("service: {e}")))?;
    if let Some(name) = name {
        servicedef::check_secret_name(name).map_err(AgentError::BadRequest)?;
    }
    Ok(())
}

fn secret_view(record: registry::SecretRecord, recorded: Option<&ServiceRecord>) -> SecretView {
    SecretView {
        used_by: users_of(recorded, &record.name),
        service: record.service,
        name: record.name,
        version: record.version,
        set_at: record.set_at,
    }
}

/// Components of the deployed spec (`recorded`) that receive secret `name`.
fn users_of(recorded: Option<&ServiceRecord>, name: &str) -> Vec<String> {
    recorded
        .into_iter()
        .flat_map(|r| r.spec.components.iter())
        .filter(|c| c.secrets.iter().any(|s| s.secret == name))
        .map(|c| c.name.to_string())
        .collect()
}

impl Deployer {
    /// Seals secret values with `sealer` (the node key).
    pub fn with_secrets(mut self, sealer: SecretBox) -> Self {
        self.secrets = Some(sealer);
        self
    }

    fn sealer(&self) -> Result<&SecretBox, AgentError> {
        self.secrets.as_ref().ok_or_else(|| {
            AgentError::BadRequest("this agent was started without a secret key".into())
        })
    }

    /// Stores a new version of a secret. Running components keep the value they started with
    /// until their service is deployed again.
    pub fn set_secret(
        &self,
        service: &str,
        name: &str,
        value: &[u8],
        actor: &str,
    ) -> Result<SecretView, AgentError> {
        check_names(service, Some(name))?;
        if value.is_empty() || value.len() > MAX_SECRET_BYTES {
            return Err(AgentError::BadRequest(format!(
                "the value of secret {name} must be 1 to {MAX_SECRET_BYTES} bytes, not {}",
                value.len()
            )));
        }
        if std::str::from_utf8(value).is_err() || value.contains(&0) {
            return Err(AgentError::BadRequest(format!(
                "the value of secret {name} must be UTF-8 text without NUL bytes \
                 (it becomes an environment variable)"
            )));
        }
        let sealed = self.sealer()?.seal(service, name, value)?;
        let record = self.registry(|r| r.set_secret(service, name, &sealed, actor))?;
        tracing::info!(service, secret = name, version = record.version, %actor, "secret set");
        let recorded = self.read(|r| r.service(service))?;
        Ok(secret_view(record, recorded.as_ref()))
    }

    /// The service's secrets, by name.
    pub fn list_secrets(&self, service: &str) -> Result<Vec<SecretView>, AgentError> {
        check_names(service, None)?;
        let records = self.read(|r| r.secrets(service))?;
        // One read of the deployed spec answers "used by" for every secret.
        let recorded = self.read(|r| r.service(service))?;
        Ok(records
            .into_iter()
            .map(|r| secret_view(r, recorded.as_ref()))
            .collect())
    }

    /// Removes a secret the deployed spec does not use.
    pub async fn remove_secret(
        &self,
        service: &str,
        name: &str,
        actor: &str,
    ) -> Result<(), AgentError> {
        check_names(service, Some(name))?;
        let _guard = self.lock_service(service).await;
        let recorded = self.read(|r| r.service(service))?;
        let users = users_of(recorded.as_ref(), name);
        if !users.is_empty() {
            return Err(AgentError::SecretInUse {
                service: service.to_string(),
                name: name.to_string(),
                components: users.join(", "),
            });
        }
        if !self.registry(|r| r.remove_secret(service, name, actor))? {
            return Err(AgentError::SecretNotFound {
                service: service.to_string(),
                name: name.to_string(),
            });
        }
        tracing::info!(service, secret = name, %actor, "secret removed");
        Ok(())
    }

    /// `spec` with each secret's current version filled in; a secret that is not set is bad
    /// input, found before anything runs.
    pub(super) fn resolve_secrets(&self, mut spec: Service) -> Result<Service, AgentError> {
        let service = spec.name.to_string();
        for component in &mut spec.components {
            for secret in &mut component.secrets {
                let current = self.read(|r| r.sealed_secret(&service, &secret.secret))?;
                let Some(current) = current else {
                    return Err(AgentError::InvalidSpec(format!(
                        "component {}: secret {} of service {service} is not set on node {}; \
                         set it with `mcp secret set {service} {}`",
                        component.name, secret.secret, self.node, secret.secret
                    )));
                };
                secret.version = current.version;
            }
        }
        Ok(spec)
    }

    /// What the runtime needs to pass `component`'s secrets: the version its spec names (the
    /// runtime's store keeps that version's value), with the current value for a store that
    /// lacks it.
    pub(super) fn secret_envs(
        &self,
        spec: &Service,
        component: &Component,
    ) -> Result<Vec<RuntimeSecret>, AgentError> {
        let service = spec.name.as_str();
        component
            .secrets
            .iter()
            .map(|secret| {
                let sealed = self
                    .registry(|r| r.sealed_secret(service, &secret.secret))?
                    .ok_or_else(|| AgentError::SecretNotFound {
                        service: service.to_string(),
                        name: secret.secret.clone(),
                    })?;
                let value = self
                    .sealer()?
                    .open(service, &secret.secret, &sealed.sealed)?;
                let version = if secret.version == 0 {
                    sealed.version
                } else {
                    secret.version
                };
                Ok(RuntimeSecret {
                    var: secret.var.clone(),
                    handle: handle(service, &secret.secret, version),
                    value: SecretValue::new(value),
                })
            })
            .collect()
    }

    /// Drops the runtime's stored versions the recorded spec no longer names (all of them
    /// after an undeploy). `before` is the spec the operation started from: when neither it
    /// nor the recorded one uses secrets there is nothing to prune (and no podman call).
    /// A failure only leaves an unused entry behind: logged, not fatal.
    pub(super) async fn prune_secrets(&self, service: &str, before: Option<&Service>) {
        let uses_secrets = |spec: &Service| spec.components.iter().any(|c| !c.secrets.is_empty());
        let keep: Vec<String> = match self.read(|r| r.service(service)) {
            Ok(record) => {
                let now = record.as_ref().map(|r| &r.spec);
                if !before.is_some_and(uses_secrets) && !now.is_some_and(uses_secrets) {
                    return;
                }
                now.into_iter()
                    .flat_map(|spec| spec.components.iter())
                    .flat_map(|c| c.secrets.iter())
                    .map(|s| handle(service, &s.secret, s.version))
                    .collect()
            }
            Err(e) => {
                tracing::warn!(service, error = %e, "not pruning secrets: registry unreadable");
                return;
            }
        };
        if let Err(e) = self.podman.prune_secrets(service, &keep).await {
            tracing::warn!(service, error = %e, "pruning podman secrets failed");
        }
    }
}
