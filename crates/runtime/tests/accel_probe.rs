//! The accelerator probe against real QEMU: under TCG (which runs anywhere) the boot-sector
//! guest must boot, which proves the probe can say "usable"; under KVM it must give a verdict.
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

#[tokio::test]
async fn kvm_probe_gives_a_verdict_with_a_reason() {
    require_qemu();
    let result = probe_accelerator(Path::new(QEMU), Accel::Kvm, Duration::from_secs(5)).await;
    eprintln!("KVM probe on this machine: {result:?}");
    assert_eq!(result.accel, Accel::Kvm);
    if result.usable {
        assert_eq!(result.detail, "guest booted under KVM");
    } else {
        assert!(!result.detail.is_empty());
        assert_ne!(result.detail, "guest booted under KVM");
    }
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
