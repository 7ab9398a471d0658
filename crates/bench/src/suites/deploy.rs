//! Deploy → first HTTP 200 of a one-component container service (legacy `ports` mapping)
//! against `podman run -d -p 127.0.0.1:P:8080 IMAGE` → first 200 of the same image.

use std::time::Duration;

use super::{Ctx, MONITOR_OFF_MS, Timing, breakdown, free_port, time_to_200, web_service};
use crate::agent::{Agent, AgentOptions};
use crate::interrupt;
use crate::report::{Report, Row};
use crate::stats::{fmt_ms, median, spread};
use crate::timeline::{self, Step};

/// Lets podman's asynchronous cleanup of the previous container finish between runs.
const SETTLE: Duration = Duration::from_millis(500);
const LIMIT: Duration = Duration::from_secs(30);
/// Issue 13: mcp no slower than the raw CLI.
pub const TARGET: f64 = 1.0;

pub fn run(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let agent = Agent::start(
        ctx.sb,
        "deploy",
        AgentOptions {
            log: "info,runtime=debug,podman_cli=debug".into(),
            monitor_interval_ms: Some(MONITOR_OFF_MS),
            ..AgentOptions::default()
        },
    )?;
    let mut raw: Vec<Timing> = Vec::new();
    let mut ours: Vec<Timing> = Vec::new();
    let mut with_secrets: Vec<Timing> = Vec::new();
    let mut steps = Vec::new();
    // Run 0 warms both paths up and is not counted; the order alternates so that a drift
    // of the machine's speed over the run does not favour either side.
    for i in 0..=ctx.args.runs {
        eprintln!("mcp-bench: deploy run {i}/{}", ctx.args.runs);
        let mcp_first = i % 2 == 1;
        for mcp_turn in [mcp_first, !mcp_first] {
            if mcp_turn {
                let (timing, run_steps) = mcp_once(ctx, &agent, i)?;
                if i > 0 {
                    ours.push(timing);
                    steps.push((timing.cmd_ms, run_steps));
                }
            } else {
                let timing = raw_once(ctx, i)?;
                if i > 0 {
                    raw.push(timing);
                }
            }
            interrupt::sleep(SETTLE)?;
        }
        let timing = secrets_once(ctx, &agent, i)?;
        if i > 0 {
            with_secrets.push(timing);
        }
        interrupt::sleep(SETTLE)?;
    }
    let first = |t: &[Timing]| t.iter().map(|t| t.first_200_ms).collect::<Vec<f64>>();
    let cmd = |t: &[Timing]| t.iter().map(|t| t.cmd_ms).collect::<Vec<f64>>();
    let (ours_ms, raw_ms) = (first(&ours), first(&raw));
    let mine = median(&ours_ms).unwrap_or(f64::NAN);
    let base = median(&raw_ms).unwrap_or(f64::NAN);
    let ratio = mine / base;
    report.row(Row {
        figure: "Deploy → first HTTP 200, container (legacy `ports`)".into(),
        mcp: fmt_ms(mine),
        baseline: format!("{} (`podman run -d -p`)", fmt_ms(base)),
        ratio: Some(ratio),
        target: format!("≤ {TARGET:.2}×"),
        met: Some(ratio <= TARGET),
        runs: format!("{} ({})", ours.len(), spread(&ours_ms, fmt_ms)),
    });
    // The agent's podman service exits after `api_idle_secs` without a request (60 s by
    // default; 2 s for this agent, to wait less): the first deploy after that starts it.
    let idle_agent = Agent::start(
        ctx.sb,
        "deploy-after-idle",
        AgentOptions {
            monitor_interval_ms: Some(MONITOR_OFF_MS),
            settings: Some("[podman]\napi_idle_secs = 2\n".into()),
            ..AgentOptions::default()
        },
    )?;
    let mut cold: Vec<Timing> = Vec::new();
    for i in 1..=ctx.args.runs {
        eprintln!("mcp-bench: deploy after idle, run {i}/{}", ctx.args.runs);
        idle_agent.wait_for_idle_podman(LIMIT)?;
        cold.push(mcp_once(ctx, &idle_agent, ctx.args.runs + i)?.0);
    }
    let cold_ms = first(&cold);
    let cold_median = median(&cold_ms).unwrap_or(f64::NAN);
    report.row(Row {
        figure: "Deploy → first HTTP 200, container, podman service idled out (started again)"
            .into(),
        mcp: fmt_ms(cold_median),
        baseline: format!("{} (`podman run -d -p`)", fmt_ms(base)),
        ratio: Some(cold_median / base),
        target: "–".into(),
        met: None,
        runs: format!("{} ({})", cold.len(), spread(&cold_ms, fmt_ms)),
    });
    let secret_ms = first(&with_secrets);
    let secret_median = median(&secret_ms).unwrap_or(f64::NAN);
    report.row(Row {
        figure: "Deploy → first HTTP 200, container with 2 secrets".into(),
        mcp: fmt_ms(secret_median),
        baseline: format!("{} (`mcp deploy`, no secrets)", fmt_ms(mine)),
        ratio: Some(secret_median / mine),
        target: "—".into(),
        met: None,
        runs: format!("{} ({})", with_secrets.len(), spread(&secret_ms, fmt_ms)),
    });
    report.note(format!(
        "Container deploy: `mcp deploy` returned after {} (median), `podman run -d` after {}; \
         the agent's time by step (medians of {} runs): {}.",
        fmt_ms(median(&cmd(&ours)).unwrap_or(f64::NAN)),
        fmt_ms(median(&cmd(&raw)).unwrap_or(f64::NAN)),
        steps.len(),
        breakdown(&steps)
    ));
    Ok(())
}

