//! Shared test machinery: the proxy process, ports, routes, certificates, backends, clients.

pub mod backends;
pub mod certs;
pub mod clients;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use proxy::control::Client;
use proxy::table::{Mode, Route, Table, Tls};
pub use testkit::free_port;

/// A temp dir holding the proxy's state dir (not created: the proxy makes it) and its log.
pub struct StateDir {
    tmp: tempfile::TempDir,
}

impl StateDir {
    pub fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.tmp.path().join("state")
    }

    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    pub fn socket(&self) -> PathBuf {
        proxy::socket_path(&self.path())
    }
}

/// A running `mcp-proxy`; killed (SIGKILL) when dropped.
pub struct ProxyProcess {
    child: Child,
    log: PathBuf,
    socket: PathBuf,
}

impl ProxyProcess {
    /// Starts the proxy on `state` and waits until its control socket answers a ping.
    pub async fn start(state: &StateDir) -> Self {
        let log = state.scratch().join(format!(
            "proxy-{}.log",
            std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .expect("time")
                .as_nanos()
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_mcp-proxy"))
            .arg("--state-dir")
            .arg(state.path())
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn mcp-proxy");
        let mut proxy = Self {
            child,
            log,
            socket: state.socket(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = proxy.child.try_wait().expect("try_wait") {
                panic!("mcp-proxy exited with {status}:\n{}", proxy.log_text());
            }
            if let Ok(mut client) = Client::connect(&proxy.socket).await
                && client.ping().await.is_ok()
            {
                return proxy;
            }
            assert!(
                Instant::now() < deadline,
                "mcp-proxy did not answer:\n{}",
                proxy.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.socket)
            .await
            .expect("control connect")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and reap.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (up to 10 s) for the process to exit on its own.
    pub async fn wait_exit(mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "mcp-proxy did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- mcp-proxy log ---\n{}", self.log_text());
        }
    }
}
pub fn route(port: u16, mode: Mode, hostname: Option<&str>, backend: SocketAddr) -> Route {
    Route {
        service: "svc".into(),
        component: hostname.unwrap_or("default").replace('.', "-"),
        route: format!("r{port}"),
        port,
        mode,
        hostname: hostname.map(str::to_owned),
        backend,
        tls: None,
    }
}

pub fn with_tls(mut route: Route, tls: Tls) -> Route {
    route.tls = Some(tls);
    route
}

pub fn table(routes: Vec<Route>) -> Table {
    Table { routes }
}

/// Polls `check` until it returns true, for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `active` until `backend` has `expected` units of work in flight, for up to 10 s.
pub async fn wait_active(control: &mut Client, backend: SocketAddr, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = control.active(&[backend]).await.expect("active")[&backend];
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{backend}: {now} in flight, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A connection attempt to 127.0.0.1:`port` is refused.
pub async fn refused(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
}
