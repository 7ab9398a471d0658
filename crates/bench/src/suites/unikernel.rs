//! Unikernel deploy → first HTTP 200 against the same QEMU command line started by hand:
//! the argv the agent recorded in `<state>/vm/<name>/meta.json`, on a copy of the disk image
//! it built, another port and a directory of our own.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Ctx, MONITOR_OFF_MS, Timing, breakdown, free_port, time_to_200};
use crate::agent::{Agent, AgentOptions};
use crate::interrupt;
use crate::report::{Report, Row};
use crate::stats::{fmt_ms, median, spread};
use crate::timeline::{self, Step};

/// Issue 13: a redeploy within 5 % of the same QEMU started by hand.
pub const TARGET: f64 = 1.05;
const LIMIT: Duration = Duration::from_secs(90);

pub fn run(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let standin = ctx.sb.standin()?;
    let settings = format!(
        "[qemu]\nops = \"{}\"\nops_home = \"OPS_HOME\"\npowerdown_timeout_ms = 300\n",
        ctx.sb.repo.join("tests/fixtures/ops-standin/ops").display()
    );
    let agent = Agent::start(
        ctx.sb,
        "vm",
        AgentOptions {
            settings: Some(settings),
            env: vec![(
                "MCP_OPS_STANDIN_DIR".into(),
                standin.to_string_lossy().into_owned(),
            )],
            log: "info,runtime=debug,podman_cli=debug".into(),
            monitor_interval_ms: Some(MONITOR_OFF_MS),
        },
    )?;
    let accel = agent.accelerator()?;
    report.machine.accelerator = Some(accel.clone());
    let mut ours: Vec<Timing> = Vec::new();
    let mut raw: Vec<Timing> = Vec::new();
    let mut steps = Vec::new();
    let mut recorded: Option<Recorded> = None;
    // Run 0 warms up (the ELF extraction is cached by image id from then on) and is not
    // counted. The order alternates: in odd runs the by-hand QEMU boots the image the
    // previous deploy built before the next deploy.
    for i in 0..=ctx.args.vm_runs {
        eprintln!("mcp-bench: unikernel run {i}/{}", ctx.args.vm_runs);
        let hand_first = i % 2 == 1 && recorded.is_some();
        if hand_first && let Some(rec) = &recorded {
            let timing = raw_once(ctx, rec, i)?;
            if i > 0 {
                raw.push(timing);
            }
        }
        let (timing, run_steps, rec) = mcp_once(ctx, &agent, i)?;
        if i > 0 {
            ours.push(timing);
            steps.push((timing.cmd_ms, run_steps));
        }
        if !hand_first {
            let timing = raw_once(ctx, &rec, i)?;
            if i > 0 {
                raw.push(timing);
            }
        }
        recorded = Some(rec);
    }
    let firsts = |t: &[Timing]| t.iter().map(|t| t.first_200_ms).collect::<Vec<f64>>();
    let (ours_ms, raw_ms) = (firsts(&ours), firsts(&raw));
    let mine = median(&ours_ms).unwrap_or(f64::NAN);
    let base = median(&raw_ms).unwrap_or(f64::NAN);
    let ratio = mine / base;
    report.row(Row {
        figure: format!("Deploy → first HTTP 200, unikernel ({accel}, stand-in ops)"),
        mcp: fmt_ms(mine),
        baseline: format!("{} (same `qemu-system-x86_64` argv by hand)", fmt_ms(base)),
        ratio: Some(ratio),
        target: format!("≤ {TARGET:.2}×"),
        met: Some(ratio <= TARGET),
        runs: format!("{} ({})", ours.len(), spread(&ours_ms, fmt_ms)),
    });
    report.note(format!(
        "Unikernel deploy: the agent's time by step (medians of {} runs): {}. \
         The by-hand QEMU answered after {} (median; {}).",
        steps.len(),
        breakdown(&steps),
        fmt_ms(base),
        spread(&raw_ms, fmt_ms)
    ));
    Ok(())
}

/// What the agent launched: its QEMU argv, and a copy of the disk image it built.
struct Recorded {
    argv: Vec<String>,
    /// The VM's directory and image as named in `argv`.
    vm_dir: String,
    image: String,
    port: u16,
    disk: PathBuf,
}

