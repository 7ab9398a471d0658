//! With a fleet of running containers (20, 100, 200 components by default): `mcp status
//! --json` against the one `podman ps` the agent itself runs, the agent's resident memory,
//! and the monitor's CPU time per minute; an idle agent gives the baselines.

use anyhow::{Context, bail};
use std::time::{Duration, Instant};

use super::{Ctx, PS_ARGS};
use crate::agent::{Agent, AgentOptions};
use crate::interrupt;
use crate::procfs;
use crate::report::{Report, Row};
use crate::sandbox::{Sandbox, checked};
use crate::stats::{fmt_kib, fmt_ms, median, ms, spread};
use crate::timeline;

/// Issue 13: status from the observed state, at most half of one listing.
pub const STATUS_TARGET: f64 = 0.5;
pub const IDLE_RSS_TARGET_MIB: f64 = 15.0;
/// Issue 13's goals: the monitor's CPU per minute at the largest fleet, and a killed
/// container running again.
const MONITOR_CPU_TARGET_MS: f64 = 200.0;
const KILL_TARGET_MS: f64 = 1500.0;
/// The agent's default monitor interval, which this suite measures.
const MONITOR_INTERVAL: Duration = Duration::from_secs(5);
/// The agent's default `relist_ms`: how often a reconcile lists podman afresh while podman's
/// events are followed (never inside the measuring window, which begins 11 s after a start).
const RELIST: Duration = Duration::from_secs(300);
/// The agent's default `api_idle_secs`: a relist's service runs this long after it.
const SERVICE_IDLE: Duration = Duration::from_secs(60);

/// Removes every container of the store when the suite ends, however it ends.
struct Containers<'a>(&'a Sandbox);

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        eprintln!("mcp-bench: removing the fleet");
        if let Err(e) = self.0.remove_all_containers() {
            eprintln!("mcp-bench: cleanup: {e:#}");
        }
    }
}

pub fn run(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let mut sizes: Vec<usize> = ctx.args.fleet.iter().copied().filter(|n| *n > 0).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let Some(&largest) = sizes.last() else {
        bail!("--fleet names no size");
    };
    let bare_service = idle(ctx, report)?;

    let _containers = Containers(ctx.sb);
    // The monitor is held off while status is timed, so its passes do not run alongside.
    let mut agent = Agent::start(
        ctx.sb,
        "fleet",
        AgentOptions {
            monitor_interval_ms: Some(super::MONITOR_OFF_MS),
            log: "info,runtime=debug,podman_cli=debug".into(),
            ..AgentOptions::default()
        },
    )?;
    let mut deployed = 0;
    let mut services = 0;
    for &size in &sizes {
        let started = Instant::now();
        while deployed < size {
            interrupt::check()?;
            let n = ctx.args.per_service.max(1).min(size - deployed);
            let name = format!("fleet-{services:03}");
            let def = agent.definition(
                &name,
                &fleet_service(&name, &ctx.sb.image, n, FLEET_FIRST_PORT + deployed),
            )?;
            agent.mcp(&["deploy", &def.to_string_lossy()])?;
            deployed += n;
            services += 1;
        }
        eprintln!(
            "mcp-bench: {size} components deployed ({:.0} s for the last {})",
            started.elapsed().as_secs_f64(),
            size
        );
        check_running(&agent, size)?;
        status_at(ctx, report, &agent, size, size == largest)?;
    }
    let (rss, _) = rss_median(&agent)?;
    report.row(Row {
        figure: format!("`mcp-agent` RSS, {largest} components (after deploying them)"),
        mcp: fmt_kib(rss),
        baseline: "–".into(),
        ratio: None,
        target: "–".into(),
        met: None,
        runs: "5 samples, 1 s apart".into(),
    });

    // A restarted agent re-adopts the fleet; now with the default monitor interval.
    agent.restart(AgentOptions {
        log: "info,runtime=debug,podman_cli=debug".into(),
        ..AgentOptions::default()
    })?;
    interrupt::sleep(MONITOR_INTERVAL * 2 + Duration::from_secs(1))?;
    let (rss, _) = rss_median(&agent)?;
    // The steady state: the service started by the restart has idled out.
    agent.wait_for_idle_podman(SERVICE_IDLE * 2)?;
    report.row(Row {
        figure: format!("`mcp-agent` RSS, {largest} components (restarted, monitor on)"),
        mcp: fmt_kib(rss),
        baseline: "–".into(),
        ratio: None,
        target: "–".into(),
        met: None,
        runs: "5 samples, 1 s apart".into(),
    });
    let offset = agent.log_offset();
    let mut cpu = cpu_per_minute(ctx, &agent)?;
    let calls: Vec<String> = timeline::steps(&agent.log_since(offset))
        .into_iter()
        .map(|step| step.what)
        .collect();
    let raw = raw_listing_cpu_per_minute(ctx)?;
    // The relists outside the window, counted in: each costs about one `podman ps` (a
    // started service and a listing), and the service then runs until it idles out.
    let listings_per_minute = (60.0 / MONITOR_INTERVAL.as_secs_f64()).round();
    let relist = raw / listings_per_minute + bare_service * SERVICE_IDLE.as_secs_f64() / 60.0;
    cpu.relists = relist * 60.0 / RELIST.as_secs_f64();
    report.note(format!(
        "Monitor with {largest} components: {} podman call(s) in the {} s window ({}); \
         with podman's events followed the monitor reconciles every 60 s against the state \
         they keep, and lists podman afresh every {} s (counted in the figure as one \
         `podman ps` each, and the idle service's {} s after it). Measured once the service \
         started with the agent has idled out.",
        calls.len(),
        ctx.args.monitor_secs,
        summarise(&calls),
        RELIST.as_secs(),
        SERVICE_IDLE.as_secs()
    ));
    report.row(Row {
        figure: format!(
            "Monitor CPU per minute, {largest} components, default schedule (agent + podman)"
        ),
        mcp: cpu.text(),
        baseline: format!("{} (`podman ps` every 5 s)", fmt_ms(raw)),
        ratio: Some(cpu.total() / raw),
        target: format!("≤ {} ms", MONITOR_CPU_TARGET_MS),
        met: Some(cpu.total() <= MONITOR_CPU_TARGET_MS),
        runs: format!("{} s measured", ctx.args.monitor_secs),
    });
    let kills = kill_to_running(ctx, 5)?;
    let median_kill = median(&kills).unwrap_or(f64::NAN);
    report.row(Row {
        figure: "`podman kill` of a component → running again (monitor restart)".into(),
        mcp: fmt_ms(median_kill),
        baseline: "–".into(),
        ratio: None,
        target: format!("≤ {KILL_TARGET_MS} ms"),
        met: Some(median_kill <= KILL_TARGET_MS),
        runs: format!("{} ({})", kills.len(), spread(&kills, fmt_ms)),
    });
    agent.stop()
}

