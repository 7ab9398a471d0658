//! The monitor: every interval, one pass of `Deployer::monitor_pass` (drift, restarts,
//! strays). It stops between passes on shutdown, never inside one, so no write is cut short.

mod backoff;

pub use backoff::BackoffPolicy;

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::deployer::Deployer;

/// Runs passes every `interval` until `stop` turns true.
pub async fn run(
    deployer: Arc<Deployer>,
    interval: Duration,
    policy: BackoffPolicy,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        match deployer.monitor_pass(&policy).await {
            Ok(report) if !report.is_quiet() => tracing::info!(%report, "monitor pass"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "monitor pass failed"),
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// How often the health checker looks for checks that are due (each component is probed
/// at its own interval).
const HEALTH_TICK: Duration = Duration::from_millis(200);

/// Runs the health checker until `stop` turns true.
pub async fn run_health(
    deployer: Arc<Deployer>,
    policy: BackoffPolicy,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(HEALTH_TICK) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        if let Err(err) = deployer.health_pass(&policy).await {
            tracing::warn!(error = %err, "health checks failed");
        }
    }
}
