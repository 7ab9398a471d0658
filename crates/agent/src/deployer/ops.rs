//! The operator's verbs. Each takes the service's lock, journals itself in the registry
//! (`pending_operations`) before touching the runtime, and clears the journal when it ends,
//! so an agent killed half-way finishes or undoes it on restart (`recover.rs`).

use registry::DesiredState;
use servicedef::{Component, RuntimeKind, Service};

use super::{DeployOutcome, Deployer, ServiceView, plan};
use crate::AgentError;
use crate::failpoint;

impl Deployer {
    /// Precondition: `spec` names this node. Makes the node run `spec` and records it.
    pub async fn deploy(&self, spec: Service, actor: &str) -> Result<DeployOutcome, AgentError> {
        spec.validate()
            .map_err(|e| AgentError::InvalidSpec(e.to_string()))?;
        if spec.node != self.node {
            return Err(AgentError::WrongNode {
                service: spec.name.to_string(),
                wanted: spec.node.clone(),
                this: self.node.clone(),
            });
        }
        for component in &spec.components {
            self.runtime_for(component)?;
        }
        let name = spec.name.to_string();
        let _guard = self.lock_service(&name).await;
        let previous = self.registry(|r| r.service(&name))?;
        // Components new or changed since the recorded spec will be created: their images
        // are made available while the service's instances are listed (two podman calls at
        // once instead of one after the other).
        let changed = plan::changed_components(&spec, previous.as_ref().map(|p| &p.spec));
        let (instances, pulled) =
            tokio::join!(self.service_instances(&name), self.pull_images(&changed));
        let instances = instances?;
        let mut plan = plan::plan(&spec, &instances);
        let unchanged = previous
            .as_ref()
            .is_some_and(|p| p.spec_hash == spec.spec_hash() && p.spec.active == spec.active);
        if unchanged && plan.is_empty() {
            return Ok(DeployOutcome {
                changed: false,
                replaced: Vec::new(),
                status: self.view_of(&name).await?,
            });
        }
        // Images and ports first: either failing fails the deploy before anything changes.
        pulled?;
        let vanished: Vec<&Component> = plan
            .create
            .iter()
            .filter(|c| !changed.iter().any(|p| p.name == c.name))
            .copied()
            .collect();
        self.pull_images(&vanished).await?;
        let (reservation, host_ports) = if spec.active {
            self.reserve_ports(&spec, &mut plan, previous.as_ref())?
        } else {
            self.reserve_ports(&spec, &mut plan::Plan::default(), None)?
        };
        self.registry(|r| r.begin_operation(&name, "deploy", actor, Some(&spec)))?;
        failpoint::hit("deploy:journaled");
        let applied = self.apply(&spec, &plan, &host_ports).await;
        failpoint::hit("deploy:applied");
        // Recording can fail too (a full disk, a locked database): then the node goes back
        // to what the registry still describes, as for a failed apply.
        let recorded = applied.and_then(|listing| {
            self.registry(|r| r.record_deploy(&spec, &host_ports, actor))
                .map(|_recorded| listing)
        });
        let listing = match recorded {
            Ok(listing) => listing,
            Err(err) => {
                self.roll_back(&spec, &plan, previous.as_ref()).await;
                let detail = err.to_string();
                self.end_with_event(&name, "deploy-failed", actor, &detail);
                return Err(err);
            }
        };
        self.end_operation(&name);
        drop(reservation);
        Ok(DeployOutcome {
            changed: true,
            replaced: plan.create.iter().map(|c| c.name.to_string()).collect(),
            status: self.view_from(&name, listing).await?,
        })
    }

    /// Precondition: the service is deployed. Stops every component; they stay stopped and
    /// their host ports are released.
    pub async fn stop(&self, name: &str, actor: &str) -> Result<ServiceView, AgentError> {
        let _guard = self.lock_service(name).await;
        self.record(name)?;
        self.journaled(name, "stop", actor, self.stop_locked(name, actor))
            .await?;
        self.view_of(name).await
    }

    pub(super) async fn stop_locked(&self, name: &str, actor: &str) -> Result<(), AgentError> {
        for instance in self.service_instances(name).await? {
            self.stop_instance(&instance.name, instance.runtime).await?;
            failpoint::hit("stop:stopped-one");
        }
        self.registry(|r| r.set_desired_state(name, DesiredState::Stopped, None, "stop", actor))
    }

