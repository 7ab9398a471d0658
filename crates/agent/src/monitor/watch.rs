//! What wakes the monitor before its next reconcile: podman's event stream (a container of
//! ours died, was removed, created or started) and the VMs' QEMU monitors (one that was
//! running ended), with a scan of the VM directories as the safety net. Each sends a
//! `Wake`; the monitor coalesces them into one pass. Each container event is also applied
//! to the observed state status answers from (`ObservedCache::apply_event`); a (re)connect
//! marks that state unknown.

use runtime::QemuRuntime;
use runtime::podman::api::PodmanApi;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

use super::event_log;
use crate::deployer::{ContainerEvent, Noticed, ObservedCache};
use crate::podman_api::PodmanApiLink;

/// The container events that can change what the monitor would do. Which containers are ours
/// is decided here (`ContainerEvent::parse`): podman 4.3's event filter matches `label` only as
/// key=value, and the value (the service) varies.
const EVENT_FILTERS: &str =
    r#"{"type":["container"],"event":["died","remove","create","start","pause","unpause"]}"#;
/// How often the VM directories are scanned (a directory read; no process).
const VM_POLL: Duration = Duration::from_secs(1);
/// How often a connected event stream checks that the API still answers.
const HEALTH_CHECK: Duration = Duration::from_secs(1);

/// Events may have been missed (a source (re)connected, a log replaced): nothing kept is
/// current, and a full pass looks.
pub(super) fn events_missed(observed: &ObservedCache, wake: &mpsc::Sender<Wake>) {
    observed.invalidate();
    let _ = wake.try_send(Wake {
        noticed: Noticed::Reconnect,
        instance: String::new(),
    });
}

/// One of our containers' events: applied to the observed state, and a pass looks.
pub(super) fn event_seen(
    event: ContainerEvent,
    observed: &ObservedCache,
    wake: &mpsc::Sender<Wake>,
) {
    observed.apply_event(&event);
    let _ = wake.try_send(Wake {
        noticed: Noticed::PodmanEvent,
        instance: event.name,
    });
}

/// A reason to run a pass now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    pub noticed: Noticed,
    /// The instance concerned, for the log.
    pub instance: String,
}

/// Starts following podman's events until `stop`: from its event log file when it keeps one
/// (`event_log`: nothing is lost, and no podman process streams them), else from the API's
/// event stream (`podman_events`).
pub async fn follow_podman(
    link: Arc<PodmanApiLink>,
    events_file: Option<&Path>,
    podman_args: &[String],
    wake: mpsc::Sender<Wake>,
    connected: Arc<AtomicBool>,
    observed: Arc<ObservedCache>,
    stop: watch::Receiver<bool>,
) {
    if let Some(path) = event_log::locate(events_file, link.api(), podman_args).await {
        let followed = event_log::spawn(
            path,
            wake.clone(),
            Arc::clone(&connected),
            Arc::clone(&observed),
            stop.clone(),
        );
        match followed {
            Ok(_thread) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot follow podman's event log; following its API stream");
            }
        }
    }
    tracing::info!("podman's events: following its API event stream");
    tokio::spawn(podman_events(link, wake, connected, observed, stop));
}

