//! Helpers the workspace's tests and `mcp-bench` share; nothing here reaches a shipped binary.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// The band `free_port` takes ports from: below the kernel's ephemeral ports (32768–60999 by
/// default) and the agents' own range (20000–32000).
const BAND_START: u32 = 10_000;
const BAND_LEN: u32 = 10_000;

/// A loopback port nobody listens on right now. No `bind(0)` or outgoing connection of another
/// test can take it between this check and its use (the kernel picks those above the band),
/// each call in a process gets another port, and processes start at different places in the
/// band.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919) % BAND_LEN;
    loop {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % BAND_LEN;
        let Ok(port) = u16::try_from(BAND_START + offset) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The ids of the live processes (the numeric entries of /proc).
pub fn pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
}

/// The live processes whose command line contains every one of `needles`. A child that one
/// of them has forked but not yet exec'd (podman starting netavark or conmon) shows its
/// parent's command line for a moment: it is not counted.
pub fn processes(needles: &[&str]) -> Vec<i32> {
    let found: Vec<(i32, Option<i32>)> = pids()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                let text = String::from_utf8_lossy(&raw).replace('\0', " ");
                needles.iter().all(|needle| text.contains(needle))
            })
        })
        .map(|pid| (pid, parent_pid(pid)))
        .collect();
    found
        .iter()
        .filter(|(_, parent)| !found.iter().any(|(pid, _)| Some(*pid) == *parent))
        .map(|(pid, _)| *pid)
        .collect()
}

/// The parent of `pid`, from /proc/PID/stat (after the parenthesised command name).
fn parent_pid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_bindable_and_below_the_ephemeral_range() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len());
        assert!(ports.iter().all(|p| (10_000..20_000).contains(p)));
    }

    #[test]
    fn a_process_is_found_by_its_command_line() {
        let me = std::process::id().cast_signed();
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_string_lossy().into_owned();
        assert!(processes(&[&name]).contains(&me));
        assert!(processes(&[&name, "no such argument anywhere"]).is_empty());
    }
}
