//! Bad input gets a clear error, the documented exit code, and leaves nothing behind.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

#[test]
fn malformed_toml_names_line_and_column() {
    let agent = Agent::start();
    let def = agent.definition(
        "broken",
        "name = \"broken\"\nnode = \"local\"\n[[components]\nname = \"web\"\n",
    );
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("broken.toml:3:"), "{}", run.stderr);
}

#[test]
fn unknown_key_invalid_name_and_unknown_node_are_rejected() {
    let agent = Agent::start();
    let def = agent.definition(
        "typo",
        &format!("name = \"typo\"\nnode = \"local\"\n[[components]]\nname = \"web\"\nimage = \"{}\"\nimgae = \"x\"\n", image()),
    );
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("typo.toml:6:1") && run.stderr.contains("imgae"),
        "{}",
        run.stderr
    );

    let def = agent.definition("badname", &web_service("Bad_Name", free_port(), "x"));
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("badname.toml:1:8") && run.stderr.contains("Bad_Name"),
        "{}",
        run.stderr
    );

    let def = agent.definition(
        "elsewhere",
        &web_service("elsewhere", free_port(), "x").replace("\"local\"", "\"mars\""),
    );
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("unknown node \"mars\""),
        "{}",
        run.stderr
    );
    assert!(
        agent.status_json()["services"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn missing_image_fails_and_leaves_nothing() {
    let agent = Agent::start();
    let name = unique("noimage");
    // Port 9 on loopback refuses at once: the pull fails without leaving the machine.
    let body = web_service(&name, free_port(), "x").replace(&image(), "127.0.0.1:9/missing:v1");
    let def = agent.definition(&name, &body);
    // The CLI asks the registry first and cannot reach it: that is a failure, not a guess.
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot check 127.0.0.1:9/missing:v1 in its registry")
            && run.stderr.to_lowercase().contains("connection refused"),
        "{}",
        run.stderr
    );
    // Without the check, the agent's pull is what fails.
    let run = agent.mcp(&["deploy", def.to_str().unwrap(), "--no-build"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("127.0.0.1:9/missing:v1"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("connection refused"),
        "the backend's reason is shown: {}",
        run.stderr
    );
    assert!(containers_of(&name).is_empty());
    let registry = registry::Registry::open(&agent.registry_path()).unwrap();
    assert!(registry.service(&name).unwrap().is_none());
}

#[test]
fn a_component_that_dies_at_once_fails_the_deploy_with_its_logs() {
    let agent = Agent::start();
    let name = unique("crash");
    let body = format!(
        "name = \"{name}\"\nnode = \"local\"\n[[components]]\nname = \"web\"\nimage = \"{}\"\ncmd = [\"--exit\", \"7\"]\n",
        image()
    );
    let def = agent.definition(&name, &body);
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    // The program exits as it starts; the agent's check after `podman run` must see it.
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("exit code 7"), "{}", run.stderr);
    assert!(
        run.stderr.contains("exiting with status 7 as asked"),
        "log tail shown: {}",
        run.stderr
    );
    assert!(
        containers_of(&name).is_empty(),
        "the failed container is removed"
    );
    let registry = registry::Registry::open(&agent.registry_path()).unwrap();
    assert!(registry.service(&name).unwrap().is_none());
}

#[test]
fn unreachable_agent_exits_3() {
    let mut agent = Agent::start();
    agent.kill_with(nix::sys::signal::Signal::SIGKILL);
    let run = agent.mcp(&["status"]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
    let run = agent.mcp(&[
        "deploy",
        agent
            .definition("x", &web_service("x", 1, "x"))
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
}

#[test]
fn bad_health_plan_history_and_rollback_input_exit_2_naming_what() {
    let agent = Agent::start();
    // A health field with a bad value: exit 2, file, line and field named, nothing deployed.
    let name = unique("badhealth");
    let body = format!(
        "{}[components.health]\nhttp = \"/up\"\ninterval = \"soon\"\n",
        routed_service(&name, &[None])
    );
    let def = agent.definition(&name, &body);
    for verb in ["deploy", "plan"] {
        let run = agent.mcp(&[verb, def.to_str().unwrap()]);
        assert_eq!(run.code, 2, "{verb}: {}", run.stderr);
        assert!(
            run.stderr.contains("components[0].health.interval")
                && run.stderr.contains("duration \"soon\""),
            "{verb}: {}",
            run.stderr
        );
    }
    assert!(containers_of(&name).is_empty());

    // History and rollback of what does not exist, and a version that does not.
    let run = agent.mcp(&["history", "nosuch"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("nosuch"), "{}", run.stderr);
    let run = agent.mcp(&["history", "Bad_Name"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let def = agent.definition(&name, &routed_service(&name, &[None]));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let run = agent.mcp(&["rollback", &name, "--to", "7"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("no version 7 of service") && run.stderr.contains("(1 recorded)"),
        "{}",
        run.stderr
    );
    let run = agent.mcp(&["rollback", &name, "--to", "0"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--to"), "{}", run.stderr);
    // Only one version: nothing earlier to roll back to.
    let run = agent.mcp(&["rollback", &name]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        containers_of(&name).len(),
        1,
        "the running version is untouched"
    );
}

/// The certificate commands and completions: bad input exits 2 and names what is wrong.
#[test]
fn bad_tls_and_completion_input_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mcp = |args: &[&str]| {
        Run::from(
            std::process::Command::new(mcp_bin())
                .current_dir(dir.path())
                .args(args)
                .output()
                .unwrap(),
        )
    };
    mcp(&["tls", "ca", "create"]).ok();
    for (args, named) in [
        (
            vec![
                "tls",
                "cert",
                "create",
                "--operator",
                "ann",
                "--role",
                "root",
            ],
            "root",
        ),
        (
            vec![
                "tls",
                "cert",
                "create",
                "--operator",
                "ann",
                "--role",
                "admin",
                "--days",
                "0",
            ],
            "--days",
        ),
        (vec!["tls", "cert", "renew", "absent.pem"], "absent.pem"),
        (vec!["tls", "cert", "show", "ca.key"], "ca.key"),
        (vec!["completions", "tcsh"], "tcsh"),
    ] {
        let run = mcp(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(named), "{args:?}: {}", run.stderr);
    }
}

/// The agent's new config keys: a bad value stops it at start with exit 2, naming the key.
#[test]
fn bad_agent_config_values_exit_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    let base = "node = \"n1\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\n\
                [tls]\nca = \"ca.pem\"\ncert = \"n1.pem\"\nkey = \"n1.key\"\n";
    for (extra, named) in [
        (
            "revoked_serials = [\"not-hex\"]\n",
            "tls.revoked_serials[0]",
        ),
        (
            "[qemu]\nconsole_max_size = \"ten\"\n",
            "qemu.console_max_size",
        ),
        (
            "[podman]\napi_socket = \"/run/podman/podman.sock\"\nglobal_args = [\"--root=/x\"]\n",
            "podman.api_socket",
        ),
        (
            "[podman]\napi_idle_secs = \"soon\"\n",
            "podman.api_idle_secs",
        ),
        ("[podman]\nevents_file = 5\n", "podman.events_file"),
        ("[monitor]\nrelist_ms = -1\n", "monitor.relist_ms"),
    ] {
        std::fs::write(&path, format!("{base}{extra}")).unwrap();
        let out = std::process::Command::new(agent_bin())
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra}: {stderr}");
        assert!(stderr.contains(named), "{extra}: {stderr}");
        assert!(
            !dir.path().join("state").exists(),
            "nothing started: {extra}"
        );
    }
}
