//! An agent killed with SIGKILL at any moment loses nothing: a restarted agent finishes or
//! undoes the interrupted operation, re-adopts running workloads untouched, leaks nothing.
//! Interruption points are the agent's failpoints (`MCP_AGENT_FAILPOINT`).

#![allow(clippy::unwrap_used)]

mod support;

use nix::sys::signal::Signal;
use support::*;

fn three_components(name: &str, greeting: &str) -> String {
    let mut body = format!("name = \"{name}\"\nnode = \"local\"\n");
    for component in ["a", "b", "c"] {
        body.push_str(&format!(
            "[[components]]\nname = \"{component}\"\nimage = \"{}\"\nenv = [\"GREETING={greeting}\"]\n\
             [[components.routes]]\nport = {}\n",
            image(),
            unique_public_port()
        ));
    }
    body
}

fn restart_with_failpoint(agent: &mut Agent, failpoint: Option<&str>) {
    agent.kill_with_if_running(Signal::SIGTERM);
    agent.env = failpoint
        .map(|f| vec![("MCP_AGENT_FAILPOINT".to_string(), f.to_string())])
        .unwrap_or_default();
    agent.spawn();
}

fn pending_operations(agent: &Agent) -> usize {
    registry::Registry::open(&agent.registry_path())
        .unwrap()
        .pending_operations()
        .unwrap()
        .len()
}

#[test]
fn sigkill_in_the_middle_of_a_first_deploy_leaves_nothing_behind() {
    let mut agent = Agent::start();
    let name = unique("firstcrash");
    let def = agent.definition(&name, &three_components(&name, "v1"));
    restart_with_failpoint(&mut agent, Some("apply:created-one"));
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_ne!(run.code, 0, "the agent died under the deploy");
    assert!(!agent.wait_dead().success());
    assert_eq!(
        containers_of(&name).len(),
        1,
        "one component was created before the kill"
    );

    restart_with_failpoint(&mut agent, None);
    assert!(
        containers_of(&name).is_empty(),
        "the interrupted deploy was undone"
    );
    let registry = registry::Registry::open(&agent.registry_path()).unwrap();
    assert!(registry.service(&name).unwrap().is_none());
    assert_eq!(pending_operations(&agent), 0);
    assert!(
        registry.held_host_ports(None).unwrap().is_empty(),
        "no port is held"
    );
    let recovered = registry.events(Some(&name), 10).unwrap();
    assert!(
        recovered.iter().any(|e| e.action == "recovered"),
        "{recovered:?}"
    );

    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert_eq!(containers_of(&name).len(), 3);
}

#[test]
fn sigkill_in_the_middle_of_a_redeploy_converges_to_the_previous_spec() {
    let mut agent = Agent::start();
    let name = unique("redeploycrash");
    let def = agent.definition(&name, &three_components(&name, "v1"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let v1_hash = agent.status_json()["services"][0]["spec_hash"].clone();

    std::fs::write(&def, three_components(&name, "v2")).unwrap();
    restart_with_failpoint(&mut agent, Some("apply:created-one"));
    assert_ne!(agent.mcp(&["deploy", def.to_str().unwrap()]).code, 0);
    agent.wait_dead();

    restart_with_failpoint(&mut agent, None);
    let status = agent.status_json();
    assert_eq!(
        status["services"][0]["spec_hash"], v1_hash,
        "the registry kept v1"
    );
    assert_eq!(containers_of(&name).len(), 3, "no orphan, nothing missing");
    for component in ["a", "b", "c"] {
        let c = agent.component(&name, component);
        assert_eq!(c["state"], "running", "{c}");
        let port = route_ports(&c)[""];
        let env = http_get(port, "/env").unwrap();
        assert!(
            env.contains("GREETING=v1"),
            "{component} runs v1 again: {env}"
        );
    }
    assert_eq!(pending_operations(&agent), 0);
}

#[test]
fn sigkill_while_idle_keeps_containers_and_their_start_times() {
    let mut agent = Agent::start();
    let name = unique("idlecrash");
    let def = agent.definition(&name, &three_components(&name, "v1"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let before: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|c| agent.component(&name, c))
        .collect();

    agent.kill_with(Signal::SIGKILL);
    agent.spawn();
    for (component, old) in ["a", "b", "c"].iter().zip(&before) {
        let now = agent.component(&name, component);
        assert_eq!(now["id"], old["id"]);
        assert_eq!(now["started_at"], old["started_at"]);
        assert_eq!(now["state"], "running");
    }
}

#[test]
fn sigkill_in_the_middle_of_a_stop_finishes_the_stop() {
    let mut agent = Agent::start();
    let name = unique("stopcrash");
    let def = agent.definition(&name, &three_components(&name, "v1"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    restart_with_failpoint(&mut agent, Some("stop:stopped-one"));
    assert_ne!(agent.mcp(&["stop", &name]).code, 0);
    agent.wait_dead();

    restart_with_failpoint(&mut agent, None);
    for component in ["a", "b", "c"] {
        let c = agent.component(&name, component);
        assert_eq!(c["desired_state"], "stopped", "{c}");
        assert_eq!(c["state"], "exited", "{c}");
    }
    assert_eq!(pending_operations(&agent), 0);
}

#[test]
fn sigkill_in_the_middle_of_an_undeploy_finishes_it() {
    let mut agent = Agent::start();
    let name = unique("undeploycrash");
    let def = agent.definition(&name, &three_components(&name, "v1"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    restart_with_failpoint(&mut agent, Some("undeploy:removed-one"));
    assert_ne!(agent.mcp(&["undeploy", &name]).code, 0);
    agent.wait_dead();
    assert_eq!(
        containers_of(&name).len(),
        2,
        "killed after the first removal"
    );

    restart_with_failpoint(&mut agent, None);
    assert!(containers_of(&name).is_empty(), "the undeploy was finished");
    let registry = registry::Registry::open(&agent.registry_path()).unwrap();
    assert!(registry.service(&name).unwrap().is_none());
    assert!(registry.held_host_ports(None).unwrap().is_empty());
    assert_eq!(pending_operations(&agent), 0);
}
