//! The container lifecycle through podman's API against a real podman service: a spec run
//! through the API makes the same container `podman run` makes (compared in `podman
//! inspect`), and with the podman binary unusable the API alone runs, starts, stops and
//! removes containers.

#![allow(clippy::unwrap_used)]

use podman_cli::{Podman, PodmanCli};
use runtime::podman::api::PodmanApi;
use runtime::podman::service::PodmanService;
use runtime::podman::{PodmanConfig, PodmanRuntime};
use runtime::{ContainerSpec, InstanceState, Runtime, SecretEnv, SecretValue};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use testkit::free_port;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A private podman store with a busybox image in it, and its API service.
struct Store {
    dir: tempfile::TempDir,
    cli: PodmanCli,
    api: PodmanApi,
}

const IMAGE: &str = "localhost/mcp-runtime-test/busybox:1";

impl Store {
    async fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("mcp-rt").tempdir().unwrap();
        let cli = PodmanCli {
            binary: "podman".into(),
            global_args: vec![
                format!("--root={}", dir.path().join("root").display()),
                format!("--runroot={}", dir.path().join("run").display()),
            ],
            containers_conf: Some(repo_root().join("config/podman-sandbox.conf")),
        };
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("busybox-static must be installed");
        for applet in ["sh", "httpd", "sleep"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        let tar = dir.path().join("rootfs.tar");
        let tarred = std::process::Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(tarred.success());
        Podman::new(cli.clone())
            .output("import", &["import", tar.to_str().unwrap(), IMAGE])
            .await
            .unwrap();
        let api = PodmanApi::new(dir.path().join("p.sock"), Duration::from_secs(5));
        let service = PodmanService::new(
            Podman::new(cli.clone()),
            api.clone(),
            dir.path().join("service.log"),
            Duration::from_secs(60),
        );
        service.ensure().await.unwrap();
        Self { dir, cli, api }
    }

    fn runtime(&self, cli: PodmanCli, through_api: bool) -> PodmanRuntime {
        let runtime = PodmanRuntime::new(PodmanConfig {
            cli,
            run_args: vec!["--log-opt=max-size=10mb".into()],
            ..PodmanConfig::default()
        });
        if through_api {
            runtime.with_api(self.api.clone())
        } else {
            runtime
        }
    }

    /// The service's pid, to end it even when an assertion failed.
    fn service_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.path().join("service.log.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    async fn inspect(&self, name: &str) -> Value {
        let out = Podman::new(self.cli.clone())
            .output("inspect", &["inspect", name])
            .await
            .unwrap();
        serde_json::from_str::<Value>(&out).unwrap()[0].clone()
    }
}

/// Ends the service and every container of the store, even after a failed assertion.
impl Drop for Store {
    fn drop(&mut self) {
        if let Some(pid) = self.service_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = std::process::Command::new(&self.cli.binary)
            .args(&self.cli.global_args)
            .args(["rm", "--all", "--force", "--time", "0"])
            .envs(
                self.cli
                    .containers_conf
                    .iter()
                    .map(|c| ("CONTAINERS_CONF", c)),
            )
            .output();
    }
}

fn spec(name: &str, volume: &Path, secrets: bool) -> ContainerSpec {
    ContainerSpec {
        name: name.into(),
        image: IMAGE.into(),
        cmd: vec!["httpd".into(), "-f".into(), "-p".into(), "8080".into()],
        env: vec!["GREETING=hi there".into(), "EMPTY=".into()],
        volumes: vec![format!("{}:/data:ro", volume.display())],
        network: Some("podman".into()),
        user: Some("0".into()),
        restart: "on-failure".into(),
        ports: vec![format!("127.0.0.1:{}:8080", free_port())],
        memory_mb: Some(64),
        vcpus: 1,
        labels: BTreeMap::from([("mcp.service".into(), "rt-test".into())]),
        binary: None,
        secrets: if secrets {
            vec![SecretEnv {
                var: "TOKEN".into(),
                handle: format!("mcp.rt-test.{name}.1"),
                value: SecretValue::new(b"s3cret".to_vec()),
            }]
        } else {
            Vec::new()
        },
    }
}

