//! The podman backend. Listings, image checks and the container lifecycle (create, start,
//! stop, restart, remove) go to podman's API socket when the node has one (`api.rs`, a
//! service `service.rs` keeps running); the rest (pull, logs, secrets, logins), and those too
//! while the API does not answer, is one `podman` process run with an argument vector.

pub mod api;
mod args;
mod image;
mod listing;
mod logs;
pub mod service;
mod specgen;

use async_trait::async_trait;
use podman_cli::{Podman, PodmanCli, PodmanError, gone_is_ok};
use servicedef::ImageRef;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::{
    ContainerSpec, InstanceInfo, LABEL_SERVICE, LogOptions, LogStream, Runtime, RuntimeError,
};
pub use image::ImageFacts;

/// How to invoke podman on this node.
#[derive(Debug, Clone, Default)]
pub struct PodmanConfig {
    /// The binary, its global arguments and containers.conf.
    pub cli: PodmanCli,
    /// Extra arguments for `podman run`, e.g. `--ulimit` on hosts that need them. Any but
    /// `--log-opt max-size` has no exact API equivalent (`specgen.rs`): containers are then
    /// created with `podman run`.
    pub run_args: Vec<String>,
    /// Registries (`host[:port]`, as written in image references) pulled from over plain
    /// HTTP (`--tls-verify=false`). Nothing else is.
    pub insecure_registries: Vec<String>,
    /// Registry credentials for this node's pulls (`mcp registry login`), in podman's
    /// auth.json format, owner-only. Used once it exists.
    pub auth_file: Option<PathBuf>,
}

fn write_env_file(env: &[String]) -> Result<Option<tempfile::NamedTempFile>, RuntimeError> {
    use std::io::Write;
    if env.is_empty() {
        return Ok(None);
    }
    let err = |source: std::io::Error| RuntimeError::Io {
        what: "the environment file for podman".into(),
        source,
    };
    // tempfile creates the file with mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix("mcp-env-")
        .tempfile()
        .map_err(err)?;
    for entry in env {
        // podman's env-file format is one KEY=VALUE per line; validation upstream refuses
        // names it cannot carry, and a newline in a value would split it.
        if entry.contains('\n') {
            return Err(RuntimeError::InvalidSpec {
                name: entry.split('=').next().unwrap_or_default().to_string(),
                detail: "environment values cannot contain newlines".into(),
            });
        }
        writeln!(file, "{entry}").map_err(err)?;
    }
    file.flush().map_err(err)?;
    Ok(Some(file))
}

/// How long `start` waits out podman's asynchronous network cleanup: 15 × 200 ms.
const START_RETRIES: u32 = 15;
const START_RETRY_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// Runs `start` again while it fails for a port still held. podman tears a stopped
/// container's network down in a cleanup process that may hold its published ports for a
/// moment after `stop` returned; starting again right away (a restart) then fails with
/// EADDRINUSE. This waits that out, briefly.
async fn retry_while_ports_linger<T, E, F, Fut>(
    start: F,
    ports_busy: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempts = 0;
    loop {
        match start().await {
            Err(e) if attempts < START_RETRIES && ports_busy(&e) => {
                attempts += 1;
                tokio::time::sleep(START_RETRY_DELAY).await;
            }
            other => return other,
        }
    }
}

fn port_in_use(message: &str) -> bool {
    message.contains("address already in use")
}

pub struct PodmanRuntime {
    podman: Podman,
    run_args: Vec<String>,
    insecure_registries: Vec<String>,
    auth_file: Option<PathBuf>,
    api: Option<ApiLink>,
}

