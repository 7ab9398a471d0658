//! One CLI, several nodes: commands that ask every node answer with the nodes that answer,
//! mark the others unreachable (a stopped agent, whose kernel still accepts connections,
//! included) within the node timeout, and fail only when every node failed or with --strict.

#![allow(clippy::unwrap_used)]

mod support;

use nix::sys::signal::Signal;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// A CLI config for `agent`'s identity listing `agent` as node `up`, plus `extra` nodes
/// (name, address), with a 1 s node timeout.
fn fleet_config(agent: &Agent, extra: &[(&str, String)]) -> std::path::PathBuf {
    let text = std::fs::read_to_string(agent.config()).unwrap();
    let mut config: toml::Table = text.parse().unwrap();
    config.insert("node_timeout_ms".into(), toml::Value::Integer(1000));
    let mut nodes = vec![toml::Value::Table(toml::Table::from_iter([
        ("name".to_string(), toml::Value::String("up".into())),
        (
            "address".to_string(),
            toml::Value::String(format!("https://{}", agent.address)),
        ),
        (
            "tls_server_name".to_string(),
            toml::Value::String("local".into()),
        ),
    ]))];
    for (name, address) in extra {
        nodes.push(toml::Value::Table(toml::Table::from_iter([
            ("name".to_string(), toml::Value::String((*name).into())),
            ("address".to_string(), toml::Value::String(address.clone())),
            (
                "tls_server_name".to_string(),
                toml::Value::String("local".into()),
            ),
        ])));
    }
    config.insert("nodes".into(), toml::Value::Array(nodes));
    let path = agent.dir.path().join("fleet.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path
}

/// Runs the CLI, failing the test (instead of hanging it) if it does not end in 60 s.
fn run(config: &std::path::Path, args: &[&str]) -> Output {
    let mut child = Command::new(mcp_bin())
        .args(args)
        .env("MCP_CONFIG", config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("mcp {args:?} hung on an unreachable node");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_stopped_and_a_dead_node_are_marked_unreachable_while_the_others_answer() {
    let agent = Agent::start();
    let name = unique("fleet");
    let def = agent.definition(&name, &web_service(&name, free_port(), "hi"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let stopped = Agent::start();
    let dead = format!("https://127.0.0.1:{}", free_port());
    let config = fleet_config(
        &agent,
        &[
            ("stopped", format!("https://{}", stopped.address)),
            ("dead", dead),
        ],
    );
    let stopped_pid = nix::unistd::Pid::from_raw(stopped.pid());
    nix::sys::signal::kill(stopped_pid, Signal::SIGSTOP).unwrap();

    for args in [
        vec!["status", "--json"],
        vec!["ps", "--json"],
        vec!["node", "status", "--json"],
        vec!["events", "--json"],
    ] {
        let out = run(&config, &args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let errors: Vec<(String, String)> = json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["node"].as_str().unwrap().into(),
                    e["error"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(errors.len(), 2, "{args:?}: {errors:?}");
        assert!(
            errors
                .iter()
                .any(|(n, e)| n == "stopped" && e.contains("did not answer within 1000 ms")),
            "{args:?}: {errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|(n, e)| n == "dead" && e.contains("unreachable")),
            "{args:?}: {errors:?}"
        );
        if args[0] == "status" {
            assert!(
                stdout.contains(&name),
                "the answering node's service is shown: {stdout}"
            );
        }
        let mut strict = args.clone();
        strict.push("--strict");
        assert_eq!(run(&config, &strict).status.code(), Some(3), "{strict:?}");
    }
    // Only unreachable nodes: exit 3 without --strict.
    let out = run(&config, &["status", "-n", "stopped", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    nix::sys::signal::kill(stopped_pid, Signal::SIGCONT).unwrap();
    agent.mcp(&["undeploy", &name]).ok();
    drop(stopped);
}
