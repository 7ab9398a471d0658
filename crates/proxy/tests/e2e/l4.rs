//! l4 forwarding: switching backends by `apply` while old connections drain, `active` counts.

use proxy::table::Mode;

use crate::support::backends::tcp_echo;
use crate::support::clients::{Lines, tcp};
use crate::support::{ProxyProcess, StateDir, free_port, route, table, wait_active};

#[tokio::test]
async fn apply_switches_new_connections_while_old_ones_keep_working() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let old = tcp_echo("old").await;
    let new = tcp_echo("new").await;
    let port = free_port();

    let first_table = table(vec![route(port, Mode::L4, None, old.addr)]);
    control.apply(&first_table).await.expect("apply old");
    let mut first = Lines::new(tcp(port).await);
    assert_eq!(first.ask("one").await, "old:one");
    let active = control.active(&[old.addr, new.addr]).await.expect("active");
    assert_eq!((active[&old.addr], active[&new.addr]), (1, 0));

    let second_table = table(vec![route(port, Mode::L4, None, new.addr)]);
    control.apply(&second_table).await.expect("apply new");
    let mut second = Lines::new(tcp(port).await);
    assert_eq!(second.ask("two").await, "new:two");
    assert_eq!(
        first.ask("three").await,
        "old:three",
        "open connection kept"
    );
    let active = control.active(&[old.addr, new.addr]).await.expect("active");
    assert_eq!((active[&old.addr], active[&new.addr]), (1, 1));
    assert_eq!(control.table().await.expect("table"), second_table);
    assert_eq!(control.ping().await.expect("ping").routes, 1);

    drop(first);
    wait_active(&mut control, old.addr, 0).await;
    assert_eq!(
        control.active(&[new.addr]).await.expect("active")[&new.addr],
        1
    );
    drop(second);
    wait_active(&mut control, new.addr, 0).await;
}

#[tokio::test]
async fn unreachable_backend_closes_the_client_connection() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let port = free_port();
    let nowhere = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    control
        .apply(&table(vec![route(port, Mode::L4, None, nowhere)]))
        .await
        .expect("apply");
    let mut conn = Lines::new(tcp(port).await);
    assert_eq!(conn.ask("hello").await, "<eof>");
    wait_active(&mut control, nowhere, 0).await;
}