fn mcp_once(
    ctx: &Ctx<'_>,
    agent: &Agent<'_>,
    i: usize,
) -> anyhow::Result<(Timing, Vec<Step>, Recorded)> {
    let port = free_port()?;
    let name = format!("bench-vm-{i}");
    let body = format!(
        "name = \"{name}\"\nnode = \"local\"\n\n[[components]]\nname = \"web\"\n\
         image = \"{}\"\nruntime = \"unikernel\"\nmemory_mb = 256\n\
         ports = [\"127.0.0.1:{port}:8080\"]\n",
        ctx.sb.image
    );
    let def = agent.definition(&name, &body)?;
    let offset = agent.log_offset();
    let def = def.to_string_lossy();
    let timing = time_to_200(
        ctx,
        "mcp deploy",
        agent.mcp_command(&["deploy", &def]),
        port,
        LIMIT,
    )?;
    let steps = timeline::steps(&agent.log_since(offset));
    let recorded = record(ctx, agent, &format!("{name}-web"), port)?;
    agent.mcp(&["undeploy", &name])?;
    Ok((timing, steps, recorded))
}

/// Reads the VM's argv from its `meta.json` and copies its disk image.
fn record(ctx: &Ctx<'_>, agent: &Agent<'_>, instance: &str, port: u16) -> anyhow::Result<Recorded> {
    let vm_dir = agent.state_dir().join("vm").join(instance);
    let meta_path = vm_dir.join("meta.json");
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&meta_path).with_context(|| format!("reading {}", meta_path.display()))?,
    )
    .with_context(|| format!("parsing {}", meta_path.display()))?;
    let argv: Vec<String> = meta["argv"]
        .as_array()
        .with_context(|| format!("{} has no argv", meta_path.display()))?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let image = agent
        .state_dir()
        .join("images")
        .join(format!("{instance}.img"));
    let disk = ctx.sb.dir.join("qemu-by-hand.img");
    std::fs::copy(&image, &disk).with_context(|| format!("copying {}", image.display()))?;
    Ok(Recorded {
        argv,
        vm_dir: vm_dir.to_string_lossy().into_owned(),
        image: image.to_string_lossy().into_owned(),
        port,
        disk,
    })
}

/// Starts QEMU by hand with the recorded argv, rewritten to a directory, disk copy and port
/// of our own; waits for the 200, then kills it.
fn raw_once(ctx: &Ctx<'_>, rec: &Recorded, i: usize) -> anyhow::Result<Timing> {
    interrupt::check()?;
    let dir = ctx.sb.subdir(&format!("qemu-by-hand-{i}"))?;
    let disk = dir.join("disk.img");
    std::fs::copy(&rec.disk, &disk).context("copying the disk image")?;
    let port = free_port()?;
    let (old_fwd, new_fwd) = (format!(":{}-:", rec.port), format!(":{port}-:"));
    let (disk_text, dir_text) = (disk.to_string_lossy(), dir.to_string_lossy());
    let argv: Vec<String> = rec
        .argv
        .iter()
        .map(|arg| {
            arg.replace(&rec.image, &disk_text)
                .replace(&rec.vm_dir, &dir_text)
                .replace(&old_fwd, &new_fwd)
        })
        .collect();
    if !argv.iter().any(|a| a.contains(&new_fwd))
        || !argv.iter().any(|a| a.contains(disk_text.as_ref()))
    {
        bail!("could not rewrite the recorded argv: {:?}", rec.argv);
    }
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(&argv).current_dir(&dir).stdin(Stdio::null());
    let timing = time_to_200(ctx, "qemu-system-x86_64 (by hand)", cmd, port, LIMIT);
    kill_vm(&dir)?;
    timing
}

fn kill_vm(dir: &Path) -> anyhow::Result<()> {
    let dir_text = dir.to_string_lossy();
    for pid in testkit::processes(&["qemu-system", &dir_text]) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for _ in 0..100 {
        if testkit::processes(&["qemu-system", &dir_text]).is_empty() {
            return std::fs::remove_dir_all(dir)
                .with_context(|| format!("removing {}", dir.display()));
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    bail!("QEMU started by hand in {} did not die", dir.display())
}
