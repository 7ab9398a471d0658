//! Secrets: set on the node through the agent, passed to a container through podman's own
//! secrets, rotated by a redeploy, and never found in clear where the issue lists: the agent's
//! state directory (SQLite included), its log, any CLI output, or `podman inspect`.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use support::*;

fn service(name: &str, port: u16) -> String {
    format!(
        "name = \"{name}\"\nnode = \"local\"\n\n[[components]]\nname = \"web\"\nimage = \"{}\"\n\
         env = [\"GREETING=hi\"]\nsecrets = [\"DB_PASSWORD\", \"API_TOKEN=api.token\"]\n\
         ports = [\"127.0.0.1:{port}:8080\"]\n",
        image()
    )
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file()
                && std::fs::read(&path).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// podman 5.3 and later mask env secrets in `podman inspect`; before, `Config.Env` shows them
/// (containers/podman#23788), which mcp cannot change. Everything else must never show them.
fn inspect_without_env_if_old_podman(container: &str) -> String {
    let version =
        String::from_utf8_lossy(&podman(&["version", "--format", "{{.Client.Version}}"]).stdout)
            .trim()
            .to_string();
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    let masks = parts.as_slice() >= [5, 3].as_slice();
    let out = podman(&["inspect", container]);
    assert!(out.status.success());
    let mut json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    if !masks {
        json[0]["Config"]["Env"] = serde_json::Value::Null;
    }
    json.to_string()
}

fn podman_secrets() -> Vec<String> {
    let out = podman(&["secret", "ls", "--format", "{{.Name}}"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn secrets_reach_the_component_rotate_with_a_redeploy_and_leak_nowhere() {
    let agent = Agent::start();
    let name = unique("sec");
    let port = free_port();
    let def = agent.definition(&name, &service(&name, port));
    let def = def.to_str().unwrap();
    let config = agent.config();
    let first = format!("pw-{}-first", unique("v"));
    let second = format!("pw-{}-second", unique("v"));
    let token = format!("tok-{}", unique("v"));
    let outputs = std::cell::RefCell::new(String::new());
    let run = |args: &[&str], stdin: Option<&[u8]>| {
        let run = agent.mcp_full(&config, args, &[], stdin);
        outputs.borrow_mut().push_str(&run.stdout);
        outputs.borrow_mut().push_str(&run.stderr);
        run
    };

    // A missing secret is bad input, named, before anything runs.
    let missing = run(&["deploy", def], None);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("secret DB_PASSWORD") && missing.stderr.contains("mcp secret set"),
        "{}",
        missing.stderr
    );
    assert!(containers_of(&name).is_empty());

    // Set before the first deploy: from stdin (its newline dropped) and from a file.
    run(
        &["secret", "set", &name, "DB_PASSWORD"],
        Some(format!("{first}\n").as_bytes()),
    )
    .ok();
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), &token).unwrap();
    let path = token_file.path().to_str().unwrap();
    run(
        &["secret", "set", &name, "api.token", "--from-file", path],
        None,
    )
    .ok();
    run(&["deploy", def], None).ok();
    let env = http_get(port, "/env").unwrap();
    assert!(env.contains(&format!("DB_PASSWORD={first}\n")), "{env}");
    assert!(env.contains(&format!("API_TOKEN={token}\n")), "{env}");

    let listed = run(&["secret", "list", &name, "--json"], None).ok();
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let rows: Vec<(String, u64, serde_json::Value)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["version"].as_u64().unwrap(),
                s["used_by"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("DB_PASSWORD".to_string(), 1, serde_json::json!(["web"])),
            ("api.token".to_string(), 1, serde_json::json!(["web"])),
        ]
    );

    // A secret in use cannot be removed; an unknown one is named.
    let in_use = run(&["secret", "rm", &name, "DB_PASSWORD"], None);
    assert_eq!(in_use.code, 2, "{}", in_use.stderr);
    assert!(
        in_use.stderr.contains("used by component(s) web"),
        "{}",
        in_use.stderr
    );
    let unknown = run(&["secret", "rm", &name, "NOPE"], None);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("no secret named NOPE"),
        "{}",
        unknown.stderr
    );

    // Rotation: the plan shows the change, the redeploy replaces the component, the old
    // version leaves podman's store.
    let before = containers_of(&name);
    run(
        &["secret", "set", &name, "DB_PASSWORD"],
        Some(second.as_bytes()),
    )
    .ok();
    let plan = run(&["plan", def, "--json"], None).ok();
    assert!(plan.stdout.contains("\"secrets\""), "{}", plan.stdout);
    let redeployed = run(&["deploy", def], None).ok();
    assert!(redeployed.stdout.contains("web"), "{}", redeployed.stdout);
    let env = http_get(port, "/env").unwrap();
    assert!(env.contains(&format!("DB_PASSWORD={second}\n")), "{env}");
    let after = containers_of(&name);
    assert_eq!(after.len(), 1);
    assert_ne!(before, after, "the component was re-created");
    let stored = podman_secrets();
    let prefix = format!("mcp.{name}.");
    let mut ours: Vec<&String> = stored.iter().filter(|s| s.starts_with(&prefix)).collect();
    ours.sort();
    assert_eq!(
        ours,
        [
            &format!("mcp.{name}.DB_PASSWORD.2"),
            &format!("mcp.{name}.api.token.1")
        ]
    );
    let inspect = inspect_without_env_if_old_podman(&after[0]);
    let status = run(&["status", "--json"], None).ok();
    let events = run(&["events", "--json"], None).ok();
    let history = run(&["history", &name, "--json"], None).ok();
    assert!(
        events.stdout.contains("secret DB_PASSWORD version 2"),
        "{}",
        events.stdout
    );
    drop((status, history));

    for value in [&first, &second, &token] {
        let needle = value.as_bytes();
        let files = files_containing(&agent.dev_dir(), needle);
        assert!(files.is_empty(), "{value} found in {files:?}");
        assert!(
            !agent.log().contains(value.as_str()),
            "{value} in the agent's log"
        );
        assert!(
            !outputs.borrow().contains(value.as_str()),
            "{value} in CLI output"
        );
        assert!(
            !inspect.contains(value.as_str()),
            "{value} in podman inspect"
        );
    }

    // Undeploy removes the service's podman secrets; the node keeps the secrets themselves.
    run(&["undeploy", &name], None).ok();
    assert!(!podman_secrets().iter().any(|s| s.starts_with(&prefix)));
    let listed = run(&["secret", "list", &name], None).ok();
    assert!(listed.stdout.contains("DB_PASSWORD"), "{}", listed.stdout);
    run(&["secret", "rm", &name, "DB_PASSWORD"], None).ok();
    run(&["secret", "rm", &name, "api.token"], None).ok();
}

