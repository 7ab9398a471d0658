//! The agent serves nothing to a client whose certificate another CA signed.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

#[test]
fn client_certificate_from_another_ca_is_refused() {
    let agent = Agent::start();
    agent.mcp(&["status"]).ok();

    let other = tempfile::tempdir().unwrap();
    let dir = other.path();
    let run = Run::from(
        std::process::Command::new(mcp_bin())
            .args(["tls", "ca", "create", "--out"])
            .arg(dir)
            .output()
            .unwrap(),
    )
    .ok();
    assert!(run.stdout.contains("ca.key"));
    let run = Run::from(
        std::process::Command::new(mcp_bin())
            .current_dir(dir)
            .args([
                "tls",
                "cert",
                "create",
                "--operator",
                "mallory",
                "--role",
                "admin",
            ])
            .output()
            .unwrap(),
    )
    .ok();
    assert!(run.stdout.contains("mallory.pem"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("mallory.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Trusts the agent (its real CA) but presents mallory's certificate.
    let config = dir.join("mcp.toml");
    let agent_ca = agent.dir.path().join("agent/tls/ca.pem");
    std::fs::write(
        &config,
        format!(
            "[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n[[nodes]]\nname = \"local\"\naddress = \"https://{}\"\n",
            agent_ca.display(),
            dir.join("mallory.pem").display(),
            dir.join("mallory.key").display(),
            agent.address
        ),
    )
    .unwrap();
    let out = std::process::Command::new(mcp_bin())
        .args(["--config", config.to_str().unwrap(), "status", "--json"])
        .output()
        .unwrap();
    let run = Run::from(out);
    assert_ne!(
        run.code, 0,
        "a foreign client must get nothing: {}",
        run.stdout
    );
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["services"], serde_json::json!([]), "no data leaked");
    assert_eq!(json["errors"][0]["node"], "local");
}
