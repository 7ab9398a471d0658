//! One monitor pass: one merged listing compared with the registry; drift is recorded,
//! crashed components are restarted under back-off, missing ones re-created, ones that run
//! against a "stopped" intent stopped, and strays reported (never removed unasked).
//!
//! Invariants: the monitor never waits for a service's lock (a service with an operation in
//! flight is skipped), never removes what no record describes, and counts an instance as a
//! stray only after two passes in a row saw it so (`StrayWatch`).

use registry::{DesiredState, EventAction, Health, ServiceRecord};
use runtime::{InstanceInfo, InstanceState};
use servicedef::{Component, RestartPolicy};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Deployer, StrayView, plan};
use crate::AgentError;
use crate::monitor::BackoffPolicy;

/// What one pass saw and did, for the agent's log.
#[derive(Debug, Default)]
pub struct PassReport {
    pub restarted: Vec<String>,
    pub drifting: Vec<String>,
    pub strays: Vec<String>,
    /// Unix ms when the earliest component waiting out its back-off may be restarted: the
    /// monitor looks again then, whatever its reconcile interval.
    pub retry_at_ms: Option<i64>,
    /// Services skipped because an operation held them: what happened to them meanwhile is
    /// looked at after the short interval, not the long reconcile.
    pub skipped_busy: bool,
}

impl PassReport {
    pub fn is_quiet(&self) -> bool {
        self.restarted.is_empty() && self.drifting.is_empty() && self.strays.is_empty()
    }
}

impl std::fmt::Display for PassReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "restarted [{}], drifting [{}], strays [{}]",
            self.restarted.join(", "),
            self.drifting.join(", "),
            self.strays.join(", ")
        )
    }
}

/// How one component compares with its desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Observation {
    InLine,
    Missing,
    Exited {
        code: i32,
        at: Option<i64>,
    },
    UnexpectedRunning,
    /// Running, but created from another spec of the component (replaced behind our back).
    SpecMismatch,
    /// Running another image than the desired one.
    ImageMismatch {
        running: String,
    },
}

impl Observation {
    fn drift(&self) -> Option<(&'static str, String)> {
        match self {
            Self::InLine => None,
            Self::Missing => Some(("missing", "no instance exists".to_string())),
            Self::Exited { code, .. } => Some(("exited", format!("exited with code {code}"))),
            Self::UnexpectedRunning => {
                Some(("unexpected-running", "runs while desired stopped".into()))
            }
            Self::SpecMismatch => Some((
                "spec-mismatch",
                "instance was not created from the desired spec".into(),
            )),
            Self::ImageMismatch { running } => {
                Some(("image-mismatch", format!("runs image {running}")))
            }
        }
    }
}

pub(crate) fn observe(
    component: &Component,
    desired: DesiredState,
    instance: Option<&InstanceInfo>,
) -> Observation {
    let running = instance.is_some_and(|i| i.state == InstanceState::Running);
    match (desired, instance) {
        (DesiredState::Running, None) => Observation::Missing,
        (DesiredState::Running, Some(info)) if !running && info.state != InstanceState::Paused => {
            Observation::Exited {
                code: info.exit_code.unwrap_or(-1),
                at: info.exited_at,
            }
        }
        (DesiredState::Running, Some(info))
            if !same_image(&info.image, component.image.as_str()) =>
        {
            Observation::ImageMismatch {
                running: info.image.clone(),
            }
        }
        (DesiredState::Running, Some(info))
            if info.spec_hash() != Some(component.spec_hash().as_str()) =>
        {
            Observation::SpecMismatch
        }
        (DesiredState::Stopped, Some(_)) if running => Observation::UnexpectedRunning,
        _ => Observation::InLine,
    }
}

/// Image references as podman reports them carry the registry it resolved ("localhost/",
/// "docker.io/library/"); a definition may leave it out.
fn same_image(running: &str, desired: &str) -> bool {
    let strip = |s: &str| {
        s.trim_start_matches("docker.io/library/")
            .trim_start_matches("docker.io/")
            .trim_start_matches("localhost/")
            .to_string()
    };
    running.is_empty() || strip(running) == strip(desired)
}

