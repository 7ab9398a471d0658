//! The agent talks to podman through its API service, which it starts and keeps running:
//! the service killed or hung (SIGSTOP) never fails an operation (the podman CLI takes over
//! until the API answers again), it is started again, and nothing is left behind.

#![allow(clippy::unwrap_used)]

mod support;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::Duration;
use support::*;

fn service_pid(agent: &Agent) -> Option<i32> {
    let dir = agent.dir.path().to_string_lossy().to_string();
    let pids = podman_services(&dir);
    assert!(pids.len() <= 1, "one podman service per agent: {pids:?}");
    pids.first().copied()
}

/// The service pid once it is one other than `old` (started again).
fn replaced(agent: &Agent, old: i32) -> i32 {
    let mut new = None;
    let ok = eventually(Duration::from_secs(30), || {
        new = service_pid(agent).filter(|pid| *pid != old);
        new.is_some()
    });
    assert!(
        ok,
        "the podman service was not started again:\n{}",
        agent.log()
    );
    new.unwrap()
}

#[test]
fn a_killed_or_hung_podman_service_fails_nothing_and_is_replaced() {
    let agent = Agent::start_with(&Agent::FAST_MONITOR);
    let first = service_pid(&agent).expect("the agent runs a podman API service");
    let name = unique("api");
    let def = agent.definition(&name, &routed_service(&name, &[None]));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert!(agent.log().contains("api-ps") || agent.log().contains("podman API service started"));

    // Killed while idle, then a deploy at once: it completes either way.
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    let second_name = unique("api2");
    let def2 = agent.definition(&second_name, &routed_service(&second_name, &[None]));
    agent.mcp(&["deploy", def2.to_str().unwrap()]).ok();
    agent.mcp(&["status", &name]).ok();
    let second = replaced(&agent, first);

    // Hung: calls time out into the CLI; status and the monitor go on.
    kill(Pid::from_raw(second), Signal::SIGSTOP).unwrap();
    let status = agent.mcp(&["status", "--json"]).ok();
    assert!(status.stdout.contains(&second_name), "{}", status.stdout);
    let id = agent.component(&name, "api")["id"]
        .as_str()
        .unwrap()
        .to_string();
    podman(&["kill", &id]);
    let healed = eventually(Duration::from_secs(30), || {
        agent.component(&name, "api")["state"] == "running"
            && agent.component(&name, "api")["restart_count"] == 1
    });
    assert!(
        healed,
        "the monitor restarts the killed container:\n{}",
        agent.log()
    );
    let third = replaced(&agent, second);
    assert!(
        agent.log().contains("using the podman CLI"),
        "the fallback is logged:\n{}",
        agent.log()
    );
    // The hung one was not left behind.
    let _ = kill(Pid::from_raw(second), Signal::SIGCONT);
    let gone = eventually(Duration::from_secs(10), || {
        kill(Pid::from_raw(second), None).is_err()
            || std::fs::read_to_string(format!("/proc/{second}/stat"))
                .is_ok_and(|stat| stat.contains(") Z "))
    });
    assert!(gone, "the hung service {second} is still running");
    assert_eq!(service_pid(&agent), Some(third));
    agent.mcp(&["undeploy", &name, "--yes"]).ok();
    agent.mcp(&["undeploy", &second_name, "--yes"]).ok();
}

#[test]
fn a_clean_shutdown_stops_the_service_and_a_restarted_agent_adopts_a_live_one() {
    let mut agent = Agent::start();
    let first = service_pid(&agent).unwrap();
    // SIGKILL: the service stays and the next agent adopts it.
    agent.kill_with(Signal::SIGKILL);
    agent.spawn();
    agent.mcp(&["status"]).ok();
    assert_eq!(
        service_pid(&agent),
        Some(first),
        "adopted, not started twice"
    );
    // SIGTERM: a clean shutdown stops it.
    agent.kill_with(Signal::SIGTERM);
    let stopped = eventually(Duration::from_secs(10), || service_pid(&agent).is_none());
    assert!(stopped, "the service outlived a clean shutdown");
}

/// The service SIGKILLed while a deploy is under way: the deploy completes (the CLI takes
/// over the calls the API cannot answer) or fails clearly leaving nothing, and the service
/// is started again.
#[test]
fn a_podman_service_killed_during_a_deploy_loses_nothing() {
    let agent = Agent::start();
    let first = service_pid(&agent).unwrap();
    let name = unique("apideploy");
    let def = agent.definition(&name, &routed_service(&name, &[None]));
    let deploy = agent.spawn_mcp(&["deploy", def.to_str().unwrap()]);
    std::thread::sleep(Duration::from_millis(150));
    kill(Pid::from_raw(first), Signal::SIGKILL).unwrap();
    let out = deploy.wait_with_output().unwrap();
    let status = agent.mcp(&["status", "--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let deployed = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == name.as_str());
    if out.status.success() {
        assert!(deployed, "{}", status.stdout);
        assert_eq!(agent.component(&name, "api")["state"], "running");
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.trim().is_empty(), "a failure says why");
        assert!(!deployed, "a failed deploy is not recorded");
        assert!(
            containers_of(&name).is_empty(),
            "nothing orphaned: {stderr}"
        );
    }
    replaced(&agent, first);
    agent.mcp(&["undeploy", &name, "--yes"]);
}

/// The service exits after `api_idle_secs` without a request, and the next call starts it
/// again: the deploy goes through the API, not the CLI.
#[test]
fn an_idle_service_exits_and_the_next_call_starts_it_again() {
    let agent = Agent::start_settings("[podman]\napi_idle_secs = 1\n");
    let first = service_pid(&agent).expect("the agent runs a podman API service");
    let exited = eventually(Duration::from_secs(20), || service_pid(&agent).is_none());
    assert!(exited, "the service {first} outlived its idle time");
    let name = unique("idle");
    let def = agent.definition(&name, &routed_service(&name, &[None]));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert_eq!(agent.component(&name, "api")["state"], "running");
    let log = agent.log();
    assert_eq!(
        log.matches("podman API service started").count(),
        2,
        "started at start-up and for the deploy:\n{log}"
    );
    assert!(
        !log.contains("using the podman CLI"),
        "the deploy waited for the service, not the CLI:\n{log}"
    );
    agent.mcp(&["undeploy", &name, "--yes"]).ok();
}
