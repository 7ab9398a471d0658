//! The agent's link to podman's API service: it starts (or adopts) the service, watches it,
//! starts it again when it dies or hangs, tells the podman runtime whether the API answers
//! (the runtime uses the CLI while it does not), and stops the service it started at a clean
//! shutdown. The service it runs exits when idle (`[podman] api_idle_secs`); the runtime
//! starts it for the next call, and the watchdog pings it only while calls are under way.

use runtime::PodmanRuntime;
use runtime::podman::api::PodmanApi;
use runtime::podman::service::PodmanService;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long an API call may take before it fails (and the CLI takes over).
pub const API_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the watchdog pings a service that answers, while it runs (a hung one keeps its
/// sockets open and silent: only a ping finds it). Sooner when a call fails or the event
/// stream breaks.
const WATCH_UP: Duration = Duration::from_secs(10);
/// … and one that does not, to see it back soon.
const WATCH_DOWN: Duration = Duration::from_secs(2);

pub struct PodmanApiLink {
    api: PodmanApi,
    runtime: Arc<PodmanRuntime>,
    /// The service, when the agent runs it (not when it uses a node's own socket).
    service: Option<Arc<PodmanService>>,
    /// Told when the event stream broke: the watchdog looks at once.
    suspect: tokio::sync::Notify,
}

impl PodmanApiLink {
    /// Connects `runtime` to the API on `socket`, starting the service there when `managed`
    /// (it exits after that long idle; zero: never). A service that cannot be started is
    /// logged: the runtime keeps using the CLI.
    pub async fn start(
        runtime: PodmanRuntime,
        podman: podman_cli::PodmanCli,
        socket: PathBuf,
        managed: Option<Duration>,
        log: PathBuf,
    ) -> (Arc<PodmanRuntime>, Arc<Self>) {
        let api = PodmanApi::new(socket, API_TIMEOUT);
        let service = managed.map(|idle| {
            Arc::new(PodmanService::new(
                podman_cli::Podman::new(podman),
                api.clone(),
                log,
                idle,
            ))
        });
        let mut runtime = runtime.with_api(api.clone());
        if let Some(service) = &service {
            runtime = runtime.with_service(Arc::clone(service));
        }
        let runtime = Arc::new(runtime);
        let link = Arc::new(Self {
            api,
            runtime: Arc::clone(&runtime),
            service,
            suspect: tokio::sync::Notify::new(),
        });
        link.check(true).await;
        (runtime, link)
    }

    /// The API (for the event stream).
    pub fn api(&self) -> &PodmanApi {
        &self.api
    }

    /// Whether the API answers, as the runtime (its calls and this watchdog) last found.
    pub fn answering(&self) -> bool {
        self.runtime.api_up()
    }

    /// Pings the API; a managed service that does not answer is started (again). Unless
    /// `eager` (something failed), only while calls are under way (a hung service holds
    /// them; a ping between calls would keep an idle service from exiting), and a managed
    /// service that exited when idle is left so: the next call starts it.
    async fn check(&self, eager: bool) -> bool {
        // `running` also reaps a service that exited when idle.
        let idle = match &self.service {
            Some(service) => !service.running().await || !self.runtime.api_busy(),
            None => !self.runtime.api_busy(),
        };
        let result = match &self.service {
            _ if !eager && idle => Ok(()),
            Some(service) => service.ensure().await.map_err(|e| e.to_string()),
            None => self.api.ping().await.map_err(|e| e.to_string()),
        };
        let up = result.is_ok();
        // Logged when it stops answering, not every watchdog round.
        let was = self.runtime.api_answered(up);
        if let (Err(error), true) = (&result, was) {
            tracing::warn!(%error, "the podman API does not answer; using the podman CLI meanwhile");
        }
        up
    }

    /// Something suggests the service is gone (its event stream broke): check now.
    pub fn suspect(&self) {
        self.suspect.notify_one();
    }

    /// Starts the managed service when it is not running (for the event stream, which is
    /// no call of the runtime's).
    pub async fn ensure_running(&self) {
        if let Some(service) = &self.service
            && !service.running().await
        {
            self.check(true).await;
        }
    }

    /// Keeps the service answering until `stop` turns true: a check every `WATCH_UP` while
    /// it answers, at once when a call of the runtime fails or the event stream breaks, and
    /// every `WATCH_DOWN` while it does not answer.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let up = self.answering();
            let eager = tokio::select! {
                () = tokio::time::sleep(if up { WATCH_UP } else { WATCH_DOWN }) => !up,
                () = self.runtime.api_declared_down(), if up => true,
                () = self.suspect.notified() => true,
                _ = stop.wait_for(|stopping| *stopping) => return,
            };
            self.check(eager).await;
        }
    }

    /// Stops the service this agent started; one it adopted or a node's own stays.
    pub async fn shutdown(&self) {
        if let Some(service) = &self.service {
            service.stop().await;
        }
    }
}
