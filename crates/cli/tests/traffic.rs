//! Public traffic through the node proxy: zero failed requests across a redeploy, an agent
//! SIGKILL and a rollback; a broken new version never takes traffic; SNI and TLS-terminating
//! routes; a killed proxy comes back; health checks restart an unhealthy instance; plan
//! changes nothing.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

fn web(name: &str, port: u16, greeting: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\nnode = \"local\"\n\n[[components]]\nname = \"web\"\nimage = \"{}\"\n\
         env = [\"GREETING={greeting}\"]\n{extra}\n\
         [[components.routes]]\nport = {port}\n",
        image()
    )
}

const HEALTH_UP: &str = "[components.health]\nhttp = \"/up\"\ninterval = \"200ms\"\n";

#[test]
fn redeploy_agent_kill_and_rollback_drop_no_request() {
    let mut agent = Agent::start();
    let name = unique("zdt");
    let port = unique_public_port();
    let def = agent.definition(&name, &web(&name, port, "v1", ""));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    served(&agent, port, ": v1");
    let load = Load::start(&agent.proxy_ip, port);
    std::thread::sleep(Duration::from_millis(300));

    std::fs::write(&def, web(&name, port, "v2", "")).unwrap();
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let switched = Instant::now();
    std::thread::sleep(Duration::from_millis(400));

    agent.kill_with(nix::sys::signal::Signal::SIGKILL);
    let killed = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    agent.spawn();
    std::thread::sleep(Duration::from_millis(300));

    let rollback = agent.mcp(&["rollback", &name]).ok();
    assert!(rollback.stdout.contains("rolled"), "{}", rollback.stdout);
    let rolled = Instant::now();
    std::thread::sleep(Duration::from_millis(400));
    let outcomes = load.finish();

    let after_deploy = bodies_between(&outcomes, switched, killed);
    assert!(!after_deploy.is_empty());
    assert!(
        after_deploy.iter().all(|b| b.contains(": v2")),
        "only the new version answers once the deploy returned: {after_deploy:?}"
    );
    let after_rollback = bodies_between(&outcomes, rolled, Instant::now());
    assert!(
        !after_rollback.is_empty() && after_rollback.iter().all(|b| b.contains(": v1")),
        "{after_rollback:?}"
    );
    assert_eq!(containers_of(&name).len(), 1, "retired instances are gone");

    let history: serde_json::Value =
        serde_json::from_str(&agent.mcp(&["history", &name, "--json"]).ok().stdout).unwrap();
    let versions = history.as_array().unwrap();
    assert_eq!(versions.len(), 3, "{history}");
    assert_eq!(versions[0]["version"], 3);
    assert_eq!(versions[0]["current"], true);
    assert_eq!(versions[0]["detail"], "rollback to 1");
    assert_eq!(versions[0]["spec_hash"], versions[2]["spec_hash"]);
}

#[test]
fn a_version_that_never_becomes_healthy_never_takes_traffic() {
    let agent = Agent::start();
    let name = unique("broken");
    let port = unique_public_port();
    let def = agent.definition(&name, &web(&name, port, "v1", HEALTH_UP));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    served(&agent, port, ": v1");
    let before = containers_of(&name);
    let load = Load::start(&agent.proxy_ip, port);

    // v2 listens on another port than its route's: its check can never pass.
    let broken = web(
        &name,
        port,
        "v2",
        "cmd = [\"12345\"]\n[components.health]\nhttp = \"/up\"\nstart_period = \"2s\"\n",
    );
    std::fs::write(&def, broken).unwrap();
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    let outcomes = load.finish();

    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("never became healthy within 2000 ms")
            && run.stderr.contains("GET /up"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("hello: listening on port 12345"),
        "the new instance's log lines: {}",
        run.stderr
    );
    assert!(
        outcomes
            .iter()
            .all(|(_, r)| r.as_ref().unwrap().contains(": v1"))
    );
    assert_eq!(
        containers_of(&name),
        before,
        "nothing of the new version is left"
    );
    let history = agent.mcp(&["history", &name, "--json"]).ok().stdout;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&history)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Sends a TLS ClientHello naming `sni` and closes its sending side (so the plain-HTTP test
/// server answers whatever it got), and returns the raw reply: which backend answered.
fn client_hello_reply(ip: &str, port: u16, sni: &str) -> String {
    use std::io::{Read, Write};
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), sni.to_string().try_into().unwrap())
            .unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    let mut stream = std::net::TcpStream::connect((ip, port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(&hello).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).to_string()
}

