//! A fleet as on real servers: one CA made with `mcp tls`, three agents started from
//! agent.toml files (`-c`), each with its own podman store that pulls from a registry, and
//! operators whose certificates carry roles. Deploys land on each node, `ps` and `node list`
//! span them, a stopped agent is marked unreachable, services move between nodes (and stay
//! put when the move fails), roles, revocation and expiry are enforced by the agents.

#![allow(clippy::unwrap_used)]

mod support;

use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

fn tls(pki: &Path, args: &[&str]) -> Run {
    let out = Command::new(mcp_bin())
        .current_dir(pki)
        .arg("tls")
        .args(args)
        .output()
        .unwrap();
    Run::from(out)
}

/// A CLI config naming every node, as operator `who` (pki/<who>.pem).
fn cli_config(dir: &Path, pki: &Path, who: &str, agents: &[&Agent]) -> PathBuf {
    let mut text = format!(
        "node_timeout_ms = 1000\n[tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        pki.join("ca.pem").display(),
        pki.join(format!("{who}.pem")).display(),
        pki.join(format!("{who}.key")).display(),
    );
    for (name, agent) in NODES.iter().zip(agents) {
        text.push_str(&format!(
            "[[nodes]]\nname = \"{name}\"\naddress = \"https://{}\"\n",
            agent.address
        ));
    }
    let path = dir.join(format!("mcp-{who}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn service(name: &str, node: &str, image: &str, greeting: &str, port: u16) -> String {
    format!(
        "name = \"{name}\"\nnode = \"{node}\"\n\n[[components]]\nname = \"web\"\nimage = \"{image}\"\n\
         env = [\"GREETING={greeting}\"]\n[[components.routes]]\nport = {port}\n"
    )
}

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// The services a node reports, by name.
fn services_on(agent: &Agent, config: &Path, node: &str) -> Vec<String> {
    let run = agent
        .mcp_with(config, &["status", "-n", node, "--json"])
        .ok();
    json(&run)["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn three_nodes_one_ca_roles_moves_and_an_unreachable_node() {
    ensure_image();
    let registry = oci::Registry::start();
    let image = format!("{}/mcp-fleet-hello:1", registry.host());
    let pushed = podman(&["push", "--tls-verify=false", &support::image(), &image]);
    assert!(
        pushed.status.success(),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );

    // The production certificate workflow.
    let work = tempfile::tempdir().unwrap();
    let pki = work.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    tls(&pki, &["ca", "create"]).ok();
    for node in NODES {
        tls(
            &pki,
            &["cert", "create", "--node", node, "--san", "127.0.0.1"],
        )
        .ok();
    }
    for (who, role) in [
        ("ann", "admin"),
        ("dev", "deployer"),
        ("vic", "viewer"),
        ("lost", "admin"),
    ] {
        let run = tls(&pki, &["cert", "create", "--operator", who, "--role", role]).ok();
        assert!(
            run.stdout.contains(&format!("role {role}")),
            "{}",
            run.stdout
        );
    }
    let shown = tls(&pki, &["cert", "show", "lost.pem", "--json"]).ok();
    let lost_serial = json(&shown)["serial"].as_str().unwrap().to_string();
    assert_eq!(json(&shown)["role"], "admin");
    // `--role` is required for an operator: no certificate gets a role by accident.
    assert_eq!(tls(&pki, &["cert", "create", "--operator", "x"]).code, 2);

    let insecure = format!("insecure_registries = [\"{}\"]", registry.host());
    // n1 refuses the lost certificate; the others have not been told.
    let revoked = format!("revoked_serials = [\"{lost_serial}\"]");
    let n1 = Agent::start_node("n1", &pki, &revoked, &insecure);
    let n2 = Agent::start_node("n2", &pki, "", &insecure);
    let n3 = Agent::start_node("n3", &pki, "", &insecure);
    let agents = [&n1, &n2, &n3];
    let admin = cli_config(work.path(), &pki, "ann", &agents);
    let deployer = cli_config(work.path(), &pki, "dev", &agents);
    let viewer = cli_config(work.path(), &pki, "vic", &agents);
    let lost = cli_config(work.path(), &pki, "lost", &agents);

    // One service per node, each pulled by that node from the registry.
    let mut names = Vec::new();
    for (node, agent) in NODES.iter().zip(agents) {
        let name = unique(&format!("fleet-{node}"));
        let port = unique_public_port();
        let def = agent.definition(&name, &service(&name, node, &image, node, port));
        n1.mcp_with(&admin, &["deploy", "--no-build", def.to_str().unwrap()])
            .ok();
        served(agent, port, node);
        names.push((name, def, port));
    }
    let ps = json(&n1.mcp_with(&admin, &["ps", "--json"]).ok());
    for ((name, _, _), node) in names.iter().zip(NODES) {
        let on = ps["instances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["service"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} not in ps: {ps}"));
        assert_eq!(on["node"], node, "{ps}");
    }
    let list = json(&n1.mcp_with(&admin, &["node", "list", "--json"]).ok());
    let rows = list["nodes"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{list}");
    for (row, node) in rows.iter().zip(NODES) {
        assert_eq!(row["node"], node);
        assert_eq!(row["reachable"], true, "{list}");
        assert_eq!(row["agent_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(row["components_running"], 1, "{list}");
        let days = row["certificate_days_left"].as_i64().unwrap();
        assert!((728..=730).contains(&days), "{list}");
    }

    // Roles: a viewer reads but cannot deploy; a deployer deploys but cannot undeploy.
    let (a_name, a_def, a_port) = names[0].clone();
    let move_to_n2 = [
        "deploy",
        "--no-build",
        "--move",
        "-n",
        "n2",
        a_def.to_str().unwrap(),
    ];
    n1.mcp_with(&viewer, &["status", "--json"]).ok();
    n1.mcp_with(&viewer, &["logs", &a_name, "--tail", "5"]).ok();
    let denied = n1.mcp_with(&viewer, &["deploy", "--no-build", a_def.to_str().unwrap()]);
    assert_eq!(denied.code, 4, "{}", denied.stderr);
    assert!(
        denied.stderr.contains("role viewer") && denied.stderr.contains("Deploy"),
        "{}",
        denied.stderr
    );
    n1.mcp_with(&deployer, &["restart", &a_name]).ok();
    let denied = n1.mcp_with(&deployer, &["undeploy", &a_name, "--yes"]);
    assert_eq!(denied.code, 4, "{}", denied.stderr);
    assert!(denied.stderr.contains("role deployer"), "{}", denied.stderr);
    assert!(
        services_on(&n1, &admin, "n1").contains(&a_name),
        "nothing was undeployed"
    );

    // Revocation is per node: n1 refuses the lost certificate, n2 still serves it.
    let refused = n1.mcp_with(&lost, &["status", "-n", "n1"]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(refused.stderr.contains("revoked"), "{}", refused.stderr);
    n1.mcp_with(&lost, &["status", "-n", "n2"]).ok();

    // Moving: refused without --move, then there and back again.
    let twice = n1.mcp_with(
        &admin,
        &["deploy", "--no-build", "-n", "n2", a_def.to_str().unwrap()],
    );
    assert_eq!(twice.code, 2, "{}", twice.stderr);
    assert!(
        twice.stderr.contains("deployed on node n1") && twice.stderr.contains("--move"),
        "{}",
        twice.stderr
    );
    // --move ends with an undeploy, which a deployer may not do: refused before anything.
    let not_admin = n1.mcp_with(&deployer, &move_to_n2);
    assert_eq!(not_admin.code, 4, "{}", not_admin.stderr);
    assert!(
        !services_on(&n1, &admin, "n2").contains(&a_name),
        "nothing deployed"
    );
    let moved = n1.mcp_with(&admin, &move_to_n2).ok();
    assert!(moved.stdout.contains("moved"), "{}", moved.stdout);
    assert!(!services_on(&n1, &admin, "n1").contains(&a_name));
    assert!(services_on(&n1, &admin, "n2").contains(&a_name));
    served(&n2, a_port, "n1");
    n1.mcp_with(
        &admin,
        &["deploy", "--no-build", "--move", a_def.to_str().unwrap()],
    )
    .ok();
    assert!(services_on(&n1, &admin, "n1").contains(&a_name));
    assert!(!services_on(&n1, &admin, "n2").contains(&a_name));
    served(&n1, a_port, "n1");
    // A move whose deploy fails leaves the service where it was, still serving.
    let broken = n1.definition(
        &a_name,
        &service(
            &a_name,
            "n1",
            &format!("{}/no-such-image:1", registry.host()),
            "x",
            a_port,
        ),
    );
    let failed = n1.mcp_with(
        &admin,
        &[
            "deploy",
            "--no-build",
            "--move",
            "-n",
            "n3",
            broken.to_str().unwrap(),
        ],
    );
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    assert!(services_on(&n1, &admin, "n1").contains(&a_name));
    assert!(!services_on(&n1, &admin, "n3").contains(&a_name));
    served(&n1, a_port, "n1");

    // A stopped agent: the others answer, it is marked unreachable.
    let n3_pid = nix::unistd::Pid::from_raw(n3.pid());
    nix::sys::signal::kill(n3_pid, Signal::SIGSTOP).unwrap();
    let ps = n1.mcp_with(&admin, &["ps", "--json"]);
    assert_eq!(ps.code, 0, "{}", ps.stderr);
    let ps = json(&ps);
    assert_eq!(ps["errors"][0]["node"], "n3", "{ps}");
    let listed: Vec<&str> = ps["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["node"].as_str())
        .collect();
    assert!(listed.contains(&"n1") && listed.contains(&"n2"), "{ps}");
    let list = n1.mcp_with(&admin, &["node", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("n3") && l.contains("unreachable")),
        "{}",
        list.stdout
    );
    assert_eq!(n1.mcp_with(&admin, &["node", "list", "--strict"]).code, 3);
    // A move cannot vouch for a node it cannot ask: refused, nothing deployed.
    let blind = n1.mcp_with(&admin, &move_to_n2);
    assert_eq!(blind.code, 3, "{}", blind.stderr);
    assert!(
        blind.stderr.contains("--move needs every node"),
        "{}",
        blind.stderr
    );
    nix::sys::signal::kill(n3_pid, Signal::SIGCONT).unwrap();
    assert!(!services_on(&n1, &admin, "n2").contains(&a_name));

    for ((name, _, _), node) in names.iter().zip(NODES) {
        n1.mcp_with(&admin, &["undeploy", name, "-n", node, "--yes"])
            .ok();
    }
}

#[test]
fn an_expired_operator_certificate_is_refused_by_the_cli_and_by_the_agent() {
    let work = tempfile::tempdir().unwrap();
    let pki = work.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    tls(&pki, &["ca", "create"]).ok();
    tls(
        &pki,
        // The agent's own certificate ends in 20 days: every command warns about it.
        &[
            "cert",
            "create",
            "--node",
            "n1",
            "--san",
            "127.0.0.1",
            "--days",
            "20",
        ],
    )
    .ok();
    tls(
        &pki,
        &["cert", "create", "--operator", "ann", "--role", "admin"],
    )
    .ok();
    let ca = pki::load(&pki.join("ca.pem"), &pki.join("ca.key")).unwrap();
    let now = time::OffsetDateTime::now_utc();
    let expired = pki::issue_valid(
        &ca,
        "old",
        &pki::Role::Operator {
            role: pki::OperatorRole::Admin,
        },
        pki::Validity {
            not_before: now - time::Duration::days(10),
            not_after: now - time::Duration::days(1),
        },
    )
    .unwrap();
    pki::save(&expired, &pki.join("old.pem"), &pki.join("old.key")).unwrap();
    let n1 = Agent::start_node("n1", &pki, "", "");
    let config = |who: &str| {
        let text = format!(
            "[tls]\nca = \"{0}/ca.pem\"\ncert = \"{0}/{who}.pem\"\nkey = \"{0}/{who}.key\"\n\
             [[nodes]]\nname = \"n1\"\naddress = \"https://{1}\"\n",
            pki.display(),
            n1.address
        );
        let path = work.path().join(format!("{who}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let warned = n1.mcp_with(&config("ann"), &["status"]).ok();
    assert!(
        warned
            .stderr
            .contains("warning: the TLS certificate of the agent of node n1 expires"),
        "{}",
        warned.stderr
    );
    assert!(
        !warned.stderr.contains("operator certificate"),
        "{}",
        warned.stderr
    );
    let refused = n1.mcp_with(&config("old"), &["node", "status"]);
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("expired") && refused.stderr.contains("mcp tls cert renew"),
        "{}",
        refused.stderr
    );

    // The agent itself refuses it in the TLS handshake, whatever the client checks.
    let handshake = |who: &str| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--http2", "--max-time", "10"])
            .arg("--cacert")
            .arg(pki.join("ca.pem"))
            .arg("--cert")
            .arg(pki.join(format!("{who}.pem")))
            .arg("--key")
            .arg(pki.join(format!("{who}.key")))
            .args(["-X", "POST", "-H", "content-type: application/grpc"])
            .arg(format!("https://{}/mcp.v1.Agent/NodeStatus", n1.address))
            .status()
            .unwrap()
    };
    assert!(
        handshake("ann").success(),
        "a valid certificate gets an answer"
    );
    assert!(
        !handshake("old").success(),
        "an expired certificate gets nothing"
    );

    // The CA itself is never "renewed" into a leaf.
    let ca_renew = tls(&pki, &["cert", "renew", "ca.pem"]);
    assert_eq!(ca_renew.code, 2, "{}", ca_renew.stderr);
    assert!(
        pki::inspect_pem(&std::fs::read_to_string(pki.join("ca.pem")).unwrap())
            .unwrap()
            .ca
    );

    // Renewing it makes it usable again, with its name and role.
    tls(&pki, &["cert", "renew", "old.pem", "--days", "20"]).ok();
    let renewed = n1.mcp_with(&config("old"), &["node", "status"]).ok();
    assert!(
        renewed.stderr.contains("warning: the operator certificate"),
        "20 days left is warned about: {}",
        renewed.stderr
    );
    let shown = json(&tls(&pki, &["cert", "show", "old.pem", "--json"]).ok());
    assert_eq!(shown["role"], "admin");
    assert_eq!(shown["name"], "old");
}
