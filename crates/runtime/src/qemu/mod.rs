//! The QEMU backend: each component a Nanos unikernel built with `ops` from the program in its
//! OCI image, booted daemonized so VMs outlive the agent, found again from their state dirs.

mod argv;
mod console;
mod elf;
mod image_cache;
mod ops;
pub mod qmp;
mod vm;

pub use argv::{Forward, VmLaunch, parse_forward, qemu_argv};
pub use elf::check_x86_64_elf;
pub use ops::{OpsConfig, build_argv as ops_build_argv};

use async_trait::async_trait;
use servicedef::RuntimeKind;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

use crate::{
    Accel, ContainerSpec, InstanceInfo, InstanceState, LABEL_SERVICE, LogOptions, LogStream,
    PodmanRuntime, Runtime, RuntimeError,
};
use vm::{Meta, MetaPort, VmDir};

#[derive(Debug, Clone)]
pub struct QemuConfig {
    pub qemu: PathBuf,
    pub ops: PathBuf,
    /// HOME for `ops` (it keeps its kernel and writes images under `$HOME/.ops`).
    pub ops_home: PathBuf,
    /// `<state>`: VMs live in `<state>/vm/<name>`, images in `<state>/images`.
    pub state_dir: PathBuf,
    /// Where legacy port mappings without an address are bound.
    pub default_bind: IpAddr,
    /// How long a guest with ports gets to answer on its first one.
    pub boot_timeout: Duration,
    /// How long an ACPI power-down may take before QEMU is told to quit.
    pub powerdown_timeout: Duration,
    /// A console log larger than this is rotated (`rotate_consoles`); 0: no limit.
    pub console_max_bytes: u64,
}

pub struct QemuRuntime {
    config: QemuConfig,
    podman: Arc<PodmanRuntime>,
    /// The accelerator to use; `None` until the agent's probe (or its config) decides.
    accel: watch::Receiver<Option<Accel>>,
    /// Set when a guest that the probe's KVM verdict sent to KVM did not boot there but did
    /// under TCG: from then on every VM of this agent runs under TCG. The probe's tiny guest
    /// can pass where a real kernel cannot (e.g. PVM-style nested KVM, whose instruction
    /// emulation stops a Linux kernel early in its boot).
    kvm_failed: std::sync::Mutex<Option<String>>,
    /// Told after every boot (run or start): the agent's VM watcher follows the new QEMU's
    /// events monitor at once instead of at its next scan.
    booted: tokio::sync::Notify,
}

/// How long a guest gets to answer under KVM before it is tried again under TCG. A guest
/// that works under KVM answers well within it (TCG, ~10x slower, takes ~4 s here).
const KVM_FIRST_ANSWER: Duration = Duration::from_secs(8);

/// How long `run` waits for the accelerator decision before giving up.
const ACCEL_WAIT: Duration = Duration::from_secs(30);
const CONSOLE_TAIL: usize = 20;
/// How often a new readiness probe starts while a guest boots.
const PROBE_EVERY: Duration = Duration::from_millis(50);
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one probe waits for the guest's first byte.
const PROBE_READ_TIMEOUT: Duration = Duration::from_millis(1000);

/// Rewrites a KVM launch to TCG: QEMU's accelerator flag and the CPU model that goes with it.
fn to_tcg(meta: &mut Meta) {
    let mut argv = Vec::with_capacity(meta.argv.len() + 1);
    let mut args = meta.argv.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-enable-kvm" => argv.extend(["-accel".to_string(), Accel::Tcg.as_str().to_string()]),
            "-cpu" => {
                args.next();
                argv.extend(["-cpu".to_string(), Accel::Tcg.cpu_model().to_string()]);
            }
            _ => argv.push(arg.clone()),
        }
    }
    meta.argv = argv;
    meta.accel = Accel::Tcg.as_str().to_string();
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn io_err(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |source| RuntimeError::Io {
        what: what.to_string(),
        source,
    }
}

impl QemuRuntime {
    pub fn new(
        config: QemuConfig,
        podman: Arc<PodmanRuntime>,
        accel: watch::Receiver<Option<Accel>>,
    ) -> Self {
        Self {
            config,
            podman,
            accel,
            kvm_failed: std::sync::Mutex::new(None),
            booted: tokio::sync::Notify::new(),
        }
    }

    /// Completes after the next boot of a VM (or at once if one happened since the last
    /// call).
    pub async fn booted(&self) {
        self.booted.notified().await;
    }