#[test]
fn sni_sends_two_host_names_on_one_port_to_two_services_and_claims_are_exclusive() {
    let agent = Agent::start();
    let port = unique_public_port();
    let mut names = Vec::new();
    for host in ["a.test", "b.test"] {
        let name = unique(&host[..1]);
        let body = format!(
            "name = \"{name}\"\nnode = \"local\"\n[[components]]\nname = \"web\"\nimage = \"{}\"\n\
             env = [\"HELLO_NAME=backend-{host}\"]\n\
             [[components.routes]]\nport = {port}\nhostname = \"{host}\"\n",
            image()
        );
        let def = agent.definition(&name, &body);
        agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
        names.push(name);
    }
    for host in ["a.test", "b.test"] {
        let reply = client_hello_reply(&agent.proxy_ip, port, host);
        assert!(
            reply.contains(&format!("hello from backend-{host}")),
            "SNI {host} reached: {reply:?}"
        );
    }
    let status = agent.mcp(&["status", &names[0]]).ok().stdout;
    assert!(
        status.contains(&format!("(port) {port}/l4 a.test -> :")),
        "{status}"
    );

    // A third service claiming b.test on that port is refused as bad input.
    let thief = unique("thief");
    let body = format!(
        "name = \"{thief}\"\nnode = \"local\"\n[[components]]\nname = \"web\"\nimage = \"{}\"\n\
         [[components.routes]]\nport = {port}\nhostname = \"B.test\"\n",
        image()
    );
    let def = agent.definition(&thief, &body);
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "public port {port} (b.test) is already claimed by service {}",
            names[1]
        )),
        "{}",
        run.stderr
    );
    assert!(containers_of(&thief).is_empty());
}