/// An agent with nothing deployed: its memory, and its CPU time over the measuring window.
/// Returns the CPU a minute of podman's API service with no client (the baseline).
fn idle(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<f64> {
    let mut agent = Agent::start(ctx.sb, "idle", AgentOptions::default())?;
    // The start-up accelerator probe is done once its verdict is in.
    agent.accelerator()?;
    interrupt::sleep(Duration::from_secs(2))?;
    let (rss, hwm) = rss_median(&agent)?;
    let rss_mib = rss / 1024.0;
    report.row(Row {
        figure: "`mcp-agent` RSS, idle (nothing deployed)".into(),
        mcp: fmt_kib(rss),
        baseline: "–".into(),
        ratio: None,
        target: format!("≤ {IDLE_RSS_TARGET_MIB:.0} MiB"),
        met: Some(rss_mib <= IDLE_RSS_TARGET_MIB),
        runs: format!("5 samples, 1 s apart (peak {})", fmt_kib(hwm)),
    });
    let cpu = cpu_per_minute(ctx, &agent)?;
    agent.stop()?;
    let bare = bare_service_cpu_per_minute(ctx)?;
    report.row(Row {
        figure: "Monitor CPU per minute, idle agent, default schedule (agent + podman)".into(),
        mcp: cpu.text(),
        baseline: format!("{} (`podman system service`, no client)", fmt_ms(bare)),
        ratio: Some(cpu.total() / bare),
        target: "–".into(),
        met: None,
        runs: format!("{} s measured", ctx.args.monitor_secs),
    });
    Ok(bare)
}

/// The CPU per minute of podman's API service on the same store with no client at all:
/// what running the service costs before anything talks to it.
fn bare_service_cpu_per_minute(ctx: &Ctx<'_>) -> anyhow::Result<f64> {
    let socket = ctx.sb.subdir("bare-service")?.join("podman.sock");
    let mut service = ctx
        .sb
        .podman_command(&[
            "system".to_string(),
            "service".into(),
            "--time=0".into(),
            format!("unix://{}", socket.display()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let pid = service.id().to_string();
    interrupt::sleep(Duration::from_secs(2))?;
    let measured = (|| -> anyhow::Result<f64> {
        let before = procfs::cpu(&pid)?;
        interrupt::sleep(Duration::from_secs(ctx.args.monitor_secs))?;
        let after = procfs::cpu(&pid)?;
        let ticks = (after.own + after.children) - (before.own + before.children);
        Ok(ticks as f64 * procfs::ms_per_tick() * 60.0 / ctx.args.monitor_secs as f64)
    })();
    let _ = service.kill();
    let _ = service.wait();
    measured
}

/// "ps ×12" from a list of step names.
fn summarise(calls: &[String]) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for call in calls {
        *counts.entry(call.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(what, n)| format!("{what} ×{n}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// A service of `n` components, each with one route (a host port the agent picks) on its own
/// public port (`first_port`, `first_port + 1`, …: one port belongs to one route of a node).
fn fleet_service(name: &str, image: &str, n: usize, first_port: usize) -> String {
    let mut body = format!("name = \"{name}\"\nnode = \"local\"\n");
    for i in 0..n {
        body.push_str(&format!(
            "\n[[components]]\nname = \"c{i}\"\nimage = \"{image}\"\n\
             [[components.routes]]\nport = {}\n",
            first_port + i
        ));
    }
    body
}

/// Public ports of the fleet's routes start here (below the agent's host-port range).
const FLEET_FIRST_PORT: usize = 10_000;

/// Fails unless `mcp status` shows exactly `expected` components, all running.
fn check_running(agent: &Agent<'_>, expected: usize) -> anyhow::Result<()> {
    let text = agent.mcp(&["status", "--json"])?;
    let json: serde_json::Value = serde_json::from_str(&text).context("parsing mcp status")?;
    let states: Vec<String> = json["services"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["components"].as_array().into_iter().flatten())
        .map(|c| c["state"].as_str().unwrap_or("?").to_string())
        .collect();
    let running = states.iter().filter(|s| *s == "running").count();
    if states.len() != expected || running != expected {
        bail!(
            "expected {expected} running components, status shows {} ({running} running)",
            states.len()
        );
    }
    Ok(())
}

/// `mcp status --json` against `podman ps`, interleaved, after one untimed warm-up each.
fn status_at(
    ctx: &Ctx<'_>,
    report: &mut Report,
    agent: &Agent<'_>,
    size: usize,
    with_target: bool,
) -> anyhow::Result<()> {
    let mut ours = Vec::new();
    let mut raw = Vec::new();
    let mut podman_calls = Vec::new();
    for i in 0..=ctx.args.runs {
        interrupt::check()?;
        let start = Instant::now();
        let out = ctx.sb.podman_command(&PS_ARGS).output()?;
        let raw_ms = ms(start.elapsed());
        checked("podman ps", out)?;

        let offset = agent.log_offset();
        let start = Instant::now();
        let out = agent.mcp_output(&["status", "--json"])?;
        let ours_ms = ms(start.elapsed());
        checked("mcp status --json", out)?;
        let calls = timeline::steps(&agent.log_since(offset))
            .iter()
            .filter(|step| step.what.starts_with("podman "))
            .count();
        if i > 0 {
            raw.push(raw_ms);
            ours.push(ours_ms);
            podman_calls.push(calls as f64);
        }
    }
    let mine = median(&ours).unwrap_or(f64::NAN);
    let base = median(&raw).unwrap_or(f64::NAN);
    let ratio = mine / base;
    report.row(Row {
        figure: format!("`mcp status --json`, {size} components"),
        mcp: fmt_ms(mine),
        baseline: format!("{} (`podman ps -a --format json`)", fmt_ms(base)),
        ratio: Some(ratio),
        target: if with_target {
            format!("≤ {STATUS_TARGET:.1}×")
        } else {
            "(growth check)".into()
        },
        met: with_target.then_some(ratio <= STATUS_TARGET),
        runs: format!("{} ({})", ours.len(), spread(&ours, fmt_ms)),
    });
    report.note(format!(
        "`mcp status` with {size} components: {} podman call(s) per status (median), \
         {} more than one `podman ps`.",
        median(&podman_calls).unwrap_or(f64::NAN),
        fmt_ms(mine - base)
    ));
    Ok(())
}

/// Median VmRSS and the peak (VmHWM) of five samples a second apart, in KiB.
fn rss_median(agent: &Agent<'_>) -> anyhow::Result<(f64, f64)> {
    let mut rss = Vec::new();
    let mut hwm = 0.0_f64;
    for _ in 0..5 {
        let (now, peak) = procfs::memory_kib(agent.pid()?)?;
        rss.push(now as f64);
        hwm = hwm.max(peak as f64);
        interrupt::sleep(Duration::from_secs(1))?;
    }
    Ok((median(&rss).unwrap_or(f64::NAN), hwm))
}

/// CPU milliseconds per minute over the measuring window.
struct CpuMinute {
    /// The agent's own.
    agent: f64,
    /// The podman processes it ran that ended (CLI calls, API services that exited idle).
    podman_cli: f64,
    /// The podman API services it runs that are running (their own and their children's).
    podman_service: f64,
    /// Its fresh listings of podman outside the window, per minute.
    relists: f64,
}

impl CpuMinute {
    fn total(&self) -> f64 {
        self.agent + self.podman_cli + self.podman_service + self.relists
    }

    fn text(&self) -> String {
        format!(
            "{} ({} agent, {} podman processes ended, {} podman service running, {} relists)",
            fmt_ms(self.total()),
            fmt_ms(self.agent),
            fmt_ms(self.podman_cli),
            fmt_ms(self.podman_service),
            fmt_ms(self.relists)
        )
    }
}

/// Processes and the CPU ticks each has spent so far.
type Spent = Vec<(i32, u64)>;

/// The agent's CPU per minute over the measuring window, with the podman work it causes.
/// Its API service exits when idle and is started again: each one's share is counted once,
/// wherever its time shows (its own while it runs, the agent's children's once reaped).
fn cpu_per_minute(ctx: &Ctx<'_>, agent: &Agent<'_>) -> anyhow::Result<CpuMinute> {
    let pid = agent.pid()?;
    let state = agent.state_dir().to_string_lossy().into_owned();
    // Running services and ended, unreaped children: ticks each has spent so far.
    let podman_now = || -> (Spent, Spent) {
        let running = testkit::processes(&["system service", &state])
            .into_iter()
            .filter_map(|p| {
                let cpu = procfs::cpu(&p.to_string()).ok()?;
                Some((p, cpu.own + cpu.children))
            })
            .collect();
        (running, procfs::unreaped_children(pid))
    };
    let before = procfs::cpu(&pid.to_string())?;
    let (running_before, unreaped_before) = podman_now();
    let start = Instant::now();
    interrupt::sleep(Duration::from_secs(ctx.args.monitor_secs.max(1)))?;
    let after = procfs::cpu(&pid.to_string())?;
    let (running_after, unreaped_after) = podman_now();
    let spent_before = |p: i32| {
        running_before
            .iter()
            .chain(&unreaped_before)
            .find(|(q, _)| *q == p)
            .map_or(0, |(_, ticks)| *ticks)
    };
    // Running now: what it spent in the window.
    let running: u64 = running_after
        .iter()
        .map(|(p, ticks)| ticks.saturating_sub(spent_before(*p)))
        .sum();
    // Ended, not reaped yet: likewise (its time is in no other figure).
    let unreaped: u64 = unreaped_after
        .iter()
        .map(|(p, ticks)| ticks.saturating_sub(spent_before(*p)))
        .sum();
    // Reaped in the window: all its time landed in the agent's children's, including what
    // it spent before the window.
    let gone = |p: &i32| {
        !running_after
            .iter()
            .chain(&unreaped_after)
            .any(|(q, _)| q == p)
    };
    let reaped_before_window: u64 = running_before
        .iter()
        .chain(&unreaped_before)
        .filter(|(p, _)| gone(p))
        .map(|(_, ticks)| *ticks)
        .sum();
    let per_minute = 60_000.0 / ms(start.elapsed()) * procfs::ms_per_tick();
    let children = (after.children - before.children).saturating_sub(reaped_before_window);
    Ok(CpuMinute {
        agent: (after.own - before.own) as f64 * per_minute,
        podman_cli: (children + unreaped) as f64 * per_minute,
        podman_service: running as f64 * per_minute,
        relists: 0.0,
    })
}

/// `podman kill` of a running component until podman shows it running again (the monitor's
/// restart), each timed; `samples` components of the fleet, one after the other.
fn kill_to_running(ctx: &Ctx<'_>, samples: usize) -> anyhow::Result<Vec<f64>> {
    let mut times = Vec::new();
    for i in 0..samples {
        interrupt::check()?;
        let name = format!("fleet-{i:03}-c0");
        let started_at = |sb: &crate::sandbox::Sandbox| {
            sb.podman(&[
                "inspect",
                "--format",
                "{{.State.Running}} {{.State.StartedAt}}",
                &name,
            ])
        };
        let before = started_at(ctx.sb)?;
        let start = Instant::now();
        ctx.sb.podman(&["kill", &name])?;
        loop {
            let now = started_at(ctx.sb)?;
            if now.starts_with("true") && now != before {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("{name} was not running again within 60 s of podman kill");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        times.push(ms(start.elapsed()));
    }
    Ok(times)
}

/// CPU time of the listing the monitor needs, run by hand as often as the monitor runs it
/// in a minute.
fn raw_listing_cpu_per_minute(ctx: &Ctx<'_>) -> anyhow::Result<f64> {
    let per_minute = (60.0 / MONITOR_INTERVAL.as_secs_f64()).round();
    let before = procfs::cpu("self")?;
    for _ in 0..per_minute as usize {
        ctx.sb.podman(&PS_ARGS)?;
    }
    let after = procfs::cpu("self")?;
    Ok((after.children - before.children) as f64 * procfs::ms_per_tick())
}