    /// Why VMs run under TCG although the probe found KVM usable, if they do.
    pub fn kvm_fallback(&self) -> Option<String> {
        self.kvm_failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_kvm_fallback(&self, reason: Option<String>) {
        *self
            .kvm_failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }

    fn vm_root(&self) -> PathBuf {
        self.config.state_dir.join("vm")
    }

    /// Names of the VMs whose QEMU runs, from their pidfiles alone (no QMP, no podman): cheap
    /// enough to ask every second, so a VM that dies is noticed at once.
    /// Follows VM `name`'s events monitor (`EventFollower::ended` says when the VM ends). An
    /// error when it does not answer (a VM started before it existed, or one gone).
    pub async fn follow_events(&self, name: &str) -> Result<qmp::EventFollower, RuntimeError> {
        let socket = self.vm(name).events_path()?;
        qmp::follow(&socket.path).await
    }

    /// Whether VM `name`'s QEMU process runs.
    pub fn is_running(&self, name: &str) -> bool {
        self.vm(name).running_pid().is_some()
    }

    pub fn live_vms(&self) -> std::collections::BTreeSet<String> {
        let Ok(entries) = std::fs::read_dir(self.vm_root()) else {
            return Default::default();
        };
        entries
            .filter_map(Result::ok)
            .filter(|entry| VmDir { dir: entry.path() }.running_pid().is_some())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Rotates every VM's console log that outgrew `console_max_bytes` (blocking file work:
    /// call it off the async threads). Returns how many were rotated; failures are logged.
    pub fn rotate_consoles(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(self.vm_root()) else {
            return 0;
        };
        let mut rotated = 0;
        for entry in entries.filter_map(Result::ok) {
            let log = VmDir { dir: entry.path() }.console();
            match console::rotate(&log, self.config.console_max_bytes) {
                Ok(true) => rotated += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(log = %log.display(), error = %e, "cannot rotate a VM console log")
                }
            }
        }
        rotated
    }

    fn images_dir(&self) -> PathBuf {
        self.config.state_dir.join("images")
    }

    fn vm(&self, name: &str) -> VmDir {
        VmDir::new(&self.vm_root(), name)
    }

    async fn accelerator(&self) -> Result<Accel, RuntimeError> {
        let mut rx = self.accel.clone();
        let decided = tokio::time::timeout(ACCEL_WAIT, rx.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|value| *value);
        let decided = decided.ok_or_else(|| RuntimeError::Failed {
            what: "choosing a QEMU accelerator".into(),
            detail: format!("the accelerator probe gave no answer within {ACCEL_WAIT:?}"),
        })?;
        Ok(match decided {
            Accel::Kvm if self.kvm_fallback().is_some() => Accel::Tcg,
            other => other,
        })
    }

    /// Launches `meta`'s VM and waits for its guest; a guest that does not answer under KVM
    /// is launched again under TCG (and KVM is not used again by this runtime), unless it
    /// fails there too, which is then the guest's fault.
    async fn boot(&self, vm: &VmDir, meta: &mut Meta) -> Result<(), RuntimeError> {
        let name = meta.name.clone();
        let phase = Phase::start(&name, "launch");
        self.launch(vm, &meta.argv).await?;
        phase.done();
        self.booted.notify_one();
        meta.started_at = Some(now_secs());
        vm.write_meta(meta)?;
        let phase = Phase::start(&name, "boot");
        if meta.accel != Accel::Kvm.as_str() {
            self.wait_until_answering(vm, meta, self.config.boot_timeout)
                .await?;
            phase.done();
            return Ok(());
        }
        let first = self.config.boot_timeout.min(KVM_FIRST_ANSWER);
        let Err(kvm_error) = self.wait_until_answering(vm, meta, first).await else {
            phase.done();
            return Ok(());
        };
        tracing::warn!(vm = %meta.name, error = %kvm_error, "the guest did not boot under KVM; trying TCG");
        self.kill_hard(vm).await;
        to_tcg(meta);
        vm.write_meta(meta)?;
        self.launch(vm, &meta.argv).await?;
        meta.started_at = Some(now_secs());
        vm.write_meta(meta)?;
        match self
            .wait_until_answering(vm, meta, self.config.boot_timeout)
            .await
        {
            Ok(()) => {
                self.set_kvm_fallback(Some(format!(
                    "a guest did not boot under KVM within {first:?} but did under TCG; VMs run under TCG"
                )));
                phase.done();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Launches QEMU with the recorded argv (working dir = the VM dir, for the QMP socket).
    async fn launch(&self, vm: &VmDir, argv: &[String]) -> Result<(), RuntimeError> {
        let out = tokio::process::Command::new(&self.config.qemu)
            .args(argv)
            .current_dir(&vm.dir)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| RuntimeError::Unavailable {
                binary: self.config.qemu.clone(),
                source,
            })?;
        // With -daemonize the launcher exits once the VM is set up; failing here means QEMU
        // refused its arguments or could not start the accelerator.
        if !out.status.success() {
            return Err(RuntimeError::Command {
                what: format!("qemu for {}", vm.dir.display()),
                code: out.status.code(),
                stderr: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    console_suffix(vm)
                ),
            });
        }
        Ok(())
    }

    /// Waits until the guest answers on its first TCP port (or just runs, without ports).
    ///
    /// Probes overlap (a new one every `PROBE_EVERY` while earlier ones may still wait)
    /// because QEMU's user-mode network accepts a connection while the guest boots and holds
    /// it until the guest's network comes up (or the read times out): waiting for each probe
    /// before the next would notice a ready guest later (BENCHMARKS.md).
    async fn wait_until_answering(
        &self,
        vm: &VmDir,
        meta: &Meta,
        timeout: Duration,
    ) -> Result<(), RuntimeError> {
        let Some(port) = meta.ports.iter().find(|p| p.protocol == "tcp").cloned() else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut probes = tokio::task::JoinSet::new();
        let mut tick = tokio::time::interval(PROBE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if vm.running_pid().is_none() {
                        return Err(RuntimeError::Failed {
                            what: format!("VM {}", meta.name),
                            detail: format!(
                                "QEMU exited while the guest booted{}",
                                console_suffix(vm)
                            ),
                        });
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Err(RuntimeError::Failed {
                            what: format!("VM {}", meta.name),
                            detail: format!(
                                "the guest did not answer on {}:{} within {:?}{}",
                                port.host_ip,
                                port.host_port,
                                timeout,
                                console_suffix(vm)
                            ),
                        });
                    }
                    probes.spawn(guest_answers(port.clone()));
                }
                Some(answered) = probes.join_next(), if !probes.is_empty() => {
                    if answered.unwrap_or(false) {
                        return Ok(());
                    }
                }
            }
        }
    }

