//! A service's whole life through the real CLI and agent: deploy, serve, status, logs,
//! stop/start/restart, redeploy, undeploy.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

#[test]
fn deploy_serve_stop_start_restart_undeploy() {
    let agent = Agent::start();
    let name = unique("life");
    let port = free_port();
    let def = agent.definition(&name, &web_service(&name, port, "hi from the test"));

    let run = agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert!(
        run.stdout.contains(&format!("deployed {name}")),
        "{}",
        run.stdout
    );
    let body = http_get(port, "/").expect("service answers over its ports mapping");
    assert!(body.contains("hi from the test"), "{body}");

    let web = agent.component(&name, "web");
    assert_eq!(web["state"], "running");
    assert_eq!(web["desired_state"], "running");
    assert!(web["started_at"].as_i64().unwrap() > 0);
    assert!(web["uptime_secs"].as_i64().unwrap() >= 0);
    assert_eq!(web["instance"], format!("{name}-web"));
    let id = web["id"].as_str().unwrap().to_string();
    // Logs: timestamps on request, and a time filter.
    let web_logs = format!("{name}/web");
    let stamped = agent
        .mcp(&["logs", &web_logs, "--tail", "1", "--timestamps"])
        .ok()
        .stdout;
    assert!(stamped.starts_with("20"), "a timestamp first: {stamped}");
    assert!(
        !agent
            .mcp(&["logs", &web_logs, "--since", "10m"])
            .ok()
            .stdout
            .is_empty(),
        "the start is within the last 10 minutes"
    );
    let future = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    let none = agent.mcp(&["logs", &web_logs, "--since", &future]).ok();
    assert!(none.stdout.is_empty(), "{}", none.stdout);
    let bad = agent.mcp(&["logs", &web_logs, "--since", "yesterday"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    // Its log file is bounded by default (agent.toml [podman] log_max_size).
    let log_limit = podman(&["inspect", &id, "--format", "{{.HostConfig.LogConfig.Size}}"]);
    assert_eq!(String::from_utf8_lossy(&log_limit.stdout).trim(), "10MB");
    let table = agent.mcp(&["status", &name]).ok().stdout;
    assert!(
        table.contains("UPTIME") && table.contains("running"),
        "{table}"
    );

    let logs = agent.mcp(&["logs", &name]).ok().stdout;
    assert!(
        logs.contains("web | hello: listening on port 8080"),
        "{logs}"
    );
    assert!(logs.contains("GET / on port 8080"), "{logs}");

    agent.mcp(&["stop", &name]).ok();
    let web = agent.component(&name, "web");
    assert_eq!(web["state"], "exited");
    assert_eq!(web["desired_state"], "stopped");
    assert!(web["uptime_secs"].is_null());
    assert!(
        http_get_once(port, "/").is_none(),
        "a stopped service must not answer"
    );

    agent.mcp(&["start", &name]).ok();
    let web = agent.component(&name, "web");
    assert_eq!(web["state"], "running");
    assert_eq!(web["id"], id.as_str(), "start keeps the container");
    assert!(http_get(port, "/").is_some());

    agent.mcp(&["restart", &name]).ok();
    assert!(http_get(port, "/").is_some());
    let logs = agent.mcp(&["logs", &format!("{name}/web")]).ok().stdout;
    assert_eq!(
        logs.matches("hello: listening on port 8080").count(),
        3,
        "deploy, start and restart each started the server once: {logs}"
    );
    assert_eq!(agent.component(&name, "web")["id"], id.as_str());

    agent.mcp(&["undeploy", &name]).ok();
    assert!(
        containers_of(&name).is_empty(),
        "no container with our labels is left"
    );
    let registry = registry::Registry::open(&agent.registry_path()).unwrap();
    assert!(
        registry.service(&name).unwrap().is_none(),
        "no registry rows are left"
    );
    let run = agent.mcp(&["status", &name]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn logs_follow_streams_new_lines() {
    let agent = Agent::start();
    let name = unique("follow");
    let port = free_port();
    let def = agent.definition(&name, &web_service(&name, port, "x"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert!(http_get(port, "/first").is_some());

    let mut follower = Command::new(mcp_bin())
        .args(["logs", "-f", "--tail", "1", &format!("{name}/web")])
        .env("MCP_CONFIG", agent.config())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The tail: only the last line so far.
    let first = rx.recv_timeout(Duration::from_secs(20)).unwrap();
    assert!(first.contains("GET /first"), "{first}");
    assert!(http_get(port, "/second").is_some());
    // podman's follower can miss a line written while it sets up its file watch (right after
    // printing the tail) until the next line is written: nudge it once, and require that the
    // line then arrives, so a line is never lost.
    let next = match rx.recv_timeout(Duration::from_secs(3)) {
        Ok(line) => line,
        Err(_) => {
            assert!(http_get(port, "/nudge").is_some());
            rx.recv_timeout(Duration::from_secs(20))
                .expect("a new line arrives while following")
        }
    };
    assert!(next.contains("GET /second"), "{next}");
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn redeploy_replaces_changed_and_keeps_identical() {
    let agent = Agent::start();
    let name = unique("redeploy");
    let port = free_port();
    let def = agent.definition(&name, &web_service(&name, port, "one"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let id = agent.component(&name, "web")["id"]
        .as_str()
        .unwrap()
        .to_string();

    let run = agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert!(run.stdout.contains("unchanged"), "{}", run.stdout);
    assert_eq!(
        agent.component(&name, "web")["id"],
        id.as_str(),
        "identical spec: no-op"
    );

    std::fs::write(&def, web_service(&name, port, "two")).unwrap();
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert!(run.stdout.contains("created: web"), "{}", run.stdout);
    let new_id = agent.component(&name, "web")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_id, id, "a changed spec replaces the container");
    assert_eq!(containers_of(&name), vec![new_id]);
    let body = http_get(port, "/").unwrap();
    assert!(body.contains("two"), "{body}");
    let env = http_get(port, "/env").unwrap();
    assert!(env.contains("GREETING=two"), "{env}");
}

#[test]
fn agent_restart_keeps_services_and_containers() {
    let mut agent = Agent::start();
    let name = unique("survive");
    let port = free_port();
    let def = agent.definition(&name, &web_service(&name, port, "still here"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let before = agent.component(&name, "web");

    let status = agent.kill_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "SIGTERM is a clean shutdown: {status:?}");
    assert_eq!(agent.mcp(&["status"]).code, 3, "no agent: exit 3");
    assert!(
        http_get(port, "/").is_some(),
        "containers keep running without the agent"
    );

    agent.spawn();
    let after = agent.component(&name, "web");
    assert_eq!(after["state"], "running");
    assert_eq!(
        after["id"], before["id"],
        "the same container, not a new one"
    );
    assert_eq!(after["started_at"], before["started_at"], "never restarted");
}
