//! The podman API service the node talks to. The agent adopts a service that already answers
//! on the socket (a node's `podman.socket`, or the one an earlier agent started), or starts
//! `podman [global args] system service --time=N unix://SOCKET` itself, with the store and
//! containers.conf of its CLI calls, in its own process group (signals to the agent's group
//! do not reach it), and starts it again when it dies.
//!
//! The service exits after `idle` without a request (as a socket-activated `podman.socket`
//! does): an idle podman service still spends CPU (~2.5 ms a second), and the node's events
//! come from podman's event log, not from the service. The next call starts it again
//! (`ensure`, ~50 ms).

use podman_cli::Podman;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Child;

use super::api::PodmanApi;
use crate::RuntimeError;

/// How long a started service gets to answer its first ping.
const START_TIMEOUT: Duration = Duration::from_secs(15);

pub struct PodmanService {
    podman: Podman,
    api: PodmanApi,
    /// The service's stdout and stderr.
    log: PathBuf,
    /// The pid of the service on the socket, written when started: an agent that adopts the
    /// service of an earlier one (killed) can still replace or stop it.
    pidfile: PathBuf,
    /// The service this agent started, if it did (to reap it).
    child: tokio::sync::Mutex<Option<Child>>,
    /// Held while a service is made to answer: calls that find it gone at once start one.
    starting: tokio::sync::Mutex<()>,
    /// How long it stays without a request before it exits (podman's `--time`; zero: never).
    idle: Duration,
}

impl PodmanService {
    /// `log` and the pidfile beside it (`<log>.pid`) are the service's files; it exits after
    /// `idle` without a request (zero: never).
    pub fn new(podman: Podman, api: PodmanApi, log: PathBuf, idle: Duration) -> Self {
        let mut pidfile = log.as_os_str().to_os_string();
        pidfile.push(".pid");
        Self {
            podman,
            api,
            log,
            pidfile: PathBuf::from(pidfile),
            child: tokio::sync::Mutex::new(None),
            starting: tokio::sync::Mutex::new(()),
            idle,
        }
    }

    /// Whether the recorded service process is alive (answering or not). One that exited
    /// (idle, or killed) is reaped.
    pub async fn running(&self) -> bool {
        // Asked before every API call: our own child answers without reading /proc.
        if let Some(own) = self.child.lock().await.as_mut() {
            return matches!(own.try_wait(), Ok(None));
        }
        self.recorded_pid().is_some_and(|pid| !proc_gone(pid))
    }

    /// The pid in the pidfile, when that process is a podman service on our socket (a pid
    /// only counts when its command line names the socket: no pid-reuse confusion).
    fn recorded_pid(&self) -> Option<nix::unistd::Pid> {
        let pid: i32 = std::fs::read_to_string(&self.pidfile)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let socket = self.api.socket().to_string_lossy();
        String::from_utf8_lossy(&cmdline)
            .contains(socket.as_ref())
            .then(|| nix::unistd::Pid::from_raw(pid))
    }

    /// Ends the recorded service: SIGTERM, then SIGKILL after 5 s.
    async fn end(&self, signal: nix::sys::signal::Signal) {
        let mut child = self.child.lock().await;
        let Some(pid) = self.recorded_pid() else {
            return;
        };
        let _ = nix::sys::signal::kill(pid, signal);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // Our own child must be reaped to be gone; an adopted one is init's.
            if let Some(own) = child.as_mut() {
                let _ = own.try_wait();
            }
            if self.recorded_pid().is_none() || proc_gone(pid) {
                break;
            }
            if Instant::now() > deadline {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            if Instant::now() > deadline + Duration::from_secs(5) {
                // Unkillable (uninterruptible sleep): give up rather than stall the watchdog.
                tracing::warn!(%pid, "the podman service does not die; leaving it");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(mut own) = child.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), own.wait()).await;
        }
        let _ = std::fs::remove_file(&self.pidfile);
    }

    /// Makes sure a service answers on the socket: adopts one that does, else starts one and
    /// waits for its first answer.
    pub async fn ensure(&self) -> Result<(), RuntimeError> {
        let _starting = self.starting.lock().await;
        if self.api.ping().await.is_ok() {
            return Ok(());
        }
        // Alive but not answering (hung, or stopped): it is replaced.
        self.end(nix::sys::signal::Signal::SIGKILL).await;
        let mut child = self.child.lock().await;
        let socket = self.api.socket().to_path_buf();
        // A socket file left by a service that died would make the new one fail to bind.
        let _ = std::fs::remove_file(&socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|source| RuntimeError::Io {
                what: format!("the podman service log {}", self.log.display()),
                source,
            })?;
        let stderr = log.try_clone().map_err(|source| RuntimeError::Io {
            what: format!("the podman service log {}", self.log.display()),
            source,
        })?;
        let address = format!("unix://{}", socket.display());
        let idle = format!("--time={}", self.idle.as_secs());
        let mut command =
            self.podman
                .command(&["system", "service", idle.as_str(), address.as_str()]);
        command
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(stderr))
            .process_group(0)
            // The service outlives the agent (workloads do not depend on it, and the next
            // agent adopts it); the agent stops it on a clean shutdown.
            .kill_on_drop(false);
        let spawned = command
            .spawn()
            .map_err(|source| self.podman.unavailable(source))?;
        if let Some(pid) = spawned.id() {
            std::fs::write(&self.pidfile, pid.to_string()).map_err(|source| RuntimeError::Io {
                what: format!("the podman service pidfile {}", self.pidfile.display()),
                source,
            })?;
        }
        *child = Some(spawned);
        drop(child);
        let started = Instant::now();
        loop {
            if self.api.ping().await.is_ok() {
                tracing::info!(
                    socket = %socket.display(),
                    elapsed_ms = started.elapsed().as_millis(),
                    "podman API service started"
                );
                return Ok(());
            }
            let exited = match self.child.lock().await.as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => None,
            };
            if exited.is_some() || started.elapsed() > START_TIMEOUT {
                // One that never answered is not left running for the next round to find.
                self.end(nix::sys::signal::Signal::SIGKILL).await;
                let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                return Err(RuntimeError::Failed {
                    what: format!("starting the podman API service on {}", socket.display()),
                    detail: match exited {
                        Some(status) => format!("it exited ({status}): {}", tail.join(" | ")),
                        None => format!(
                            "no answer within {} s: {}",
                            START_TIMEOUT.as_secs(),
                            tail.join(" | ")
                        ),
                    },
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Stops the service on the socket, started by this agent or adopted from an earlier one
    /// (SIGTERM, then SIGKILL after 5 s).
    pub async fn stop(&self) {
        self.end(nix::sys::signal::Signal::SIGTERM).await;
    }
}

/// Whether `pid` is gone or a zombie.
fn proc_gone(pid: nix::unistd::Pid) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}
