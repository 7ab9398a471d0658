//! End-to-end harness: a real `mcp-agent --dev` process per test, the real `mcp` binary,
//! real podman with a private store shared by the test run, and the example HTTP server
//! as the test image.
//!
//! Needs podman (with runc), gcc and docker-registry on the machine; a missing one fails the
//! test loudly, it never skips.
#![allow(dead_code, clippy::unwrap_used)]

pub mod oci;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
pub use testkit::free_port;

/// The test image, tagged with a hash of its sources so an edited server is rebuilt.
pub fn image() -> String {
    let root = repo_root();
    let mut sources = std::fs::read(root.join("examples/hello/hello.c")).unwrap();
    sources.extend(std::fs::read(root.join("examples/hello/Containerfile")).unwrap());
    format!("localhost/mcp-test-hello:{:08x}", fnv1a(&sources))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// `<target>/debug`, where cargo put `mcp` and (built by the same workspace build) `mcp-agent`.
fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mcp"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn mcp_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp"))
}

pub fn agent_bin() -> PathBuf {
    let path = bin_dir().join("mcp-agent");
    assert!(
        path.is_file(),
        "{} is missing: build the workspace's binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Short, per-checkout paths: podman's runroot holds sockets with a length limit.
fn store_base() -> PathBuf {
    PathBuf::from(format!(
        "/var/tmp/mcpt-{:08x}",
        fnv1a(repo_root().to_string_lossy().as_bytes())
    ))
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(16_777_619)
    })
}

pub fn podman_global_args() -> Vec<String> {
    let base = store_base();
    vec![
        format!("--root={}", base.join("root").display()),
        format!("--runroot={}", base.join("run").display()),
    ]
}

pub fn containers_conf() -> PathBuf {
    repo_root().join("config/podman-sandbox.conf")
}

/// podman on the agents' store (the node's).
pub fn podman(args: &[&str]) -> Output {
    podman_in(&podman_global_args(), args)
}

/// podman on the store given by `global_args`.
pub fn podman_in(global_args: &[String], args: &[&str]) -> Output {
    Command::new("podman")
        .args(global_args)
        .args(args)
        .env("CONTAINERS_CONF", containers_conf())
        .stdin(Stdio::null())
        .output()
        .expect("podman must be installed for the end-to-end tests")
}

