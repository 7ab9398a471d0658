//! The suites, and what they share: the context, service definitions, timing of one
//! "command, then first HTTP 200", and summaries of the agent's timed steps.

pub mod contention;
pub mod deploy;
pub mod fleet;
pub mod load;
pub mod proxy;
pub mod unikernel;

use anyhow::Context;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Args;
use crate::http::Poller;
use crate::sandbox::{Sandbox, checked};
use crate::stats::{median, ms};
use crate::timeline::{self, Step};

/// The agent's own listing: `podman ps` of everything carrying our service label.
pub const PS_ARGS: [&str; 6] = [
    "ps",
    "-a",
    "--filter",
    "label=mcp.service",
    "--format",
    "json",
];

/// A monitor interval (1 h) that keeps monitor passes out of a measurement; the monitor's
/// own cost is measured by the fleet suite.
pub const MONITOR_OFF_MS: u64 = 3_600_000;

pub struct Ctx<'a> {
    pub sb: &'a Sandbox,
    pub args: &'a Args,
    pub poller: Poller,
}

impl<'a> Ctx<'a> {
    pub fn new(sb: &'a Sandbox, args: &'a Args) -> anyhow::Result<Self> {
        Ok(Self {
            sb,
            args,
            poller: Poller::new(Duration::from_millis(args.poll_ms.max(1)))?,
        })
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// One timed run: when the command returned, and when the first 200 came (both from start).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub cmd_ms: f64,
    pub first_200_ms: f64,
}

/// Runs `cmd` to success, then waits for the first 200 on `port`.
pub fn time_to_200(
    ctx: &Ctx<'_>,
    what: &str,
    mut cmd: Command,
    port: u16,
    limit: Duration,
) -> anyhow::Result<Timing> {
    let start = Instant::now();
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    let cmd_done = start.elapsed();
    checked(what, out)?;
    let answered = ctx.poller.first_200(port, limit)?;
    Ok(Timing {
        cmd_ms: ms(cmd_done),
        first_200_ms: ms(answered.duration_since(start)),
    })
}

/// The agent's timed steps of several runs of one operation, summarised as "podman ps ×2
/// 61 ms, …" (medians per step), plus the wall time outside every podman call and VM phase
/// (CLI start, mTLS, registry, planning), given each run's total milliseconds.
pub fn breakdown(runs: &[(f64, Vec<Step>)]) -> String {
    let mut per_step: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    let mut outside = Vec::new();
    for (total_ms, steps) in runs {
        for (what, (count, sum)) in timeline::totals(steps) {
            let entry = per_step.entry(what).or_default();
            entry.0.push(count as f64);
            entry.1.push(sum);
        }
        outside.push(total_ms - timeline::covered_ms(&steps.iter().collect::<Vec<_>>()));
    }
    let mut parts: Vec<String> = per_step
        .iter()
        .map(|(what, (counts, sums))| {
            format!(
                "{what} ×{} {:.0} ms",
                median(counts).unwrap_or(0.0),
                median(sums).unwrap_or(0.0)
            )
        })
        .collect();
    parts.push(format!(
        "outside them (CLI start, mTLS, registry, planning) {:.0} ms",
        median(&outside).unwrap_or(0.0)
    ));
    parts.join(", ")
}

/// A one-component container service with a legacy port mapping to the server's 8080.
pub fn web_service(name: &str, image: &str, port: u16) -> String {
    format!(
        "name = \"{name}\"\nnode = \"local\"\n\n[[components]]\nname = \"web\"\n\
         image = \"{image}\"\nports = [\"127.0.0.1:{port}:8080\"]\n"
    )
}
