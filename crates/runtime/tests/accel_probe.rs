//! The accelerator probe against real QEMU: under TCG (which runs anywhere) the boot-sector
//! guest must boot, which proves the probe can say "usable". KVM's verdict depends on the
//! machine, so it is checked against stand-in QEMUs that boot or refuse.
//!
//! Needs `qemu-system-x86_64` (Debian `qemu-system-x86`); without it these tests fail, they
//! never skip.

#![allow(clippy::unwrap_used)]

use runtime::{Accel, probe_accelerator};
use std::path::Path;
use std::time::Duration;

const QEMU: &str = "qemu-system-x86_64";

/// Generous: the probe returns as soon as the guest speaks; this only bounds a loaded machine.
const TIMEOUT: Duration = Duration::from_secs(60);

fn require_qemu() {
    let found = std::process::Command::new(QEMU)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{QEMU} is required for this test: install the Debian package qemu-system-x86 \
         (scripts/packages.sh does)"
    );
}

#[tokio::test]
async fn boot_sector_guest_boots_under_tcg() {
    require_qemu();
    let result = probe_accelerator(Path::new(QEMU), Accel::Tcg, TIMEOUT).await;
    assert!(result.usable, "TCG probe failed: {result:?}");
    assert_eq!(result.detail, "guest booted under TCG");
    assert_eq!(result.accel, Accel::Tcg);
}

/// A stand-in for QEMU, written as a script: whatever the real KVM can do on this machine,
/// the probe's verdict must follow what QEMU did.
fn fake_qemu(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("qemu-system-x86_64");
    let staged = dir.join("qemu.tmp");
    std::fs::write(&staged, format!("#!/bin/sh\n{body}\n")).unwrap();
    // Installed by rename so the script is never executed while still open for writing.
    std::process::Command::new("install")
        .args(["-m", "0755"])
        .arg(&staged)
        .arg(&path)
        .status()
        .unwrap();
    path
}

#[tokio::test]
async fn kvm_verdict_follows_what_qemu_did() {
    let dir = tempfile::tempdir().unwrap();
    // A guest that prints the marker, only when asked for KVM with the host CPU model.
    let booting = fake_qemu(
        dir.path(),
        r#"case "$*" in *"-accel kvm -cpu host"*) ;; *) echo "not asked for kvm: $*" >&2; exit 1;; esac
for a in "$@"; do case "$a" in file:*) printf 'OK\n' > "${a#file:}";; esac; done
exec sleep 30"#,
    );
    let result = probe_accelerator(&booting, Accel::Kvm, TIMEOUT).await;
    assert!(result.usable, "{result:?}");
    assert_eq!(result.detail, "guest booted under KVM");

    let dir = tempfile::tempdir().unwrap();
    let refusing = fake_qemu(
        dir.path(),
        "echo 'qemu-system-x86_64: failed to set MSR 0x10a to 0x69' >&2; exit 1",
    );
    let result = probe_accelerator(&refusing, Accel::Kvm, TIMEOUT).await;
    assert!(!result.usable, "{result:?}");
    assert!(
        result.detail.contains("failed to set MSR 0x10a"),
        "QEMU's own reason: {result:?}"
    );
    assert_eq!(result.accel, Accel::Kvm);
}

#[tokio::test]
async fn a_silent_guest_is_reported_after_the_timeout() {
    require_qemu();
    // Far too short for QEMU to even start a guest: the verdict must be "no output".
    let result = probe_accelerator(Path::new(QEMU), Accel::Tcg, Duration::ZERO).await;
    assert!(!result.usable, "{result:?}");
    assert!(
        result.detail.starts_with("no output within"),
        "{}",
        result.detail
    );
}
