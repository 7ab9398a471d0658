//! The QMP client against a real QEMU (no guest needed: `-machine none`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

/// A daemonized QEMU without a guest, with a command monitor and an events monitor.
async fn qemu_with_two_monitors(dir: &std::path::Path) -> i32 {
    let pidfile = dir.join("qemu.pid");
    let out = tokio::process::Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "none",
            "-display",
            "none",
            "-nodefaults",
            "-qmp",
        ])
        .arg(format!(
            "unix:{},server=on,wait=off",
            dir.join("qmp.sock").display()
        ))
        .arg("-qmp")
        .arg(format!(
            "unix:{},server=on,wait=off",
            dir.join("events.sock").display()
        ))
        .arg("-daemonize")
        .arg("-pidfile")
        .arg(&pidfile)
        .output()
        .await
        .expect("qemu-system-x86_64 must be installed (package qemu-system-x86)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// While the events monitor is followed, commands go through the other; a quit ends the
/// follower with QEMU's SHUTDOWN event, a SIGKILL with the connection closing.
#[tokio::test]
async fn the_events_monitor_tells_how_qemu_ended() {
    for kill in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let pid = qemu_with_two_monitors(dir.path()).await;
        let follower = runtime::qemu::qmp::follow(&dir.path().join("events.sock"))
            .await
            .unwrap();
        let ended = tokio::spawn(follower.ended());
        let socket = dir.path().join("qmp.sock");
        runtime::qemu::qmp::status(&socket).await.unwrap();
        if kill {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
        } else {
            runtime::qemu::qmp::execute(&socket, "quit").await.unwrap();
        }
        let event = tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("the follower sees QEMU end")
            .unwrap();
        assert_eq!(event.as_deref(), (!kill).then_some("SHUTDOWN"));
    }
}

#[tokio::test]
async fn query_status_and_quit_against_a_real_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("qmp.sock");
    let pid = qemu_with_two_monitors(dir.path()).await;

    let status = runtime::qemu::qmp::status(&socket).await.unwrap();
    assert!(
        ["running", "prelaunch", "paused"].contains(&status.as_str()),
        "{status}"
    );
    let unknown = runtime::qemu::qmp::execute(&socket, "no-such-command").await;
    assert!(unknown.unwrap_err().to_string().contains("CommandNotFound"));

    runtime::qemu::qmp::execute(&socket, "quit").await.unwrap();
    let mut gone = false;
    for _ in 0..50 {
        if std::fs::metadata(format!("/proc/{pid}")).is_err() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "QEMU exits after quit");
}
