//! Crash points for tests: with `MCP_AGENT_FAILPOINT=<name>` in its environment the agent
//! SIGKILLs itself on reaching the point of that name, so a test can interrupt an operation
//! exactly there and check what a restarted agent makes of it. Unset (always, in
//! production), `hit` is one comparison against a cached `None`.

use std::sync::OnceLock;

static ARMED: OnceLock<Option<String>> = OnceLock::new();

/// Names in use: deploy:journaled, apply:created-one, deploy:applied, deploy:switched,
/// deploy:drained, stop:stopped-one, restart:restarted-one, undeploy:removed-one.
pub fn hit(name: &str) {
    let armed = ARMED.get_or_init(|| std::env::var("MCP_AGENT_FAILPOINT").ok());
    if armed.as_deref() == Some(name) {
        tracing::warn!(failpoint = name, "failpoint reached: killing the agent");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