    /// Precondition: the service is deployed. Starts every component that is not running,
    /// re-creating any that disappeared; resets the monitor's back-off.
    pub async fn start(&self, name: &str, actor: &str) -> Result<ServiceView, AgentError> {
        let _guard = self.lock_service(name).await;
        self.record(name)?;
        self.journaled(
            name,
            "start",
            actor,
            self.start_locked(name, "start", actor),
        )
        .await?;
        self.view_of(name).await
    }

    pub(super) async fn start_locked(
        &self,
        name: &str,
        action: &str,
        actor: &str,
    ) -> Result<(), AgentError> {
        let record = self.record(name)?;
        let mut spec = record.spec.clone();
        spec.active = true;
        let instances = self.service_instances(name).await?;
        let mut plan = plan::plan(&spec, &instances);
        let (reservation, host_ports) = self.reserve_ports(&spec, &mut plan, Some(&record))?;
        self.pull_images(&plan.create).await?;
        self.apply(&spec, &plan, &host_ports).await?;
        self.registry(|r| {
            r.set_desired_state(
                name,
                DesiredState::Running,
                Some(&host_ports),
                action,
                actor,
            )
        })?;
        drop(reservation);
        Ok(())
    }

    /// Precondition: the service is deployed. Stops then starts every component, keeping
    /// instances (and their ports).
    pub async fn restart(&self, name: &str, actor: &str) -> Result<ServiceView, AgentError> {
        let _guard = self.lock_service(name).await;
        self.record(name)?;
        let work = async {
            for instance in self.service_instances(name).await? {
                self.backend(instance.runtime)?
                    .restart(&instance.name, self.stop_timeout)
                    .await
                    .map_err(AgentError::runtime(format!("restarting {}", instance.name)))?;
                failpoint::hit("restart:restarted-one");
            }
            // Re-creates anything missing and records the intent (ports are kept).
            self.start_locked(name, "restart", actor).await
        };
        self.journaled(name, "restart", actor, work).await?;
        self.view_of(name).await
    }

    /// Removes every instance labelled with the service, then forgets it. An unknown service
    /// with no instances left is an error; leftover instances of a forgotten one are removed.
    pub async fn undeploy(&self, name: &str, actor: &str) -> Result<(), AgentError> {
        let _guard = self.lock_service(name).await;
        let known = self.registry(|r| r.service(name))?.is_some();
        let instances = self.service_instances(name).await?;
        if !known && instances.is_empty() {
            return Err(AgentError::ServiceNotFound(name.to_string()));
        }
        self.journaled(name, "undeploy", actor, self.undeploy_locked(name, actor))
            .await
    }

    pub(super) async fn undeploy_locked(&self, name: &str, actor: &str) -> Result<(), AgentError> {
        for instance in self.service_instances(name).await? {
            self.stop_instance(&instance.name, instance.runtime).await?;
            self.remove_instance(&instance.name, instance.runtime)
                .await?;
            failpoint::hit("undeploy:removed-one");
        }
        self.registry(|r| r.delete_service(name, actor))?;
        Ok(())
    }

    pub(super) async fn stop_instance(
        &self,
        instance: &str,
        kind: RuntimeKind,
    ) -> Result<(), AgentError> {
        self.backend(kind)?
            .stop(instance, self.stop_timeout)
            .await
            .map_err(AgentError::runtime(format!("stopping {instance}")))
    }

    pub(super) async fn remove_instance(
        &self,
        instance: &str,
        kind: RuntimeKind,
    ) -> Result<(), AgentError> {
        self.backend(kind)?
            .remove(instance)
            .await
            .map_err(AgentError::runtime(format!("removing {instance}")))
    }

    /// Runs `work` between a journal entry and its removal. A failure is journaled as an
    /// event; only a crash leaves the entry behind.
    async fn journaled<T>(
        &self,
        name: &str,
        action: &str,
        actor: &str,
        work: impl std::future::Future<Output = Result<T, AgentError>>,
    ) -> Result<T, AgentError> {
        self.registry(|r| r.begin_operation(name, action, actor, None))?;
        match work.await {
            Ok(value) => {
                self.end_operation(name);
                Ok(value)
            }
            Err(err) => {
                self.end_with_event(name, &format!("{action}-failed"), actor, &err.to_string());
                Err(err)
            }
        }
    }

    pub(super) fn end_operation(&self, name: &str) {
        if let Err(err) = self.registry(|r| r.end_operation(name)) {
            tracing::error!(service = name, error = %err, "cannot clear the operation journal");
        }
    }

    fn end_with_event(&self, name: &str, action: &str, actor: &str, detail: &str) {
        let _ = self.registry(|r| r.record_event(name, action, actor, Some(detail)));
        self.end_operation(name);
    }
}