    fn info(&self, vm: &VmDir) -> Option<InstanceInfo> {
        let meta = vm.read_meta().ok()?;
        let running = vm.running_pid().is_some();
        let exited_at = (!running)
            .then(|| std::fs::metadata(vm.console()).ok()?.modified().ok())
            .flatten()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok());
        Some(InstanceInfo {
            name: meta.name.clone(),
            id: meta.id.clone(),
            image: meta.image.clone(),
            state: if running {
                InstanceState::Running
            } else {
                InstanceState::Exited
            },
            started_at: meta.started_at,
            // A unikernel does not report its program's exit status to the host.
            exit_code: (!running).then_some(-1),
            exited_at,
            ports: meta.ports.iter().map(Into::into).collect(),
            runtime: RuntimeKind::Unikernel,
            labels: meta.labels.clone(),
            accelerator: Some(meta.accel.clone()),
        })
    }

    async fn kill_hard(&self, vm: &VmDir) {
        if let Some(pid) = vm.running_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            wait_gone(vm, Duration::from_secs(3)).await;
        }
    }
}

fn private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)
}

/// One timed step of a VM's start, logged at debug level when done (mcp-bench reads it).
struct Phase<'a> {
    vm: &'a str,
    name: &'static str,
    started: std::time::Instant,
}

impl<'a> Phase<'a> {
    fn start(vm: &'a str, name: &'static str) -> Self {
        Self {
            vm,
            name,
            started: std::time::Instant::now(),
        }
    }

    fn done(self) {
        tracing::debug!(
            phase = %self.name,
            elapsed_us = u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX),
            vm = %self.vm,
            "vm phase"
        );
    }
}

fn console_suffix(vm: &VmDir) -> String {
    let tail = vm.console_tail(CONSOLE_TAIL);
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last console lines:\n  {}", tail.replace('\n', "\n  "))
    }
}

/// Readiness through user-mode networking: QEMU accepts on the host port even before the
/// guest listens (and holds the connection while the guest is still booting), so an open
/// connection proves nothing. The guest proves it serves by answering: we send a minimal
/// HTTP request and any bytes back count (HTTP servers answer; so does most anything that
/// reads a request and replies, even with an error).
async fn guest_answers(port: MetaPort) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(ip) = port.host_ip.parse::<IpAddr>() else {
        return false;
    };
    let probe = async {
        let connect = tokio::net::TcpStream::connect((ip, port.host_port));
        let mut stream = tokio::time::timeout(PROBE_CONNECT_TIMEOUT, connect)
            .await
            .ok()?
            .ok()?;
        stream
            .write_all(b"GET / HTTP/1.0\r\nHost: mcp-readiness\r\n\r\n")
            .await
            .ok()?;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(PROBE_READ_TIMEOUT, stream.read(&mut byte)).await;
        Some(matches!(read, Ok(Ok(n)) if n > 0))
    };
    probe.await.unwrap_or(false)
}

