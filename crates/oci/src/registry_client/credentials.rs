//! The operator's registry credentials, found where `podman login` and `docker login` leave
//! them (containers-auth.json(5)): auth files in podman's order, each with `credHelpers`,
//! `auths` and `credsStore`. Secrets never reach a `Debug` or an error message.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::RegistryApiError;

/// A credential helper that has not answered by then is stuck (e.g. waiting on a keyring
/// prompt nobody sees).
const HELPER_DEADLINE: Duration = Duration::from_secs(10);

/// A user name and its password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
    /// Where they were found (an auth file, or a helper and the file naming it): errors
    /// point there when the registry refuses them.
    pub source: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

impl Credentials {
    /// The value of an `Authorization` header sending them with the Basic scheme.
    pub(crate) fn basic_authorization(&self) -> String {
        let pair = format!("{}:{}", self.username, self.secret);
        format!("Basic {}", STANDARD.encode(pair))
    }
}

/// Where credentials are looked for, resolved from environment variables once, so a lookup
/// does not depend on the process environment (tests build their own).
#[derive(Debug, Clone)]
pub struct AuthEnv {
    /// Auth files in the order they are consulted; the first with an entry wins.
    pub auth_files: Vec<PathBuf>,
    /// The `PATH` searched for `docker-credential-<name>` helpers (and given to them).
    pub helper_path: Option<OsString>,
    /// How long a helper may take to answer.
    pub helper_deadline: Duration,
}

impl Default for AuthEnv {
    /// No auth files, no helpers: anonymous only.
    fn default() -> Self {
        Self {
            auth_files: Vec::new(),
            helper_path: None,
            helper_deadline: HELPER_DEADLINE,
        }
    }
}

impl AuthEnv {
    /// From the process environment and real user id.
    pub fn from_process() -> Self {
        Self::from_vars(
            |name| std::env::var_os(name),
            nix::unistd::Uid::current().as_raw(),
        )
    }

    /// From `var` (an environment lookup; empty values count as unset, as in podman) and the
    /// user id `uid`. The files, in podman's order:
    /// `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json`, else
    /// `/run/containers/<uid>/auth.json` (an explicit auth file replaces the runtime one, as
    /// podman's `--authfile` does); then `$XDG_CONFIG_HOME/containers/auth.json` (default
    /// `~/.config`); then `$DOCKER_CONFIG/config.json` (default `~/.docker`).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>, uid: u32) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let path = |name: &str| var(name).map(PathBuf::from);
        let home = path("HOME");
        let mut auth_files = vec![
            match (path("REGISTRY_AUTH_FILE"), path("XDG_RUNTIME_DIR")) {
                (Some(file), _) => file,
                (None, Some(dir)) => dir.join("containers/auth.json"),
                (None, None) => PathBuf::from(format!("/run/containers/{uid}/auth.json")),
            },
        ];
        let config_home =
            path("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")));
        auth_files.extend(config_home.map(|dir| dir.join("containers/auth.json")));
        let docker = path("DOCKER_CONFIG").or_else(|| home.as_ref().map(|h| h.join(".docker")));
        auth_files.extend(docker.map(|dir| dir.join("config.json")));
        Self {
            auth_files,
            helper_path: var("PATH"),
            helper_deadline: HELPER_DEADLINE,
        }
    }

    /// With `file` where podman's `--authfile` puts it: in place of the first file (the
    /// runtime one, or `$REGISTRY_AUTH_FILE`), so it is read first and the others after.
    pub fn with_auth_file(mut self, file: PathBuf) -> Self {
        match self.auth_files.first_mut() {
            Some(first) => *first = file,
            None => self.auth_files.push(file),
        }
        self
    }

    /// The auth files as a list for messages ("looked in ...").
    pub fn describe_files(&self) -> String {
        let files: Vec<String> = self
            .auth_files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if files.is_empty() {
            "no auth file".into()
        } else {
            files.join(", ")
        }
    }
}

/// The operator's credentials for `registry` (`host[:port]` as written in image references),
/// looked up in the process environment. See [`lookup_in`].
pub async fn lookup(registry: &str) -> Result<Option<Credentials>, RegistryApiError> {
    lookup_in(&AuthEnv::from_process(), registry).await
}

/// The credentials for `registry` from the first of `env`'s auth files that has some. A
/// missing file has none; an unreadable or malformed one, or a failing helper, is an error
/// naming the file.
pub async fn lookup_in(
    env: &AuthEnv,
    registry: &str,
) -> Result<Option<Credentials>, RegistryApiError> {
    for path in &env.auth_files {
        let Some(file) = read_auth_file(path).await? else {
            continue;
        };
        if let Some(found) = file.lookup(env, path, registry).await? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The parts of containers-auth.json / Docker's config.json that hold credentials; every
/// other field (Docker keeps its CLI settings there) is ignored. No `Debug`: it holds secrets.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    auths: Option<HashMap<String, AuthEntry>>,
    cred_helpers: Option<HashMap<String, String>>,
    creds_store: Option<String>,
}

/// No `Debug`: it holds the secret.
#[derive(Default, Deserialize)]
struct AuthEntry {
    /// base64 of `user:password`.
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// `None` when the file does not exist (nobody logged in that way).
async fn read_auth_file(path: &Path) -> Result<Option<AuthFile>, RegistryApiError> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(file_error(path, e.to_string())),
    };
    // An empty file is what some tools leave after a logout of the last registry.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Some(AuthFile::default()));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| file_error(path, format!("not a valid auth file: {e}")))
}

