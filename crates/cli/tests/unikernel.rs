//! Unikernel components: a VM per component under QEMU, built by (the stand-in) `ops`, side by
//! side with containers, through the real agent and CLI.

#![allow(clippy::unwrap_used)]

mod support;

use nix::sys::signal::Signal;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// A container component and a unikernel component, each with one route.
fn mixed(name: &str) -> String {
    format!(
        "name = \"{name}\"\nnode = \"local\"\n\n\
         [[components]]\nname = \"web\"\nimage = \"{img}\"\nenv = [\"GREETING=from-container\"]\n\
         [[components.routes]]\nport = {web_port}\n\n\
         [[components]]\nname = \"vm\"\nimage = \"{img}\"\nruntime = \"unikernel\"\nmemory_mb = 256\n\
         env = [\"GREETING=from-unikernel\", \"HELLO_NAME=vm\"]\n\
         [[components.routes]]\nport = {vm_port}\n",
        img = image(),
        web_port = unique_public_port(),
        vm_port = unique_public_port(),
    )
}

fn vm_state(agent: &Agent, instance: &str) -> std::path::PathBuf {
    agent.dir.path().join("agent/state/vm").join(instance)
}

#[test]
fn a_vm_and_a_container_serve_side_by_side_through_their_whole_life() {
    let agent = Agent::start_unikernel(&[], "");
    let name = unique("mixed");
    // The VM also gets a secret, through its image config (a VM has no secret store).
    let body = mixed(&name).replace(
        "\"HELLO_NAME=vm\"]\n",
        "\"HELLO_NAME=vm\"]\nsecrets = [\"VM_TOKEN\"]\n",
    );
    let def = agent.definition(&name, &body);
    let token = format!("vm-token-{}", unique("v"));
    agent
        .mcp_full(
            &agent.config(),
            &["secret", "set", &name, "VM_TOKEN"],
            &[],
            Some(token.as_bytes()),
        )
        .ok();
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert!(run.stdout.contains("created: web, vm"), "{}", run.stdout);

    let web = agent.component(&name, "web");
    let vm = agent.component(&name, "vm");
    assert_eq!(web["runtime"], "container");
    assert_eq!(vm["runtime"], "unikernel");
    assert_eq!(
        vm["accelerator"], "tcg",
        "KVM does not boot guests here: {vm}"
    );
    assert_eq!(vm["state"], "running");
    assert!(vm["uptime_secs"].as_i64().unwrap() >= 0);
    let vm_port = route_ports(&vm)[""];
    let web_port = route_ports(&web)[""];
    let answer = http_get(vm_port, "/").expect("the VM answers through hostfwd");
    assert!(
        answer.contains("from-unikernel") && answer.contains("hello from vm"),
        "{answer}"
    );
    assert!(http_get(web_port, "/").unwrap().contains("from-container"));
    let env = http_get(vm_port, "/env").unwrap();
    assert!(
        env.contains(&format!("PORT={vm_port}\n")),
        "route variable baked in: {env}"
    );
    assert!(env.contains(&format!("VM_TOKEN={token}\n")), "{env}");
    let table = agent.mcp(&["status", &name]).ok().stdout;
    assert!(table.contains("unikernel (tcg)"), "{table}");

    let stamped = agent.mcp(&["logs", &format!("{name}/vm"), "--timestamps"]);
    assert_eq!(stamped.code, 2, "{}", stamped.stderr);
    assert!(
        stamped.stderr.contains("component vm is a unikernel"),
        "{}",
        stamped.stderr
    );
    let logs = agent.mcp(&["logs", &format!("{name}/vm")]).ok().stdout;
    assert!(
        logs.contains("mcp-standin: starting /program"),
        "serial console: {logs}"
    );
    assert!(
        logs.contains(&format!("hello: listening on port {vm_port}")),
        "{logs}"
    );

    let instance = format!("{name}-vm");
    let state = vm_state(&agent, &instance);
    assert!(state.join("console.log").is_file() && state.join("qemu.pid").is_file());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700, "the VM dir is private");
        assert_eq!(
            mode(&state.join("config.json")),
            0o600,
            "its env is private"
        );
        let image = agent
            .dir
            .path()
            .join(format!("agent/state/images/{instance}.img"));
        assert_eq!(mode(&image), 0o600, "its image holds the secret: private");
    }
    assert_eq!(qemu_processes(&instance).len(), 1);

    agent.mcp(&["stop", &name]).ok();
    assert_eq!(agent.component(&name, "vm")["state"], "exited");
    assert!(qemu_processes(&instance).is_empty(), "stop ends QEMU");
    agent.mcp(&["start", &name]).ok();
    assert!(http_get(route_ports(&agent.component(&name, "vm"))[""], "/").is_some());
    agent.mcp(&["restart", &name]).ok();
    let vm = agent.component(&name, "vm");
    assert_eq!(vm["state"], "running");
    assert!(http_get(route_ports(&vm)[""], "/").is_some());

    agent.mcp(&["undeploy", &name]).ok();
    assert!(qemu_processes(&instance).is_empty(), "no QEMU left");
    assert!(!state.exists(), "no state dir, socket or pidfile left");
    let image = agent
        .dir
        .path()
        .join(format!("agent/state/images/{instance}.img"));
    assert!(!image.exists(), "no disk image left");
    assert!(containers_of(&name).is_empty());
}

