//! l7: HTTPS with HTTP/1.1 and HTTP/2, Host routing, forwarding headers, 502, upgrades,
//! in-flight counting of requests.

use bytes::Bytes;
use http::{StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use proxy::table::Mode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::backends::http;
use crate::support::certs::{TestCa, client_config};
use crate::support::clients::{get, h1, h2, read, tcp, tls};
use crate::support::{ProxyProcess, StateDir, free_port, route, table, wait_active, with_tls};

#[tokio::test]
async fn https_http1_and_http2_reach_the_backend_of_their_host() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let ca = TestCa::new();
    let a = http("A").await;
    let b = http("B").await;
    let dead = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let port = free_port();
    control
        .apply(&table(vec![
            with_tls(
                route(port, Mode::L7, Some("a.test"), a.addr()),
                ca.issue("a.test", state.scratch()).tls,
            ),
            with_tls(
                route(port, Mode::L7, Some("b.test"), b.addr()),
                ca.issue("b.test", state.scratch()).tls,
            ),
            with_tls(
                route(port, Mode::L7, Some("down.test"), dead),
                ca.issue("down.test", state.scratch()).tls,
            ),
        ]))
        .await
        .expect("apply");

    // HTTP/1.1: the certificate of a.test, verified against the test CA.
    let stream = tls(port, "a.test", client_config(ca.roots(), &[b"http/1.1"]))
        .await
        .expect("TLS to a.test");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut sender = h1(stream).await;
    let request = get("/")
        .header("host", "a.test")
        .header("x-forwarded-for", "10.0.0.1")
        .header("connection", "x-private")
        .header("x-private", "1")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let answer = read(sender.send_request(request).await.expect("h1 response")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "A");
    assert_eq!(answer.header("x-seen-xff"), "10.0.0.1, 127.0.0.1");
    assert_eq!(answer.header("x-seen-proto"), "https");
    assert_eq!(answer.header("x-seen-xfh"), "a.test");
    assert_eq!(answer.header("x-seen-host"), "a.test");
    assert_eq!(
        answer.header("x-seen-private"),
        "absent",
        "hop-by-hop header stripped"
    );

    // Routing is per request, by Host.
    let request = get("/")
        .header("host", format!("B.test:{port}"))
        .body(Empty::new())
        .expect("request");
    let answer = read(sender.send_request(request).await.expect("h1 response")).await;
    assert_eq!(answer.body, "B");

    // Backend down: 502.
    let request = get("/")
        .header("host", "down.test")
        .body(Empty::new())
        .expect("request");
    let answer = read(sender.send_request(request).await.expect("h1 response")).await;
    assert_eq!(answer.status, StatusCode::BAD_GATEWAY);

    // HTTP/2 over ALPN h2, routed by :authority.
    let stream = tls(port, "b.test", client_config(ca.roots(), &[b"h2"]))
        .await
        .expect("TLS to b.test");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut sender = h2(stream).await;
    let request = get(&format!("https://b.test:{port}/x"))
        .body(Empty::new())
        .expect("request");
    let answer = read(sender.send_request(request).await.expect("h2 response")).await;
    assert_eq!(answer.version, Version::HTTP_2);
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "B");
    assert_eq!(answer.header("x-seen-xff"), "127.0.0.1");
    assert_eq!(answer.header("x-seen-proto"), "https");
    assert_eq!(answer.header("x-seen-host"), format!("b.test:{port}"));
    let request = get(&format!("https://a.test:{port}/"))
        .body(Empty::new())
        .expect("request");
    let answer = read(sender.send_request(request).await.expect("h2 response")).await;
    assert_eq!(answer.body, "A");
}

