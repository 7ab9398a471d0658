//! Routes: host ports allocated by the agent, injected as $PORT / $PORT_<NAME>, published,
//! released on stop, recycled on start, never handed out twice.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use support::*;

#[test]
fn two_named_routes_get_both_variables_and_answer_on_both_ports() {
    let agent = Agent::start();
    let name = unique("tworoutes");
    let def = agent.definition(
        &name,
        &routed_service(&name, &[Some("rest"), Some("admin-ui")]),
    );
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let api = agent.component(&name, "api");
    let ports = route_ports(&api);
    assert_eq!(ports.len(), 2, "{api}");
    let (rest, admin) = (ports["rest"], ports["admin-ui"]);
    assert_ne!(rest, admin);
    for port in [rest, admin] {
        assert!((10_000..=60_000).contains(&port), "default range: {port}");
        let env = http_get(port, "/env").unwrap_or_else(|| panic!("nothing answers on {port}"));
        assert!(env.contains(&format!("PORT_REST={rest}\n")), "{env}");
        assert!(env.contains(&format!("PORT_ADMIN_UI={admin}\n")), "{env}");
    }
    let routes = api["routes"].as_array().unwrap();
    let rest_json = routes.iter().find(|r| r["name"] == "rest").unwrap();
    assert_eq!(rest_json["env"], "PORT_REST");
    let public = rest_json["port"].as_u64().unwrap();
    assert_eq!(rest_json["mode"], "l4");
    let table = agent.mcp(&["status", &name]).ok().stdout;
    assert!(
        table.contains(&format!("rest {public}/l4 -> :{rest}")),
        "{table}"
    );
}

#[test]
fn stop_releases_start_recycles_and_restart_keeps_ports() {
    let agent = Agent::start();
    let name = unique("recycle");
    let def = agent.definition(&name, &routed_service(&name, &[None]));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let port = route_ports(&agent.component(&name, "api"))[""];
    let env = http_get(port, "/env").unwrap();
    assert!(
        env.contains(&format!("PORT={port}\n")),
        "single unnamed route is $PORT: {env}"
    );

    agent.mcp(&["restart", &name]).ok();
    assert_eq!(
        route_ports(&agent.component(&name, "api"))[""],
        port,
        "restart keeps the port"
    );

    agent.mcp(&["stop", &name]).ok();
    let api = agent.component(&name, "api");
    assert!(
        route_ports(&api).is_empty(),
        "stop releases the port: {api}"
    );
    let registry = registry::Registry::open(&agent.registry_path()).unwrap();
    assert!(!registry.held_host_ports(None).unwrap().contains(&port));

    agent.mcp(&["start", &name]).ok();
    assert_eq!(
        route_ports(&agent.component(&name, "api"))[""],
        port,
        "free again: kept"
    );
    assert!(http_get(port, "/").is_some());

    agent.mcp(&["stop", &name]).ok();
    let squatter = TcpListener::bind(("127.0.0.1", port)).expect("the released port is free");
    agent.mcp(&["start", &name]).ok();
    let moved = route_ports(&agent.component(&name, "api"))[""];
    assert_ne!(moved, port, "a port taken meanwhile is not reused");
    let env = http_get(moved, "/env").unwrap();
    assert!(
        env.contains(&format!("PORT={moved}\n")),
        "the new port reaches the component: {env}"
    );
    drop(squatter);
}

#[test]
fn fifty_concurrent_deploys_get_distinct_reachable_ports_and_undeploy_frees_them() {
    let agent = Agent::start();
    let names: Vec<String> = (0..50).map(|_| unique("many")).collect();
    let defs: Vec<_> = names
        .iter()
        .map(|n| agent.definition(n, &routed_service(n, &[None])))
        .collect();
    run_concurrently(
        &agent,
        defs.iter()
            .map(|def| vec!["deploy".to_string(), def.display().to_string()]),
    );
    let status = agent.status_json();
    let mut ports = Vec::new();
    for service in status["services"].as_array().unwrap() {
        ports.extend(route_ports(&service["components"][0]).into_values());
    }
    assert_eq!(ports.len(), 50);
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        50,
        "every route got its own port: {ports:?}"
    );
    for &port in &ports {
        assert!(http_get(port, "/").is_some(), "port {port} answers");
    }

    run_concurrently(
        &agent,
        names
            .iter()
            .map(|n| vec!["undeploy".to_string(), n.clone()]),
    );
    let registry = registry::Registry::open(&agent.registry_path()).unwrap();
    assert!(
        registry.held_host_ports(None).unwrap().is_empty(),
        "the registry holds no port"
    );
    for &port in &ports {
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is free again"
        );
    }
}

/// Starts one `mcp` per argument list at once, then expects every one to succeed.
fn run_concurrently(agent: &Agent, commands: impl Iterator<Item = Vec<String>>) {
    let children: Vec<_> = commands
        .map(|args| {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            agent.spawn_mcp(&args)
        })
        .collect();
    expect_all_succeed(children);
}