fn wants_restart(policy: RestartPolicy, observation: &Observation) -> bool {
    match observation {
        Observation::Missing => true,
        Observation::Exited { code, .. } => match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => *code != 0,
            RestartPolicy::No => false,
        },
        _ => false,
    }
}

/// Counts a restart at `now_ms` in `health` and sets the back-off before the next one,
/// which it returns.
pub(super) fn note_restart(health: &mut Health, policy: &BackoffPolicy, now_ms: i64) -> Duration {
    health.restart_count += 1;
    health.last_restart_at = Some(now_ms / 1000);
    let delay = policy.delay_after(health.restart_count);
    health.backoff_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    health.backoff_until = Some(now_ms.saturating_add(health.backoff_ms));
    delay
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What made the monitor look at each instance: what a watcher said of it, else what woke
/// the pass (several wakes are coalesced into one pass).
#[derive(Debug, Clone)]
pub struct Noticing {
    pub pass: Noticed,
    pub instances: HashMap<String, Noticed>,
}

impl Noticing {
    pub fn new(pass: Noticed) -> Self {
        Self {
            pass,
            instances: HashMap::new(),
        }
    }

    fn of(&self, instance: &str) -> Noticed {
        self.instances.get(instance).copied().unwrap_or(self.pass)
    }
}

/// What made the monitor look: its timer, or a sign that something changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noticed {
    /// The periodic full reconcile.
    Reconcile,
    /// podman reported an event about one of our containers.
    PodmanEvent,
    /// A VM's QEMU process was gone at a scan of the VM directories.
    VmExit,
    /// A VM's QEMU monitor said it ended (its connection closed, or a shutdown or panic).
    QemuEvent,
    /// The event stream (re)connected: what happened while it was down is looked at.
    Reconnect,
}

impl std::fmt::Display for Noticed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Reconcile => "reconcile",
            Self::PodmanEvent => "podman event",
            Self::VmExit => "VM exit",
            Self::QemuEvent => "QEMU event",
            Self::Reconnect => "event stream reconnect",
        })
    }
}

/// What `record` wants of `component`: its own desired state, else the service's.
fn desired_state(record: &ServiceRecord, component: &Component) -> DesiredState {
    record
        .components
        .iter()
        .find(|c| c.name == component.name.as_str())
        .map_or(record.desired, |c| c.desired)
}

