//! `apply` is all or nothing: a refused table leaves the previous one serving and saved.

use std::path::PathBuf;

use proxy::control::ClientError;
use proxy::table::{Mode, Table, Tls};

use crate::support::backends::tcp_echo;
use crate::support::clients::{Lines, tcp};
use crate::support::{ProxyProcess, StateDir, free_port, refused, route, table, with_tls};

fn saved(state: &StateDir) -> Table {
    let text = std::fs::read_to_string(state.path().join("routes.json")).expect("routes.json");
    serde_json::from_str(&text).expect("routes.json parses")
}

fn refusal(result: Result<(), ClientError>) -> String {
    match result {
        Err(ClientError::Refused(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn refused_tables_change_nothing() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let old = tcp_echo("old").await;
    let new = tcp_echo("new").await;
    let serving = free_port();
    let spare = free_port();
    let taken = free_port();
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", taken)).expect("squat");

    let first = table(vec![route(serving, Mode::L4, None, old.addr)]);
    control.apply(&first).await.expect("apply");

    // A port someone else holds: refused, naming it; the port bound before it is released.
    let message = refusal(
        control
            .apply(&table(vec![
                route(serving, Mode::L4, None, new.addr),
                route(spare, Mode::L4, None, new.addr),
                route(taken, Mode::L4, None, new.addr),
            ]))
            .await,
    );
    assert!(message.contains(&format!("port {taken}")), "{message}");
    assert!(message.contains("address in use"), "{message}");
    assert!(refused(spare).await, "port {spare} must not stay bound");

    // Inconsistent table.
    let message = refusal(
        control
            .apply(&table(vec![
                route(serving, Mode::L4, Some("a.test"), new.addr),
                route(serving, Mode::L7, Some("b.test"), new.addr),
            ]))
            .await,
    );
    assert!(message.contains(&format!("port {serving}")), "{message}");

    // A certificate that cannot be loaded.
    let missing = Tls {
        cert: PathBuf::from("/nonexistent/cert.pem"),
        key: PathBuf::from("/nonexistent/key.pem"),
    };
    let message = refusal(
        control
            .apply(&table(vec![
                route(serving, Mode::L4, None, new.addr),
                with_tls(route(spare, Mode::L7, None, new.addr), missing),
            ]))
            .await,
    );
    assert!(message.contains(&format!("port {spare}")), "{message}");
    assert!(message.contains("/nonexistent/cert.pem"), "{message}");
    assert!(refused(spare).await);

    // Still the first table: served, reported and saved.
    let mut conn = Lines::new(tcp(serving).await);
    assert_eq!(conn.ask("x").await, "old:x");
    assert_eq!(control.table().await.expect("table"), first);
    assert_eq!(saved(&state), first);

    // And a good table still applies afterwards; a removed port stops accepting.
    let second = table(vec![route(spare, Mode::L4, None, new.addr)]);
    control.apply(&second).await.expect("apply");
    assert_eq!(saved(&state), second);
    let mut conn2 = Lines::new(tcp(spare).await);
    assert_eq!(conn2.ask("y").await, "new:y");
    assert!(refused(serving).await, "removed port still accepting");
    assert_eq!(
        conn.ask("z").await,
        "old:z",
        "open connection on a removed port"
    );
}

#[tokio::test]
async fn a_port_another_proxy_serves_is_refused_not_shared() {
    // Every proxy listens with SO_REUSEPORT (a socket per worker); a second proxy must still
    // see the port as taken instead of silently sharing its connections.
    let (first_state, second_state) = (StateDir::new(), StateDir::new());
    let first = ProxyProcess::start(&first_state).await;
    let second = ProxyProcess::start(&second_state).await;
    let backend = tcp_echo("first").await;
    let port = free_port();
    let wanted = table(vec![route(port, Mode::L4, None, backend.addr)]);
    first.client().await.apply(&wanted).await.expect("apply");
    let message = refusal(second.client().await.apply(&wanted).await);
    assert!(message.contains(&format!("port {port}")), "{message}");
    assert!(message.contains("address in use"), "{message}");
}