async fn wait_gone(vm: &VmDir, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if vm.running_pid().is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    vm.running_pid().is_none()
}

#[async_trait]
impl Runtime for QemuRuntime {
    async fn pull(&self, image: &str) -> Result<(), RuntimeError> {
        self.podman.pull(image).await
    }

    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let invalid = |detail: String| RuntimeError::InvalidSpec {
            name: spec.name.clone(),
            detail,
        };
        let memory_mb = spec
            .memory_mb
            .filter(|m| *m > 0)
            .ok_or_else(|| invalid("a unikernel needs memory_mb > 0".into()))?;
        let forwards = spec
            .ports
            .iter()
            .map(|p| parse_forward(p, self.config.default_bind))
            .collect::<Result<Vec<_>, _>>()?;
        let accel = self.accelerator().await?;
        let service = spec.labels.get(LABEL_SERVICE).cloned().unwrap_or_default();
        let phase = Phase::start(&spec.name, "elf");
        let elf = elf::extract(
            &self.podman,
            &self.images_dir().join("elf"),
            &spec.image,
            spec.binary.as_deref(),
            &service,
        )
        .await?;
        phase.done();

        let vm = self.vm(&spec.name);
        if vm.dir.exists() {
            // Leftovers of a VM that was never removed (an agent killed mid-run).
            self.kill_hard(&vm).await;
            std::fs::remove_dir_all(&vm.dir).map_err(io_err(vm.dir.display()))?;
        }
        // The VM's config carries its environment (secrets, perhaps): owner-only, like images.
        private_dir(&vm.dir).map_err(io_err(vm.dir.display()))?;
        let result = async {
            // A VM has no secret store: its secrets are baked into its image with its
            // environment, both owner-only and removed with the VM.
            let mut env = spec.env.clone();
            for secret in &spec.secrets {
                let value = std::str::from_utf8(secret.value.expose())
                    .map_err(|_| invalid(format!("secret {} is not UTF-8 text", secret.var)))?;
                env.push(format!("{}={value}", secret.var));
            }
            let config = OpsConfig::new(&spec.cmd, &env, memory_mb, spec.vcpus);
            let json = serde_json::to_string_pretty(&config).map_err(|e| invalid(e.to_string()))?;
            write_private(&vm.config_json(), json.as_bytes())
                .map_err(io_err(vm.config_json().display()))?;
            private_dir(&self.images_dir()).map_err(io_err(self.images_dir().display()))?;
            let image = self.images_dir().join(format!("{}.img", spec.name));
            let cache = image_cache::ImageCache::new(self.images_dir().join("built"));
            let key = image_cache::key(&elf, json.as_bytes()).map_err(io_err(elf.display()))?;
            if cache
                .copy_to(&key, &image)
                .map_err(io_err(image.display()))?
            {
                tracing::debug!(vm = %spec.name, "reused the built image");
            } else {
                let phase = Phase::start(&spec.name, "ops-build");
                let built = ops::build(
                    &self.config.ops,
                    &self.config.ops_home,
                    &elf,
                    &spec.name,
                    &vm.config_json(),
                )
                .await?;
                phase.done();
                // The image holds the environment and secrets: owner-only, and no copy is
                // left in ops's directory.
                std::fs::rename(&built, &image)
                    .or_else(|_| {
                        std::fs::copy(&built, &image)?;
                        std::fs::remove_file(&built)
                    })
                    .map_err(io_err(image.display()))?;
                if let Err(e) = cache.store(&key, &image) {
                    tracing::warn!(vm = %spec.name, error = %e, "cannot cache the built image");
                }
            }
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&image, std::fs::Permissions::from_mode(0o600))
                    .map_err(io_err(image.display()))?;
            }
            let argv = qemu_argv(&VmLaunch {
                name: &spec.name,
                image: &image,
                memory_mb,
                vcpus: spec.vcpus,
                accel,
                forwards: &forwards,
                console_log: &vm.console(),
                qmp_socket: std::path::Path::new(VmDir::QMP_SOCKET),
                events_socket: std::path::Path::new(VmDir::EVENTS_SOCKET),
                pidfile: &vm.pidfile(),
            });
            let mut meta = Meta {
                name: spec.name.clone(),
                id: format!(
                    "vm-{:x}",
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                ),
                image: spec.image.clone(),
                labels: spec.labels.clone(),
                ports: forwards
                    .iter()
                    .map(|f| MetaPort {
                        host_ip: f.host_ip.to_string(),
                        host_port: f.host_port,
                        guest_port: f.guest_port,
                        protocol: f.protocol.clone(),
                    })
                    .collect(),
                argv,
                accel: accel.as_str().to_string(),
                started_at: None,
            };
            vm.write_meta(&meta)?;
            self.boot(&vm, &mut meta).await?;
            Ok(meta.id)
        }
        .await;
        if result.is_err() {
            // Nothing of a failed run stays: no QEMU, no state dir, no image.
            self.kill_hard(&vm).await;
            let image = self.images_dir().join(format!("{}.img", spec.name));
            for removed in [
                std::fs::remove_dir_all(&vm.dir),
                std::fs::remove_file(&image),
            ] {
                if let Err(e) = removed.or_else(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Ok(()),
                    _ => Err(e),
                }) {
                    tracing::warn!(vm = %spec.name, error = %e, "cleanup after a failed start");
                }
            }
        }
        result
    }

    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        let vm = self.vm(name);
        if vm.running_pid().is_some() {
            return Ok(());
        }
        let mut meta = vm.read_meta()?;
        if meta.accel == Accel::Kvm.as_str() && self.kvm_fallback().is_some() {
            to_tcg(&mut meta);
        }
        if let Err(e) = self.boot(&vm, &mut meta).await {
            self.kill_hard(&vm).await;
            return Err(e);
        }
        Ok(())
    }

    async fn stop(&self, name: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let vm = self.vm(name);
        if vm.running_pid().is_none() {
            return Ok(());
        }
        let grace = timeout.min(self.config.powerdown_timeout);
        if let Ok(socket) = vm.qmp_path()
            && qmp::execute(&socket.path, "system_powerdown").await.is_ok()
            && wait_gone(&vm, grace).await
        {
            return Ok(());
        }
        if let Ok(socket) = vm.qmp_path() {
            let _ = qmp::execute(&socket.path, "quit").await;
        }
        if wait_gone(&vm, Duration::from_secs(3)).await {
            return Ok(());
        }
        self.kill_hard(&vm).await;
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let vm = self.vm(name);
        self.stop(name, Duration::from_secs(1)).await?;
        if vm.dir.exists() {
            std::fs::remove_dir_all(&vm.dir).map_err(io_err(vm.dir.display()))?;
        }
        let image = self.images_dir().join(format!("{name}.img"));
        if image.exists() {
            std::fs::remove_file(&image).map_err(io_err(image.display()))?;
        }
        Ok(())
    }

    async fn inspect(&self, name: &str) -> Result<Option<InstanceInfo>, RuntimeError> {
        let vm = self.vm(name);
        let Some(mut info) = self.info(&vm) else {
            return Ok(None);
        };
        // QMP knows more than "the process lives": a paused or shut-down guest.
        if info.state == InstanceState::Running
            && let Ok(socket) = vm.qmp_path()
            && let Ok(status) = qmp::status(&socket.path).await
        {
            info.state = InstanceState::parse(&status);
        }
        Ok(Some(info))
    }

    async fn list(&self) -> Result<Vec<InstanceInfo>, RuntimeError> {
        let root = self.vm_root();
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(root.display())(e)),
        };
        let mut list: Vec<InstanceInfo> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| self.info(&VmDir { dir: entry.path() }))
            .filter(|info| info.service().is_some())
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(list)
    }

    /// A console has no timestamps: the agent refuses `timestamps` and `since` for VMs.
    async fn logs(&self, name: &str, options: &LogOptions) -> Result<LogStream, RuntimeError> {
        let vm = self.vm(name);
        if !vm.meta().exists() {
            return Err(RuntimeError::Failed {
                what: format!("logs of {name}"),
                detail: "no such VM".into(),
            });
        }
        Ok(console::stream(vm.console(), options.tail, options.follow))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_kvm_launch_is_rewritten_to_tcg_with_its_cpu_model() {
        let mut meta = Meta {
            name: "vm".into(),
            id: "vm-1".into(),
            image: "i".into(),
            labels: Default::default(),
            ports: Vec::new(),
            argv: ["-name", "vm", "-enable-kvm", "-cpu", "host", "-m", "256"]
                .map(String::from)
                .to_vec(),
            accel: "kvm".into(),
            started_at: None,
        };
        to_tcg(&mut meta);
        assert_eq!(
            meta.argv,
            ["-name", "vm", "-accel", "tcg", "-cpu", "max", "-m", "256"]
        );
        assert_eq!(meta.accel, "tcg");
    }
}
