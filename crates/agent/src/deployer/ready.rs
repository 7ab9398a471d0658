//! Health: the readiness gate of a deploy (a created routed instance must pass its check
//! before traffic moves to it) and the continuous checks of running instances that have a
//! `[components.health]` section (an unhealthy one is restarted under its restart policy).
//!
//! Invariant: check results live in memory only; an agent restart starts every instance's
//! check over (in its start period), it never restarts anything on stale results.

use registry::{DesiredState, EventAction, HostPorts, RouteKey};
use runtime::InstanceState;
use servicedef::{Component, HealthCheck, RestartPolicy, Service};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Deployer, plan};
use crate::monitor::BackoffPolicy;
use crate::{AgentError, probe, progress};

/// How often readiness is probed while a deploy waits (the switch follows within this).
const READY_POLL: Duration = Duration::from_millis(25);
/// How often a deploy waiting for readiness checks that the instance still runs.
const ALIVE_POLL: Duration = Duration::from_millis(500);
/// Log lines of an instance that failed its check, shown in the error.
const FAILED_LOG_LINES: u32 = 20;

/// The health checker's results per (service, component); in memory only, so a restarted
/// agent gives every instance a new start period instead of acting on stale failures.
#[derive(Default)]
pub(super) struct HealthBook(
    std::sync::Mutex<std::collections::HashMap<(String, String), CheckState>>,
);

/// What the health checker knows about one component's running instance.
#[derive(Debug, Clone)]
pub(crate) struct CheckState {
    /// The instance these results are about; another instance starts over.
    instance: String,
    /// None until the first result after the start period began.
    healthy: Option<bool>,
    failures: u32,
    last_error: Option<String>,
    next_due: Instant,
    /// Failures before this do not count (the instance may still be starting).
    grace_until: Instant,
    /// When this entry was made: a pass keeps entries newer than its reading of the registry
    /// (a deploy notes its new instance before it records its spec).
    since: Instant,
}

impl CheckState {
    /// A new instance: checked at once, failures not counted until its start period ends.
    fn starting(instance: &str, now: Instant, check: &HealthCheck) -> Self {
        Self {
            instance: instance.to_string(),
            healthy: None,
            failures: 0,
            last_error: None,
            next_due: now,
            grace_until: now + Duration::from_millis(check.start_period_ms),
            since: now,
        }
    }
}

/// A component's health as status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthView {
    /// `None` without a check.
    pub state: Option<HealthState>,
    pub detail: Option<String>,
}