/// Builds the test image once per store; concurrent test processes wait on a lock file.
pub fn ensure_image() {
    let _guard = store_lock();
    let image = image();
    if podman(&["image", "exists", &image]).status.success() {
        return;
    }
    let ctx = store_base().join("image-context");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(hello_binary_locked(), ctx.join("hello")).unwrap();
    std::fs::copy(
        repo_root().join("examples/hello/Containerfile"),
        ctx.join("Containerfile"),
    )
    .unwrap();
    let out = podman(&["build", "-t", &image, ctx.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "podman build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The store-wide lock that builds of shared test artefacts hold.
fn store_lock() -> nix::fcntl::Flock<std::fs::File> {
    let base = store_base();
    std::fs::create_dir_all(&base).unwrap();
    let lock = std::fs::File::create(base.join("image.lock")).unwrap();
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap()
}

/// The example server compiled statically (once per source version).
pub fn hello_binary() -> PathBuf {
    let _guard = store_lock();
    hello_binary_locked()
}

fn hello_binary_locked() -> PathBuf {
    let source = repo_root().join("examples/hello/hello.c");
    let hash = fnv1a(&std::fs::read(&source).unwrap());
    let binary = store_base().join(format!("hello-{hash:08x}"));
    if binary.is_file() {
        return binary;
    }
    let out = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("gcc must be installed to build the test image");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

/// Prepares the stand-in ops' kernel and modules once per checkout (the script locks).
pub fn ensure_standin() -> PathBuf {
    let dir = bin_dir().join("ops-standin");
    let out = Command::new(repo_root().join("scripts/prepare-standin.sh"))
        .arg(&dir)
        .output()
        .expect("scripts/prepare-standin.sh must run");
    assert!(
        out.status.success(),
        "preparing the stand-in ops failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// Live QEMU processes whose command line mentions `needle`.
pub fn qemu_processes(needle: &str) -> Vec<i32> {
    processes("qemu-system", needle)
}

/// Live node proxies whose command line mentions `needle` (e.g. an agent's directory).
pub fn proxy_processes(needle: &str) -> Vec<i32> {
    processes("mcp-proxy", needle)
}

/// Live podman API services (`podman system service`) whose command line mentions `needle`.
pub fn podman_services(needle: &str) -> Vec<i32> {
    processes("system service", needle)
}

/// Live processes whose command line mentions both `program` and `needle`.
fn processes(program: &str, needle: &str) -> Vec<i32> {
    testkit::processes(&[program, needle])
}

/// A service name unique to this test process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct Agent {
    pub dir: tempfile::TempDir,
    extra_args: Vec<String>,
    /// Extra environment for the next `spawn` (e.g. MCP_AGENT_FAILPOINT).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    pub address: String,
    /// The loopback address this agent's node proxy binds public ports on: one per agent,
    /// so tests running at once never compete for a public port.
    pub proxy_ip: String,
    services: std::sync::Mutex<Vec<String>>,
    /// A production agent.toml (`-c`) instead of `--dev`.
    config_file: Option<PathBuf>,
    /// The podman store this agent's node uses (its global arguments).
    pub podman_args: Vec<String>,
}

/// A loopback address no other agent of this test process uses.
fn unique_loopback() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "127.{}.{}.{}",
        100 + std::process::id() % 150,
        n / 250,
        n % 250 + 1
    )
}

impl Agent {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// An agent with extra `mcp-agent` arguments (e.g. `--port-range`).
    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::start_full(extra_args, None, Vec::new())
    }

    /// An agent with a `--settings` file (agent.toml's tunable sections).
    pub fn start_settings(settings: &str) -> Self {
        Self::start_full(&[], Some(settings.to_string()), Vec::new())
    }

    /// An agent that runs unikernels through the stand-in `ops` (tests/fixtures/ops-standin),
    /// with VM power-down cut short (the stand-in guest ignores ACPI) and `extra_settings`
    /// appended to its `--settings` file's `[qemu]` section.
    pub fn start_unikernel(extra_args: &[&str], extra_qemu_settings: &str) -> Self {
        let standin = ensure_standin();
        let settings = format!(
            "[qemu]\nops = \"{}\"\nops_home = \"OPS_HOME\"\npowerdown_timeout_ms = 300\n{extra_qemu_settings}\n",
            repo_root().join("tests/fixtures/ops-standin/ops").display(),
        );
        let env = vec![(
            "MCP_OPS_STANDIN_DIR".to_string(),
            standin.display().to_string(),
        )];
        Self::start_full(extra_args, Some(settings), env)
    }

    fn start_full(
        extra_args: &[&str],
        settings: Option<String>,
        env: Vec<(String, String)>,
    ) -> Self {
        ensure_image();
        let dir = tempfile::tempdir().unwrap();
        let mut extra_args: Vec<String> = extra_args.iter().map(ToString::to_string).collect();
        if let Some(settings) = settings {
            let ops_home = dir.path().join("ops-home");
            std::fs::create_dir_all(&ops_home).unwrap();
            let path = dir.path().join("settings.toml");
            let text = settings.replace("OPS_HOME", &ops_home.display().to_string());
            std::fs::write(&path, text).unwrap();
            extra_args.push("--settings".into());
            extra_args.push(path.display().to_string());
        }
        let proxy_ip = unique_loopback();
        extra_args.push(format!("--proxy-bind={proxy_ip}"));
        let mut agent = Self {
            dir,
            extra_args,
            env,
            child: None,
            address: String::new(),
            proxy_ip,
            services: std::sync::Mutex::new(Vec::new()),
            config_file: None,
            podman_args: podman_global_args(),
        };
        agent.spawn();
        agent
    }

    /// An agent as on a real server: started with `-c agent.toml` as node `name`, TLS files
    /// `pki/ca.pem` and `pki/<name>.pem|key` (from `mcp tls`), a podman store of its own
    /// (a real node's is its own: its images come from a registry), and `tls_extra` /
    /// `podman_extra` lines appended to those sections.
    pub fn start_node(name: &str, pki: &Path, tls_extra: &str, podman_extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        let podman_args = vec![
            format!("--root={}", store.join("root").display()),
            format!("--runroot={}", store.join("run").display()),
        ];
        let proxy_ip = unique_loopback();
        let config = dir.path().join("agent.toml");
        let text = format!(
            "node = \"{name}\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{state}\"\n\
             [tls]\nca = \"{ca}\"\ncert = \"{cert}\"\nkey = \"{key}\"\n{tls_extra}\n\
             [podman]\nglobal_args = {args:?}\ncontainers_conf = \"{conf}\"\n{podman_extra}\n\
             [proxy]\nbind = \"{proxy_ip}\"\n",
            state = dir.path().join("agent/state").display(),
            ca = pki.join("ca.pem").display(),
            cert = pki.join(format!("{name}.pem")).display(),
            key = pki.join(format!("{name}.key")).display(),
            args = podman_args,
            conf = containers_conf().display(),
        );
        std::fs::write(&config, text).unwrap();
        let mut agent = Self {
            dir,
            extra_args: Vec::new(),
            env: Vec::new(),
            child: None,
            address: String::new(),
            proxy_ip,
            services: std::sync::Mutex::new(Vec::new()),
            config_file: Some(config),
            podman_args,
        };
        agent.spawn();
        agent
    }

    /// Starts (again) the agent process on the same directory.
    pub fn spawn(&mut self) {
        let mut cmd = Command::new(agent_bin());
        if let Some(config) = &self.config_file {
            cmd.arg("--config").arg(config);
        } else {
            cmd.arg("--dev")
                .arg("--dir")
                .arg(self.dir.path().join("agent"))
                .args(["--listen", "127.0.0.1:0"])
                .args(&self.extra_args);
            for arg in podman_global_args() {
                cmd.arg(format!("--podman-arg={arg}"));
            }
        }
        // The agent's log goes to a file beside its state; `log()` shows it on failure.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        // Its own process group, as a service manager would start it: a test can signal the
        // agent's whole group without signalling itself.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let mut child = cmd
            .env("CONTAINERS_CONF", containers_conf())
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("mcp-agent listening on ") {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    let _ = tx.send(addr);
                }
            }
        });
        self.address = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "the agent did not start listening within 60 s:\n{}",
                    self.log()
                )
            });
        self.child = Some(child);
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("agent/mcp.toml")
    }

    pub fn registry_path(&self) -> PathBuf {
        self.dir.path().join("agent/state/registry.db")
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().unwrap().id()).unwrap()
    }

    /// Sends `signal` and waits for the process to exit; returns its exit status.
    pub fn kill_with(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("agent is running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, signal).unwrap();
        child.wait().unwrap()
    }

    /// Sends `signal` to the agent's whole process group (what a service manager's stop does
    /// with every process the agent started in it) and waits for the agent to exit.
    pub fn kill_group_with(
        &mut self,
        signal: nix::sys::signal::Signal,
    ) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("agent is running");
        let group = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::killpg(group, signal).unwrap();
        child.wait().unwrap()
    }

    /// Like `kill_with`, but fine when the agent is not running.
    pub fn kill_with_if_running(
        &mut self,
        signal: nix::sys::signal::Signal,
    ) -> Option<std::process::ExitStatus> {
        self.child.is_some().then(|| self.kill_with(signal))
    }

    /// Waits for an agent that killed itself (a failpoint) to be gone.
    pub fn wait_dead(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("agent was started");
        // A failpoint that was never reached must fail the test, not hang it.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the agent did not die at its failpoint within 60 s:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A fast monitor for tests: looks every 200 ms, backs off from 300 ms up to 3 s.
    pub const FAST_MONITOR: [&'static str; 6] = [
        "--monitor-interval-ms",
        "200",
        "--backoff-base-ms",
        "300",
        "--backoff-max-ms",
        "3000",
    ];

    /// Starts the CLI against this agent without waiting (stderr piped, stdout dropped).
    pub fn spawn_mcp(&self, args: &[&str]) -> std::process::Child {
        Command::new(mcp_bin())
            .args(args)
            .env("MCP_CONFIG", self.config())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs the CLI against this agent.
    pub fn mcp(&self, args: &[&str]) -> Run {
        self.mcp_with(&self.config(), args)
    }

    /// Runs the CLI with another CLI config (e.g. one from `build_config`).
    pub fn mcp_with(&self, config: &Path, args: &[&str]) -> Run {
        self.mcp_full(config, args, &[], None)
    }

    /// Runs the CLI with extra environment variables and, when given, `stdin` as its input.
    pub fn mcp_full(
        &self,
        config: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<&[u8]>,
    ) -> Run {
        use std::io::Write;
        let mut child = Command::new(mcp_bin())
            .args(args)
            .env("MCP_CONFIG", config)
            // The CLI's own podman (builds) needs the sandbox settings too.
            .env("CONTAINERS_CONF", containers_conf())
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A CLI that refuses its arguments exits without reading its input.
            if let Err(e) = pipe.write_all(input) {
                assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
            }
        }
        Run::from(child.wait_with_output().unwrap())
    }

    /// The agent's `--dev --dir` directory: its state (`state/`), keys and configs.
    pub fn dev_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }

    /// Writes a definition into the test dir and remembers the service for cleanup.
    pub fn definition(&self, name: &str, body: &str) -> PathBuf {
        self.services.lock().unwrap().push(name.to_string());
        let path = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, body).unwrap();
        path
    }

    pub fn status_json(&self) -> serde_json::Value {
        let run = self.mcp(&["status", "--json"]);
        assert_eq!(run.code, 0, "status failed: {}", run.stderr);
        serde_json::from_str(&run.stdout).unwrap()
    }

    /// The status JSON of one component.
    pub fn component(&self, service: &str, component: &str) -> serde_json::Value {
        let status = self.status_json();
        status["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == service)
            .and_then(|s| {
                s["components"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["name"] == component)
                    .cloned()
            })
            .unwrap_or_else(|| panic!("{service}/{component} not in status: {status}"))
    }
}