/// What a user of the container would see differ: its command, environment, labels,
/// mounts, limits, log size, network and state (not its id, name, times or host port).
fn comparable(inspect: &Value) -> Value {
    let mut env: Vec<String> = inspect["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .filter(|e| !e.starts_with("HOSTNAME="))
        .collect();
    env.sort();
    let host = &inspect["HostConfig"];
    serde_json::json!({
        "cmd": inspect["Config"]["Cmd"],
        "env": env,
        "labels": inspect["Config"]["Labels"],
        "user": inspect["Config"]["User"],
        "mounts": inspect["Mounts"],
        "memory": host["Memory"],
        "memory_swap": host["MemorySwap"],
        "ulimits": host["Ulimits"],
        "log": [host["LogConfig"]["Type"], host["LogConfig"]["Size"]],
        "networks": inspect["NetworkSettings"]["Networks"].as_object().unwrap().keys().collect::<Vec<_>>(),
        "port_targets": host["PortBindings"].as_object().unwrap().keys().collect::<Vec<_>>(),
        "running": inspect["State"]["Running"],
        "restart": host["RestartPolicy"],
        "stop_timeout": inspect["Config"]["StopTimeout"],
        "sd_notify": inspect["Config"]["sdNotifyMode"],
        "tty": inspect["Config"]["Tty"],
    })
}

#[tokio::test]
async fn the_api_makes_the_container_podman_run_makes_and_needs_no_cli() {
    let store = Store::new().await;
    let volume = store.dir.path().join("data");
    std::fs::create_dir_all(&volume).unwrap();

    let by_cli = store.runtime(store.cli.clone(), false);
    let by_api = store.runtime(store.cli.clone(), true);
    by_cli
        .run(&spec("made-by-cli", &volume, true))
        .await
        .unwrap();
    by_api
        .run(&spec("made-by-api", &volume, true))
        .await
        .unwrap();
    let (cli, api) = (
        store.inspect("made-by-cli").await,
        store.inspect("made-by-api").await,
    );
    assert_eq!(comparable(&cli), comparable(&api));
    assert!(
        comparable(&api)["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("TOKEN=s3cret")),
        "the secret reaches the environment: {api}"
    );

    // With no podman binary at all, the API alone carries the lifecycle.
    let no_cli = PodmanCli {
        binary: "/nonexistent/podman".into(),
        ..store.cli.clone()
    };
    let api_only = store.runtime(no_cli, true);
    let id = api_only
        .run(&spec("api-only", &volume, true))
        .await
        .unwrap();
    assert_eq!(id.len(), 64, "{id}");
    let env = store.inspect("api-only").await["Config"]["Env"].to_string();
    assert!(
        env.contains("TOKEN=s3cret"),
        "the secret, stored through the API: {env}"
    );
    let running = api_only.inspect("api-only").await.unwrap().unwrap();
    assert_eq!(running.state, InstanceState::Running);
    api_only
        .stop("api-only", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(
        api_only.inspect("api-only").await.unwrap().unwrap().state,
        InstanceState::Exited
    );
    api_only.start("api-only").await.unwrap();
    api_only
        .restart("api-only", Duration::from_secs(1))
        .await
        .unwrap();
    api_only.remove("api-only").await.unwrap();
    assert!(api_only.inspect("api-only").await.unwrap().is_none());
    let facts = api_only.image_facts(IMAGE).await.unwrap();
    assert_eq!(facts.id.len(), 64, "{facts:?}");
    // Stopping or removing what is gone is not an error; a bad image names podman's reason.
    api_only
        .stop("api-only", Duration::from_secs(1))
        .await
        .unwrap();
    api_only.remove("api-only").await.unwrap();
    let missing = ContainerSpec {
        image: "localhost/mcp-runtime-test/absent:1".into(),
        ..spec("api-missing", &volume, false)
    };
    let err = api_only.run(&missing).await.unwrap_err().to_string();
    assert!(
        err.contains("api-missing") && err.contains("absent"),
        "{err}"
    );

    for name in ["made-by-cli", "made-by-api", "api-missing"] {
        by_api.remove(name).await.unwrap();
    }
    // Unused secret versions go, the kept one stays.
    api_only
        .prune_secrets("rt-test", &["mcp.rt-test.made-by-api.1".to_string()])
        .await
        .unwrap();
    let secrets = Podman::new(store.cli.clone())
        .output("secret ls", &["secret", "ls", "--format", "{{.Name}}"])
        .await
        .unwrap();
    let mut left: Vec<&str> = secrets.lines().collect();
    left.sort_unstable();
    assert_eq!(left, ["mcp.rt-test.made-by-api.1"]);
}