/// Two adjacent free ports, for a tiny range.
fn two_free_ports() -> (u16, u16) {
    for _ in 0..100 {
        let a = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if a < 65_535 && TcpListener::bind(("127.0.0.1", a + 1)).is_ok() {
            return (a, a + 1);
        }
    }
    panic!("no two adjacent free ports");
}

#[test]
fn a_port_held_by_a_foreign_process_is_skipped() {
    let (held, free) = two_free_ports();
    let _foreign = TcpListener::bind(("127.0.0.1", held)).unwrap();
    let range = format!("{held}-{free}");
    let agent = Agent::start_with(&["--port-range", &range]);
    let name = unique("skip");
    let def = agent.definition(&name, &routed_service(&name, &[None]));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert_eq!(route_ports(&agent.component(&name, "api"))[""], free);
    assert!(http_get(free, "/").is_some());
}

#[test]
fn an_exhausted_range_fails_the_deploy_and_leaves_nothing() {
    let (held, _) = two_free_ports();
    let _foreign = TcpListener::bind(("127.0.0.1", held)).unwrap();
    let range = format!("{held}-{held}");
    let agent = Agent::start_with(&["--port-range", &range]);
    let name = unique("exhaust");
    let def = agent.definition(&name, &routed_service(&name, &[Some("a")]));
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("no free host port left in {range}")),
        "{}",
        run.stderr
    );
    assert!(containers_of(&name).is_empty());
    let registry = registry::Registry::open(&agent.registry_path()).unwrap();
    assert!(registry.service(&name).unwrap().is_none());
}

/// A DNAT rule in the host's nat OUTPUT chain that sends loopback connections to `port` to
/// 127.0.0.1:9, where nothing listens: the rule podman leaves behind when it is killed in the
/// middle of a container's network setup. Deleted when dropped.
struct Redirect {
    rule: Vec<String>,
}

impl Redirect {
    fn add(port: u16) -> Self {
        let rule: Vec<String> = [
            "OUTPUT",
            "-d",
            "127.0.0.1/32",
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-m",
            "comment",
            "--comment",
            "mcp test: a stale redirect",
            "-j",
            "DNAT",
            "--to-destination",
            "127.0.0.1:9",
        ]
        .map(String::from)
        .to_vec();
        let redirect = Self { rule };
        redirect.iptables("-I");
        redirect
    }

    fn iptables(&self, action: &str) {
        let status = std::process::Command::new("iptables")
            .args(["-w", "-t", "nat", action])
            .args(&self.rule)
            .status()
            .unwrap();
        assert!(status.success(), "iptables {action} {:?}", self.rule);
    }
}

impl Drop for Redirect {
    fn drop(&mut self) {
        self.iptables("-D");
    }
}

/// A port that binds but whose connections a NAT rule sends elsewhere is not handed out: the
/// deploy fails naming the rule as the reason, and gets the port once the rule is gone.
#[test]
fn a_port_the_nat_table_redirects_elsewhere_is_not_handed_out() {
    let (port, _) = two_free_ports();
    let range = format!("{port}-{port}");
    let agent = Agent::start_with(&["--port-range", &range]);
    let name = unique("redirected");
    let def = agent.definition(&name, &routed_service(&name, &[None]));
    let redirect = Redirect::add(port);
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "no free host port left in {range} (bind address 127.0.0.1) for route api/(unnamed); \
             1 of them redirected elsewhere by the host's NAT table"
        )),
        "{}",
        run.stderr
    );
    assert!(containers_of(&name).is_empty());
    drop(redirect);
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert_eq!(route_ports(&agent.component(&name, "api"))[""], port);
    assert!(http_get(port, "/").is_some());
}

/// `mcp deploy` shows the node's steps as they happen (plain lines when stderr is not a
/// terminal), in the order the node takes them, with the time each took.
#[test]
fn a_deploy_shows_the_nodes_steps_in_order() {
    let agent = Agent::start();
    let name = unique("steps");
    let body = routed_service(&name, &[None]);
    let def = agent.definition(&name, &body);
    let first = agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let expected = [
        "api: pulling ",
        "api: pulled ",
        "api: starting a container",
        "api: started container ",
        "api: waiting for its check (",
        "api: healthy (",
        "switching traffic",
        "traffic switched (",
    ];
    let mut from = 0;
    for wanted in expected {
        let at = first.stderr[from..]
            .find(wanted)
            .unwrap_or_else(|| panic!("{wanted:?} missing or out of order in:\n{}", first.stderr));
        from += at + wanted.len();
    }
    // A side-by-side replace also drains and removes the old instance.
    let changed = body.replace(
        "[[components.routes]]",
        "env = [\"GREETING=v2\"]\n[[components.routes]]",
    );
    std::fs::write(&def, changed).unwrap();
    let second = agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    for wanted in [
        "api: waiting for its check",
        "draining the old instances",
        "drained (",
    ] {
        assert!(
            second.stderr.contains(wanted),
            "{wanted:?} in:\n{}",
            second.stderr
        );
    }
    // An unchanged redeploy has no steps to show.
    let same = agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert!(!same.stderr.contains("starting"), "{}", same.stderr);
    assert!(same.stdout.contains("unchanged"), "{}", same.stdout);
}