/// The end of a test's helper process: its log if the test failed, then kill and reap it.
fn end_process(what: &str, log: impl FnOnce() -> String, child: Option<Child>) {
    if std::thread::panicking() {
        eprintln!("--- {what} log ---\n{}", log());
    }
    if let Some(mut child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let child = self.child.take();
        end_process("agent", || self.log(), child);
        for service in self.services.lock().unwrap().iter() {
            for id in containers_in(&self.podman_args, service) {
                podman_in(&self.podman_args, &["rm", "-f", "-t", "0", &id]);
            }
        }
        if self.config_file.is_some() {
            // A node's own store: nothing else uses it after this test.
            podman_in(&self.podman_args, &["rm", "-a", "-f", "-t", "0"]);
            podman_in(&self.podman_args, &["system", "reset", "--force"]);
        }
        // VMs are daemonized and the proxy has its own session: a finished test must not
        // leave them running.
        let dir = self.dir.path().to_string_lossy().to_string();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.path().join("agent/state/proxy/proxy.log"));
            eprintln!("--- proxy log ---\n{}", log.unwrap_or_default());
        }
        for pid in qemu_processes(&dir)
            .into_iter()
            .chain(proxy_processes(&dir))
            .chain(podman_services(&dir))
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Waits for every spawned `mcp` and fails on the first that did not succeed.
pub fn expect_all_succeed(children: Vec<std::process::Child>) {
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// IDs of every container (any state) labelled with `service`.
pub fn containers_of(service: &str) -> Vec<String> {
    containers_in(&podman_global_args(), service)
}

/// IDs of every container (any state) labelled with `service` in the store `global_args`.
pub fn containers_in(global_args: &[String], service: &str) -> Vec<String> {
    let filter = format!("label=mcp.service={service}");
    let out = podman_in(
        global_args,
        &["ps", "-a", "-q", "--no-trunc", "--filter", &filter],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// GET `path` on 127.0.0.1:`port`, retrying briefly while the server comes up.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(body) = http_get_once(port, path) {
            return Some(body);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn http_get_once(port: u16, path: &str) -> Option<String> {
    http_request(port, "GET", path, &[])
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
}

/// One HTTP/1.0 request to 127.0.0.1:`port`: the status code and body, `None` when nothing
/// answers.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    http_request_to("127.0.0.1", port, method, path, headers)
}

/// One HTTP/1.0 request to `ip`:`port` on a new connection.
pub fn http_request_to(
    ip: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((ip, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Polls `check` until it holds or `timeout` passes; the condition, not the clock, is
/// what the test asserts.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// A public port no other `routed_service` of this test process used.
pub fn unique_public_port() -> u16 {
    static N: AtomicU32 = AtomicU32::new(0);
    u16::try_from(20_000 + N.fetch_add(1, Ordering::Relaxed) % 40_000).unwrap()
}

/// A one-component service on the test image with routes (`None` name: the unnamed one),
/// each on a public port of its own.
pub fn routed_service(name: &str, routes: &[Option<&str>]) -> String {
    let mut body = format!(
        "name = \"{name}\"\nnode = \"local\"\n\n[[components]]\nname = \"api\"\nimage = \"{}\"\n",
        image()
    );
    for route in routes {
        body.push_str("[[components.routes]]\n");
        if let Some(route) = route {
            body.push_str(&format!("name = \"{route}\"\n"));
        }
        body.push_str(&format!("port = {}\n", unique_public_port()));
    }
    body
}

/// The host ports of a component's routes, by route name ("" for the unnamed one).
pub fn route_ports(component: &serde_json::Value) -> std::collections::BTreeMap<String, u16> {
    component["routes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let port = u16::try_from(r["host_port"].as_u64()?).ok()?;
            Some((r["name"].as_str().unwrap_or_default().to_string(), port))
        })
        .collect()
}

/// A one-component service on the test image with a legacy port mapping.
pub fn web_service(name: &str, port: u16, greeting: &str) -> String {
    format!(
        "name = \"{name}\"\nnode = \"local\"\n\n[[components]]\nname = \"web\"\nimage = \"{}\"\n\
         env = [\"GREETING={greeting}\"]\nports = [\"127.0.0.1:{port}:8080\"]\n",
        image()
    )
}

/// One request of a client loop: when it started, and the body or why it failed.
pub type Outcome = (Instant, Result<String, String>);

/// A client that sends GET / on a new connection every few milliseconds until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Outcome>>,
}

impl Load {
    pub fn start(ip: &str, port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, ip) = (Arc::clone(&stop), ip.to_string());
        let handle = std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let at = Instant::now();
                let result = match http_request_to(&ip, port, "GET", "/", &[]) {
                    Some((200, body)) => Ok(body),
                    other => Err(format!("{other:?}")),
                };
                outcomes.push((at, result));
                std::thread::sleep(Duration::from_millis(10));
            }
            outcomes
        });
        Self { stop, handle }
    }

    /// Stops the loop and returns every request's outcome; fails the test on any failed one.
    pub fn finish(self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        let outcomes = self.handle.join().unwrap();
        let failed: Vec<&Outcome> = outcomes.iter().filter(|(_, r)| r.is_err()).collect();
        assert!(
            failed.is_empty(),
            "{} of {} requests failed, first: {:?}",
            failed.len(),
            outcomes.len(),
            failed.first()
        );
        assert!(outcomes.len() > 20, "the load ran: {}", outcomes.len());
        outcomes
    }
}

/// Bodies of requests that started in `[from, to)`.
pub fn bodies_between(outcomes: &[Outcome], from: Instant, to: Instant) -> Vec<&str> {
    outcomes
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .filter_map(|(_, r)| r.as_deref().ok())
        .collect()
}

/// Waits until the proxy answers on `port` with a body containing `text`.
pub fn served(agent: &Agent, port: u16, text: &str) {
    let ok = eventually(Duration::from_secs(20), || {
        http_request_to(&agent.proxy_ip, port, "GET", "/", &[])
            .is_some_and(|(status, body)| status == 200 && body.contains(text))
    });
    assert!(
        ok,
        "the proxy never answered {text:?} on {port}:\n{}",
        agent.log()
    );
}
