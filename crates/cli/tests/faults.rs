//! Faults outside mcp's control get a clear error, the documented exit code, and leave
//! nothing half-applied: podman missing or failing, the registry's disk full, its database
//! locked by another process; and a burst of concurrent deploys and undeploys.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::TcpListener;
use std::process::Command;
use support::*;

fn registry_has(agent: &Agent, service: &str) -> bool {
    registry::Registry::open(&agent.registry_path())
        .unwrap()
        .service(service)
        .unwrap()
        .is_some()
}

fn integrity_ok(agent: &Agent) {
    let conn = rusqlite::Connection::open(agent.registry_path()).unwrap();
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(verdict, "ok", "the registry is not corrupted");
}

#[test]
fn a_missing_podman_is_named_in_the_error() {
    let agent = Agent::start_settings("[podman]\nbinary = \"/nonexistent/podman\"\n");
    let name = unique("nopodman");
    let def = agent.definition(&name, &web_service(&name, free_port(), "x"));
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot run /nonexistent/podman"),
        "{}",
        run.stderr
    );
    assert!(!registry_has(&agent, &name));
    let run = agent.mcp(&["status"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("/nonexistent/podman"), "{}", run.stderr);
}

#[test]
fn a_failing_podman_command_shows_podmans_reason_and_leaves_nothing() {
    let agent = Agent::start();
    let name = unique("portclash");
    // A legacy mapping onto a port a foreign process holds: `podman run` itself fails.
    let foreign = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = foreign.local_addr().unwrap().port();
    let def = agent.definition(&name, &web_service(&name, port, "x"));
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("address already in use"),
        "{}",
        run.stderr
    );
    assert!(containers_of(&name).is_empty(), "no orphan container");
    assert!(!registry_has(&agent, &name), "no row");
    integrity_ok(&agent);
}

/// A tiny tmpfs mounted over the agent's state dir; unmounted on drop.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    fn mount(dir: &std::path::Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_path_buf())
    }

    /// Fills the filesystem to the last byte.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let mut byte = [0u8; 1];
        while f.write_all(&byte).is_ok() {
            byte[0] = 1;
        }
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_registry_disk_fails_cleanly_and_corrupts_nothing() {
    let mut agent = Agent::start();
    agent.kill_with(nix::sys::signal::Signal::SIGTERM);
    let state = agent.dir.path().join("agent/state");
    std::fs::remove_dir_all(&state).unwrap();
    let disk = TinyDisk::mount(&state);
    agent.spawn();
    let keep = unique("keep");
    let def = agent.definition(&keep, &web_service(&keep, free_port(), "before"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();

    disk.fill();
    // SQLite may reuse WAL space for a while; some deploy soon needs a new page.
    let mut failed = None;
    for _ in 0..20 {
        let name = unique("full");
        let def = agent.definition(&name, &web_service(&name, free_port(), "x"));
        let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
        if run.code != 0 {
            failed = Some((name, run));
            break;
        }
    }
    let (name, run) = failed.expect("a deploy fails once the disk is full");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("disk holding the agent's registry database is full"),
        "{}",
        run.stderr
    );
    assert!(
        containers_of(&name).is_empty(),
        "the failed deploy left no container"
    );

    disk.free();
    assert!(!registry_has(&agent, &name), "nor a row");
    integrity_ok(&agent);
    assert_eq!(agent.component(&keep, "web")["state"], "running");
    let def = agent.definition(&name, &web_service(&name, free_port(), "after"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    agent.kill_with(nix::sys::signal::Signal::SIGTERM);
}

#[test]
fn a_registry_locked_by_another_process_fails_cleanly() {
    let agent = Agent::start();
    let name = unique("locked");
    let def = agent.definition(&name, &web_service(&name, free_port(), "x"));
    let locker = rusqlite::Connection::open(agent.registry_path()).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("locked by another process"),
        "{}",
        run.stderr
    );
    assert!(containers_of(&name).is_empty());
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);
    assert!(!registry_has(&agent, &name));
    integrity_ok(&agent);
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
}

#[test]
fn twenty_concurrent_deploys_and_undeploys_leave_registry_and_runtime_agreeing() {
    let agent = Agent::start();
    let old: Vec<String> = (0..10).map(|_| unique("churn-old")).collect();
    for name in &old {
        let def = agent.definition(name, &routed_service(name, &[None]));
        agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    }
    let new: Vec<String> = (0..10).map(|_| unique("churn-new")).collect();
    let mut children = Vec::new();
    for name in &new {
        let def = agent.definition(name, &routed_service(name, &[None]));
        children.push(agent.spawn_mcp(&["deploy", def.to_str().unwrap()]));
    }
    for name in &old {
        children.push(agent.spawn_mcp(&["undeploy", name]));
    }
    expect_all_succeed(children);
    let registry = registry::Registry::open(&agent.registry_path()).unwrap();
    for name in &old {
        assert!(registry.service(name).unwrap().is_none());
        assert!(containers_of(name).is_empty());
    }
    let mut ports = std::collections::BTreeSet::new();
    for name in &new {
        let record = registry.service(name).unwrap().expect("deployed");
        assert_eq!(containers_of(name).len(), 1);
        let port = record.routes[0].host_port.unwrap();
        assert!(ports.insert(port), "ports are distinct");
        assert!(http_get(port, "/").is_some());
    }
    assert_eq!(
        registry.held_host_ports(None).unwrap(),
        ports,
        "the registry holds exactly these"
    );
    assert!(registry.pending_operations().unwrap().is_empty());
}
