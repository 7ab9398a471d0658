//! The monitor: one pass of `Deployer::monitor_pass` (drift, restarts, strays) whenever
//! something is seen to change (`watch.rs`: podman's events, QEMU's), and a full reconcile
//! on a timer as the safety net: every `interval`, or every `reconcile` while podman's event
//! stream is connected. It stops between passes on shutdown, never inside one, so no write is
//! cut short.

mod backoff;
pub mod event_log;
pub mod watch;

pub use backoff::BackoffPolicy;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

use crate::deployer::{Deployer, Noticed, Noticing};

/// How long the monitor waits after a wake-up for the rest of a burst of events.
const COALESCE: Duration = Duration::from_millis(100);

/// When the monitor looks.
pub struct Schedule {
    /// The reconcile interval without an event stream.
    pub interval: Duration,
    /// The reconcile interval while podman's events are followed.
    pub reconcile: Duration,
    /// How often a reconcile lists podman afresh while they are (the passes between use the
    /// state the events keep).
    pub relist: Duration,
    /// Whether it is (set by `watch::podman_events`).
    pub events_connected: Arc<AtomicBool>,
    /// Wake-ups from the watchers.
    pub wake: mpsc::Receiver<watch::Wake>,
}

/// Runs passes until `stop` turns true.
pub async fn run(
    deployer: Arc<Deployer>,
    mut schedule: Schedule,
    policy: BackoffPolicy,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // When a component waiting out its back-off may be restarted (unix ms).
    let mut retry_at: Option<i64> = None;
    // The last pass failed or skipped a busy service: look again after the short interval.
    let mut soon = false;
    let mut listed = tokio::time::Instant::now();
    loop {
        let mut timer = if schedule.events_connected.load(Ordering::Relaxed) && !soon {
            schedule.reconcile.max(schedule.interval)
        } else {
            schedule.interval
        };
        if let Some(at) = retry_at {
            let wait = u64::try_from(at - crate::deployer::now_ms()).unwrap_or(0);
            timer = timer.min(Duration::from_millis(wait + 1));
        }
        let woken = tokio::select! {
            () = tokio::time::sleep(timer) => None,
            Some(wake) = schedule.wake.recv() => Some(wake),
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        let noticing = match woken {
            None => Noticing::new(Noticed::Reconcile),
            Some(wake) => {
                tracing::debug!(noticed = %wake.noticed, instance = %wake.instance, "monitor woken");
                // Events come in bursts (a deploy is several): one pass looks at a burst.
                tokio::time::sleep(COALESCE).await;
                // Whatever else arrived meanwhile is covered by this one pass; each instance
                // a watcher named keeps what noticed it.
                let mut noticing = Noticing::new(wake.noticed);
                noticing.instances.insert(wake.instance, wake.noticed);
                while let Ok(more) = schedule.wake.try_recv() {
                    noticing
                        .instances
                        .entry(more.instance)
                        .or_insert(more.noticed);
                }
                noticing
            }
        };
        let noticed = noticing.pass;
        // While podman's events are followed, a pass compares with the state they keep
        // (an event woke it: that event is applied already); it lists podman afresh after a
        // reconnect (events may be lost) and every `relist`.
        let relist = noticed == Noticed::Reconnect
            || !schedule.events_connected.load(Ordering::Relaxed)
            || listed.elapsed() >= schedule.relist;
        if relist {
            listed = tokio::time::Instant::now();
        }
        match deployer.monitor_pass(&policy, &noticing, relist).await {
            Ok(report) => {
                if !report.is_quiet() {
                    tracing::info!(%report, %noticed, "monitor pass");
                }
                retry_at = report.retry_at_ms;
                soon = report.skipped_busy;
            }
            Err(err) => {
                tracing::warn!(error = %err, "monitor pass failed");
                // A retry time in the past would make the next pass immediate, and the next.
                retry_at = None;
                soon = true;
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// The health checker wakes when the next check is due, and at least this often to find
/// components deployed since (each component is probed at its own interval).
const HEALTH_IDLE: Duration = Duration::from_secs(1);
/// Nor more often than this.
const HEALTH_MIN_GAP: Duration = Duration::from_millis(50);

/// Runs the health checker until `stop` turns true.
pub async fn run_health(
    deployer: Arc<Deployer>,
    policy: BackoffPolicy,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut next = tokio::time::Instant::now() + HEALTH_MIN_GAP;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        let now = tokio::time::Instant::now();
        let due = match deployer.health_pass(&policy).await {
            Ok(due) => due.map(tokio::time::Instant::from_std),
            Err(err) => {
                tracing::warn!(error = %err, "health checks failed");
                None
            }
        };
        next = due
            .map_or(now + HEALTH_IDLE, |due| due.min(now + HEALTH_IDLE))
            .max(now + HEALTH_MIN_GAP);
    }
}
