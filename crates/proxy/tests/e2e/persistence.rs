//! Restart after SIGKILL serves the saved table without any apply; file and socket modes;
//! the proxy runs in its own session.

use std::os::unix::fs::PermissionsExt;

use bytes::Bytes;
use http_body_util::Empty;
use proxy::table::Mode;

use crate::support::backends::{http, tcp_echo};
use crate::support::clients::{Lines, get, h1, read, tcp};
use crate::support::{ProxyProcess, StateDir, eventually, free_port, refused, route, table};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn sigkilled_proxy_restarts_serving_its_saved_routes() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let echo = tcp_echo("echo").await;
    let web = http("web").await;
    let l4_port = free_port();
    let l7_port = free_port();
    let routes = table(vec![
        route(l4_port, Mode::L4, None, echo.addr),
        route(l7_port, Mode::L7, Some("web.test"), web.addr()),
    ]);
    control.apply(&routes).await.expect("apply");

    assert_eq!(mode(&state.path()), 0o700, "state dir");
    assert_eq!(
        mode(&state.path().join("routes.json")),
        0o600,
        "routes.json"
    );
    assert_eq!(mode(&state.socket()), 0o600, "control.sock");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(proxy.pid()).expect("pid"));
    assert_eq!(
        nix::unistd::getsid(Some(pid)).expect("getsid"),
        pid,
        "own session"
    );

    proxy.kill();
    eventually("the killed proxy's port closed", || refused(l4_port)).await;

    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    assert_eq!(control.ping().await.expect("ping").routes, 2);
    assert_eq!(control.table().await.expect("table"), routes);
    let mut conn = Lines::new(tcp(l4_port).await);
    assert_eq!(conn.ask("again").await, "echo:again");
    let mut sender = h1(tcp(l7_port).await).await;
    let request = get("/")
        .header("host", "web.test")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let answer = read(sender.send_request(request).await.expect("response")).await;
    assert_eq!(answer.body, "web");
    assert_eq!(mode(&state.socket()), 0o600, "control.sock after restart");
}

#[tokio::test]
async fn a_saved_port_that_cannot_be_bound_does_not_stop_the_others() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let echo = tcp_echo("echo").await;
    let good = free_port();
    let contested = free_port();
    let routes = table(vec![
        route(good, Mode::L4, None, echo.addr),
        route(contested, Mode::L4, None, echo.addr),
    ]);
    control.apply(&routes).await.expect("apply");
    proxy.kill();
    eventually("the killed proxy's port closed", || refused(contested)).await;
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", contested)).expect("squat");

    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let mut conn = Lines::new(tcp(good).await);
    assert_eq!(conn.ask("x").await, "echo:x");
    // The served table says what is served, so the agent sees the difference and re-applies.
    assert_eq!(
        control.table().await.expect("table"),
        table(vec![route(good, Mode::L4, None, echo.addr)])
    );
    assert!(proxy.log_text().contains(&format!("port {contested}")));
}
