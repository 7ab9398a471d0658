//! The registry client against a scripted loopback server: the token dance that the test
//! registry (docker-registry without auth) never asks for, and the headers sent on the wire.

#![allow(clippy::unwrap_used)]

use super::*;
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

#[tokio::test]
async fn bearer_challenge_is_followed_with_an_anonymous_token() {
    let (port, log) = serve(token_registry).await;
    let client = RegistryClient::new(vec![format!("127.0.0.1:{port}")]);
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
    let client = RegistryClient::new(vec![format!("127.0.0.1:{port}")]);
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
async fn basic_auth_and_refused_tokens_are_errors_not_absence() {
    let (port, _) = serve(|_, _| {
        (
            401,
            vec![("WWW-Authenticate", r#"Basic realm="x""#.into())],
            String::new(),
        )
    })
    .await;
    let client = RegistryClient::new(vec![format!("127.0.0.1:{port}")]);
    let err = client
        .manifest_exists(&image(port, "hello:v1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("Basic"), "{err}");

    let (port, _) = serve(token_registry).await;
    let client = RegistryClient::new(vec![format!("127.0.0.1:{port}")]);
    // The token server only grants team/app: other repositories get no usable token.
    let err = client
        .manifest_exists(&image(port, "other:v1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused anonymous access"), "{err}");
}

#[tokio::test]
async fn unreachable_registry_and_local_only_images_are_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = RegistryClient::new(vec![format!("127.0.0.1:{port}")]);
    let err = client
        .manifest_exists(&image(port, "hello:v1"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err}");
    let local = ImageRef::parse("localhost/hello:v1").unwrap();
    assert!(matches!(
        client.manifest_exists(&local).await,
        Err(RegistryError::NoRegistry { .. })
    ));
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
