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