#[test]
fn a_vm_survives_an_agent_killed_with_sigkill() {
    let mut agent = Agent::start_unikernel(&[], "");
    let name = unique("vmsurvive");
    let def = agent.definition(&name, &mixed(&name));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let instance = format!("{name}-vm");
    let pid_before = qemu_processes(&instance);
    let before = agent.component(&name, "vm");
    assert_eq!(pid_before.len(), 1);

    agent.kill_with(Signal::SIGKILL);
    agent.spawn();
    assert_eq!(
        qemu_processes(&instance),
        pid_before,
        "the same QEMU process"
    );
    let after = agent.component(&name, "vm");
    assert_eq!(after["state"], "running");
    assert_eq!(after["started_at"], before["started_at"]);
    assert!(http_get(route_ports(&after)[""], "/").is_some());
    agent.mcp(&["undeploy", &name]).ok();
}

#[test]
fn sigkill_while_a_vm_is_being_deployed_leaves_no_vm_behind() {
    let mut agent = Agent::start_unikernel(&[], "");
    agent.kill_with(Signal::SIGTERM);
    agent
        .env
        .push(("MCP_AGENT_FAILPOINT".into(), "deploy:applied".into()));
    agent.spawn();
    let name = unique("vmcrash");
    let def = agent.definition(&name, &mixed(&name));
    assert_ne!(agent.mcp(&["deploy", def.to_str().unwrap()]).code, 0);
    agent.wait_dead();
    assert_eq!(
        qemu_processes(&format!("{name}-vm")).len(),
        1,
        "the VM ran when the agent died"
    );

    agent.env.retain(|(k, _)| k != "MCP_AGENT_FAILPOINT");
    agent.spawn();
    assert_nothing_left(&agent, &name);
}

fn assert_nothing_left(agent: &Agent, name: &str) {
    let instance = format!("{name}-vm");
    assert!(qemu_processes(&instance).is_empty(), "no QEMU left");
    assert!(!vm_state(agent, &instance).exists(), "no VM state left");
    assert!(containers_of(name).is_empty(), "no container left");
    let registry = registry::Registry::open(&agent.registry_path()).unwrap();
    assert!(
        registry.service(name).unwrap().is_none(),
        "no registry row left"
    );
}

