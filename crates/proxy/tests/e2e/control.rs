//! The control socket: bad input gets `ok:false` and the proxy keeps answering; process
//! lifecycle (arguments, SIGTERM, a second instance).

use std::process::Command;

use tokio::io::AsyncWriteExt;

use crate::support::{ProxyProcess, StateDir};

#[tokio::test]
async fn bad_requests_get_errors_and_the_proxy_keeps_answering() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    for bad in [
        &b"not json"[..],
        b"",
        b"{}",
        b"[1,2]",
        br#"{"op":"nope"}"#,
        br#"{"op":"apply"}"#,
        br#"{"op":"apply","table":{"routes":[{"bogus":1}]}}"#,
        br#"{"op":"apply","table":{"routes":[{"service":"s","component":"c","route":"r","port":1,"mode":"l4","backend":"not an address"}]}}"#,
        br#"{"op":"active","backends":["nope"]}"#,
        b"\xff\xfe{",
    ] {
        let response = control.raw(bad).await.expect("a response");
        assert!(!response.ok, "{:?}", String::from_utf8_lossy(bad));
        assert!(
            response.error.as_deref().is_some_and(|e| !e.is_empty()),
            "{response:?}"
        );
        assert!(control.ping().await.is_ok(), "same connection still served");
    }

    // A connection dropped in the middle of a line does no harm.
    let mut half = tokio::net::UnixStream::connect(state.socket())
        .await
        .expect("connect");
    half.write_all(br#"{"op":"pi"#).await.expect("write");
    drop(half);
    let status = proxy.client().await.ping().await.expect("ping");
    assert_eq!(status.pid, proxy.pid());
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(status.routes, 0);
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_removes_the_socket() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let pid = nix::unistd::Pid::from_raw(i32::try_from(proxy.pid()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let status = proxy.wait_exit().await;
    assert!(status.success(), "{status}");
    assert!(!state.socket().exists(), "socket removed");
}

#[tokio::test]
async fn a_second_proxy_on_the_same_state_dir_refuses_to_start() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-proxy"))
        .arg("--state-dir")
        .arg(state.path())
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("already"));
    assert!(
        proxy.client().await.ping().await.is_ok(),
        "first one unharmed"
    );
}

#[test]
fn arguments_give_the_documented_exit_codes() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mcp-proxy"))
            .args(args)
            .output()
            .expect("run")
    };
    let help = run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--state-dir"));
    let version = run(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    assert_eq!(run(&[]).status.code(), Some(2), "missing --state-dir");
    assert_eq!(
        run(&["--state-dir", "/tmp/x", "--bind", "nope"])
            .status
            .code(),
        Some(2)
    );
}
