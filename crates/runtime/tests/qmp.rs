//! The QMP client against a real QEMU (no guest needed: `-machine none`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

#[tokio::test]
async fn query_status_and_quit_against_a_real_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("qmp.sock");
    let pidfile = dir.path().join("qemu.pid");
    let out = tokio::process::Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "none",
            "-display",
            "none",
            "-nodefaults",
            "-qmp",
        ])
        .arg(format!("unix:{},server=on,wait=off", socket.display()))
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
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

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