/// Follows podman's event stream until `stop`, reconnecting after a failure. `connected`
/// says whether the stream is up (the monitor reconciles less often while it is). Every
/// (re)connection wakes the monitor too: events missed while disconnected are not lost.
pub async fn podman_events(
    link: Arc<PodmanApiLink>,
    wake: mpsc::Sender<Wake>,
    connected: Arc<AtomicBool>,
    observed: Arc<ObservedCache>,
    mut stop: watch::Receiver<bool>,
) {
    let api: PodmanApi = link.api().clone();
    let mut retry = Duration::from_millis(250);
    loop {
        link.ensure_running().await;
        match api.events(EVENT_FILTERS).await {
            Ok(mut events) => {
                retry = Duration::from_millis(250);
                // Changes while disconnected were not seen.
                events_missed(&observed, &wake);
                connected.store(true, Ordering::SeqCst);
                tracing::debug!("following podman's event stream");
                let mut health = tokio::time::interval(HEALTH_CHECK);
                loop {
                    let event = tokio::select! {
                        event = events.recv() => event,
                        _ = health.tick() => {
                            // A hung service keeps the stream open and silent: while the
                            // watchdog finds the API not answering, it counts as disconnected.
                            if link.answering() {
                                continue;
                            }
                            break;
                        }
                        _ = stop.wait_for(|stopping| *stopping) => return,
                    };
                    let Some(Ok(line)) = event else { break };
                    if let Some(event) = ContainerEvent::parse(&line) {
                        event_seen(event, &observed, &wake);
                    }
                }
                connected.store(false, Ordering::SeqCst);
                tracing::debug!("podman's event stream ended; reconnecting");
                link.suspect();
            }
            Err(error) => {
                connected.store(false, Ordering::SeqCst);
                tracing::debug!(%error, "cannot follow podman's event stream");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
        retry = (retry * 2).min(Duration::from_secs(5));
    }
}

/// Watches the VMs until `stop`. Each running VM's events monitor is followed (QMP): its
/// connection closing, or a shutdown or panic event, wakes the monitor at once. The VM
/// directories are scanned right after each boot (to follow the new QEMU) and every second
/// (VMs started by an earlier agent; one without an events monitor): one that ran at the
/// last scan and does not now wakes the monitor.
pub async fn vm_exits(
    vms: Arc<QemuRuntime>,
    wake: mpsc::Sender<Wake>,
    mut stop: watch::Receiver<bool>,
) {
    let mut running = BTreeSet::new();
    let mut followed: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(VM_POLL) => {}
            () = vms.booted() => {}
            _ = stop.wait_for(|stopping| *stopping) => break,
        }
        let looked = Arc::clone(&vms);
        let Ok(now) = tokio::task::spawn_blocking(move || looked.live_vms()).await else {
            continue;
        };
        for gone in running.difference(&now) {
            // A follower still at work reports this end itself, once QEMU is gone.
            if followed.get(gone).is_some_and(|task| !task.is_finished()) {
                continue;
            }
            let _ = wake.try_send(Wake {
                noticed: Noticed::VmExit,
                instance: gone.clone(),
            });
        }
        // A finished task is a VM that ended, or one whose monitor did not answer (started
        // by an older agent, or hung): looked at again at the next scan.
        followed.retain(|vm, task| now.contains(vm) && !task.is_finished());
        for vm in &now {
            if !followed.contains_key(vm) {
                let task = tokio::spawn(follow(Arc::clone(&vms), vm.clone(), wake.clone()));
                followed.insert(vm.clone(), task);
            }
        }
        running = now;
    }
    for task in followed.values() {
        task.abort();
    }
}

/// How long, after its monitor closed, a VM's QEMU gets to be gone before the wake is sent
/// anyway (QEMU closes its monitors before it exits).
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Follows `vm`'s events monitor until QEMU ends, then wakes the monitor once its process
/// is gone. Returns at once when the monitor does not answer.
async fn follow(vms: Arc<QemuRuntime>, vm: String, wake: mpsc::Sender<Wake>) {
    let follower = match vms.follow_events(&vm).await {
        Ok(follower) => follower,
        Err(error) => {
            tracing::debug!(vm, %error, "the VM's events are not followed; its process is polled");
            return;
        }
    };
    let event = follower.ended().await;
    let deadline = tokio::time::Instant::now() + EXIT_GRACE;
    while vms.is_running(&vm) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::debug!(vm, event = event.as_deref().unwrap_or("exit"), "a VM ended");
    let _ = wake.try_send(Wake {
        noticed: Noticed::QemuEvent,
        instance: vm,
    });
}
