//! `mcp node status`: host facts, runtime versions, the accelerator probe's verdict and
//! component counts, from a real agent.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// The one node's entry of `mcp node status --json`.
fn node_status(agent: &Agent) -> Value {
    let run = agent.mcp(&["node", "status", "--json"]).ok();
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["errors"], serde_json::json!([]), "{json}");
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{json}");
    nodes[0].clone()
}

fn runtime<'a>(node: &'a Value, name: &str) -> &'a Value {
    node["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no runtime {name} in {node}"))
}

fn u64_of(node: &Value, field: &str) -> u64 {
    node[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a number in {node}"))
}

#[test]
fn node_status_reports_host_runtimes_accelerator_and_components() {
    let agent = Agent::start();
    let name = unique("nodestat");
    let def = agent.definition(&name, &web_service(&name, free_port(), "hi"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();

    // The accelerator probe runs once at agent start; wait (bounded) for its verdict.
    let mut node = Value::Null;
    let probed = eventually(Duration::from_secs(90), || {
        node = node_status(&agent);
        node["kvm_detail"] != "probing"
    });
    assert!(probed, "the accelerator probe never finished: {node}");

    // Host facts.
    assert_eq!(node["node"], "local");
    assert!(!node["hostname"].as_str().unwrap().is_empty(), "{node}");
    assert!(u64_of(&node, "host_uptime_secs") > 0, "{node}");
    assert!(u64_of(&node, "cpu_count") >= 1, "{node}");
    let load = node["load_avg"].as_array().unwrap();
    assert_eq!(load.len(), 3, "{node}");
    assert!(load.iter().all(|l| l.as_f64().unwrap() >= 0.0), "{node}");
    let mem_total = u64_of(&node, "memory_total_bytes");
    assert!(mem_total > 0, "{node}");
    assert!(
        u64_of(&node, "memory_available_bytes") <= mem_total,
        "{node}"
    );
    let disk_total = u64_of(&node, "disk_total_bytes");
    assert!(disk_total > 0, "{node}");
    assert!(u64_of(&node, "disk_free_bytes") <= disk_total, "{node}");
    assert!(
        node["state_dir"].as_str().unwrap().ends_with("agent/state"),
        "{node}"
    );
    assert_eq!(node["warnings"], serde_json::json!([]), "{node}");

    // Runtimes: podman's version is exactly what podman says.
    let out = podman(&["version", "--format", "{{.Client.Version}}"]);
    let podman_version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!podman_version.is_empty());
    let p = runtime(&node, "podman");
    assert_eq!(p["available"], true, "{p}");
    assert_eq!(p["version"], podman_version.as_str(), "{p}");
    let qemu = runtime(&node, "qemu");
    assert_eq!(
        qemu["available"], true,
        "qemu-system-x86_64 must be installed (scripts/packages.sh): {qemu}"
    );
    let qemu_line = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .unwrap()
        .stdout;
    let qemu_line = String::from_utf8_lossy(&qemu_line);
    let qemu_version = qemu["version"].as_str().unwrap();
    assert!(
        qemu_line
            .lines()
            .next()
            .unwrap()
            .contains(&format!("version {qemu_version}")),
        "{qemu} vs {qemu_line}"
    );
    let ops = runtime(&node, "ops");
    let ops_installed = Command::new("ops")
        .arg("version")
        .stdin(Stdio::null())
        .output()
        .is_ok();
    if !ops_installed {
        assert_eq!(ops["available"], false, "{ops}");
        assert_eq!(ops["detail"], "ops not found in PATH", "{ops}");
    }

    // The accelerator: a verdict with a reason, consistent with the accelerator chosen.
    let detail = node["kvm_detail"].as_str().unwrap();
    assert!(!detail.is_empty(), "{node}");
    let usable = node["kvm_usable"].as_bool().unwrap();
    let expected = if usable { "kvm" } else { "tcg" };
    assert_eq!(node["accelerator"], expected, "{node}");
    if usable {
        assert_eq!(detail, "guest booted under KVM");
    }

    // Components by observed state: this agent's registry holds the one deployed above.
    let counts = &node["components_by_state"];
    assert_eq!(counts["running"], 1, "{node}");
    assert_eq!(counts["exited"], 0, "{node}");
    assert_eq!(counts["missing"], 0, "{node}");

    // The human form shows the same facts.
    let text = agent.mcp(&["node", "status"]).ok().stdout;
    for key in [
        "hostname:",
        "host uptime:",
        "load:",
        "memory:",
        "disk:",
        "podman:",
        "kvm:",
        "accelerator:",
        "components:",
    ] {
        assert!(text.contains(key), "{key} missing in\n{text}");
    }
    assert!(
        text.contains(&format!("podman:      {podman_version}\n")),
        "{text}"
    );
    assert!(text.contains("iB"), "sizes are human-readable:\n{text}");
}

#[test]
fn component_counts_follow_stop_and_removal() {
    let agent = Agent::start();
    let name = unique("nodestop");
    let def = agent.definition(&name, &web_service(&name, free_port(), "hi"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let before = node_status(&agent)["components_by_state"].clone();
    assert_eq!(before["running"], 1, "{before}");
    agent.mcp(&["stop", &name]).ok();
    let after = node_status(&agent)["components_by_state"].clone();
    assert_eq!(after["running"], 0, "{after}");
    assert_eq!(after["exited"], 1, "{after}");

    // A container removed behind the agent's back is counted as missing once podman's event
    // for it arrives (changes made outside mcp are not synchronous with its answers).
    for id in containers_of(&name) {
        podman(&["rm", "-f", "-t", "0", &id]);
    }
    let mut gone = Value::Null;
    let seen = eventually(Duration::from_secs(10), || {
        gone = node_status(&agent)["components_by_state"].clone();
        gone["missing"] == 1 && gone["exited"] == 0
    });
    assert!(seen, "{gone}");
}

#[test]
fn backup_copies_a_running_agents_registry_and_never_overwrites() {
    let agent = Agent::start();
    let name = unique("backedup");
    let def = agent.definition(&name, &routed_service(&name, &[None]));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let copy = agent.dir.path().join("copy.db");
    let backup = |file: &std::path::Path| {
        std::process::Command::new(agent_bin())
            .arg("--dev")
            .arg("--dir")
            .arg(agent.dir.path().join("agent"))
            .arg("backup")
            .arg(file)
            .output()
            .unwrap()
    };
    let out = backup(&copy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let copied = registry::Registry::open(&copy).unwrap();
    assert!(
        copied.service(&name).unwrap().is_some(),
        "the copy holds the service"
    );
    // The agent kept serving.
    agent.mcp(&["status", &name]).ok();
    let again = backup(&copy);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("copy.db"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let missing = backup(&agent.dir.path().join("nowhere/x.db"));
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn every_binary_names_itself_in_its_version() {
    for (binary, name) in [
        (agent_bin(), "mcp-agent"),
        (mcp_bin(), "mcp"),
        (agent_bin().with_file_name("mcp-proxy"), "mcp-proxy"),
    ] {
        let out = std::process::Command::new(&binary)
            .arg("--version")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.trim(),
            format!("{name} {}", env!("CARGO_PKG_VERSION")),
            "{}",
            binary.display()
        );
    }
}

#[test]
fn the_cli_config_is_found_under_xdg_config_home() {
    let agent = Agent::start();
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("mcp")).unwrap();
    std::fs::copy(agent.config(), home.path().join("mcp/mcp.toml")).unwrap();
    let out = std::process::Command::new(mcp_bin())
        .args(["node", "status", "--json"])
        .env_remove("MCP_CONFIG")
        .env("XDG_CONFIG_HOME", home.path())
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dev_only_flags_are_refused_with_a_config_and_a_config_that_cannot_serve_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "node = \"n\"\nlisten = \"127.0.0.1:1\"\nstate_dir = {:?}\n\
             [tls]\nca = \"/nonexistent/ca.pem\"\ncert = \"/nonexistent/n.pem\"\nkey = \"/nonexistent/n.key\"\n",
            state.display().to_string()
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(agent_bin())
            .arg("--config")
            .arg(&config)
            .args(extra)
            .env("CONTAINERS_CONF", containers_conf())
            .output()
            .unwrap()
    };
    let out = run(&["--proxy-bind", "127.0.0.9"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--proxy-bind configures --dev only"),
        "{stderr}"
    );

    let out = run(&[]);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/n.pem"), "{stderr}");
    assert!(!state.exists(), "nothing was started or created");
}
