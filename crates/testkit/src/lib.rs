//! Helpers the workspace's tests share. A dev-dependency only: nothing here reaches a binary.

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
}
