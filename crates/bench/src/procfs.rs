//! What /proc says about a process: resident memory and CPU time.

use anyhow::Context;

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
pub fn memory_kib(pid: i32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{path} has no {name}"))?;
        line.split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("{path}: cannot read {line:?}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// CPU time in clock ticks: the process's own (utime + stime) and that of its children
/// it has waited for (cutime + cstime).
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    pub own: u64,
    pub children: u64,
}

/// `pid`'s CPU times from /proc/PID/stat ("self" for this process).
pub fn cpu(pid: &str) -> anyhow::Result<Cpu> {
    Ok(stat(pid)?.cpu)
}

/// What /proc/PID/stat says of a process.
struct Stat {
    state: char,
    parent: i32,
    cpu: Cpu,
}

fn stat(pid: &str) -> anyhow::Result<Stat> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name, which is in parentheses and may hold spaces: field 3
    // (state) is the first, field 4 the parent; utime, stime, cutime, cstime are 14–17.
    let rest = text
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("{path}: unexpected format"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<&str> {
        fields
            .get(i - 3)
            .copied()
            .with_context(|| format!("{path}: field {i}"))
    };
    let tick = |i: usize| -> anyhow::Result<u64> {
        field(i)?
            .parse()
            .with_context(|| format!("{path}: field {i}"))
    };
    Ok(Stat {
        state: field(3)?.chars().next().unwrap_or('?'),
        parent: field(4)?
            .parse()
            .with_context(|| format!("{path}: field 4"))?,
        cpu: Cpu {
            own: tick(14)? + tick(15)?,
            children: tick(16)? + tick(17)?,
        },
    })
}

/// The children of `parent` that ended and are not waited for yet (zombies), with their CPU
/// ticks: not in the parent's children time until it reaps them.
pub fn unreaped_children(parent: i32) -> Vec<(i32, u64)> {
    testkit::pids()
        .filter_map(|pid| {
            let stat = stat(&pid.to_string()).ok()?;
            (stat.parent == parent && stat.state == 'Z')
                .then_some((pid, stat.cpu.own + stat.cpu.children))
        })
        .collect()
}

/// Milliseconds per clock tick.
pub fn ms_per_tick() -> f64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)
        .unwrap_or(100);
    1000.0 / hz as f64
}
