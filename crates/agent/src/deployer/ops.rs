//! The operator's verbs. Each takes the service's lock, journals itself in the registry
//! (`pending_operations`) before touching the runtime, and clears the journal when it ends,
//! so an agent killed half-way finishes or undoes it on restart (`recover.rs`).
//!
//! Invariants: the registry records a deploy only after its instances run (and, for routed
//! components, passed their check and took the traffic); a failure before that removes what
//! the deploy created and brings the recorded instances back.

use registry::{DesiredState, EventAction, Operation};
use servicedef::{Component, RuntimeKind, Service};

use super::{DeployOutcome, Deployer, ServiceView, plan};
use crate::AgentError;
use crate::{failpoint, progress};

impl Deployer {
    /// Precondition: `spec` names this node. Makes the node run `spec` and records it.
    pub async fn deploy(&self, spec: Service, actor: &str) -> Result<DeployOutcome, AgentError> {
        self.deploy_as(spec, actor, None).await
    }

    /// Checks that do not need the service's lock: the spec, its node, its runtimes.
    pub(super) fn admit(&self, spec: &Service) -> Result<(), AgentError> {
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
        Ok(())
    }

    /// A deploy; `detail` is recorded with the new version (e.g. "rollback to 2").
    ///
    /// Routed components that run are replaced side by side: the new instance starts on
    /// new host ports, must pass its readiness check, the proxy is switched to it, and
    /// only then is the old one drained and removed. Any failure before the switch leaves
    /// the old instances serving and removes the new ones.
    pub(super) async fn deploy_as(
        &self,
        spec: Service,
        actor: &str,
        detail: Option<&str>,
    ) -> Result<DeployOutcome, AgentError> {
        self.admit(&spec)?;
        let name = spec.name.to_string();
        let _guard = self.lock_service(&name).await;
        let spec = self.resolve_secrets(spec)?;
        self.check_public_claims(&spec)?;
        let previous = self.read(|r| r.service(&name))?;
        // Components new or changed since the recorded spec will be created: their images
        // are made available while the service's instances are listed and the host's NAT
        // table is read for the port allocator (at once instead of one after the other).
        let changed = plan::changed_components(&spec, previous.as_ref().map(|p| &p.spec));
        let (instances, pulled, redirected) = tokio::join!(
            self.service_instances(&name),
            self.pull_images(&changed),
            self.ports.redirected()
        );
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
            self.reserve_ports(&spec, &mut plan, previous.as_ref(), &redirected)?
        } else {
            self.reserve_ports(&spec, &mut plan::Plan::default(), None, &redirected)?
        };
        // The ports retired instances still serve on stay out of reach until they are gone.
        let retiring = self.retiring_ports(&plan, previous.as_ref());
        let _retiring_hold = self.ports.hold(retiring.iter().map(|(_, port)| *port));
        self.registry(|r| r.begin_operation(&name, Operation::Deploy, actor, Some(&spec)))?;
        failpoint::hit("deploy:journaled");
        let applied = self.apply(&spec, &plan, &host_ports).await;
        failpoint::hit("deploy:applied");
        let ready = match applied {
            Ok(listing) => self
                .await_ready(&spec, &plan, &host_ports)
                .await
                .map(|()| listing),
            Err(err) => Err(err),
        };
        // The proxy moves before the registry records: a crash in between is undone at
        // start, which re-points the proxy at what the registry still holds.
        let switched = match ready {
            Ok(listing) => {
                let step = progress::begin("switch", "", "switching traffic".into());
                let switched = self.switch_traffic(Some((&spec, &host_ports))).await;
                if switched.is_ok() {
                    step.done("traffic switched".into());
                }
                switched.map(|()| listing)
            }
            Err(err) => Err(err),
        };
        failpoint::hit("deploy:switched");
        // Recording can fail too (a full disk, a locked database): then the node goes back
        // to what the registry still describes, as for a failed apply.
        let recorded = switched.and_then(|listing| {
            self.registry(|r| {
                let recorded = r.record_deploy_with(&spec, &host_ports, actor, detail)?;
                r.prune_deploy_specs(&name, self.keep_versions)?;
                Ok(recorded)
            })
            .map(|_recorded| listing)
        });
        let listing = match recorded {
            Ok(listing) => listing,
            Err(err) => {
                // Traffic goes back to the recorded instances before the new ones go.
                self.settle_traffic(&name).await;
                self.sync_traffic().await;
                self.drain(&self.created_backends(&plan, &host_ports)).await;
                self.roll_back(&spec, &plan, previous.as_ref()).await;
                let detail = err.to_string();
                self.end_with_event(
                    &name,
                    EventAction::Failed(Operation::Deploy),
                    actor,
                    &detail,
                );
                return Err(err);
            }
        };
        self.settle_traffic(&name).await;
        drop(reservation);
        // The deploy stands; what is left is retiring the old instances, which recovery
        // finishes (not undoes) after a crash.
        if !plan.retire.is_empty() {
            // Without this journal entry a crash during the retirement leaves the old
            // instance for the monitor to remove as a spare: worth a warning, not a failure.
            self.record_best_effort("retire journal", |r| {
                r.begin_operation(&name, Operation::Retire, actor, None)
            });
        }
        self.retire(&plan, &retiring).await;
        self.end_operation(&name);
        self.prune_secrets(&name, previous.as_ref().map(|p| &p.spec))
            .await;
        let listing = if plan.retire.is_empty() {
            listing
        } else {
            None
        };
        Ok(DeployOutcome {
            changed: true,
            replaced: plan.create.iter().map(|c| c.name.to_string()).collect(),
            status: self.view_from(&name, listing).await?,
        })
    }

    /// Where the proxy reaches the instances `plan` creates.
    fn created_backends(
        &self,
        plan: &plan::Plan<'_>,
        host_ports: &registry::HostPorts,
    ) -> Vec<std::net::SocketAddr> {
        host_ports
            .iter()
            .filter(|(key, _)| plan.create.iter().any(|c| c.name.as_str() == key.component))
            .map(|(_, port)| self.upstream(*port))
            .collect()
    }

    /// Takes `record`'s routes out of the proxy (until `settle_traffic`) and lets their
    /// in-flight work finish, before its instances stop. A proxy that cannot be told is
    /// logged: stopping goes on.
    async fn route_away(&self, record: &registry::ServiceRecord) {
        let mut gone = record.spec.clone();
        gone.active = false;
        if let Err(err) = self
            .switch_traffic(Some((&gone, &registry::HostPorts::new())))
            .await
        {
            tracing::warn!(service = %gone.name, error = %err, "cannot take the service's routes out of the proxy");
            return;
        }
        let backends: Vec<_> = record
            .host_ports()
            .values()
            .map(|port| self.upstream(*port))
            .collect();
        self.drain(&backends).await;
    }

    /// The host ports the instances `plan` retires serve on (from the previous record).
    fn retiring_ports(
        &self,
        plan: &plan::Plan<'_>,
        previous: Option<&registry::ServiceRecord>,
    ) -> Vec<(String, u16)> {
        let Some(previous) = previous else {
            return Vec::new();
        };
        previous
            .host_ports()
            .into_iter()
            .filter(|(key, _)| plan.side_by_side(&key.component))
            .map(|(key, port)| (key.component, port))
            .collect()
    }

    /// After the switch: lets the retired instances finish their in-flight work (bounded by
    /// the drain timeout), then stops and removes them. Failures are logged: the new version
    /// serves, and the next deploy removes a spare instance.
    async fn retire(&self, plan: &plan::Plan<'_>, ports: &[(String, u16)]) {
        if plan.retire.is_empty() {
            return;
        }
        let backends: Vec<_> = ports.iter().map(|(_, port)| self.upstream(*port)).collect();
        let step = progress::begin("drain", "", "draining the old instances".into());
        self.drain(&backends).await;
        step.done("drained".into());
        failpoint::hit("deploy:drained");
        for old in &plan.retire {
            let stopped = self.stop_instance(&old.name, old.kind).await;
            let removed = match stopped {
                Ok(()) => self.remove_instance(&old.name, old.kind).await,
                Err(e) => Err(e),
            };
            if let Err(err) = removed {
                tracing::warn!(instance = %old.name, error = %err, "cannot remove a retired instance");
            }
        }
    }

    /// Precondition: the service is deployed. Stops every component; they stay stopped and
    /// their host ports are released.
    pub async fn stop(&self, name: &str, actor: &str) -> Result<ServiceView, AgentError> {
        let _guard = self.lock_service(name).await;
        let record = self.record(name)?;
        let stopped = self
            .journaled(name, Operation::Stop, actor, async {
                self.route_away(&record).await;
                self.stop_locked(name, actor).await
            })
            .await;
        self.settle_traffic(name).await;
        self.sync_traffic().await;
        stopped?;
        self.view_of(name).await
    }

    pub(super) async fn stop_locked(&self, name: &str, actor: &str) -> Result<(), AgentError> {
        for instance in self.service_instances(name).await? {
            self.stop_instance(&instance.name, instance.runtime).await?;
            failpoint::hit("stop:stopped-one");
        }
        self.registry(|r| {
            r.set_desired_state(name, DesiredState::Stopped, None, EventAction::Stop, actor)
        })
    }

    /// Precondition: the service is deployed. Starts every component that is not running,
    /// re-creating any that disappeared; resets the monitor's back-off.
    pub async fn start(&self, name: &str, actor: &str) -> Result<ServiceView, AgentError> {
        let _guard = self.lock_service(name).await;
        self.record(name)?;
        self.journaled(
            name,
            Operation::Start,
            actor,
            self.start_locked(name, EventAction::Start, actor),
        )
        .await?;
        self.sync_traffic().await;
        self.view_of(name).await
    }

    pub(super) async fn start_locked(
        &self,
        name: &str,
        action: EventAction,
        actor: &str,
    ) -> Result<(), AgentError> {
        let record = self.record(name)?;
        let mut spec = record.spec.clone();
        spec.active = true;
        let (instances, redirected) =
            tokio::join!(self.service_instances(name), self.ports.redirected());
        let instances = instances?;
        let mut plan = plan::plan(&spec, &instances);
        let (reservation, host_ports) =
            self.reserve_ports(&spec, &mut plan, Some(&record), &redirected)?;
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
            self.start_locked(name, EventAction::Restart, actor).await
        };
        self.journaled(name, Operation::Restart, actor, work)
            .await?;
        self.sync_traffic().await;
        self.view_of(name).await
    }

    /// Removes every instance labelled with the service, then forgets it. An unknown service
    /// with no instances left is an error; leftover instances of a forgotten one are removed.
    pub async fn undeploy(&self, name: &str, actor: &str) -> Result<(), AgentError> {
        let _guard = self.lock_service(name).await;
        let record = self.read(|r| r.service(name))?;
        let instances = self.service_instances(name).await?;
        if record.is_none() && instances.is_empty() {
            return Err(AgentError::ServiceNotFound(name.to_string()));
        }
        let undeployed = self
            .journaled(name, Operation::Undeploy, actor, async {
                if let Some(record) = &record {
                    self.route_away(record).await;
                }
                self.undeploy_locked(name, actor).await
            })
            .await;
        self.settle_traffic(name).await;
        self.sync_traffic().await;
        if undeployed.is_ok() {
            self.prune_secrets(name, record.as_ref().map(|r| &r.spec))
                .await;
        }
        undeployed
    }

    pub(super) async fn undeploy_locked(&self, name: &str, actor: &str) -> Result<(), AgentError> {
        for instance in self.service_instances(name).await? {
            self.stop_instance(&instance.name, instance.runtime).await?;
            self.remove_instance(&instance.name, instance.runtime)
                .await?;
            failpoint::hit("undeploy:removed-one");
        }
        // A listing after the removals, so the next status need not list (observed.rs).
        if let Err(err) = self.list_service_containers(name).await {
            tracing::debug!(service = name, error = %err, "no listing after the undeploy");
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
        action: Operation,
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
                self.end_with_event(name, EventAction::Failed(action), actor, &err.to_string());
                Err(err)
            }
        }
    }

    pub(super) fn end_operation(&self, name: &str) {
        if let Err(err) = self.registry(|r| r.end_operation(name)) {
            tracing::error!(service = name, error = %err, "cannot clear the operation journal");
        }
    }

    fn end_with_event(&self, name: &str, action: EventAction, actor: &str, detail: &str) {
        self.record_best_effort("operation event", |r| {
            r.record_event(name, action, actor, Some(detail))
        });
        self.end_operation(name);
    }
}
