//! Carrying out a plan on the runtime, checking what it started, and undoing a failed one.
//!
//! Invariant: `apply` touches only the instances its plan names, and `roll_back` leaves the
//! service as its previous record describes (or with nothing, for a first deploy).

use runtime::{InstanceInfo, InstanceState, LogLine};
use servicedef::{Component, RuntimeKind, Service};
use tokio_stream::StreamExt;

use super::{Deployer, ServiceRecord, plan};
use crate::{AgentError, failpoint, progress};

/// Lines of a crashed component's output shown in the error.
const CRASH_LOG_LINES: u32 = 20;

/// How long a new instance that no readiness check awaits must keep running for the deploy
/// to count it started: one that exits within this "dies at once" and fails the deploy. The
/// runtime's start returns as soon as the process is launched, before it could fail. One
/// that listens on a published TCP port sooner is up: the wait ends there.
const START_SETTLE: std::time::Duration = std::time::Duration::from_millis(50);
/// How often its state is looked at meanwhile (a listing of the service: ~2 ms).
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(10);
/// How long an accepted connection must stay open to count as the component listening.
const LISTEN_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

impl Deployer {
    /// Makes the images of `components` available, each distinct image (per backend) once.
    pub(super) async fn pull_images(&self, components: &[&Component]) -> Result<(), AgentError> {
        let mut done: Vec<(RuntimeKind, &str)> = Vec::new();
        for component in components {
            let key = (component.runtime, component.image.as_str());
            if done.contains(&key) {
                continue;
            }
            let image = component.image.as_str();
            let step = progress::begin("pull", component.name.as_str(), format!("pulling {image}"));
            self.runtime_for(component)?
                .pull(image)
                .await
                .map_err(AgentError::runtime(format!("component {}", component.name)))?;
            step.done(format!("pulled {image}"));
            done.push(key);
        }
        Ok(())
    }

    /// Carries out `plan`. When it created instances, returns the service's instances as
    /// listed right after (the listing that checked them), for the caller's status view.
    pub(super) async fn apply(
        &self,
        spec: &Service,
        plan: &plan::Plan<'_>,
        host_ports: &registry::HostPorts,
    ) -> Result<Option<Vec<InstanceInfo>>, AgentError> {
        for instance in plan.remove.iter().chain(plan.replace_old.iter()) {
            let step = progress::begin("stop", "", format!("removing {}", instance.name));
            self.stop_instance(&instance.name, instance.kind).await?;
            self.remove_instance(&instance.name, instance.kind).await?;
            step.done(format!("removed {}", instance.name));
        }
        for instance in &plan.stop {
            self.stop_instance(&instance.name, instance.kind).await?;
        }
        for instance in &plan.start {
            self.backend(instance.kind)?
                .start(&instance.name)
                .await
                .map_err(AgentError::runtime(format!("starting {}", instance.name)))?;
        }
        for component in &plan.create {
            let mut container =
                plan::container_spec(spec, component, host_ports, self.ports.bind_address());
            container.name = plan.instance_name(spec, component);
            container.secrets = self.secret_envs(spec, component)?;
            let (starting, started) = match component.runtime {
                RuntimeKind::Container => ("starting a container", "started container"),
                RuntimeKind::Unikernel => ("building its VM image and booting it", "booted VM"),
            };
            let step = progress::begin("start", component.name.as_str(), starting.into());
            self.runtime_for(component)?
                .run(&container)
                .await
                .map_err(AgentError::runtime(format!("component {}", component.name)))?;
            step.done(format!("{started} {}", container.name));
            failpoint::hit("apply:created-one");
        }
        self.check_started(spec, plan).await
    }

