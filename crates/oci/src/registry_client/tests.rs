//! The registry client against a scripted loopback server: the token dance and the Basic
//! scheme that the test registry (docker-registry without auth) never asks for, the headers
//! sent on the wire; and the credential lookup (auth files, helpers) on temporary files.

#![allow(clippy::unwrap_used)]

use super::*;
use base64::Engine as _;
use credentials::lookup_in;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One request as the server saw it: method, path with query, lower-cased headers.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = fn(&Seen, u16) -> (u16, Vec<(&'static str, String)>, String);

/// Serves `handler` on 127.0.0.1; returns the port and the log of requests.
async fn serve(handler: Handler) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen_log = Arc::clone(&log);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut raw = Vec::new();
            let mut buf = [0u8; 1024];
            while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                raw.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&raw).into_owned();
            let mut lines = text.lines();
            let mut first = lines.next().unwrap_or_default().split(' ');
            let seen = Seen {
                method: first.next().unwrap_or_default().to_string(),
                path: first.next().unwrap_or_default().to_string(),
                headers: lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect(),
            };
            seen_log.lock().unwrap().push(seen.clone());
            let (status, headers, body) = handler(&seen, port);
            let mut response = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                response.push_str(&format!("{k}: {v}\r\n"));
            }
            response.push_str("\r\n");
            if seen.method != "HEAD" {
                response.push_str(&body);
            }
            stream.write_all(response.as_bytes()).await.unwrap();
            let _ = stream.shutdown().await;
        }
    });
    (port, log)
}

