//! `mcp-proxy`'s command line (clap): here rather than in the binary so that man pages are
//! generated from the same definition.

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;

/// The node proxy: listens on public ports and forwards traffic to components' host ports.
///
/// The agent programs it over the control socket DIR/control.sock (one JSON request per
/// line: ping, apply, table, active). The routing table is saved in DIR/routes.json and served
/// again when the proxy restarts. The proxy runs in its own session, so it keeps serving when
/// the agent that started it dies. SIGTERM or SIGINT stops it.
#[derive(Debug, Parser)]
#[command(name = "mcp-proxy", version)]
pub struct ProxyArgs {
    /// State directory: routes.json and control.sock (created with mode 0700 when missing).
    #[arg(long, value_name = "DIR")]
    pub state_dir: PathBuf,
    /// Address the public ports are bound on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Forwarding threads (each serves its connections start to end); 0: one per CPU.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub workers: usize,
}