impl Deployer {
    /// One comparison of the node with the registry, acting on what differs: with what
    /// runs listed afresh when `relist`, else as the observed state has it.
    pub async fn monitor_pass(
        &self,
        policy: &BackoffPolicy,
        noticing: &Noticing,
        relist: bool,
    ) -> Result<PassReport, AgentError> {
        let mut report = PassReport::default();
        let began = self.observed.begin();
        let listing = if relist {
            self.listing().await?
        } else {
            self.observed_listing().await?
        };
        let records = self.read(|r| r.services())?;
        let busy: HashSet<String> = self
            .registry(|r| r.pending_operations())?
            .into_iter()
            .map(|op| op.service)
            .collect();
        report.strays = self.note_strays(&records, &listing);
        // One query for every component's bookkeeping, not one per component per pass.
        let mut known_health: HashMap<(String, String), Health> = self
            .registry(|r| r.all_health())?
            .into_iter()
            .map(|(service, component, health)| ((service, component), health))
            .collect();
        for record in &records {
            let name = record.spec.name.as_str();
            // An operator's operation owns the service while it runs; look next time.
            if busy.contains(name) {
                report.skipped_busy = true;
                continue;
            }
            let Some(_guard) = self.try_lock_service(name) else {
                report.skipped_busy = true;
                continue;
            };
            // An operation that ended since the listing began may have changed (or removed)
            // the service, and a drift seen in the kept state (not listed now) is confirmed
            // with podman before anything is done about it (an event may be a late echo of
            // one already handled): under its lock, its record and instances are read again.
            let reread;
            let unconfirmed_drift = !relist
                && record.spec.components.iter().any(|component| {
                    observe(
                        component,
                        desired_state(record, component),
                        plan::instance_of(name, component, &listing),
                    ) != Observation::InLine
                });
            let (record, listing) = if unconfirmed_drift || self.observed.changed_since(name, began)
            {
                let Some(current) = self.read(|r| r.service(name))? else {
                    continue;
                };
                reread = (current, self.service_instances(name).await?);
                (&reread.0, reread.1.as_slice())
            } else {
                (record, listing.as_slice())
            };
            for component in &record.spec.components {
                let instance = plan::instance_of(name, component, listing);
                let observation = observe(component, desired_state(record, component), instance);
                let label = format!("{name}/{}", component.name);
                if observation != Observation::InLine {
                    report.drifting.push(label.clone());
                }
                let before = known_health
                    .remove(&(name.to_string(), component.name.to_string()))
                    .unwrap_or_default();
                let noticed = noticing.of(&instance.map_or_else(
                    || record.spec.container_name(&component.name),
                    |i| i.name.clone(),
                ));
                let (restarted, retry_at) = self
                    .heal(
                        record,
                        component,
                        instance,
                        &observation,
                        before,
                        policy,
                        noticed,
                    )
                    .await?;
                if restarted {
                    report.restarted.push(label);
                }
                report.retry_at_ms = match (report.retry_at_ms, retry_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.remove_spares(name, component, instance, listing).await;
            }
        }
        // A re-created instance may have new host ports: the proxy follows.
        if !report.restarted.is_empty() {
            self.sync_traffic().await;
        }
        Ok(report)
    }

    /// Records what changed about one component and acts: whether it restarted it, and when
    /// it may next when it waits out its back-off. The events it records say what made the
    /// monitor look (`noticed`).
    #[allow(clippy::too_many_arguments)]
    async fn heal(
        &self,
        record: &ServiceRecord,
        component: &Component,
        instance: Option<&InstanceInfo>,
        observation: &Observation,
        before: Health,
        policy: &BackoffPolicy,
        noticed: Noticed,
    ) -> Result<(bool, Option<i64>), AgentError> {
        let service = record.spec.name.as_str();
        let name = component.name.as_str();
        let mut health = before.clone();
        let now = now_ms();
        let mut events: Vec<(EventAction, String)> = Vec::new();

        match observation.drift() {
            Some((kind, detail)) => {
                if health.drift.as_deref() != Some(kind) {
                    health.drift_since = Some(now / 1000);
                    events.push((
                        EventAction::Drift,
                        format!("{name}: {kind}: {detail} (noticed by {noticed})"),
                    ));
                }
                health.drift = Some(kind.to_string());
                health.drift_detail = Some(detail);
            }
            None => {
                if let Some(kind) = health.drift.take() {
                    events.push((
                        EventAction::DriftCleared,
                        format!("{name}: {kind} resolved"),
                    ));
                }
                health.drift_detail = None;
                health.drift_since = None;
            }
        }
        if let Observation::Exited { code, at } = observation {
            health.last_exit_code = Some(*code);
            health.last_exit_at = *at;
        }
        // A long enough clean run forgets the component's crash history.
        let started = instance.and_then(|i| i.started_at);
        if *observation == Observation::InLine
            && health.restart_count > 0
            && started.is_some_and(|s| now / 1000 - s >= secs(policy.reset_after))
        {
            health.restart_count = 0;
            health.backoff_ms = 0;
            health.backoff_until = None;
        }

        let mut restarted = false;
        let mut retry_at = None;
        if wants_restart(component.restart, observation) {
            if let Some(until) = health.backoff_until.filter(|until| now < *until) {
                retry_at = Some(until);
            } else {
                let outcome = self.revive(record, component, instance).await;
                let delay = note_restart(&mut health, policy, now);
                let what = match observation {
                    Observation::Missing => "re-created".to_string(),
                    Observation::Exited { code, .. } => format!("restarted after exit code {code}"),
                    _ => "restarted".to_string(),
                };
                let detail = match &outcome {
                    Ok(()) => format!(
                        "{name}: {what} (noticed by {noticed}; restart #{}; next no sooner \
                         than {:.1}s)",
                        health.restart_count,
                        delay.as_secs_f64()
                    ),
                    Err(e) => format!("{name}: restart #{} failed: {e}", health.restart_count),
                };
                restarted = outcome.is_ok();
                if !restarted {
                    // No event will say it is still down: look again when it may be retried.
                    retry_at = health.backoff_until;
                }
                events.push((EventAction::Restart, detail));
            }
        } else if let (Observation::UnexpectedRunning, Some(info)) = (observation, instance) {
            self.stop_instance(&info.name, info.runtime).await?;
            events.push((
                EventAction::Stop,
                format!("{name}: stopped; it ran while desired stopped"),
            ));
        }

        if health != before || !events.is_empty() {
            let events: Vec<(EventAction, &str)> =
                events.iter().map(|(a, d)| (*a, d.as_str())).collect();
            self.registry(|r| r.set_health(service, name, &health, &events))?;
        }
        Ok((restarted, retry_at))
    }

    /// Removes instances of `component` other than `current` that were not built from its
    /// spec: old instances a side-by-side replace could not retire (a failed removal, a
    /// crash). They carry our labels and a known component, so they are ours to remove.
    async fn remove_spares(
        &self,
        service: &str,
        component: &Component,
        current: Option<&InstanceInfo>,
        listing: &[InstanceInfo],
    ) {
        let hash = component.spec_hash();
        for spare in plan::instances_of(service, component.name.as_str(), listing) {
            if current.is_some_and(|c| c.name == spare.name)
                || spare.spec_hash() == Some(hash.as_str())
            {
                continue;
            }
            let removed = match self.stop_instance(&spare.name, spare.runtime).await {
                Ok(()) => self.remove_instance(&spare.name, spare.runtime).await,
                Err(e) => Err(e),
            };
            let detail = match &removed {
                Ok(()) => format!(
                    "{}: removed {}, an old instance a replace left behind",
                    component.name, spare.name
                ),
                Err(e) => format!(
                    "{}: cannot remove old instance {}: {e}",
                    component.name, spare.name
                ),
            };
            self.record_best_effort("spare event", |r| {
                r.record_event(service, EventAction::RemovedSpare, "monitor", Some(&detail))
            });
        }
    }

    /// Starts the component's stopped instance, or re-creates a missing one with its ports.
    async fn revive(
        &self,
        record: &ServiceRecord,
        component: &Component,
        instance: Option<&InstanceInfo>,
    ) -> Result<(), AgentError> {
        if let Some(info) = instance {
            return self
                .runtime_for(component)?
                .start(&info.name)
                .await
                .map_err(AgentError::runtime(format!("starting {}", info.name)));
        }
        let mut plan = plan::Plan {
            create: vec![component],
            ..plan::Plan::default()
        };
        let redirected = self.ports.redirected().await;
        let (reservation, host_ports) =
            self.reserve_ports(&record.spec, &mut plan, Some(record), &redirected)?;
        self.pull_images(&plan.create).await?;
        self.apply(&record.spec, &plan, &host_ports).await?;
        self.registry(|r| r.assign_host_ports(record.spec.name.as_str(), &reservation.ports))?;
        Ok(())
    }
}

/// Labelled instances no registry record describes, as the monitor sees them.
#[derive(Default)]
pub(super) struct StrayWatch {
    /// Seen as strays by two passes in a row: reported.
    confirmed: Mutex<Vec<InstanceInfo>>,
    /// Seen by the last pass only (a deploy in flight creates instances before recording).
    candidates: Mutex<Vec<InstanceInfo>>,
}

impl Deployer {
    /// Remembers (and returns the names of) labelled instances no registry record describes.
    /// An instance counts as a stray only when two passes in a row saw it so, because a deploy
    /// in flight creates instances before the registry records them; a new stray is recorded
    /// as an event once.
    pub(super) fn note_strays(
        &self,
        records: &[ServiceRecord],
        listing: &[InstanceInfo],
    ) -> Vec<String> {
        let known = |i: &InstanceInfo| {
            records.iter().any(|r| {
                i.service() == Some(r.spec.name.as_str())
                    && i.component().is_some_and(|c| r.spec.component(c).is_some())
            })
        };
        let candidates: Vec<InstanceInfo> = listing
            .iter()
            .filter(|i| !known(i))
            .filter(|i| {
                i.service()
                    .is_none_or(|s| self.try_lock_service(s).is_some())
            })
            .cloned()
            .collect();
        let mut seen = self
            .strays
            .candidates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let confirmed: Vec<InstanceInfo> = candidates
            .iter()
            .filter(|c| seen.iter().any(|p| p.id == c.id))
            .cloned()
            .collect();
        *seen = candidates;
        drop(seen);
        let mut strays = self
            .strays
            .confirmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for stray in &confirmed {
            if !strays.iter().any(|p| p.id == stray.id) {
                let detail = format!(
                    "{} ({}) carries our labels but no deployed service describes it; left alone",
                    stray.name, stray.image
                );
                let service = stray.service().unwrap_or("?").to_string();
                self.record_best_effort("stray event", |r| {
                    r.record_event(&service, EventAction::Stray, "monitor", Some(&detail))
                });
            }
        }
        let names = confirmed.iter().map(|s| s.name.clone()).collect();
        *strays = confirmed;
        names
    }