/// A token-protected registry: `team/app:v1` exists, nothing else does.
fn token_registry(seen: &Seen, port: u16) -> (u16, Vec<(&'static str, String)>, String) {
    let authorized = seen.header("authorization") == Some("Bearer tok-123");
    match seen.path.as_str() {
        "/token?service=fake-registry&scope=repository%3Ateam%2Fapp%3Apull" => (
            200,
            vec![],
            r#"{"token":"tok-123","expires_in":300}"#.into(),
        ),
        _ if !authorized => (
            401,
            vec![(
                "WWW-Authenticate",
                format!(
                    r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake-registry",scope="repository:team/app:pull""#
                ),
            )],
            String::new(),
        ),
        "/v2/team/app/manifests/v1" => (200, vec![], String::new()),
        p if p.starts_with("/v2/team/app/") => (404, vec![], String::new()),
        // The token's scope is team/app only.
        _ => (401, vec![], String::new()),
    }
}

fn image(port: u16, rest: &str) -> ImageRef {
    ImageRef::parse(&format!("127.0.0.1:{port}/{rest}")).unwrap()
}

/// A client for the loopback registry on `port` that finds no credentials anywhere, whatever
/// the machine running the tests has.
fn anonymous_client(port: u16) -> RegistryClient {
    RegistryClient::new(vec![format!("127.0.0.1:{port}")]).with_auth_env(AuthEnv::default())
}

#[tokio::test]
async fn bearer_challenge_is_followed_with_an_anonymous_token() {
    let (port, log) = serve(token_registry).await;
    let client = anonymous_client(port);
    assert!(
        client
            .manifest_exists(&image(port, "team/app:v1"))
            .await
            .unwrap()
    );
    assert!(
        !client
            .manifest_exists(&image(port, "team/app:v2"))
            .await
            .unwrap()
    );

    let log = log.lock().unwrap().clone();
    let paths: Vec<(&str, &str)> = log
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(
        paths[..3],
        [
            ("HEAD", "/v2/team/app/manifests/v1"),
            (
                "GET",
                "/token?service=fake-registry&scope=repository%3Ateam%2Fapp%3Apull"
            ),
            ("HEAD", "/v2/team/app/manifests/v1"),
        ]
    );
    assert_eq!(
        log[0].header("authorization"),
        None,
        "first try is anonymous"
    );
    assert_eq!(log[2].header("authorization"), Some("Bearer tok-123"));
    assert_eq!(
        log[0].header("host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
}

#[tokio::test]
async fn manifest_head_accepts_oci_and_docker_manifests_and_indexes() {
    let (port, log) = serve(|_, _| (404, vec![], String::new())).await;
    let client = anonymous_client(port);
    assert!(
        !client
            .manifest_exists(&image(port, "hello:v1"))
            .await
            .unwrap()
    );
    let seen = log.lock().unwrap()[0].clone();
    let accept = seen.header("accept").unwrap();
    for media_type in [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ] {
        assert!(
            accept.contains(media_type),
            "{media_type} missing from {accept}"
        );
    }
    assert_eq!(manifest_headers(), [(ACCEPT, MANIFEST_ACCEPT.to_string())]);
}

#[tokio::test]
async fn refused_anonymous_tokens_are_errors_not_absence() {
    let (port, _) = serve(token_registry).await;
    let client = anonymous_client(port);
    // The token server only grants team/app: other repositories get no usable token.
    let err = client
        .manifest_exists(&image(port, "other:v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryApiError::Auth { .. }), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains("requires credentials and none were found"),
        "{err}"
    );
    assert!(
        err.contains("podman login --tls-verify=false 127.0.0.1:"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_schemes_and_challengeless_401s_are_auth_errors() {
    let (port, _) = serve(|_, _| {
        (
            401,
            vec![("WWW-Authenticate", "Negotiate".into())],
            String::new(),
        )
    })
    .await;
    let err = anonymous_client(port)
        .manifest_exists(&image(port, "hello:v1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Negotiate"), "{err}");
    let (port, _) = serve(|_, _| (401, vec![], String::new())).await;
    let err = anonymous_client(port)
        .manifest_exists(&image(port, "hello:v1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("without a WWW-Authenticate"), "{err}");
}

#[tokio::test]
async fn unreachable_registry_and_local_only_images_are_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = anonymous_client(port);
    let err = client
        .manifest_exists(&image(port, "hello:v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryApiError::Transport { .. }), "{err}");
    let local = ImageRef::parse("localhost/hello:v1").unwrap();
    assert!(matches!(
        client.manifest_exists(&local).await,
        Err(RegistryApiError::NoRegistry { .. })
    ));
}

#[tokio::test]
async fn a_plain_http_registry_asked_over_https_names_the_setting() {
    // What a plain-HTTP server answers to a TLS ClientHello: an HTTP error, not TLS.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let client = RegistryClient::new(Vec::new()).with_auth_env(AuthEnv::default());
    let err = client
        .manifest_exists(&image(port, "hello:v1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("\"127.0.0.1:{port}\" in insecure_registries")),
        "{err}"
    );
}

#[test]
fn only_listed_registries_are_insecure() {
    let client = RegistryClient::new(vec!["127.0.0.1:5000".into()]);
    assert!(client.is_insecure("127.0.0.1:5000"));
    assert!(!client.is_insecure("127.0.0.1:5001"));
    assert!(!client.is_insecure("registry.example.com"));
    assert_eq!(
        parse_token(br#"{"access_token":"a"}"#).as_deref(),
        Some("a")
    );
    assert_eq!(parse_token(br#"{"token":""}"#), None);
}

// --- Credentials: the Basic scheme, and Basic sent to a token endpoint ---

const USER: &str = "alice";
const SECRET: &str = "s3cret-pw";

/// `base64("alice:s3cret-pw")`: what may never show up in a message.
fn basic_value() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{SECRET}"))
}

/// A registry protected with the Basic scheme: alice may read `hello:v1`.
fn basic_registry(seen: &Seen, _: u16) -> (u16, Vec<(&'static str, String)>, String) {
    if seen.header("authorization") != Some(format!("Basic {}", basic_value()).as_str()) {
        return (
            401,
            vec![("WWW-Authenticate", r#"Basic realm="Registry Realm""#.into())],
            String::new(),
        );
    }
    match seen.path.as_str() {
        "/v2/hello/manifests/v1" => (200, vec![], String::new()),
        _ => (404, vec![], String::new()),
    }
}

/// A token registry whose token endpoint wants alice's Basic credentials.
fn private_token_registry(seen: &Seen, port: u16) -> (u16, Vec<(&'static str, String)>, String) {
    let basic = format!("Basic {}", basic_value());
    match seen.path.as_str() {
        p if p.starts_with("/token?") => {
            if seen.header("authorization") == Some(basic.as_str()) {
                (200, vec![], r#"{"access_token":"private-tok"}"#.into())
            } else {
                (401, vec![], String::new())
            }
        }
        _ if seen.header("authorization") != Some("Bearer private-tok") => (
            401,
            vec![(
                "WWW-Authenticate",
                format!(r#"Bearer realm="http://127.0.0.1:{port}/token",service="private""#),
            )],
            String::new(),
        ),
        "/v2/team/app/manifests/v1" => (200, vec![], String::new()),
        _ => (404, vec![], String::new()),
    }
}

/// An auth file in a fresh temporary directory holding `json`, and an env that reads only it.
fn auth_env_with(json: &str) -> (tempfile::TempDir, AuthEnv) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.json");
    std::fs::write(&path, json).unwrap();
    let env = AuthEnv {
        auth_files: vec![path],
        ..AuthEnv::default()
    };
    (dir, env)
}

/// An auth.json giving `user:password` for `registry`.
fn auths_json(registry: &str, user: &str, password: &str) -> String {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#)
}

/// Neither the password nor its base64 form may be in the error's Display or Debug.
fn assert_no_secret(err: &RegistryApiError) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains(&basic_value()), "{text}");
    }
}

#[tokio::test]
async fn basic_challenge_is_answered_with_the_credentials() {
    let (port, log) = serve(basic_registry).await;
    let registry = format!("127.0.0.1:{port}");
    let (_dir, env) = auth_env_with(&auths_json(&registry, USER, SECRET));
    let client = RegistryClient::new(vec![registry]).with_auth_env(env);
    assert!(
        client
            .manifest_exists(&image(port, "hello:v1"))
            .await
            .unwrap()
    );
    assert!(
        !client
            .manifest_exists(&image(port, "hello:v2"))
            .await
            .unwrap()
    );
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log[0].header("authorization"),
        None,
        "first try is anonymous"
    );
    assert_eq!(
        log[1].header("authorization"),
        Some(format!("Basic {}", basic_value()).as_str())
    );
}

#[tokio::test]
async fn refused_credentials_name_the_user_the_file_and_podman_login() {
    let (port, _) = serve(basic_registry).await;
    let registry = format!("127.0.0.1:{port}");
    let (dir, env) = auth_env_with(&auths_json(&registry, USER, "wrong-pw"));
    let client = RegistryClient::new(vec![registry.clone()]).with_auth_env(env);
    let err = client
        .manifest_exists(&image(port, "hello:v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryApiError::Auth { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "registry {registry} refused the credentials of user alice"
        )),
        "{text}"
    );
    assert!(
        text.contains(&dir.path().join("auth.json").display().to_string()),
        "{text}"
    );
    assert!(
        text.contains(&format!("`podman login --tls-verify=false {registry}`")),
        "{text}"
    );
    assert!(!text.contains("wrong-pw") && !format!("{err:?}").contains("wrong-pw"));
}

#[tokio::test]
async fn basic_challenge_without_credentials_says_where_it_looked() {
    let (port, log) = serve(basic_registry).await;
    let registry = format!("127.0.0.1:{port}");
    // The file exists but holds another registry only.
    let (dir, env) = auth_env_with(&auths_json("other.example", USER, SECRET));
    let client = RegistryClient::new(vec![registry.clone()]).with_auth_env(env);
    let err = client
        .manifest_exists(&image(port, "hello:v1"))
        .await
        .unwrap_err();
    assert_no_secret(&err);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "registry {registry} requires credentials and none were found for it (looked in {}",
            dir.path().join("auth.json").display()
        )),
        "{text}"
    );
    assert!(text.contains("podman login"), "{text}");
    assert_eq!(log.lock().unwrap().len(), 1, "nothing to retry with");
}

#[tokio::test]
async fn bearer_token_is_requested_with_the_credentials() {
    let (port, log) = serve(private_token_registry).await;
    let registry = format!("127.0.0.1:{port}");
    let (_dir, env) = auth_env_with(&auths_json(&format!("https://{registry}"), USER, SECRET));
    let client = RegistryClient::new(vec![registry.clone()]).with_auth_env(env);
    assert!(
        client
            .manifest_exists(&image(port, "team/app:v1"))
            .await
            .unwrap()
    );
    let log = log.lock().unwrap().clone();
    assert_eq!(log[1].method, "GET");
    assert_eq!(
        log[1].path,
        "/token?service=private&scope=repository%3Ateam%2Fapp%3Apull"
    );
    assert_eq!(
        log[1].header("authorization"),
        Some(format!("Basic {}", basic_value()).as_str())
    );
    assert_eq!(log[2].header("authorization"), Some("Bearer private-tok"));

    // Without credentials the token request is anonymous, and refused.
    let client = anonymous_client(port);
    let err = client
        .manifest_exists(&image(port, "team/app:v1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("requires credentials and none were found"),
        "{err}"
    );

    // Wrong ones are refused by the token endpoint.
    let (_dir, env) = auth_env_with(&auths_json(&registry, USER, "wrong-pw"));
    let client = RegistryClient::new(vec![registry]).with_auth_env(env);
    let err = client
        .manifest_exists(&image(port, "team/app:v1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused the credentials of user alice"),
        "{err}"
    );
}

// --- Credential lookup: files, precedence, key forms, helpers ---

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn auth_files_follow_podmans_order() {
    let env = AuthEnv::from_vars(vars(&[("HOME", "/home/u")]), 1000);
    assert_eq!(
        env.auth_files,
        [
            PathBuf::from("/run/containers/1000/auth.json"),
            PathBuf::from("/home/u/.config/containers/auth.json"),
            PathBuf::from("/home/u/.docker/config.json"),
        ]
    );
    let env = AuthEnv::from_vars(
        vars(&[
            ("HOME", "/home/u"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("XDG_CONFIG_HOME", "/cfg"),
            ("DOCKER_CONFIG", "/dock"),
            ("PATH", "/bin"),
        ]),
        1000,
    );
    assert_eq!(
        env.auth_files,
        [
            PathBuf::from("/run/user/1000/containers/auth.json"),
            PathBuf::from("/cfg/containers/auth.json"),
            PathBuf::from("/dock/config.json"),
        ]
    );
    assert_eq!(env.helper_path, Some(OsString::from("/bin")));
    // An explicit auth file takes the runtime file's place; empty variables are unset.
    let env = AuthEnv::from_vars(
        vars(&[
            ("REGISTRY_AUTH_FILE", "/etc/mcp/auth.json"),
            ("XDG_RUNTIME_DIR", "/run/user/0"),
            ("XDG_CONFIG_HOME", ""),
            ("HOME", "/root"),
        ]),
        0,
    );
    assert_eq!(
        env.auth_files,
        [
            PathBuf::from("/etc/mcp/auth.json"),
            PathBuf::from("/root/.config/containers/auth.json"),
            PathBuf::from("/root/.docker/config.json"),
        ]
    );
    // An --authfile (e.g. the agent's own) takes that place too.
    let env = env.with_auth_file(PathBuf::from("/var/lib/mcp/auth.json"));
    assert_eq!(env.auth_files[0], PathBuf::from("/var/lib/mcp/auth.json"));
    assert_eq!(env.auth_files.len(), 3);
    // No HOME: only the runtime file (root's when XDG_RUNTIME_DIR is unset).
    let env = AuthEnv::from_vars(vars(&[]), 0);
    assert_eq!(
        env.auth_files,
        [PathBuf::from("/run/containers/0/auth.json")]
    );
    assert!(env.describe_files().contains("/run/containers/0/auth.json"));
}

/// Writes `json` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, json).unwrap();
    path
}

#[tokio::test]
async fn first_file_with_an_entry_wins_and_missing_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let env = AuthEnv {
        auth_files: vec![
            dir.path().join("missing.json"),
            write(dir.path(), "a.json", &auths_json("other.example", "x", "y")),
            write(
                dir.path(),
                "b.json",
                &auths_json("reg.example", "bob", "pw-b"),
            ),
            write(
                dir.path(),
                "c.json",
                &auths_json("reg.example", "carol", "pw-c"),
            ),
        ],
        ..AuthEnv::default()
    };
    let found = lookup_in(&env, "reg.example").await.unwrap().unwrap();
    assert_eq!(
        (found.username.as_str(), found.secret.as_str()),
        ("bob", "pw-b")
    );
    assert_eq!(
        found.source,
        dir.path().join("b.json").display().to_string()
    );
    assert_eq!(
        lookup_in(&env, "other.example")
            .await
            .unwrap()
            .unwrap()
            .username,
        "x"
    );
    assert_eq!(lookup_in(&env, "nowhere.example").await.unwrap(), None);
}

#[tokio::test]
async fn url_style_and_field_style_entries_are_read() {
    let auth = |pair: &str| base64::engine::general_purpose::STANDARD.encode(pair);
    let json = format!(
        r#"{{"auths": {{
            "https://index.docker.io/v1/": {{"auth": "{}"}},
            "http://legacy.example/v1/": {{"auth": "{}"}},
            "v2.example:5000/v2/": {{"auth": "{}"}},
            "fields.example": {{"username": "f", "password": "fp"}},
            "quay.io/team": {{"auth": "{}"}},
            "colon.example": {{"auth": "{}"}}
        }}, "psFormat": "table", "currentContext": "default"}}"#,
        auth("hub:hp"),
        auth("legacy:lp"),
        auth("v2:vp"),
        auth("team:tp"),
        auth("u:pass:with:colons"),
    );
    let (_dir, env) = auth_env_with(&json);
    let user = |registry: &'static str| {
        let env = env.clone();
        async move {
            lookup_in(&env, registry)
                .await
                .unwrap()
                .map(|c| (c.username, c.secret))
        }
    };
    let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
    assert_eq!(user("docker.io").await, pair("hub", "hp"));
    assert_eq!(user("legacy.example").await, pair("legacy", "lp"));
    assert_eq!(user("v2.example:5000").await, pair("v2", "vp"));
    assert_eq!(user("fields.example").await, pair("f", "fp"));
    assert_eq!(user("colon.example").await, pair("u", "pass:with:colons"));
    // A namespace entry is not the registry's; a port is part of the name.
    assert_eq!(user("quay.io").await, None);
    assert_eq!(user("v2.example").await, None);
}

#[tokio::test]
async fn malformed_files_are_errors_naming_the_file_but_not_the_secret() {
    let (dir, env) = auth_env_with("{not json");
    let err = lookup_in(&env, "reg.example").await.unwrap_err();
    assert!(
        matches!(err, RegistryApiError::Credentials { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&dir.path().join("auth.json").display().to_string()),
        "{err}"
    );

    let (_dir, env) = auth_env_with(r#"{"auths":{"reg.example":{"auth":"s3cret-pw!!"}}}"#);
    let err = lookup_in(&env, "reg.example").await.unwrap_err();
    assert!(err.to_string().contains("not base64"), "{err}");
    assert_no_secret(&err);
    let no_colon = base64::engine::general_purpose::STANDARD.encode(SECRET);
    let (_dir, env) = auth_env_with(&format!(
        r#"{{"auths":{{"reg.example":{{"auth":"{no_colon}"}}}}}}"#
    ));
    let err = lookup_in(&env, "reg.example").await.unwrap_err();
    assert!(err.to_string().contains("not user:password"), "{err}");
    assert_no_secret(&err);
    assert!(!err.to_string().contains(&no_colon));

    // A directory where the file should be cannot be read.
    let env = AuthEnv {
        auth_files: vec![dir.path().to_path_buf()],
        ..AuthEnv::default()
    };
    assert!(matches!(
        lookup_in(&env, "reg.example").await,
        Err(RegistryApiError::Credentials { .. })
    ));
    // Empty files and `null` sections hold nothing.
    let (_dir, env) = auth_env_with(" \n");
    assert_eq!(lookup_in(&env, "reg.example").await.unwrap(), None);
    let (_dir, env) = auth_env_with(r#"{"auths":null,"credHelpers":null,"credsStore":""}"#);
    assert_eq!(lookup_in(&env, "reg.example").await.unwrap(), None);
}

#[test]
fn credentials_debug_hides_the_secret() {
    let c = Credentials {
        username: USER.into(),
        secret: SECRET.into(),
        source: "/x/auth.json".into(),
    };
    let debug = format!("{c:?}");
    assert!(
        debug.contains("alice") && debug.contains("/x/auth.json"),
        "{debug}"
    );
    assert!(!debug.contains(SECRET), "{debug}");
    assert_eq!(c.basic_authorization(), format!("Basic {}", basic_value()));
}

/// A fake `docker-credential-<name>` in `dir`: answers `reg.example` with helper-user,
/// anything else with the "not found" message real helpers print.
const FAKE_HELPER: &str = r#"#!/bin/sh
[ "$1" = get ] || exit 2
read -r server
case "$server" in
  reg.example) printf '{"ServerURL":"reg.example","Username":"helper-user","Secret":"helper-pw"}' ;;
  broken.example) echo "keyring locked" >&2; exit 1 ;;
  token.example) printf '{"Username":"<token>","Secret":"refresh"}' ;;
  slow.example) exec sleep 5 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
"#;

/// Installs `script` as `dir/docker-credential-<name>`. `install` (another process) writes
/// it, so no descriptor of ours is open for writing when it runs (no ETXTBSY when another
/// test thread forks at that moment).
fn install_helper(dir: &Path, name: &str, script: &str) {
    let source = dir.join(format!("{name}.src"));
    std::fs::write(&source, script).unwrap();
    let status = std::process::Command::new("install")
        .arg("-m")
        .arg("0755")
        .arg(&source)
        .arg(dir.join(format!("docker-credential-{name}")))
        .status()
        .unwrap();
    assert!(status.success());
}

/// An env with `json` as its only auth file and `dir` (plus the system's) as helper PATH.
fn helper_env(dir: &Path, json: &str) -> AuthEnv {
    let search = std::env::join_paths([dir, Path::new("/usr/bin"), Path::new("/bin")]).unwrap();
    AuthEnv {
        auth_files: vec![write(dir, "config.json", json)],
        helper_path: Some(search),
        ..AuthEnv::default()
    }
}

#[tokio::test]
async fn cred_helpers_come_before_auths_and_creds_store_after() {
    let dir = tempfile::tempdir().unwrap();
    install_helper(dir.path(), "fake", FAKE_HELPER);
    let auth = base64::engine::general_purpose::STANDARD.encode("file-user:file-pw");
    let env = helper_env(
        dir.path(),
        &format!(
            r#"{{"credHelpers": {{"reg.example": "fake"}},
                "auths": {{"reg.example": {{"auth": "{auth}"}}, "store.example": {{}}}},
                "credsStore": "fake"}}"#
        ),
    );
    let found = lookup_in(&env, "reg.example").await.unwrap().unwrap();
    assert_eq!(
        (found.username.as_str(), found.secret.as_str()),
        ("helper-user", "helper-pw")
    );
    assert!(
        found
            .source
            .starts_with("docker-credential-fake, named in "),
        "{}",
        found.source
    );
    // An empty auths entry (what Docker writes next to credsStore) falls through to the store,
    // which does not know this registry: no credentials, not an error.
    assert_eq!(lookup_in(&env, "store.example").await.unwrap(), None);

    let env = helper_env(dir.path(), r#"{"credsStore": "fake"}"#);
    assert_eq!(
        lookup_in(&env, "reg.example")
            .await
            .unwrap()
            .unwrap()
            .username,
        "helper-user"
    );
}

#[tokio::test]
async fn helper_failures_are_errors_naming_the_helper_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    install_helper(dir.path(), "fake", FAKE_HELPER);
    let mut env = helper_env(dir.path(), r#"{"credsStore": "fake"}"#);
    let file = dir.path().join("config.json").display().to_string();

    let err = lookup_in(&env, "broken.example")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&file)
            && err.contains("docker-credential-fake")
            && err.contains("keyring locked"),
        "{err}"
    );
    let err = lookup_in(&env, "token.example")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("identity token"), "{err}");
    assert!(!err.contains("refresh"), "{err}");

    env.helper_deadline = Duration::from_millis(300);
    let err = lookup_in(&env, "slow.example")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("did not answer within"), "{err}");

    let env = helper_env(dir.path(), r#"{"credHelpers": {"reg.example": "absent"}}"#);
    let err = lookup_in(&env, "reg.example")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("docker-credential-absent: not found on PATH"),
        "{err}"
    );
    let env = helper_env(dir.path(), r#"{"credsStore": "../fake"}"#);
    let err = lookup_in(&env, "reg.example")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a helper name"), "{err}");
}

#[tokio::test]
async fn helper_credentials_answer_a_basic_challenge() {
    let (port, log) = serve(basic_registry).await;
    let registry = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "#!/bin/sh\nread -r server\n[ \"$server\" = \"{registry}\" ] || exit 3\n\
         printf '{{\"Username\":\"{USER}\",\"Secret\":\"{SECRET}\"}}'\n"
    );
    install_helper(dir.path(), "test", &script);
    let env = helper_env(
        dir.path(),
        &format!(r#"{{"credHelpers": {{"{registry}": "test"}}}}"#),
    );
    let client = RegistryClient::new(vec![registry]).with_auth_env(env);
    assert!(
        client
            .manifest_exists(&image(port, "hello:v1"))
            .await
            .unwrap()
    );
    assert_eq!(
        log.lock().unwrap()[1].header("authorization"),
        Some(format!("Basic {}", basic_value()).as_str())
    );
}
