//! `mcp-proxy`: the node proxy process; parses arguments and runs `proxy::run`.

use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

/// The node proxy: listens on public ports and forwards traffic to components' host ports.
///
/// The agent programs it over the control socket DIR/control.sock (one JSON request per
/// line: ping, apply, table, active). The routing table is saved in DIR/routes.json and served
/// again when the proxy restarts. The proxy runs in its own session, so it keeps serving when
/// the agent that started it dies. SIGTERM or SIGINT stops it.
#[derive(Debug, Parser)]
#[command(name = "mcp-proxy", version)]
struct Args {
    /// State directory: routes.json and control.sock (created with mode 0700 when missing).
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// Address the public ports are bound on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Forwarding threads (each serves its connections start to end); 0: one per CPU.
    #[arg(long, value_name = "N", default_value_t = 0)]
    workers: usize,
}

fn main() -> ExitCode {
    // The one crypto provider of the workspace (the lib passes it explicitly as well).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Only fails when already a process group leader, which is fine.
    let _ = nix::unistd::setsid();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("mcp-proxy: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    // Accepting and the control socket need little: one thread; the forwarding itself runs
    // on the worker threads.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(proxy::run(proxy::Options {
        state_dir: args.state_dir,
        bind: args.bind,
        workers: args.workers,
    }))?;
    Ok(())
}