    /// Stray instances as of the last monitor pass.
    pub fn strays(&self) -> Vec<StrayView> {
        self.strays
            .confirmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(StrayView::from)
            .collect()
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Health as the status view needs it.
pub(crate) fn in_backoff(health: &Health, state: &runtime::InstanceState) -> bool {
    *state == runtime::InstanceState::Exited
        && health.backoff_until.is_some_and(|until| until > now_ms())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use servicedef::RuntimeKind;
    use std::collections::BTreeMap;

    fn component() -> Component {
        servicedef::parse_str(
            "t.toml",
            "name = \"s\"\nnode = \"n\"\n[[components]]\nname = \"web\"\nimage = \"i\"\n",
        )
        .unwrap()
        .components
        .remove(0)
    }

    fn instance(c: &Component, state: InstanceState, exit: Option<i32>) -> InstanceInfo {
        InstanceInfo {
            name: "s-web".into(),
            id: "x".into(),
            image: "i".into(),
            state,
            started_at: Some(1),
            exit_code: exit,
            exited_at: exit.map(|_| 5),
            ports: vec![],
            runtime: RuntimeKind::Container,
            accelerator: None,
            labels: BTreeMap::from([(runtime::LABEL_SPEC_HASH.to_string(), c.spec_hash())]),
        }
    }

    #[test]
    fn every_state_pair_is_classified() {
        use DesiredState::{Running, Stopped};
        let c = component();
        let running = instance(&c, InstanceState::Running, None);
        let exited = instance(&c, InstanceState::Exited, Some(137));
        let mut foreign = running.clone();
        foreign.labels.clear();
        assert_eq!(observe(&c, Running, Some(&running)), Observation::InLine);
        assert_eq!(observe(&c, Running, None), Observation::Missing);
        assert_eq!(
            observe(&c, Running, Some(&exited)),
            Observation::Exited {
                code: 137,
                at: Some(5)
            }
        );
        assert_eq!(
            observe(&c, Running, Some(&foreign)),
            Observation::SpecMismatch
        );
        assert_eq!(
            observe(&c, Stopped, Some(&running)),
            Observation::UnexpectedRunning
        );
        assert_eq!(observe(&c, Stopped, Some(&exited)), Observation::InLine);
        assert_eq!(observe(&c, Stopped, None), Observation::InLine);
    }

    #[test]
    fn restart_policy_decides_which_exits_restart() {
        let crash = Observation::Exited { code: 1, at: None };
        let clean = Observation::Exited { code: 0, at: None };
        assert!(wants_restart(RestartPolicy::OnFailure, &crash));
        assert!(!wants_restart(RestartPolicy::OnFailure, &clean));
        assert!(wants_restart(RestartPolicy::Always, &clean));
        assert!(!wants_restart(RestartPolicy::No, &crash));
        assert!(wants_restart(RestartPolicy::No, &Observation::Missing));
        assert!(!wants_restart(
            RestartPolicy::Always,
            &Observation::UnexpectedRunning
        ));
    }
}