impl AuthFile {
    /// In Docker's order: a helper for this registry, an `auths` entry, the default helper.
    async fn lookup(
        &self,
        env: &AuthEnv,
        path: &Path,
        registry: &str,
    ) -> Result<Option<Credentials>, RegistryApiError> {
        if let Some(helper) = self.cred_helpers.as_ref().and_then(|h| h.get(registry)) {
            return run_helper(env, path, helper, registry).await;
        }
        if let Some((key, entry)) = self.entry(registry)
            && let Some(found) = entry.decode(path, key)?
        {
            return Ok(Some(found));
        }
        match self.creds_store.as_deref().filter(|s| !s.is_empty()) {
            Some(helper) => run_helper(env, path, helper, registry).await,
            None => Ok(None),
        }
    }

    /// The `auths` entry for `registry`: its exact key first, then a URL-style key
    /// (`https://host`, `host/v2/`: what older `docker login` wrote).
    fn entry(&self, registry: &str) -> Option<(&str, &AuthEntry)> {
        let auths = self.auths.as_ref()?;
        if let Some((key, entry)) = auths.get_key_value(registry) {
            return Some((key, entry));
        }
        let wanted = normalize_registry(registry);
        // Sorted, so that two keys naming the same registry pick the same one every time.
        let mut keys: Vec<&String> = auths.keys().collect();
        keys.sort();
        keys.into_iter()
            .find(|key| key_registry(key).map(normalize_registry) == Some(wanted))
            .and_then(|key| auths.get_key_value(key.as_str()))
            .map(|(key, entry)| (key.as_str(), entry))
    }
}

impl AuthEntry {
    /// `None` for an empty entry (Docker writes those next to a `credsStore`).
    fn decode(&self, path: &Path, key: &str) -> Result<Option<Credentials>, RegistryApiError> {
        let source = path.display().to_string();
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            // The messages name the key only: the value is the secret.
            let bad = |what: &str| file_error(path, format!("the auth of {key:?} is {what}"));
            let bytes = STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("not base64"))?;
            let pair = String::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
            let (username, secret) = pair
                .split_once(':')
                .ok_or_else(|| bad("not user:password"))?;
            return Ok(Some(Credentials {
                username: username.to_string(),
                secret: secret.to_string(),
                source,
            }));
        }
        match (self.username.as_deref(), self.password.as_deref()) {
            (Some(username), Some(secret)) if !username.is_empty() && !secret.is_empty() => {
                Ok(Some(Credentials {
                    username: username.to_string(),
                    secret: secret.to_string(),
                    source,
                }))
            }
            _ => Ok(None),
        }
    }
}

/// The registry an `auths` key names when it is URL-style: `https://host[/path]`,
/// `http://host[/path]`, or `host/v1/` / `host/v2/`. A plain key with another path is a
/// podman per-namespace entry, which a registry-wide lookup does not use.
fn key_registry(key: &str) -> Option<&str> {
    if let Some(rest) = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        return rest.split('/').next();
    }
    ["/v1/", "/v2/", "/v1", "/v2"]
        .iter()
        .find_map(|suffix| key.strip_suffix(suffix))
}

/// Docker Hub's names: its credentials live under `https://index.docker.io/v1/`.
fn normalize_registry(registry: &str) -> &str {
    match registry {
        "docker.io" | "registry-1.docker.io" => "index.docker.io",
        other => other,
    }
}

/// What a credential helper prints for `get`.
#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// Runs `docker-credential-<helper> get` with `registry` on stdin. Its "credentials not
/// found" answer means none; any other failure is an error naming `path`, which names it.
async fn run_helper(
    env: &AuthEnv,
    path: &Path,
    helper: &str,
    registry: &str,
) -> Result<Option<Credentials>, RegistryApiError> {
    let program = format!("docker-credential-{helper}");
    let fail = |detail: String| file_error(path, format!("credential helper {program}: {detail}"));
    // The name comes from a file: it must not reach outside PATH.
    if helper.is_empty() || helper.contains('/') {
        return Err(fail("not a helper name".into()));
    }
    let executable = find_in_path(env.helper_path.as_deref(), &program)
        .ok_or_else(|| fail("not found on PATH".into()))?;
    let mut command = Command::new(&executable);
    command
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(search) = &env.helper_path {
        command.env("PATH", search);
    }
    let mut child = command.spawn().map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe; its exit status tells.
        let _ = stdin.write_all(registry.as_bytes()).await;
    }
    // On the deadline the child is dropped, and kill_on_drop ends it.
    let output = tokio::time::timeout(env.helper_deadline, child.wait_with_output())
        .await
        .map_err(|_| fail(format!("did not answer within {:?}", env.helper_deadline)))?
        .map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(fail(format!("{}: {}", output.status, first_line(&said))));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| fail("did not print {\"Username\":...,\"Secret\":...}".into()))?;
    if answer.username == "<token>" {
        // Docker's marker for an OAuth identity token, which the Basic scheme cannot carry.
        return Err(fail(format!(
            "holds an identity token for {registry}, which mcp cannot use: \
             log in with a user name and password"
        )));
    }
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: answer.username,
        secret: answer.secret,
        source: format!("{program}, named in {}", path.display()),
    }))
}

/// The first executable file called `program` in the directories of `search`.
fn find_in_path(search: Option<&std::ffi::OsStr>, program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(search?)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A helper's first non-empty output line, bounded: enough to say why it failed.
fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    let line = line.unwrap_or("no output");
    line.chars().take(200).collect()
}

fn file_error(path: &Path, detail: String) -> RegistryApiError {
    RegistryApiError::Credentials {
        path: path.to_path_buf(),
        detail,
    }
}