#[test]
fn bad_secret_input_exits_2_naming_what() {
    let agent = Agent::start();
    let config = agent.config();
    type Case<'a> = (&'a [&'a str], Option<&'a [u8]>, &'a str);
    let cases: [Case; 4] = [
        (
            &["secret", "set", "svc", "a/b"],
            Some(b"v"),
            "secret name \"a/b\"",
        ),
        (&["secret", "set", "Bad_Svc", "A"], Some(b"v"), "service"),
        (
            &["secret", "set", "svc", "A"],
            Some(b"\n"),
            "value is empty",
        ),
        (&["secret", "list", "../x"], None, "service"),
    ];
    for (args, stdin, needle) in cases {
        let run = agent.mcp_full(&config, args, &[], stdin);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
    // Registry logins: the host and the user name are checked before podman sees them.
    for (args, needle) in [
        (
            ["registry", "login", "a/b", "-u", "x", "--password-stdin"],
            "host[:port]",
        ),
        (
            [
                "registry",
                "login",
                "r.example",
                "-u",
                "a:b",
                "--password-stdin",
            ],
            "username",
        ),
    ] {
        let run = agent.mcp_full(&config, &args, &[], Some(b"pw"));
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
    }
    let name = unique("secdef");
    let def = agent.definition(
        &name,
        &format!(
            "name = \"{name}\"\nnode = \"local\"\n[[components]]\nname = \"web\"\nimage = \"{}\"\n\
             env = [\"A=1\"]\nsecrets = [\"A\"]\n",
            image()
        ),
    );
    let clash = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(clash.code, 2, "{}", clash.stderr);
    assert!(clash.stderr.contains("secrets[0]"), "{}", clash.stderr);
}
