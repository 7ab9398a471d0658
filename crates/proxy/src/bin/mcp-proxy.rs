//! `mcp-proxy`: the node proxy process; parses arguments and runs `proxy::run`.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

fn main() -> ExitCode {
    // The one crypto provider of the workspace (the lib passes it explicitly as well).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = match proxy::args::ProxyArgs::try_parse() {
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

fn run(args: proxy::args::ProxyArgs) -> anyhow::Result<()> {
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