#[tokio::test]
async fn plain_http_routes_by_host_case_insensitively_and_404s_the_rest() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let a = http("A").await;
    let b = http("B").await;
    let port = free_port();
    control
        .apply(&table(vec![
            route(port, Mode::L7, Some("a.test"), a.addr()),
            route(port, Mode::L7, Some("b.test"), b.addr()),
        ]))
        .await
        .expect("apply");
    let mut sender = h1(tcp(port).await).await;
    for (host, status, body) in [
        ("a.test", StatusCode::OK, "A"),
        ("B.TEST", StatusCode::OK, "B"),
        (
            "other.test",
            StatusCode::NOT_FOUND,
            "no route for this host\n",
        ),
    ] {
        let request = get("/")
            .header("host", host)
            .body(Empty::<Bytes>::new())
            .expect("request");
        let answer = read(sender.send_request(request).await.expect("response")).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (status, body),
            "{host}"
        );
        if status == StatusCode::OK {
            assert_eq!(answer.header("x-seen-proto"), "http");
        }
    }
}

#[tokio::test]
async fn upgrade_is_tunnelled_and_counted_until_closed() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let ca = TestCa::new();
    let a = http("A").await;
    let port = free_port();
    control
        .apply(&table(vec![with_tls(
            route(port, Mode::L7, None, a.addr()),
            ca.issue("a.test", state.scratch()).tls,
        )]))
        .await
        .expect("apply");
    let stream = tls(port, "a.test", client_config(ca.roots(), &[b"http/1.1"]))
        .await
        .expect("TLS");
    let mut sender = h1(stream).await;
    let request = get("/ws")
        .header("host", "a.test")
        .header("connection", "Upgrade")
        .header("upgrade", "echo")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["upgrade"], "echo");
    let mut tunnel = TokioIo::new(hyper::upgrade::on(response).await.expect("upgraded"));
    for message in [&b"ping"[..], b"pong, longer message"] {
        tunnel.write_all(message).await.expect("write");
        let mut echoed = vec![0; message.len()];
        tunnel.read_exact(&mut echoed).await.expect("read");
        assert_eq!(echoed, message);
    }
    wait_active(&mut control, a.addr(), 1).await;
    drop(tunnel);
    drop(sender);
    wait_active(&mut control, a.addr(), 0).await;
}

#[tokio::test]
async fn a_request_counts_until_its_body_is_finished() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let a = http("A").await;
    let port = free_port();
    control
        .apply(&table(vec![route(port, Mode::L7, None, a.addr())]))
        .await
        .expect("apply");
    let mut sender = h1(tcp(port).await).await;
    let request = get("/hold")
        .header("host", "a.test")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("headers");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body.frame().await.expect("frame").expect("data");
    assert_eq!(first.into_data().expect("data"), "A");
    // Headers sent, body not finished: still in flight.
    wait_active(&mut control, a.addr(), 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    wait_active(&mut control, a.addr(), 1).await;
    a.release();
    let rest = body.collect().await.expect("rest").to_bytes();
    assert_eq!(rest, "!");
    // Finished; the backend connection idles in the proxy's pool and does not count.
    wait_active(&mut control, a.addr(), 0).await;
    let request = get("/")
        .header("host", "a.test")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let answer = read(sender.send_request(request).await.expect("response")).await;
    assert_eq!(answer.body, "A");
    wait_active(&mut control, a.addr(), 0).await;
}

#[tokio::test]
async fn a_client_that_never_completes_a_request_is_disconnected() {
    let state = StateDir::new();
    let proxy = ProxyProcess::start(&state).await;
    let mut control = proxy.client().await;
    let a = http("A").await;
    let port = free_port();
    control
        .apply(&table(vec![route(port, Mode::L7, None, a.addr())]))
        .await
        .expect("apply");
    // One says nothing; one stops in the middle of HTTP/2's preface (before hyper knows
    // the version, where its own header timeout does not run yet).
    let mut silent = tcp(port).await;
    let mut partial = tcp(port).await;
    partial.write_all(b"PRI * HT").await.expect("write");
    for (what, stream) in [("silent", &mut silent), ("partial preface", &mut partial)] {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{what}: still open after 20 s"));
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "{what}: closed, got {read:?}"
        );
    }
}