/// A checked component's health, as the health checker last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// No verdict yet (its start period, or no check has run since the agent started).
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Healthy => "healthy",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl Deployer {
    /// Waits until every routed component `plan` created passes its readiness check on its
    /// host port, each within its start period. A created instance that exits meanwhile
    /// fails at once (with its last log lines).
    pub(super) async fn await_ready(
        &self,
        spec: &Service,
        plan: &plan::Plan<'_>,
        host_ports: &HostPorts,
    ) -> Result<(), AgentError> {
        for component in &plan.create {
            let Some(check) = component.readiness() else {
                continue;
            };
            let Some(addr) = self.check_address(component, host_ports) else {
                continue;
            };
            let instance = plan.instance_name(spec, component);
            let step = progress::begin(
                "health",
                component.name.as_str(),
                format!("waiting for its check ({})", check.describe()),
            );
            self.wait_ready(component, &instance, &check, addr).await?;
            step.done("healthy".into());
            self.note_ready(spec.name.as_str(), component, &instance, &check);
        }
        Ok(())
    }

    /// Where `component`'s check connects: the host port of its health route.
    fn check_address(&self, component: &Component, host_ports: &HostPorts) -> Option<SocketAddr> {
        let route = component
            .health_route()
            .or_else(|| component.routes.first())?;
        let key = RouteKey::of(component, route);
        host_ports.get(&key).map(|&port| self.upstream(port))
    }

    async fn wait_ready(
        &self,
        component: &Component,
        instance: &str,
        check: &HealthCheck,
        addr: SocketAddr,
    ) -> Result<(), AgentError> {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(check.start_period_ms);
        let mut alive_checked = started;
        let timeout = Duration::from_millis(check.timeout_ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reason = match probe::check(&check.probe, addr, timeout.min(left)).await {
                Ok(()) => {
                    tracing::debug!(
                        component = %component.name,
                        elapsed_ms = started.elapsed().as_millis(),
                        "ready"
                    );
                    return Ok(());
                }
                Err(reason) => reason,
            };
            if Instant::now() >= deadline {
                return Err(AgentError::NeverHealthy {
                    component: component.name.to_string(),
                    check: check.describe(),
                    reason,
                    deadline_ms: check.start_period_ms,
                    logs: self
                        .last_lines(instance, component.runtime, FAILED_LOG_LINES)
                        .await,
                });
            }
            if alive_checked.elapsed() >= ALIVE_POLL {
                alive_checked = Instant::now();
                self.fail_if_exited(component, instance).await?;
            }
            tokio::time::sleep(READY_POLL.min(left)).await;
        }
    }

    async fn fail_if_exited(
        &self,
        component: &Component,
        instance: &str,
    ) -> Result<(), AgentError> {
        let info = self
            .runtime_for(component)?
            .inspect(instance)
            .await
            .map_err(AgentError::runtime(format!("inspecting {instance}")))?;
        match info {
            Some(info) if info.state == InstanceState::Running => Ok(()),
            other => Err(AgentError::Crashed {
                component: component.name.to_string(),
                exit_code: other.and_then(|i| i.exit_code).unwrap_or(-1),
                logs: self
                    .last_lines(instance, component.runtime, FAILED_LOG_LINES)
                    .await,
            }),
        }
    }

    fn checks(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, String), CheckState>> {
        self.health_checks
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A deploy saw `instance` pass: the checker starts from healthy.
    fn note_ready(
        &self,
        service: &str,
        component: &Component,
        instance: &str,
        check: &HealthCheck,
    ) {
        if component.health.is_none() {
            return;
        }
        let now = Instant::now();
        self.checks().insert(
            (service.to_string(), component.name.to_string()),
            CheckState {
                instance: instance.to_string(),
                healthy: Some(true),
                failures: 0,
                last_error: None,
                next_due: now + Duration::from_millis(check.interval_ms),
                grace_until: now,
                since: now,
            },
        );
    }

    /// The health of one component as of the last check.
    pub(crate) fn health_view(&self, service: &str, component: &Component) -> HealthView {
        if component.health.is_none() {
            return HealthView::default();
        }
        let checks = self.checks();
        let Some(state) = checks.get(&(service.to_string(), component.name.to_string())) else {
            return HealthView {
                state: Some(HealthState::Starting),
                detail: None,
            };
        };
        let verdict = match state.healthy {
            None => HealthState::Starting,
            Some(true) => HealthState::Healthy,
            Some(false) => HealthState::Unhealthy,
        };
        HealthView {
            state: Some(verdict),
            detail: state.last_error.clone(),
        }
    }

    /// One round of the health checker: probes every running component with a
    /// `[components.health]` whose interval has passed (all at once), records transitions
    /// as events, and restarts an instance that failed `retries` checks in a row, under its
    /// restart policy and back-off. A service with an operation in progress is checked but
    /// not restarted (the operation holds its lock). Returns when the next check is due
    /// (`None`: no check is kept).
    pub async fn health_pass(&self, policy: &BackoffPolicy) -> Result<Option<Instant>, AgentError> {
        let read_at = Instant::now();
        let records = self.services_as_written()?;
        let now = Instant::now();
        let mut due = Vec::new();
        // The listing (a podman call) only when some check is due: one without results yet,
        // or whose interval has passed.
        let any_due = {
            let checks = self.checks();
            records
                .iter()
                .filter(|r| r.desired == DesiredState::Running)
                .flat_map(|r| {
                    r.spec
                        .components
                        .iter()
                        .filter(|c| c.health.is_some())
                        .map(move |c| (r.spec.name.to_string(), c.name.to_string()))
                })
                .any(|key| checks.get(&key).is_none_or(|state| now >= state.next_due))
        };
        // Entries made since the records were read stay: a deploy notes its new instance
        // ready before it records the spec these records may not show yet.
        if !any_due {
            let mut checks = self.checks();
            checks.retain(|(service, component), state| {
                state.since >= read_at
                    || records.iter().any(|r| {
                        r.spec.name.as_str() == service
                            && r.spec
                                .component(component)
                                .is_some_and(|c| c.health.is_some())
                    })
            });
            // Only checks that will run count: a stopped service's entry is never due.
            let running = |service: &str| {
                records
                    .iter()
                    .any(|r| r.spec.name.as_str() == service && r.desired == DesiredState::Running)
            };
            return Ok(checks
                .iter()
                .filter(|((service, _), _)| running(service))
                .map(|(_, state)| state.next_due)
                .min());
        }
        // From the observed state: no podman call while nothing changed.
        let listing = self.observed_listing().await?;
        let mut live_keys = std::collections::HashSet::new();
        for record in records
            .iter()
            .filter(|r| r.desired == DesiredState::Running)
        {
            let service = record.spec.name.as_str();
            for component in record.spec.components.iter() {
                let Some(check) = &component.health else {
                    continue;
                };
                let Some(info) = plan::instance_of(service, component, &listing)
                    .filter(|i| i.state == InstanceState::Running)
                else {
                    continue;
                };
                let Some(addr) = self.check_address(component, &record.host_ports()) else {
                    continue;
                };
                let key = (service.to_string(), component.name.to_string());
                live_keys.insert(key.clone());
                let mut checks = self.checks();
                let state = checks
                    .entry(key.clone())
                    .or_insert_with(|| CheckState::starting(&info.name, now, check));
                if state.instance != info.name {
                    *state = CheckState::starting(&info.name, now, check);
                }
                if now >= state.next_due {
                    state.next_due = now + Duration::from_millis(check.interval_ms);
                    due.push((
                        key,
                        check.clone(),
                        addr,
                        component.clone(),
                        info.name.clone(),
                    ));
                }
            }
        }
        self.checks()
            .retain(|key, state| live_keys.contains(key) || state.since >= read_at);
        let mut probes = tokio::task::JoinSet::new();
        for (index, (_, check, addr, _, _)) in due.iter().enumerate() {
            let (probe, addr) = (check.probe.clone(), *addr);
            let timeout = Duration::from_millis(check.timeout_ms);
            probes.spawn(async move { (index, probe::check(&probe, addr, timeout).await) });
        }
        let mut results = vec![None; due.len()];
        while let Some(Ok((index, result))) = probes.join_next().await {
            results[index] = Some(result);
        }
        for ((key, check, _, component, instance), result) in due.into_iter().zip(results) {
            let Some(result) = result else { continue };
            self.record_check(&key, &instance, &check, &component, result, policy)
                .await;
        }
        Ok(self.next_check_due())
    }

    fn next_check_due(&self) -> Option<Instant> {
        self.checks().values().map(|state| state.next_due).min()
    }

    async fn record_check(
        &self,
        key: &(String, String),
        instance: &str,
        check: &HealthCheck,
        component: &Component,
        result: Result<(), String>,
        policy: &BackoffPolicy,
    ) {
        let (service, name) = (key.0.as_str(), key.1.as_str());
        let now = Instant::now();
        let (event, restart_instance) = {
            let mut checks = self.checks();
            // A result about an instance that was replaced meanwhile says nothing of the new one.
            let Some(state) = checks.get_mut(key).filter(|s| s.instance == instance) else {
                return;
            };
            match result {
                Ok(()) => {
                    let recovered = state.healthy == Some(false);
                    state.healthy = Some(true);
                    state.failures = 0;
                    state.last_error = None;
                    (
                        recovered.then(|| {
                            (
                                EventAction::Healthy,
                                format!("{name}: {} passes again", check.describe()),
                            )
                        }),
                        None,
                    )
                }
                Err(reason) => {
                    let counts = now >= state.grace_until || state.healthy == Some(true);
                    state.last_error = Some(format!("{}: {reason}", check.describe()));
                    if counts {
                        state.failures += 1;
                    }
                    if state.failures >= check.retries && state.healthy != Some(false) {
                        state.healthy = Some(false);
                        let detail = format!(
                            "{name}: {} failed {} times in a row: {reason}",
                            check.describe(),
                            state.failures
                        );
                        (
                            Some((EventAction::Unhealthy, detail)),
                            Some(state.instance.clone()),
                        )
                    } else if state.healthy == Some(false) && state.failures >= check.retries {
                        (None, Some(state.instance.clone()))
                    } else {
                        (None, None)
                    }
                }
            }
        };
        if let Some((action, detail)) = &event {
            tracing::warn!(service, "{detail}");
            self.record_best_effort("health event", |r| {
                r.record_event(service, *action, "monitor", Some(detail))
            });
        }
        if let Some(instance) = restart_instance {
            self.restart_unhealthy(service, component, &instance, check, policy)
                .await;
        }
    }

    /// Restarts an unhealthy instance (keeping it and its ports) when its policy allows and
    /// its back-off has passed; the checker then gives it a new start period.
    async fn restart_unhealthy(
        &self,
        service: &str,
        component: &Component,
        instance: &str,
        check: &HealthCheck,
        policy: &BackoffPolicy,
    ) {
        if component.restart == RestartPolicy::No {
            return;
        }
        let Some(_guard) = self.try_lock_service(service) else {
            return;
        };
        let name = component.name.as_str();
        let Ok(mut health) = self.read(|r| r.health(service, name)) else {
            return;
        };
        let now_ms = super::heal::now_ms();
        if health.backoff_until.is_some_and(|until| now_ms < until) {
            return;
        }
        let outcome = match self.runtime_for(component) {
            Ok(backend) => backend
                .restart(instance, self.stop_timeout)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        super::heal::note_restart(&mut health, policy, now_ms);
        let detail = match &outcome {
            Ok(()) => format!(
                "{name}: restarted because it was unhealthy (restart #{})",
                health.restart_count
            ),
            Err(e) => format!("{name}: restart #{} failed: {e}", health.restart_count),
        };
        self.record_best_effort("restart bookkeeping", |r| {
            r.set_health(service, name, &health, &[(EventAction::Restart, &detail)])
        });
        if outcome.is_ok() {
            let now = Instant::now();
            if let Some(state) = self
                .checks()
                .get_mut(&(service.to_string(), name.to_string()))
            {
                state.failures = 0;
                state.grace_until = now + Duration::from_millis(check.start_period_ms);
                state.next_due = now + Duration::from_millis(check.interval_ms);
            }
        }
    }
}