#[test]
fn a_program_that_is_not_an_elf_is_refused_and_nothing_runs() {
    let agent = Agent::start_unikernel(&[], "");
    // An image whose entrypoint is a shell script, not an x86-64 ELF.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("app.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::write(
        ctx.path().join("Containerfile"),
        "FROM scratch\nCOPY app.sh /app.sh\nENTRYPOINT [\"/app.sh\"]\n",
    )
    .unwrap();
    let script_image = "localhost/mcp-test-notelf:1";
    let out = podman(&["build", "-t", script_image, ctx.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let name = unique("noelf");
    let body = mixed(&name).replacen(
        &format!("image = \"{}\"\nruntime", image()),
        &format!("image = \"{script_image}\"\nruntime"),
        1,
    );
    let def = agent.definition(&name, &body);
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("/app.sh") && run.stderr.contains("not an ELF"),
        "{}",
        run.stderr
    );
    assert_nothing_left(&agent, &name);

    // A program path the image does not have is as clear.
    let body = mixed(&name).replace(
        "runtime = \"unikernel\"",
        "runtime = \"unikernel\"\nbinary = \"/usr/local/bin/absent\"",
    );
    std::fs::write(&def, body).unwrap();
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("/usr/local/bin/absent"),
        "{}",
        run.stderr
    );
    assert_nothing_left(&agent, &name);
}

#[test]
fn a_guest_that_never_answers_fails_the_deploy_with_its_console() {
    let agent = Agent::start_unikernel(&[], "boot_timeout_ms = 15000");
    let name = unique("silent");
    // The program listens on 9 instead of $PORT: the route never answers.
    let body = mixed(&name).replace("memory_mb = 256\n", "memory_mb = 256\ncmd = [\"9\"]\n");
    let def = agent.definition(&name, &body);
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("did not answer"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hello: listening on port 9"),
        "console tail: {}",
        run.stderr
    );
    assert_nothing_left(&agent, &name);
}

#[test]
fn ops_failing_shows_its_error_and_leaves_nothing() {
    let mut agent = Agent::start_unikernel(&[], "");
    // The stand-in refuses to build without its prepared kernel directory.
    agent.kill_with(Signal::SIGTERM);
    agent.env = vec![("MCP_OPS_STANDIN_DIR".into(), "/nonexistent-standin".into())];
    agent.spawn();
    let name = unique("opsfail");
    let def = agent.definition(&name, &mixed(&name));
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("ops build"), "{}", run.stderr);
    assert!(
        run.stderr.contains("nonexistent-standin"),
        "ops' own error is shown: {}",
        run.stderr
    );
    assert_nothing_left(&agent, &name);
}

#[test]
fn a_node_without_unikernel_support_refuses_before_starting_anything() {
    let agent = Agent::start_unikernel(&[], "enabled = false");
    let name = unique("nouk");
    let def = agent.definition(&name, &mixed(&name));
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("needs the unikernel runtime"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("disabled"), "{}", run.stderr);
    assert_nothing_left(&agent, &name);
}

