//! l4 SNI passthrough: hostnames on one port reach different TLS backends, TLS end to end.

use proxy::table::Mode;

use crate::support::backends::tls_echo;
use crate::support::certs::{TestCa, client_config, server_config};
use crate::support::clients::{Lines, tls};
use crate::support::{ProxyProcess, StateDir, free_port, route, table};

#[tokio::test]
async fn server_names_pick_backends_and_unknown_ones_are_refused() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let ca = TestCa::new();
    let a = tls_echo("A", server_config(&ca.issue("a.test", state.scratch()))).await;
    let b = tls_echo("B", server_config(&ca.issue("b.test", state.scratch()))).await;
    let c = tls_echo("C", server_config(&ca.issue("c.test", state.scratch()))).await;
    let client = client_config(ca.roots(), &[]);
    let port = free_port();

    control
        .apply(&table(vec![
            route(port, Mode::L4, Some("a.test"), a.addr),
            route(port, Mode::L4, Some("b.test"), b.addr),
        ]))
        .await
        .expect("apply");
    for (name, tag) in [("a.test", "A"), ("b.test", "B"), ("a.test", "A")] {
        let stream = tls(port, name, client.clone())
            .await
            .unwrap_or_else(|err| panic!("TLS to {name}: {err}"));
        let mut lines = Lines::new(stream);
        assert_eq!(lines.ask("hi").await, format!("{tag}:hi"), "{name}");
    }
    assert!(
        tls(port, "c.test", client.clone()).await.is_err(),
        "unknown SNI without default route must be refused"
    );

    // A route without hostname is the default for unknown names.
    control
        .apply(&table(vec![
            route(port, Mode::L4, Some("a.test"), a.addr),
            route(port, Mode::L4, None, c.addr),
        ]))
        .await
        .expect("apply with default");
    let mut lines = Lines::new(tls(port, "c.test", client.clone()).await.expect("TLS to c"));
    assert_eq!(lines.ask("hi").await, "C:hi");
    let mut lines = Lines::new(tls(port, "a.test", client).await.expect("TLS to a"));
    assert_eq!(lines.ask("hi").await, "A:hi");
}

#[tokio::test]
async fn a_connection_whose_hello_arrives_after_a_switch_goes_to_the_new_backend() {
    // The old backend may be drained and stopped as soon as `apply` returns and `active`
    // says 0: a connection accepted before the switch must be routed on its ClientHello,
    // by the table as it is then.
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let ca = TestCa::new();
    let old = tls_echo("OLD", server_config(&ca.issue("a.test", state.scratch()))).await;
    let new = tls_echo("NEW", server_config(&ca.issue("a.test", state.scratch()))).await;
    let port = free_port();
    control
        .apply(&table(vec![route(
            port,
            Mode::L4,
            Some("a.test"),
            old.addr,
        )]))
        .await
        .expect("apply");
    let early = crate::support::clients::tcp(port).await;
    // Let the proxy accept it before the switch.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    control
        .apply(&table(vec![route(
            port,
            Mode::L4,
            Some("a.test"),
            new.addr,
        )]))
        .await
        .expect("switch");
    let active = control.active(&[old.addr]).await.expect("active");
    assert_eq!(
        active.get(&old.addr).copied(),
        Some(0),
        "nothing is on the old backend"
    );
    let name = rustls::pki_types::ServerName::try_from("a.test".to_owned()).expect("name");
    let stream = tokio_rustls::TlsConnector::from(client_config(ca.roots(), &[]))
        .connect(name, early)
        .await
        .expect("TLS through the early connection");
    let mut lines = Lines::new(stream);
    assert_eq!(lines.ask("hi").await, "NEW:hi");
}