    /// A component that exited right after `run` (within `START_SETTLE`, or before its
    /// readiness check, which watches it from then on) failed to start; say why. Returns
    /// the last listing it looked at (none when nothing was created).
    async fn check_started(
        &self,
        spec: &Service,
        plan: &plan::Plan<'_>,
    ) -> Result<Option<Vec<InstanceInfo>>, AgentError> {
        if plan.create.is_empty() {
            return Ok(None);
        }
        let watched: Vec<&Component> = plan
            .create
            .iter()
            .filter(|c| c.restart != servicedef::RestartPolicy::No)
            .copied()
            .collect();
        // VMs are not: their boot waits for the guest to answer.
        let settling: Vec<String> = watched
            .iter()
            .filter(|c| c.runtime == RuntimeKind::Container)
            .filter(|c| c.readiness().is_none() || c.routes.is_empty())
            .map(|c| plan.instance_name(spec, c))
            .collect();
        let deadline = tokio::time::Instant::now() + START_SETTLE;
        loop {
            let instances = self.service_instances(spec.name.as_str()).await?;
            for component in &watched {
                let name = plan.instance_name(spec, component);
                let Some(info) = instances.iter().find(|i| i.name == name) else {
                    continue;
                };
                if info.state == InstanceState::Exited {
                    return Err(AgentError::Crashed {
                        component: component.name.to_string(),
                        exit_code: info.exit_code.unwrap_or(-1),
                        logs: self
                            .last_lines(&name, component.runtime, CRASH_LOG_LINES)
                            .await,
                    });
                }
            }
            if settling.is_empty()
                || tokio::time::Instant::now() >= deadline
                || answering(&settling, &instances).await
            {
                return Ok(Some(instances));
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    pub(crate) async fn last_lines(
        &self,
        instance: &str,
        kind: servicedef::RuntimeKind,
        n: u32,
    ) -> Vec<String> {
        let Ok(backend) = self.backend(kind) else {
            return Vec::new();
        };
        let options = runtime::LogOptions {
            tail: Some(n),
            ..runtime::LogOptions::default()
        };
        let Ok(mut stream) = backend.logs(instance, &options).await else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        while let Some(Ok(LogLine { line, .. })) = stream.next().await {
            lines.push(line);
        }
        lines
    }

    /// Undo a failed deploy: remove what it created, then bring back the previous spec.
    pub(super) async fn roll_back(
        &self,
        spec: &Service,
        plan: &plan::Plan<'_>,
        previous: Option<&ServiceRecord>,
    ) {
        for component in &plan.create {
            let instance = plan.instance_name(spec, component);
            if let Err(e) = self.remove_instance(&instance, component.runtime).await {
                tracing::warn!(%instance, error = %e, "rollback could not remove an instance");
            }
        }
        let Some(previous) = previous else { return };
        let Ok(instances) = self.service_instances(spec.name.as_str()).await else {
            return;
        };
        let restore = plan::plan(&previous.spec, &instances);
        if let Err(err) = self
            .apply(&previous.spec, &restore, &previous.host_ports())
            .await
        {
            tracing::warn!(service = %spec.name, error = %err, "could not restore the previous spec");
        }
    }
}

/// Whether every instance named in `names` listens on one of its published TCP ports (one
/// without any never does): it accepts and keeps the connection open for a moment, which a
/// forwarder in front of nothing (rootless podman's) does not.
async fn answering(names: &[String], instances: &[InstanceInfo]) -> bool {
    for name in names {
        let Some(info) = instances.iter().find(|i| &i.name == name) else {
            return false;
        };
        if !listens_on_a_port(info).await {
            return false;
        }
    }
    true
}

async fn listens_on_a_port(info: &InstanceInfo) -> bool {
    let tcp = info
        .ports
        .iter()
        .filter(|p| p.protocol.is_empty() || p.protocol == "tcp");
    for port in tcp {
        let ip = match port.host_ip.trim_matches(['[', ']']) {
            "" => std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
            ip => match ip.parse() {
                Ok(ip) => ip,
                Err(_) => continue,
            },
        };
        let addr = std::net::SocketAddr::new(super::traffic::reachable(ip), port.host_port);
        if crate::probe::listens(addr, SETTLE_POLL, LISTEN_WINDOW).await {
            return true;
        }
    }
    false
}