/// The API and whether it answered last time: after a failure, calls go to the CLI until
/// `api_answered(true)` (the service watchdog's ping) says it is back, so a hung service
/// costs one timeout, not one per call.
struct ApiLink {
    api: api::PodmanApi,
    /// The service the agent runs on the socket, started again for a call when it exited
    /// (idle); `None` for a node's own socket.
    service: Option<Arc<service::PodmanService>>,
    /// Whether it answers (a watch: the watchdog wakes when a call finds it down).
    up: tokio::sync::watch::Sender<bool>,
    /// How often the watchdog's ping found it not answering (a watch: calls under way give
    /// up on such a verdict).
    verdicts_down: tokio::sync::watch::Sender<u64>,
    /// API calls under way: the watchdog pings only then (a ping between calls would keep
    /// an idle service from exiting).
    in_flight: Arc<AtomicUsize>,
}

/// One API call under way (`ApiLink::in_flight`), until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs an API call and logs its time as the CLI calls are logged (`podman call`), for
/// `mcp-bench`'s split of a deploy. With `link`, a call still waiting when the watchdog's
/// ping finds the service not answering (hung) is abandoned then, rather than at its own
/// timeout (60 s for changes), and the CLI takes it over. Creates are never abandoned
/// (pass no link): podman may still carry one out, and a retry would duplicate it.
async fn timed<T>(
    link: Option<&ApiLink>,
    subcommand: &'static str,
    call: impl std::future::Future<Output = Result<T, api::ApiError>>,
) -> Result<T, api::ApiError> {
    let started = std::time::Instant::now();
    let mut verdicts = link.map(|link| link.verdicts_down.subscribe());
    let declared_down = async {
        match verdicts.as_mut() {
            Some(verdicts) => drop(verdicts.changed().await),
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = call => result,
        () = declared_down => Err(api::ApiError::Abandoned {
            what: subcommand.trim_start_matches("api-").to_string(),
        }),
    };
    if result.is_ok() {
        tracing::debug!(
            subcommand,
            elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "podman call"
        );
    }
    result
}

/// A missing container is what stop and remove want: `gone_is_ok` for the API.
fn gone_is_ok_api(result: Result<(), api::ApiError>) -> Result<(), api::ApiError> {
    match result {
        Err(api::ApiError::Status { status: 404, .. }) => Ok(()),
        other => other,
    }
}

/// Prefix of the podman secrets mcp creates for `service`.
fn secret_prefix(service: &str) -> String {
    format!("mcp.{service}.")
}

/// Whether podman's error says the registry wants (other) credentials.
fn is_auth_failure(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    [
        "unauthorized",
        "authentication required",
        "denied",
        "invalid username/password",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// The end of podman's error chain ("unauthorized: authentication required"), without the
/// contexts wrapped around it.
fn reason(stderr: &str) -> String {
    let parts: Vec<&str> = stderr.trim().rsplitn(3, ": ").collect();
    match parts.as_slice() {
        [last, before, _] => format!("{before}: {last}"),
        _ => stderr.trim().to_string(),
    }
}

impl PodmanRuntime {
    pub fn new(config: PodmanConfig) -> Self {
        Self {
            auth_file: config.auth_file.clone(),
            run_args: config.run_args,
            insecure_registries: config.insecure_registries,
            podman: Podman::new(config.cli),
            api: None,
        }
    }

    /// Lists and image checks go to `api` from now on (the CLI while it does not answer).
    pub fn with_api(mut self, api: api::PodmanApi) -> Self {
        self.api = Some(ApiLink {
            api,
            service: None,
            up: tokio::sync::watch::Sender::new(true),
            verdicts_down: tokio::sync::watch::Sender::new(0),
            in_flight: Arc::default(),
        });
        self
    }

    /// Calls start `service` (the one on the API's socket) first when it is not running.
    pub fn with_service(mut self, service: Arc<service::PodmanService>) -> Self {
        if let Some(link) = &mut self.api {
            link.service = Some(service);
        }
        self
    }

    /// The API this runtime uses, if any.
    pub fn api(&self) -> Option<&api::PodmanApi> {
        self.api.as_ref().map(|link| &link.api)
    }

    /// Records whether the API answers (the watchdog's verdict); returns whether it did
    /// before.
    pub fn api_answered(&self, up: bool) -> bool {
        let Some(link) = &self.api else {
            return false;
        };
        let was = link.up.send_replace(up);
        if up && !was {
            tracing::info!("the podman API answers again");
        }
        if !up {
            link.verdicts_down.send_modify(|n| *n += 1);
        }
        was
    }

    /// Completes when the API is declared down (a call failed, or the watchdog's ping);
    /// never without an API.
    pub async fn api_declared_down(&self) {
        match &self.api {
            Some(link) => drop(link.up.subscribe().wait_for(|up| !*up).await),
            None => std::future::pending().await,
        }
    }

    /// Whether an API call is under way.
    pub fn api_busy(&self) -> bool {
        self.api
            .as_ref()
            .is_some_and(|link| link.in_flight.load(Ordering::SeqCst) > 0)
    }

    /// Whether the API answers, as far as the last call or check knows.
    pub fn api_up(&self) -> bool {
        self.live_api().is_some()
    }

    /// The API, while it answers.
    fn live_api(&self) -> Option<&api::PodmanApi> {
        self.api
            .as_ref()
            .filter(|link| *link.up.borrow())
            .map(|link| &link.api)
    }

    /// The API for a call, while it answers, and the call counted as under way until the
    /// guard is dropped: the service is started first when it exited (idle). One that
    /// cannot be started leaves the call to the CLI.
    async fn ready_api(&self) -> Option<(&api::PodmanApi, InFlight)> {
        let api = self.live_api()?;
        let link = self.api.as_ref()?;
        let in_flight = InFlight::new(&link.in_flight);
        if let Some(service) = &link.service
            && !service.running().await
            && let Err(error) = service.ensure().await
        {
            tracing::warn!(%error, "the podman API service does not start; using the podman CLI");
            link.up.send_replace(false);
            return None;
        }
        Some((api, in_flight))
    }

    /// A failed API call: logged, and the CLI takes over until the API answers again.
    fn api_failed(&self, error: &api::ApiError) {
        if let Some(link) = &self.api
            && link.up.send_replace(false)
        {
            tracing::warn!(%error, "the podman API failed; using the podman CLI until it answers");
        }
    }

    /// Whether podman itself answered `error` (a 4xx/5xx: the call's result). Otherwise
    /// the service did not answer; it is marked down, and the CLI takes the call over.
    fn podman_answered(&self, error: &api::ApiError) -> bool {
        if matches!(error, api::ApiError::Status { .. }) {
            return true;
        }
        self.api_failed(error);
        false
    }

    /// `call` on the API while it answers: `Some` with podman's answer (an error it gave
    /// included), `None` when the CLI is to do the call (no API, or it did not answer).
    /// `abandonable` calls give up when the watchdog finds the service hung (`timed`).
    async fn through_api<'a, T, Fut>(
        &'a self,
        subcommand: &'static str,
        abandonable: bool,
        call: impl Fn(&'a api::PodmanApi) -> Fut,
    ) -> Option<Result<T, RuntimeError>>
    where
        Fut: std::future::Future<Output = Result<T, api::ApiError>>,
    {
        match self.call_api(subcommand, abandonable, call).await? {
            Ok(value) => Some(Ok(value)),
            Err(e) if self.podman_answered(&e) => Some(Err(e.into())),
            Err(_) => None,
        }
    }

    /// `call` on the API while it answers (`None`: it does not). A service that could not
    /// be reached at all (it exited when idle just as the call came) is started and the call
    /// made once more: the request never reached podman.
    async fn call_api<'a, T, Fut>(
        &'a self,
        subcommand: &'static str,
        abandonable: bool,
        call: impl Fn(&'a api::PodmanApi) -> Fut,
    ) -> Option<Result<T, api::ApiError>>
    where
        Fut: std::future::Future<Output = Result<T, api::ApiError>>,
    {
        let (api, _in_flight) = self.ready_api().await?;
        let link = self.api.as_ref().filter(|_| abandonable);
        let first = timed(link, subcommand, call(api)).await;
        let service = self.api.as_ref().and_then(|link| link.service.as_ref());
        if let (Err(api::ApiError::Connect { .. }), Some(service)) = (&first, service)
            && service.ensure().await.is_ok()
        {
            return Some(timed(link, subcommand, call(api)).await);
        }
        Some(first)
    }

    /// `ps -a --format json` with `filters` (podman's filter JSON; the CLI form in `cli_filter`),
    /// through the API when it answers.
    async fn ps(&self, filters: &str, cli_filter: &str) -> Result<Vec<InstanceInfo>, RuntimeError> {
        match self
            .call_api("api-ps", true, |api| api.list_containers(filters))
            .await
        {
            Some(Ok(body)) => return listing::parse_ps(&String::from_utf8_lossy(&body)),
            Some(Err(e)) => self.api_failed(&e),
            None => {}
        }
        let out = self
            .podman
            .output(
                "podman ps",
                &["ps", "-a", "--filter", cli_filter, "--format", "json"],
            )
            .await?;
        listing::parse_ps(&out)
    }

    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError> {
        match self
            .call_api("api-image-exists", true, |api| api.image_exists(image))
            .await
        {
            Some(Ok(exists)) => return Ok(exists),
            Some(Err(e)) => self.api_failed(&e),
            None => {}
        }
        Ok(self.podman.succeeds(&["image", "exists", image]).await?)
    }

    fn is_insecure(&self, registry: &str) -> bool {
        self.insecure_registries.iter().any(|r| r == registry)
    }

    /// Whether `image` lives in a registry configured insecure (plain HTTP). A reference this
    /// parser refuses is left to podman, with TLS checks on.
    fn insecure(&self, image: &str) -> bool {
        ImageRef::parse(image)
            .ok()
            .and_then(|parsed| parsed.registry)
            .is_some_and(|registry| self.is_insecure(&registry))
    }

    /// The node's auth file, when credentials were stored.
    fn existing_auth_file(&self) -> Option<&std::path::Path> {
        self.auth_file.as_deref().filter(|f| f.exists())
    }

    /// Checks `username`'s password with `registry` and stores the credentials in the node's
    /// auth file (podman writes it 0600). The password goes through podman's stdin.
    pub async fn login(
        &self,
        registry: &str,
        username: &str,
        password: &[u8],
    ) -> Result<(), RuntimeError> {
        let Some(auth_file) = &self.auth_file else {
            return Err(RuntimeError::InvalidSpec {
                name: registry.to_string(),
                detail: "this node has no auth file configured".into(),
            });
        };
        let argv = args::login_args(registry, username, self.is_insecure(registry), auth_file);
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        match self
            .podman
            .output_with_input(&format!("podman login {registry}"), &refs, password)
            .await
        {
            Ok(_) => Ok(()),
            Err(PodmanError::Command { stderr, .. }) if is_auth_failure(&stderr) => {
                Err(RuntimeError::LoginRefused {
                    registry: registry.to_string(),
                    username: username.to_string(),
                    detail: stderr,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Forgets the node's credentials for `registry`; false when it had none.
    pub async fn logout(&self, registry: &str) -> Result<bool, RuntimeError> {
        let Some(auth_file) = self.existing_auth_file() else {
            return Ok(false);
        };
        let authfile = format!("--authfile={}", auth_file.display());
        match self
            .podman
            .output(
                &format!("podman logout {registry}"),
                &["logout", &authfile, registry],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(PodmanError::Command { stderr, .. }) if stderr.contains("not logged into") => {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stores each secret version in podman's secret store unless it is there already (a
    /// version's handle always names the same value): one call per secret, the value in the
    /// API request's body, or on the CLI's stdin.
    async fn ensure_secrets(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        let service = spec.labels.get(LABEL_SERVICE).cloned().unwrap_or_default();
        let label = format!("{LABEL_SERVICE}={service}");
        let labels = std::collections::BTreeMap::from([(LABEL_SERVICE.to_string(), service)]);
        for secret in &spec.secrets {
            // Never abandoned: a create podman may still carry out is not retried.
            let created = self
                .through_api("api-secret-create", false, |api| {
                    api.create_secret(&secret.handle, &labels, secret.value.expose())
                })
                .await;
            if let Some(created) = created {
                created?;
                continue;
            }
            let created = self
                .podman
                .output_with_input(
                    &format!("podman secret create {}", secret.handle),
                    &["secret", "create", "--label", &label, &secret.handle, "-"],
                    secret.value.expose(),
                )
                .await;
            match created {
                Ok(_) => {}
                Err(PodmanError::Command { stderr, .. })
                    if stderr.contains("secret name in use") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// `podman version`'s client version, for node status.
    pub async fn version(&self) -> Result<String, RuntimeError> {
        let out = self
            .podman
            .output("version", &["version", "--format", "{{.Client.Version}}"])
            .await?;
        Ok(out.trim().to_string())
    }
}

#[async_trait]
impl Runtime for PodmanRuntime {
    async fn pull(&self, image: &str) -> Result<(), RuntimeError> {
        // The same rule as run's: nothing option-like reaches podman's command line.
        ImageRef::parse(image)?;
        if self.image_exists(image).await? {
            return Ok(());
        }
        let argv = args::pull_args(image, self.insecure(image), self.existing_auth_file());
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        match self.podman.output("pull", &refs).await {
            Ok(_) => Ok(()),
            Err(PodmanError::Command { stderr, .. }) if is_auth_failure(&stderr) => {
                Err(RuntimeError::PullDenied {
                    registry: ImageRef::parse(image)
                        .ok()
                        .and_then(|parsed| parsed.registry)
                        .unwrap_or_else(|| "docker.io".into()),
                    image: image.to_string(),
                    detail: reason(&stderr),
                })
            }
            Err(PodmanError::Command { stderr, .. }) => Err(RuntimeError::ImageNotFound {
                image: image.to_string(),
                detail: stderr,
            }),
            Err(e) => Err(e.into()),
        }
    }

    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        args::refuse_option_like(spec)?;
        self.ensure_secrets(spec).await?;
        if let Some(body) = specgen::spec_generator(spec, &self.run_args)
            && let Some((api, _in_flight)) = self.ready_api().await
        {
            // The environment travels in the request body over the owner-only socket.
            match timed(None, "api-create", api.create_container(&spec.name, &body)).await {
                Ok(id) => {
                    self.start(&spec.name).await?;
                    return Ok(id);
                }
                // Refused before podman read the request: nothing was created.
                Err(e @ api::ApiError::Connect { .. }) => self.api_failed(&e),
                // It may have been created: the deployer's rollback removes it by name.
                Err(e) => {
                    self.podman_answered(&e);
                    return Err(e.into());
                }
            }
        }
        // The environment goes through a 0600 file that exists only while podman reads it.
        let env_file = write_env_file(&spec.env)?;
        let argv = args::run_args(spec, &self.run_args, env_file.as_ref().map(|f| f.path()))?;
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let id = self
            .podman
            .output(&format!("podman run {}", spec.name), &refs)
            .await?;
        Ok(id.trim().to_string())
    }

    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        let started = self
            .through_api("api-start", true, |api| {
                retry_while_ports_linger(
                    || api.start_container(name),
                    |e| matches!(e, api::ApiError::Status { message, .. } if port_in_use(message)),
                )
            })
            .await;
        if let Some(started) = started {
            return started;
        }
        let what = format!("podman start {name}");
        let argv = ["start", name];
        retry_while_ports_linger(
            || self.podman.output(&what, &argv),
            |e| matches!(e, PodmanError::Command { stderr, .. } if port_in_use(stderr)),
        )
        .await?;
        Ok(())
    }

    async fn restart(&self, name: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let restarted = self
            .through_api("api-restart", true, |api| {
                api.restart_container(name, timeout)
            })
            .await;
        if let Some(restarted) = restarted {
            return restarted;
        }
        let secs = timeout.as_secs().to_string();
        self.podman
            .output(
                &format!("podman restart {name}"),
                &["restart", "-t", &secs, name],
            )
            .await?;
        Ok(())
    }

    async fn prune_secrets(&self, service: &str, keep: &[String]) -> Result<(), RuntimeError> {
        let prefix = secret_prefix(service);
        let unused = |name: &str| name.starts_with(&prefix) && !keep.iter().any(|k| k == name);
        let pruned = self
            .through_api("api-secret-prune", true, |api| async move {
                for name in api.secret_names().await?.iter().filter(|n| unused(n)) {
                    api.remove_secret(name).await?;
                }
                Ok(())
            })
            .await;
        if let Some(pruned) = pruned {
            return pruned;
        }
        let out = self
            .podman
            .output(
                "podman secret ls",
                &["secret", "ls", "--format", "{{.Name}}"],
            )
            .await?;
        for name in out.lines().map(str::trim).filter(|name| unused(name)) {
            self.podman
                .output(&format!("podman secret rm {name}"), &["secret", "rm", name])
                .await?;
        }
        Ok(())
    }

    async fn stop(&self, name: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let stopped = self
            .through_api("api-stop", true, |api| async move {
                gone_is_ok_api(api.stop_container(name, timeout).await)
            })
            .await;
        if let Some(stopped) = stopped {
            return stopped;
        }
        let secs = timeout.as_secs().to_string();
        Ok(gone_is_ok(
            self.podman
                .output(&format!("podman stop {name}"), &["stop", "-t", &secs, name])
                .await,
        )?)
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let removed = self
            .through_api("api-rm", true, |api| async move {
                gone_is_ok_api(api.remove_container(name).await)
            })
            .await;
        if let Some(removed) = removed {
            return removed;
        }
        Ok(gone_is_ok(
            self.podman
                .output(
                    &format!("podman rm {name}"),
                    &["rm", "--force", "--time", "0", name],
                )
                .await,
        )?)
    }

    async fn inspect(&self, name: &str) -> Result<Option<InstanceInfo>, RuntimeError> {
        // `ps` rather than `inspect`: the same JSON shape as `list`, one parser.
        let filters = serde_json::json!({ "name": [format!("^{name}$")] }).to_string();
        Ok(self
            .ps(&filters, &format!("name=^{name}$"))
            .await?
            .into_iter()
            .find(|info| info.name == name))
    }

    async fn list(&self) -> Result<Vec<InstanceInfo>, RuntimeError> {
        let filters = serde_json::json!({ "label": [LABEL_SERVICE] }).to_string();
        self.ps(&filters, &format!("label={LABEL_SERVICE}")).await
    }

    async fn list_service(&self, service: &str) -> Result<Vec<InstanceInfo>, RuntimeError> {
        let label = format!("{LABEL_SERVICE}={service}");
        let filters = serde_json::json!({ "label": [label] }).to_string();
        self.ps(&filters, &format!("label={label}")).await
    }

    async fn logs(&self, name: &str, options: &LogOptions) -> Result<LogStream, RuntimeError> {
        let mut argv = vec!["logs".to_string()];
        if let Some(n) = options.tail {
            argv.push("--tail".into());
            argv.push(n.to_string());
        }
        if options.follow {
            argv.push("--follow".into());
        }
        if options.timestamps {
            argv.push("--timestamps".into());
        }
        if let Some(since) = options.since {
            argv.push(format!("--since={since}"));
        }
        argv.push(name.to_string());
        logs::stream(&self.podman, &argv, name).await
    }
}