#[test]
fn l7_terminates_tls_with_a_dev_certificate_and_speaks_http2() {
    let agent = Agent::start();
    let name = unique("l7");
    let port = unique_public_port();
    let body = format!(
        "name = \"{name}\"\nnode = \"local\"\n[[components]]\nname = \"web\"\nimage = \"{}\"\n\
         env = [\"HELLO_NAME=secure\"]\n\
         [[components.routes]]\nport = {port}\nmode = \"l7\"\nhostname = \"app.test\"\n",
        image()
    );
    let def = agent.definition(&name, &body);
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let ca = agent.dir.path().join("agent/tls/ca.pem");
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", flag, "--cacert"])
            .arg(&ca)
            .arg("--resolve")
            .arg(format!("app.test:{port}:{}", agent.proxy_ip))
            .args(["-w", "\nversion=%{http_version}"])
            .arg(format!("https://app.test:{port}/"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("hello from secure"),
            "{flag}: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(&format!("version={version}")), "{text}");
    }
    let key = agent
        .dir
        .path()
        .join("agent/state/proxy/certs/app.test.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_killed_proxy_is_started_again_and_serves_every_route() {
    let agent = Agent::start();
    let name = unique("proxykill");
    let port = unique_public_port();
    let def = agent.definition(&name, &web(&name, port, "still-here", ""));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    served(&agent, port, "still-here");
    let dir = agent.dir.path().to_string_lossy().to_string();
    let before = proxy_processes(&dir);
    assert_eq!(before.len(), 1, "one proxy per agent: {before:?}");
    let killed = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    served(&agent, port, "still-here");
    eprintln!(
        "proxy SIGKILL -> serving again: {} ms",
        killed.elapsed().as_millis()
    );
    let after = proxy_processes(&dir);
    assert!(
        after.len() == 1 && after != before,
        "{before:?} -> {after:?}"
    );
}

#[test]
fn an_unhealthy_instance_is_restarted_and_shown_unhealthy() {
    let agent = Agent::start();
    let name = unique("sick");
    let port = unique_public_port();
    let extra = "[components.health]\nhttp = \"/up\"\ninterval = \"100ms\"\nretries = 2\nstart_period = \"5s\"\n";
    let def = agent.definition(&name, &web(&name, port, "hi", extra));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let web = agent.component(&name, "web");
    assert_eq!(web["health"], "healthy", "{web}");
    let host_port = route_ports(&web)[""];
    assert_eq!(
        http_request(host_port, "GET", "/break", &[]).unwrap().0,
        200
    );
    let events = || agent.mcp(&["events", &name, "--json"]).ok().stdout;
    let restarted = eventually(Duration::from_secs(20), || {
        let e = events();
        e.contains("\"unhealthy\"") && e.contains("restarted because it was unhealthy")
    });
    assert!(restarted, "{}", events());
    // The restarted process is healthy again (its /up answers 200), and the proxy serves it.
    let healthy = eventually(Duration::from_secs(20), || {
        agent.component(&name, "web")["health"] == "healthy"
    });
    assert!(healthy, "{}", agent.component(&name, "web"));
    assert_eq!(agent.component(&name, "web")["restart_count"], 1);
    served(&agent, port, "hi");
}

#[test]
fn plan_reports_each_action_and_changes_nothing() {
    let agent = Agent::start();
    let name = unique("plan");
    let port = unique_public_port();
    let two = |greeting: &str, third: &str| {
        format!(
            "{}[[components]]\nname = \"{third}\"\nimage = \"{}\"\n",
            web(&name, port, greeting, ""),
            image()
        )
    };
    let def = agent.definition(&name, &two("v1", "worker"));
    let plan = |def: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(
            &agent
                .mcp(&["plan", def.to_str().unwrap(), "--json"])
                .ok()
                .stdout,
        )
        .unwrap()
    };
    let actions = |plan: &serde_json::Value| -> Vec<(String, String, Vec<String>)> {
        plan["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["action"].as_str().unwrap().to_string(),
                    c["fields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| f.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    };
    let fresh = plan(&def);
    assert_eq!(fresh["changed"], true);
    assert_eq!(fresh["service"], name.as_str());
    assert_eq!(fresh["node"], "local");
    assert_eq!(
        actions(&fresh),
        [
            ("web".into(), "create".into(), vec![]),
            ("worker".into(), "create".into(), vec![])
        ]
    );
    assert!(containers_of(&name).is_empty(), "plan created nothing");

    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let same = plan(&def);
    assert_eq!(same["changed"], false);
    assert!(actions(&same).iter().all(|(_, a, _)| a == "unchanged"));

    let before = containers_of(&name);
    std::fs::write(&def, two("v2", "extra")).unwrap();
    let next = plan(&def);
    assert_eq!(next["changed"], true);
    assert_eq!(next["components"][0]["side_by_side"], true);
    assert_eq!(
        actions(&next),
        [
            ("web".into(), "replace".into(), vec!["env".to_string()]),
            ("extra".into(), "create".into(), vec![]),
            ("worker".into(), "remove".into(), vec![]),
        ]
    );
    let dry = agent
        .mcp(&["deploy", def.to_str().unwrap(), "--dry-run"])
        .ok()
        .stdout;
    assert!(
        dry.contains("~ web replace (env), side by side: no downtime")
            && dry.contains("- worker remove"),
        "{dry}"
    );
    assert_eq!(
        containers_of(&name),
        before,
        "plan and --dry-run changed nothing"
    );
    served(&agent, port, ": v1");
}

fn restart_with_failpoint(agent: &mut Agent, failpoint: Option<&str>) {
    agent.kill_with_if_running(nix::sys::signal::Signal::SIGTERM);
    agent.env = failpoint
        .map(|f| vec![("MCP_AGENT_FAILPOINT".to_string(), f.to_string())])
        .unwrap_or_default();
    agent.spawn();
}

#[test]
fn sigkill_around_the_switch_drops_no_request_and_recovery_settles_on_the_record() {
    let mut agent = Agent::start();
    let name = unique("switchcrash");
    let port = unique_public_port();
    let def = agent.definition(&name, &web(&name, port, "v1", ""));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    served(&agent, port, ": v1");
    let load = Load::start(&agent.proxy_ip, port);

    // Killed after the proxy moved to v2 but before the registry recorded it: the deploy
    // failed, so the restarted agent points the proxy back at v1 and removes v2.
    restart_with_failpoint(&mut agent, Some("deploy:switched"));
    std::fs::write(&def, web(&name, port, "v2", "")).unwrap();
    assert_ne!(agent.mcp(&["deploy", def.to_str().unwrap()]).code, 0);
    assert!(!agent.wait_dead().success());
    restart_with_failpoint(&mut agent, None);
    let undone = Instant::now();
    assert_eq!(containers_of(&name).len(), 1, "v2 was removed");
    std::thread::sleep(Duration::from_millis(300));

    // Killed after v2 was recorded and v1 drained, before v1 was removed: the deploy
    // stands, and recovery removes v1.
    restart_with_failpoint(&mut agent, Some("deploy:drained"));
    let second = Instant::now();
    assert_ne!(agent.mcp(&["deploy", def.to_str().unwrap()]).code, 0);
    assert!(!agent.wait_dead().success());
    restart_with_failpoint(&mut agent, None);
    assert_eq!(containers_of(&name).len(), 1, "v1 was removed");
    std::thread::sleep(Duration::from_millis(300));
    let outcomes = load.finish();

    let between = bodies_between(&outcomes, undone, second);
    assert!(
        !between.is_empty() && between.iter().all(|b| b.contains(": v1")),
        "{between:?}"
    );
    let last = outcomes.last().unwrap().1.as_ref().unwrap();
    assert!(last.contains(": v2"), "{last}");
}

#[test]
fn a_vanished_instance_recreated_on_another_port_is_followed_by_the_proxy() {
    let mut agent = Agent::start_with(&Agent::FAST_MONITOR);
    let name = unique("vanish");
    let port = unique_public_port();
    let def = agent.definition(&name, &web(&name, port, "back", ""));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    served(&agent, port, "back");
    let old = route_ports(&agent.component(&name, "web"))[""];
    // While the agent is down its instance vanishes and someone else takes its host port.
    agent.kill_with(nix::sys::signal::Signal::SIGTERM);
    for id in containers_of(&name) {
        podman(&["rm", "-f", "-t", "0", &id]);
    }
    let squatter = std::net::TcpListener::bind(("127.0.0.1", old)).unwrap();
    agent.spawn();
    let moved = eventually(Duration::from_secs(30), || {
        http_request_to(&agent.proxy_ip, port, "GET", "/", &[])
            .is_some_and(|(status, body)| status == 200 && !body.contains(&format!("port {old}:")))
    });
    assert!(
        moved,
        "the proxy follows the re-created instance:\n{}",
        agent.log()
    );
    let new = route_ports(&agent.component(&name, "web"))[""];
    assert_ne!(new, old);
    drop(squatter);
}
