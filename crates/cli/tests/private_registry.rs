//! A private registry (docker-registry with htpasswd auth on loopback): the CLI's tag check
//! and push use the operator's container credentials (REGISTRY_AUTH_FILE here, written by
//! `podman login`), the node's pull uses what `mcp registry login` stored through the agent,
//! and every refusal names the registry and the fix, before anything runs.

#![allow(clippy::unwrap_used)]

mod support;

use support::oci::*;
use support::*;

#[test]
fn private_registry_needs_credentials_on_both_sides_and_says_which() {
    let password = format!("pw-{}", unique("reg"));
    let registry = Registry::start_with_auth("alice", &password);
    let agent = Agent::start_with(&["--insecure-registry", &registry.host()]);
    let name = unique("priv");
    let image = format!("{}/{name}:v1", registry.host());
    let ws = workspace(&name, &[("Containerfile", HELLO_CONTAINERFILE)]);
    let port = unique_public_port();
    let def = agent.definition(
        &name,
        &format!(
            "name = \"{name}\"\nnode = \"local\"\n[build.images]\n\"{name}\" = \"Containerfile\"\n\
             [[components]]\nname = \"web\"\nimage = \"{image}\"\n\
             [[components.routes]]\nport = {port}\n"
        ),
    );
    let def = def.to_str().unwrap();
    let config = agent.build_config(ws.path(), &registry);
    let auth_dir = tempfile::tempdir().unwrap();
    let auth_file = auth_dir.path().join("auth.json");
    let auth_env = [("REGISTRY_AUTH_FILE", auth_file.to_str().unwrap())];
    let mut outputs = String::new();

    // No credentials on the operator's machine: the tag check says so and names the fix.
    let run = agent.mcp_full(&config, &["deploy", def], &auth_env, None);
    outputs.push_str(&(run.stdout.clone() + &run.stderr));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("registry {}", registry.host()))
            && run.stderr.contains("podman login"),
        "{}",
        run.stderr
    );
    assert!(containers_of(&name).is_empty());

    // `podman login` (into REGISTRY_AUTH_FILE, never the machine's own file): the CLI checks,
    // builds and pushes; the node has no credentials yet, so its pull is refused clearly and
    // nothing is left half-deployed.
    let mut login = std::process::Command::new("podman")
        .args(build_store_args())
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            "alice",
            "--password-stdin",
        ])
        .arg(registry.host())
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .env("CONTAINERS_CONF", containers_conf())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    login
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    assert!(login.wait().unwrap().success());
    let run = agent.mcp_full(&config, &["deploy", def], &auth_env, None);
    outputs.push_str(&(run.stdout.clone() + &run.stderr));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("pushed {image}")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "registry {} refused to let this node pull {image}",
            registry.host()
        )) && run.stderr.contains("mcp registry login"),
        "{}",
        run.stderr
    );
    assert!(containers_of(&name).is_empty());

    // A wrong password is refused by the registry, through the agent; nothing is stored.
    let host = registry.host();
    let login_args = [
        "registry",
        "login",
        &host,
        "-u",
        "alice",
        "--password-stdin",
    ];
    let run = agent.mcp_full(&config, &login_args, &[], Some(b"not-the-password\n"));
    outputs.push_str(&(run.stdout.clone() + &run.stderr));
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("refused the login of alice"),
        "{}",
        run.stderr
    );
    let stored = agent.dev_dir().join("state/registry-auth.json");
    assert!(!stored.exists(), "a refused login stores nothing");

    // The right one is stored (0600) and the node pulls an image it does not have.
    let right = format!("{password}\n");
    let run = agent.mcp_full(&config, &login_args, &[], Some(right.as_bytes()));
    outputs.push_str(&(run.stdout.clone() + &run.stderr));
    assert_eq!(run.code, 0, "{}", run.stderr);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&stored).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!podman(&["image", "exists", &image]).status.success());
    let run = agent.mcp_full(&config, &["deploy", def], &auth_env, None);
    outputs.push_str(&(run.stdout.clone() + &run.stderr));
    assert_eq!(run.code, 0, "{}", run.stderr);
    served(&agent, port, "hello");

    let run = agent.mcp_full(
        &config,
        &["registry", "logout", &registry.host()],
        &[],
        None,
    );
    outputs.push_str(&(run.stdout.clone() + &run.stderr));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("logged out"), "{}", run.stdout);

    assert!(!outputs.contains(&password), "the password in CLI output");
    assert!(
        !agent.log().contains(&password),
        "the password in the agent's log"
    );
    agent.mcp(&["undeploy", &name]).ok();
}
