//! Builds in tests: a real OCI registry (Debian's `docker-registry`) on a loopback port per
//! test, build workspaces holding the example server, and a CLI config with a `[build]`
//! section whose podman uses a store of its own (the operator's machine is not the node).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{Agent, eventually, free_port, hello_binary, http_request, podman_in, store_base};

/// A Containerfile for the example server, as `examples/hello/Containerfile`.
pub const HELLO_CONTAINERFILE: &str = "FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\n";

/// Every manifest kind, as a registry client asks (a bare HEAD may get 404 for an OCI one).
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// `docker-registry serve` on 127.0.0.1 with storage in a temp dir; killed on drop, when the
/// images tagged for it are also removed from the test stores.
pub struct Registry {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Registry {
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// A registry that serves only `user` with `password` (htpasswd, bcrypt, Basic auth).
    pub fn start_with_auth(user: &str, password: &str) -> Self {
        Self::start_inner(Some((user, password)))
    }

    fn start_inner(auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("config.yml");
        let mut text = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let htpasswd = dir.path().join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd (Debian package apache2-utils) must be installed");
            assert!(out.status.success());
            std::fs::write(&htpasswd, &out.stdout).unwrap();
            text.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: mcp-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, text).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry) must be installed");
        let registry = Self {
            port,
            dir,
            child: Some(child),
        };
        let up = eventually(Duration::from_secs(15), || {
            http_request(port, "GET", "/v2/", &[])
                .is_some_and(|(status, _)| status == 200 || (auth.is_some() && status == 401))
        });
        assert!(
            up,
            "docker-registry did not answer on port {port}:\n{}",
            registry.log()
        );
        registry
    }

    /// `127.0.0.1:PORT`, the registry part of image references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The repository's tags, asked through the registry's API (empty when it has none).
    pub fn tags(&self, repository: &str) -> Vec<String> {
        let path = format!("/v2/{repository}/tags/list");
        match http_request(self.port, "GET", &path, &[]) {
            Some((200, body)) => {
                let json: serde_json::Value = serde_json::from_str(&body).unwrap();
                json["tags"]
                    .as_array()
                    .map(|tags| {
                        tags.iter()
                            .map(|t| t.as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default()
            }
            Some((404, _)) => Vec::new(),
            other => panic!("GET {path}: {other:?}\n{}", self.log()),
        }
    }

    /// Whether a HEAD of the manifest finds `repository:tag`.
    pub fn has_manifest(&self, repository: &str, tag: &str) -> bool {
        let path = format!("/v2/{repository}/manifests/{tag}");
        let accept = [("Accept", MANIFEST_ACCEPT)];
        match http_request(self.port, "HEAD", &path, &accept) {
            Some((200, _)) => true,
            Some((404, _)) => false,
            other => panic!("HEAD {path}: {other:?}\n{}", self.log()),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let child = self.child.take();
        super::end_process("registry", || self.log(), child);
        let prefix = format!("{}/", self.host());
        for store in [super::podman_global_args(), build_store_args()] {
            let out = podman_in(&store, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
            for image in String::from_utf8_lossy(&out.stdout).lines() {
                if image.starts_with(&prefix) {
                    podman_in(&store, &["rmi", "--force", image]);
                }
            }
        }
    }
}

/// Global podman arguments of the CLI's builds: a store apart from the agents', so a
/// deployed image can only have reached the node through the registry.
pub fn build_store_args() -> Vec<String> {
    let base = store_base();
    vec![
        format!("--root={}", base.join("build-root").display()),
        format!("--runroot={}", base.join("build-run").display()),
    ]
}

/// A build workspace with `<path>/hello` (the example server, static) and `files` beside it.
pub fn workspace(path: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join(path);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(hello_binary(), dir.join("hello")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    ws
}

impl Agent {
    /// A CLI config: this agent's, plus `[build]` with `workspace`, `registry` as insecure
    /// and podman on the build store. Use it with `mcp_with`.
    pub fn build_config(&self, workspace: &Path, registry: &Registry) -> PathBuf {
        let mut text = std::fs::read_to_string(self.config()).unwrap();
        let args = build_store_args();
        text.push_str(&format!(
            "\n[build]\nworkspace = {:?}\ninsecure_registries = [{:?}]\npodman_args = [{:?}, {:?}]\n",
            workspace.display().to_string(),
            registry.host(),
            args[0],
            args[1],
        ));
        let path = self
            .dir
            .path()
            .join(format!("mcp-build-{}.toml", registry.port));
        std::fs::write(&path, text).unwrap();
        path
    }
}
