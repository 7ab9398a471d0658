//! Reads while the agent is busy: `mcp status --json` (a registry read plus one `podman ps`)
//! and `mcp events --json` (a registry read only), idle and while 20 deploys run at once,
//! with `podman ps` itself timed the same way as the baseline of what podman allows.

use std::process::Child;
use std::time::Instant;

use super::{Ctx, MONITOR_OFF_MS, PS_ARGS, web_service};
use crate::agent::{Agent, AgentOptions};
use crate::interrupt;
use crate::report::{Report, Row};
use crate::sandbox::checked;
use crate::stats::{fmt_ms, median, ms, spread};

const DEPLOYS: usize = 20;
pub const TARGET: f64 = 3.0;

#[derive(Default)]
struct Samples {
    status: Vec<f64>,
    events: Vec<f64>,
    podman_ps: Vec<f64>,
}

/// One round: status, events, podman ps, each timed once.
fn sample(ctx: &Ctx<'_>, agent: &Agent<'_>, into: &mut Samples) -> anyhow::Result<()> {
    let start = Instant::now();
    checked("mcp status", agent.mcp_output(&["status", "--json"])?)?;
    into.status.push(ms(start.elapsed()));
    let start = Instant::now();
    checked(
        "mcp events",
        agent.mcp_output(&["events", "--json", "--limit", "20"])?,
    )?;
    into.events.push(ms(start.elapsed()));
    let start = Instant::now();
    checked("podman ps", ctx.sb.podman_command(&PS_ARGS).output()?)?;
    into.podman_ps.push(ms(start.elapsed()));
    Ok(())
}

pub fn run(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let agent = Agent::start(
        ctx.sb,
        "contention",
        AgentOptions {
            monitor_interval_ms: Some(MONITOR_OFF_MS),
            ..AgentOptions::default()
        },
    )?;
    let mut idle = Samples::default();
    let mut busy = Samples::default();
    for round in 0..=ctx.args.runs {
        eprintln!("mcp-bench: contention round {round}/{}", ctx.args.runs);
        let mut warm = Samples::default();
        sample(ctx, &agent, if round == 0 { &mut warm } else { &mut idle })?;
        let names: Vec<String> = (0..DEPLOYS).map(|i| format!("busy-{round}-{i}")).collect();
        let mut children: Vec<Child> = Vec::new();
        for name in &names {
            let def =
                agent.definition(name, &web_service(name, &ctx.sb.image, super::free_port()?))?;
            children.push(
                agent
                    .mcp_command(&["deploy", &def.to_string_lossy()])
                    .spawn()?,
            );
        }
        // Sample while the deploys are in flight (each round's first sample lands in the
        // thick of them; later ones as they finish).
        while children
            .iter_mut()
            .any(|c| matches!(c.try_wait(), Ok(None)))
        {
            interrupt::check()?;
            if round == 0 {
                sample(ctx, &agent, &mut warm)?;
            } else {
                sample(ctx, &agent, &mut busy)?;
            }
        }
        for mut child in children {
            anyhow::ensure!(child.wait()?.success(), "a concurrent deploy failed");
        }
        for name in &names {
            agent.mcp(&["undeploy", name])?;
        }
    }
    for (figure, idle, busy) in [
        ("`mcp status --json`", &idle.status, &busy.status),
        (
            "`mcp events --json` (registry only)",
            &idle.events,
            &busy.events,
        ),
        (
            "`podman ps -a --format json` (baseline)",
            &idle.podman_ps,
            &busy.podman_ps,
        ),
    ] {
        let quiet = median(idle).unwrap_or(f64::NAN);
        let loaded = median(busy).unwrap_or(f64::NAN);
        let ratio = loaded / quiet;
        let is_ours = !figure.contains("baseline");
        report.row(Row {
            figure: format!("{figure} during {DEPLOYS} concurrent deploys"),
            mcp: fmt_ms(loaded),
            baseline: format!("{} (the same, idle)", fmt_ms(quiet)),
            ratio: Some(ratio),
            target: if is_ours {
                format!("≤ {TARGET:.0}×")
            } else {
                "—".into()
            },
            met: is_ours.then_some(ratio <= TARGET),
            runs: format!("{} ({})", busy.len(), spread(busy, fmt_ms)),
        });
    }
    Ok(())
}
