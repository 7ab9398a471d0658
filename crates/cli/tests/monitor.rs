//! The monitor heals what the agent runs: restarts with back-off, re-creates what vanished,
//! reports strays without touching them, keeps inactive services stopped.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;
use support::*;

const PATIENCE: Duration = Duration::from_secs(30);

fn events(agent: &Agent, service: &str) -> Vec<serde_json::Value> {
    let run = agent
        .mcp(&["events", service, "--json", "--limit", "200"])
        .ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    json["events"].as_array().unwrap().clone()
}

fn has_event(agent: &Agent, service: &str, action: &str, detail_part: &str) -> bool {
    events(agent, service).iter().any(|e| {
        e["action"] == action
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains(detail_part))
    })
}

/// `podman kill`s the service's web component and waits until the monitor restarted it.
fn kill_and_wait_for_restart(agent: &Agent, name: &str) {
    let out = podman(&["kill", &format!("{name}-web")]);
    assert!(out.status.success());
    assert!(
        eventually(PATIENCE, || {
            let web = agent.component(name, "web");
            web["state"] == "running" && web["restart_count"].as_u64() >= Some(1)
        }),
        "restarted: {}\n{}",
        agent.component(name, "web"),
        agent.log()
    );
}

#[test]
fn a_killed_component_is_restarted() {
    let agent = Agent::start_with(&Agent::FAST_MONITOR);
    let name = unique("killed");
    let port = free_port();
    let def = agent.definition(&name, &web_service(&name, port, "x"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let before = agent.component(&name, "web");

    kill_and_wait_for_restart(&agent, &name);
    let after = agent.component(&name, "web");
    assert_eq!(
        after["id"], before["id"],
        "the same container is started again"
    );
    assert_eq!(
        after["last_exit_code"], 137,
        "SIGKILL's exit code is kept: {after}"
    );
    assert!(http_get(port, "/").is_some());
    assert!(has_event(
        &agent,
        &name,
        "restart",
        "restarted after exit code 137"
    ));
}

#[test]
fn a_crash_looping_component_backs_off_visibly() {
    let agent = Agent::start_with(&Agent::FAST_MONITOR);
    let name = unique("crashloop");
    let body = format!(
        "name = \"{name}\"\nnode = \"local\"\n[[components]]\nname = \"web\"\nimage = \"{}\"\n\
         cmd = [\"--exit-after-ms\", \"300\", \"3\"]\nrestart = \"on-failure\"\n",
        image()
    );
    let def = agent.definition(&name, &body);
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();

    let mut saw_backoff = false;
    assert!(
        eventually(PATIENCE, || {
            let web = agent.component(&name, "web");
            saw_backoff |= web["state"] == "backoff";
            web["restart_count"].as_u64() >= Some(4) && saw_backoff
        }),
        "crash loop shows restarts and backoff: {}",
        agent.component(&name, "web")
    );
    let web = agent.component(&name, "web");
    assert_eq!(web["last_exit_code"], 3);
    // The human table says so too, at some point of the loop.
    assert!(eventually(PATIENCE, || {
        agent
            .mcp(&["status", &name])
            .ok()
            .stdout
            .contains("backoff (exit 3)")
    }));

    // The delay the monitor announces grows with each restart.
    let mut delays: Vec<f64> = events(&agent, &name)
        .iter()
        .filter(|e| e["action"] == "restart")
        .filter_map(|e| {
            let detail = e["detail"].as_str()?;
            let secs = detail
                .split("no sooner than ")
                .nth(1)?
                .trim_end_matches("s)");
            secs.parse().ok()
        })
        .collect();
    delays.reverse(); // events are newest first
    assert!(delays.len() >= 3, "{delays:?}");
    assert!(delays[2] > delays[0] * 1.5, "back-off grows: {delays:?}");
}

#[test]
fn a_removed_component_is_reported_then_recreated() {
    let agent = Agent::start_with(&Agent::FAST_MONITOR);
    let name = unique("removed");
    let port = free_port();
    let def = agent.definition(&name, &web_service(&name, port, "back"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let before = agent.component(&name, "web")["id"].clone();

    assert!(
        podman(&["rm", "-f", &format!("{name}-web")])
            .status
            .success()
    );
    assert!(
        eventually(PATIENCE, || {
            let web = agent.component(&name, "web");
            web["state"] == "running" && web["id"] != before
        }),
        "re-created: {}",
        agent.component(&name, "web")
    );
    // The pass records its events after the re-created container runs, so a fast CLI can
    // see the container first.
    assert!(eventually(PATIENCE, || has_event(
        &agent,
        &name,
        "drift",
        "web: missing"
    )));
    assert!(eventually(PATIENCE, || has_event(
        &agent,
        &name,
        "restart",
        "web: re-created"
    )));
    assert!(http_get(port, "/").unwrap().contains("back"));
}

#[test]
fn a_foreign_labelled_container_is_reported_and_left_alone() {
    let agent = Agent::start_with(&Agent::FAST_MONITOR);
    let ghost = unique("ghost");
    let instance = format!("{ghost}-x");
    // Registered for cleanup by the harness through its service label.
    agent.definition(&ghost, "");
    let out = podman(&[
        "run",
        "-d",
        "--name",
        &instance,
        "--label",
        &format!("mcp.service={ghost}"),
        &image(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        eventually(PATIENCE, || {
            let status = agent.status_json();
            status["strays"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["instance"] == instance.as_str() && s["service"] == ghost.as_str())
        }),
        "reported as stray: {}",
        agent.status_json()
    );
    assert!(
        agent
            .mcp(&["status"])
            .ok()
            .stdout
            .contains(&format!("stray on node local: {instance}"))
    );
    assert!(has_event(&agent, &ghost, "stray", &instance));
    std::thread::sleep(Duration::from_secs(1)); // several more passes
    assert_eq!(containers_of(&ghost).len(), 1, "never removed unasked");
}

#[test]
fn an_inactive_service_stays_stopped_across_passes_and_restarts() {
    let mut agent = Agent::start_with(&Agent::FAST_MONITOR);
    let name = unique("inactive");
    let body = web_service(&name, free_port(), "x")
        .replace("node = \"local\"", "node = \"local\"\nactive = false");
    let def = agent.definition(&name, &body);
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let web = agent.component(&name, "web");
    assert_eq!(web["desired_state"], "stopped");
    assert_eq!(web["state"], "missing");
    std::thread::sleep(Duration::from_secs(1)); // five monitor intervals
    assert!(
        containers_of(&name).is_empty(),
        "the monitor does not start it"
    );

    agent.kill_with(nix::sys::signal::Signal::SIGTERM);
    agent.spawn();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        containers_of(&name).is_empty(),
        "nor does a restarted agent"
    );
    assert_eq!(agent.component(&name, "web")["desired_state"], "stopped");
}

/// A monitor whose reconcile timer is a minute away still restarts a killed container at
/// once: podman's event (read from its event log) wakes it, and the recorded event says so.
#[test]
fn a_killed_component_is_restarted_on_podmans_event_not_the_timer() {
    restarted_on_podmans_event("", "podman's events: following its event log");
}

/// The same through the API's event stream, which the agent follows when podman's event log
/// is not where it looks (here: podman's global arguments name the events backend).
#[test]
fn a_killed_component_is_restarted_on_an_event_of_the_api_stream() {
    restarted_on_podmans_event(
        "[podman]\nglobal_args = [\"--events-backend=file\"]\n",
        "podman's events: following its API event stream",
    );
}

fn restarted_on_podmans_event(podman_settings: &str, source: &str) {
    let agent = Agent::start_settings(&format!(
        "{podman_settings}[monitor]\ninterval_ms = 60000\nreconcile_ms = 60000\nbackoff_base_ms = 300\nbackoff_max_ms = 3000\n",
    ));
    assert!(
        eventually(PATIENCE, || agent.log().contains(source)),
        "{}",
        agent.log()
    );
    let name = unique("evented");
    let port = free_port();
    let def = agent.definition(&name, &web_service(&name, port, "x"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();

    kill_and_wait_for_restart(&agent, &name);
    assert!(
        has_event(&agent, &name, "restart", "noticed by podman event"),
        "{:?}",
        events(&agent, &name)
    );
    // A removed container too (podman's remove event), re-created.
    let out = podman(&["rm", "-f", "-t", "0", &format!("{name}-web")]);
    assert!(out.status.success());
    assert!(
        eventually(PATIENCE, || has_event(
            &agent,
            &name,
            "restart",
            "re-created"
        )),
        "{:?}",
        events(&agent, &name)
    );
}
