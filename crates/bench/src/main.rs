//! `mcp-bench`: measures mcp against raw podman and raw QEMU, each baseline in the same run,
//! and prints a Markdown table of medians and ratios (BENCHMARKS.md explains every figure).

mod agent;
mod http;
mod interrupt;
mod procfs;
mod report;
mod sandbox;
mod stats;
mod suites;
mod timeline;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Benchmarks of the real `mcp` and `mcp-agent` binaries against raw podman and raw QEMU.
///
/// Everything runs in a private directory under /var/tmp with its own podman store; the
/// containers, VMs and agents it starts are removed at the end, also after a failure or
/// Ctrl-C.
#[derive(Parser)]
#[command(version, about)]
pub struct Args {
    #[command(subcommand)]
    what: What,
    /// Directory holding `mcp` and `mcp-agent` (default: target/release, else target/debug).
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    /// Timed runs per container figure; the median is reported (one untimed warm-up first).
    #[arg(long, global = true, default_value_t = 5)]
    runs: usize,
    /// Timed runs per unikernel figure (each boots two VMs under QEMU, ~12 s a run).
    #[arg(long, global = true, default_value_t = 5)]
    vm_runs: usize,
    /// Fleet sizes (components) at which `mcp status` is timed; the largest is also used
    /// for memory and monitor cost.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "20,100,200"
    )]
    fleet: Vec<usize>,
    /// Components per service in the fleet.
    #[arg(long, global = true, default_value_t = 10)]
    per_service: usize,
    /// How long the monitor's CPU time is measured, idle and with the fleet, in seconds.
    #[arg(long, global = true, default_value_t = 60)]
    monitor_secs: u64,
    /// Seconds of load per wrk run in the proxy suite.
    #[arg(long, global = true, default_value_t = 5)]
    load_secs: u64,
    /// Connections wrk keeps open in the proxy suite.
    #[arg(long, global = true, default_value_t = 32)]
    connections: u32,
    /// HTTP poll interval in milliseconds (a new attempt starts this often).
    #[arg(long, global = true, default_value_t = 5)]
    poll_ms: u64,
    /// Also write the results as JSON to this file.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Keep the run directory (agent logs and state) instead of removing it.
    #[arg(long, global = true)]
    keep: bool,
}

#[derive(Subcommand, Clone, Copy, PartialEq, Eq)]
enum What {
    /// Every suite below, in order.
    All,
    /// Deploy → first HTTP 200 of a one-component podman service vs `podman run -d -p`.
    Deploy,
    /// With a fleet of containers: `mcp status --json` vs `podman ps`, agent memory, and the
    /// monitor's CPU time (with an idle agent as the baseline).
    Fleet,
    /// Unikernel deploy → first 200 vs the same QEMU command line started by hand.
    Unikernel,
    /// Requests through mcp-proxy (l4 and l7) vs straight to the backend and vs HAProxy,
    /// with wrk; and the time from "new instance healthy" to "proxy switched".
    Proxy,
    /// `mcp status` and `mcp events` idle and while 20 deploys run at once, with `podman ps`
    /// timed alongside as the baseline.
    Contention,
    /// 3000 `Status` RPCs, 64 in flight, from an independent gRPC client while 10 services
    /// deploy and undeploy: latency percentiles, failures, the agent's peak memory.
    Load,
}

fn main() -> ExitCode {
    interrupt::install();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let bins = sandbox::bin_dir(args.bin_dir.as_deref())?;
    let sb = sandbox::Sandbox::create(bins, args.keep)?;
    let ctx = suites::Ctx::new(&sb, args)?;
    let mut report = report::Report::new(report::Machine::read(&sb));
    eprintln!(
        "mcp-bench: binaries from {}, run directory {}",
        sb.bins.display(),
        sb.dir.display()
    );
    let all = args.what == What::All;
    let result = (|| -> anyhow::Result<()> {
        if all || args.what == What::Deploy {
            suites::deploy::run(&ctx, &mut report).context("deploy suite")?;
        }
        if all || args.what == What::Fleet {
            suites::fleet::run(&ctx, &mut report).context("fleet suite")?;
        }
        if all || args.what == What::Unikernel {
            suites::unikernel::run(&ctx, &mut report).context("unikernel suite")?;
        }
        if all || args.what == What::Proxy {
            suites::proxy::run(&ctx, &mut report).context("proxy suite")?;
        }
        if all || args.what == What::Contention {
            suites::contention::run(&ctx, &mut report).context("contention suite")?;
        }
        if all || args.what == What::Load {
            suites::load::run(&ctx, &mut report).context("load suite")?;
        }
        Ok(())
    })();
    // What was measured before a failure is still worth seeing.
    print!("{}", report.markdown());
    if let Some(path) = &args.json {
        std::fs::write(path, report.json()?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    result
}