#[test]
fn memory_is_required_for_a_unikernel() {
    let agent = Agent::start_unikernel(&[], "");
    let name = unique("nomem");
    let def = agent.definition(&name, &mixed(&name).replace("memory_mb = 256\n", ""));
    let run = agent.mcp(&["deploy", def.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("memory_mb"), "{}", run.stderr);
    assert!(Path::new(&def).exists());
}

#[test]
fn a_vm_behind_the_proxy_is_replaced_without_a_failed_request() {
    let agent = Agent::start_unikernel(&[], "");
    let name = unique("vmzdt");
    let port = unique_public_port();
    let vm = |greeting: &str| {
        format!(
            "name = \"{name}\"\nnode = \"local\"\n[[components]]\nname = \"api\"\nimage = \"{}\"\n\
             runtime = \"unikernel\"\nmemory_mb = 256\nenv = [\"GREETING={greeting}\"]\n\
             [[components.routes]]\nport = {port}\n",
            image()
        )
    };
    let def = agent.definition(&name, &vm("vm-v1"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    served(&agent, port, "vm-v1");
    let first = agent.component(&name, "api")["instance"].clone();
    let load = Load::start(&agent.proxy_ip, port);
    std::fs::write(&def, vm("vm-v2")).unwrap();
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let switched = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let outcomes = load.finish();
    let after = bodies_between(&outcomes, switched, Instant::now());
    assert!(
        !after.is_empty() && after.iter().all(|b| b.contains("vm-v2")),
        "{after:?}"
    );
    let second = agent.component(&name, "api")["instance"].clone();
    assert_ne!(first, second, "the new VM took the other slot");
    assert!(
        !vm_state(&agent, first.as_str().unwrap()).exists(),
        "the old VM is gone"
    );
}

#[test]
fn a_vm_image_is_built_once_per_program_and_config() {
    let mut agent = Agent::start_unikernel(&[], "");
    // The runtime's debug lines say when `ops build` runs.
    agent.kill_with(Signal::SIGTERM);
    agent
        .env
        .push(("RUST_LOG".into(), "info,runtime=debug".into()));
    agent.spawn();
    let name = unique("vmcache");
    let vm = |greeting: &str| {
        format!(
            "name = \"{name}\"\nnode = \"local\"\n[[components]]\nname = \"job\"\nimage = \"{}\"\n\
             runtime = \"unikernel\"\nmemory_mb = 256\nenv = [\"GREETING={greeting}\"]\n",
            image()
        )
    };
    let builds = |agent: &Agent| {
        agent.log().matches("phase=\"ops-build\"").count()
            + agent.log().matches("phase=ops-build").count()
    };
    let def = agent.definition(&name, &vm("one"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert_eq!(builds(&agent), 1, "{}", agent.log());
    // The same program and config again (after an undeploy): the cached image is used.
    agent.mcp(&["undeploy", &name]).ok();
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert_eq!(builds(&agent), 1, "{}", agent.log());
    assert!(agent.log().contains("reused the built image"));
    assert_eq!(agent.component(&name, "job")["state"], "running");
    // Another config is another image.
    let def = agent.definition(&name, &vm("two"));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    assert_eq!(builds(&agent), 2, "{}", agent.log());
    agent.mcp(&["undeploy", &name]).ok();
}

/// Session and process group of `pid`.
fn session_and_group(pid: i32) -> (i32, i32) {
    let pid = nix::unistd::Pid::from_raw(pid);
    (
        nix::unistd::getsid(Some(pid)).unwrap().as_raw(),
        nix::unistd::getpgid(Some(pid)).unwrap().as_raw(),
    )
}

/// What systemd's `KillMode=process` relies on (packaging/debian/mcp-agent.service): the
/// processes that carry the workloads and the traffic — the container's conmon, the VM's
/// QEMU, the node proxy — are in sessions and process groups of their own, so signals to the
/// agent's whole process group (SIGTERM, then SIGKILL) leave them serving.
#[test]
fn workloads_and_the_proxy_outlive_signals_to_the_agents_process_group() {
    let mut agent = Agent::start_unikernel(&[], "");
    let name = unique("group");
    let body = mixed(&name);
    let def = agent.definition(&name, &body);
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    // The public ports, as the proxy serves them.
    let ports: Vec<u16> = ["web", "vm"]
        .iter()
        .map(|c| {
            let port = agent.component(&name, c)["routes"][0]["port"]
                .as_u64()
                .unwrap();
            u16::try_from(port).unwrap()
        })
        .collect();
    served(&agent, ports[0], "from-container");
    served(&agent, ports[1], "from-unikernel");

    let web_id = agent.component(&name, "web")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let conmon = podman(&["inspect", "--format", "{{.State.ConmonPid}}", &web_id]);
    let conmon: i32 = String::from_utf8_lossy(&conmon.stdout)
        .trim()
        .parse()
        .unwrap();
    let dir = agent.dir.path().to_string_lossy().to_string();
    let qemu = qemu_processes(&dir);
    let proxy = proxy_processes(&dir);
    assert_eq!((qemu.len(), proxy.len()), (1, 1), "{qemu:?} {proxy:?}");
    let carriers = [
        ("conmon", conmon),
        ("qemu", qemu[0]),
        ("mcp-proxy", proxy[0]),
    ];

    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        let (agent_session, agent_group) = session_and_group(agent.pid());
        for (what, pid) in carriers {
            let (session, group) = session_and_group(pid);
            assert_ne!(session, agent_session, "{what} shares the agent's session");
            assert_ne!(group, agent_group, "{what} is in the agent's process group");
        }
        agent.kill_group_with(signal);
        for (what, pid) in carriers {
            assert!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok(),
                "{what} died with the agent's process group ({signal:?})"
            );
        }
        served(&agent, ports[0], "from-container");
        served(&agent, ports[1], "from-unikernel");
        agent.spawn();
        for component in ["web", "vm"] {
            let status = agent.component(&name, component);
            assert_eq!(status["state"], "running", "{status}");
            assert_eq!(
                status["restart_count"], 0,
                "adopted, not restarted: {status}"
            );
        }
    }
    agent.mcp(&["undeploy", &name, "--yes"]).ok();
}

/// A VM's console log stays within `[qemu] console_max_size`: the agent moves it to
/// `console.log.1` and truncates it while QEMU keeps writing, and `mcp logs --tail` still
/// shows the last lines across the two.
#[test]
fn a_vm_console_log_is_rotated_at_its_size_limit() {
    let agent = Agent::start_unikernel(&Agent::FAST_MONITOR, "console_max_size = \"512b\"");
    let name = unique("console");
    let def = agent.definition(&name, &mixed(&name));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let instance = agent.component(&name, "vm")["instance"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = vm_state(&agent, &instance);
    let rotated = eventually(Duration::from_secs(20), || {
        dir.join("console.log.1").is_file()
    });
    assert!(
        rotated,
        "no console.log.1 in {}:\n{}",
        dir.display(),
        agent.log()
    );
    let older = std::fs::read_to_string(dir.join("console.log.1")).unwrap();
    assert!(
        older.len() > 512,
        "the rotated log held more than the limit: {older}"
    );
    let current = std::fs::read_to_string(dir.join("console.log")).unwrap();
    assert!(
        current.len() < older.len(),
        "the current log restarted: {current}"
    );
    // The tail spans both generations.
    let both = older.lines().count() + current.lines().count();
    let logs = agent
        .mcp(&["logs", &format!("{name}/vm"), "--tail", &both.to_string()])
        .ok();
    let shown: Vec<&str> = logs.stdout.lines().collect();
    assert!(
        shown.len() >= both.min(older.lines().count() + 1),
        "{both} lines: {} / {}",
        logs.stdout,
        logs.stderr
    );
    assert!(
        shown[0].contains(older.lines().next().unwrap().trim_end()),
        "{shown:?} starts with the rotated log's first line:\n{older}"
    );
    agent.mcp(&["undeploy", &name, "--yes"]).ok();
}

/// A VM whose QEMU dies is restarted without waiting for the reconcile timer (a minute away
/// here): the agent follows each VM's QEMU monitor, and the recorded event says so.
#[test]
fn a_killed_vm_is_restarted_on_its_exit_not_the_timer() {
    let agent = Agent::start_unikernel(
        &["--monitor-interval-ms", "60000", "--backoff-base-ms", "300"],
        "",
    );
    let name = unique("vmexit");
    let def = agent.definition(&name, &mixed(&name));
    agent.mcp(&["deploy", def.to_str().unwrap()]).ok();
    let instance = format!("{name}-vm");
    let qemu = qemu_processes(&instance);
    assert_eq!(qemu.len(), 1);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(qemu[0]), Signal::SIGKILL).unwrap();
    let restarted = eventually(Duration::from_secs(50), || {
        let vm = agent.component(&name, "vm");
        vm["state"] == "running" && vm["restart_count"].as_u64() >= Some(1)
    });
    assert!(
        restarted,
        "{}\n{}",
        agent.component(&name, "vm"),
        agent.log()
    );
    let events = agent.mcp(&["events", &name, "--json"]).ok().stdout;
    assert!(events.contains("noticed by QEMU event"), "{events}");
    agent.mcp(&["undeploy", &name, "--yes"]).ok();
}
