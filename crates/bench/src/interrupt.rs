//! Ctrl-C and SIGTERM: the first one makes the next `check` fail, so the suites unwind and
//! their guards remove what they created; a second one exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Handles SIGINT, SIGTERM and SIGHUP in a thread of its own. (Handlers, not a blocked
/// mask: a mask would be inherited by the agent and podman, and the agent would then never
/// see its SIGTERM.)
pub fn install() {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            let _ = ready_tx.send(false);
            return;
        };
        rt.block_on(async move {
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                let _ = ready_tx.send(false);
                return;
            };
            let _ = ready_tx.send(true);
            loop {
                let name = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                    _ = hup.recv() => "SIGHUP",
                };
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    eprintln!("mcp-bench: {name} again: exiting without cleaning up");
                    std::process::exit(130);
                }
                eprintln!("mcp-bench: {name}: stopping and cleaning up (again to exit at once)");
            }
        });
    });
    if !ready_rx.recv().unwrap_or(false) {
        eprintln!("mcp-bench: cannot handle signals; Ctrl-C will not clean up");
    }
}

/// An error once a signal arrived.
pub fn check() -> anyhow::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        anyhow::bail!("interrupted");
    }
    Ok(())
}

/// Sleeps `total`, failing early when interrupted.
pub fn sleep(total: Duration) -> anyhow::Result<()> {
    let end = Instant::now() + total;
    loop {
        check()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