fn raw_once(ctx: &Ctx<'_>, i: usize) -> anyhow::Result<Timing> {
    let port = free_port()?;
    let name = format!("bench-raw-{i}");
    let publish = format!("127.0.0.1:{port}:8080");
    let cmd = ctx
        .sb
        .podman_command(&["run", "-d", "--name", &name, "-p", &publish, &ctx.sb.image]);
    let timing = time_to_200(ctx, "podman run -d -p", cmd, port, LIMIT)?;
    ctx.sb.podman(&["rm", "--force", "--time", "0", &name])?;
    Ok(timing)
}

fn mcp_once(ctx: &Ctx<'_>, agent: &Agent<'_>, i: usize) -> anyhow::Result<(Timing, Vec<Step>)> {
    let port = free_port()?;
    let name = format!("bench-deploy-{i}");
    let def = agent.definition(&name, &web_service(&name, &ctx.sb.image, port))?;
    let offset = agent.log_offset();
    let def = def.to_string_lossy();
    let cmd = agent.mcp_command(&["deploy", &def]);
    let timing = time_to_200(ctx, "mcp deploy", cmd, port, LIMIT)?;
    let steps = timeline::steps(&agent.log_since(offset));
    agent.mcp(&["undeploy", &name])?;
    Ok((timing, steps))
}

/// A deploy of the same service with two secrets (set beforehand, not timed): each is one
/// `podman secret create` before `podman run`, plus one `podman secret ls` to prune.
fn secrets_once(ctx: &Ctx<'_>, agent: &Agent<'_>, i: usize) -> anyhow::Result<Timing> {
    use std::io::Write;
    let port = free_port()?;
    let name = format!("bench-secrets-{i}");
    for secret in ["DB_PASSWORD", "API_TOKEN"] {
        let mut child = agent
            .mcp_command(&["secret", "set", &name, secret])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(format!("bench-{secret}-value").as_bytes())?;
        }
        anyhow::ensure!(
            child.wait()?.success(),
            "mcp secret set {name} {secret} failed"
        );
    }
    let body = web_service(&name, &ctx.sb.image, port).replace(
        "ports = [",
        "secrets = [\"DB_PASSWORD\", \"API_TOKEN\"]\nports = [",
    );
    let def = agent.definition(&name, &body)?;
    let def = def.to_string_lossy();
    let timing = time_to_200(
        ctx,
        "mcp deploy (secrets)",
        agent.mcp_command(&["deploy", &def]),
        port,
        LIMIT,
    )?;
    agent.mcp(&["undeploy", &name])?;
    for secret in ["DB_PASSWORD", "API_TOKEN"] {
        agent.mcp(&["secret", "rm", &name, secret])?;
    }
    Ok(timing)
}
