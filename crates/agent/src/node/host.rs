//! Host facts: uptime, load, memory from /proc; online CPUs and disk space from libc.
//!
//! Read straight from /proc (with `nix` for sysconf and statvfs) rather than through the
//! `sysinfo` crate: the agent is Linux-only already (podman, KVM), these are three short
//! files, `MemAvailable` is the figure we want and is in /proc/meminfo as is, and the parsers
//! are pure functions a unit test can feed; `sysinfo` would add a dependency tree and a
//! refresh model for the same numbers.

use std::path::{Path, PathBuf};

/// What the host has, at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFacts {
    pub uptime_secs: u64,
    pub cpu_count: u32,
    /// 1, 5 and 15 minute load averages.
    pub load_avg: [f64; 3],
    pub memory_total_bytes: u64,
    /// The kernel's estimate of memory available to new work without swapping.
    pub memory_available_bytes: u64,
    pub disk_total_bytes: u64,
    /// Space an unprivileged writer can still use (statvfs `f_bavail`, what `df` shows).
    pub disk_free_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("cannot stat the filesystem of {path}: {source}")]
    Statvfs {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("cannot count online CPUs: {0}")]
    Cpus(String),
}

/// Collects every fact it can; each one that fails leaves its field at zero and adds an error.
pub fn collect(state_dir: &Path) -> (HostFacts, Vec<HostError>) {
    let mut facts = HostFacts::default();
    let mut errors = Vec::new();
    match read_proc("/proc/uptime", parse_uptime) {
        Ok(secs) => facts.uptime_secs = secs,
        Err(e) => errors.push(e),
    }
    match read_proc("/proc/loadavg", parse_loadavg) {
        Ok(load) => facts.load_avg = load,
        Err(e) => errors.push(e),
    }
    match read_proc("/proc/meminfo", parse_meminfo) {
        Ok((total, available)) => {
            facts.memory_total_bytes = total;
            facts.memory_available_bytes = available;
        }
        Err(e) => errors.push(e),
    }
    match cpu_count() {
        Ok(n) => facts.cpu_count = n,
        Err(e) => errors.push(e),
    }
    match disk(state_dir) {
        Ok((total, free)) => {
            facts.disk_total_bytes = total;
            facts.disk_free_bytes = free;
        }
        Err(e) => errors.push(e),
    }
    (facts, errors)
}

fn read_proc<T>(path: &str, parse: fn(&str) -> Result<T, String>) -> Result<T, HostError> {
    let text = std::fs::read_to_string(path).map_err(|source| HostError::Read {
        path: path.into(),
        source,
    })?;
    parse(&text).map_err(|detail| HostError::Parse {
        path: path.into(),
        detail,
    })
}

/// `/proc/uptime`: "1736.46 1878.68" (seconds up, seconds idle).
fn parse_uptime(text: &str) -> Result<u64, String> {
    let first = text.split_whitespace().next().ok_or("empty")?;
    let secs: f64 = first.parse().map_err(|e| format!("{first:?}: {e}"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{first:?} is not a duration"));
    }
    // Whole seconds are all node status shows; the cast saturates and secs is >= 0.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(secs as u64)
}

/// `/proc/loadavg`: "0.12 0.30 0.25 3/101 16270".
fn parse_loadavg(text: &str) -> Result<[f64; 3], String> {
    let mut fields = text.split_whitespace();
    let mut load = [0.0; 3];
    for slot in &mut load {
        let field = fields.next().ok_or("fewer than 3 fields")?;
        *slot = field.parse().map_err(|e| format!("{field:?}: {e}"))?;
    }
    Ok(load)
}

/// `/proc/meminfo`: `MemTotal` and `MemAvailable`, in bytes (the file says kB, meaning KiB).
fn parse_meminfo(text: &str) -> Result<(u64, u64), String> {
    let field = |name: &str| -> Result<u64, String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .ok_or_else(|| format!("no {name} line"))?;
        let mut parts = line.split_whitespace();
        let value: u64 = parts
            .next()
            .ok_or_else(|| format!("{name} has no value"))?
            .parse()
            .map_err(|e| format!("{name}: {e}"))?;
        match parts.next() {
            Some("kB") => value
                .checked_mul(1024)
                .ok_or_else(|| format!("{name} overflows")),
            None => Ok(value),
            Some(unit) => Err(format!("{name}: unknown unit {unit:?}")),
        }
    };
    Ok((field("MemTotal")?, field("MemAvailable")?))
}

fn cpu_count() -> Result<u32, HostError> {
    use nix::unistd::{SysconfVar, sysconf};
    match sysconf(SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(n)) if n > 0 => u32::try_from(n).map_err(|e| HostError::Cpus(e.to_string())),
        Ok(other) => Err(HostError::Cpus(format!("sysconf answered {other:?}"))),
        Err(e) => Err(HostError::Cpus(e.to_string())),
    }
}

/// Total and free bytes of the filesystem holding `path`.
fn disk(path: &Path) -> Result<(u64, u64), HostError> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(|source| HostError::Statvfs {
        path: path.to_path_buf(),
        source,
    })?;
    // Block counts are in units of the fragment size, not the (preferred I/O) block size.
    let unit = stat.fragment_size();
    Ok((
        stat.blocks().saturating_mul(unit),
        stat.blocks_available().saturating_mul(unit),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn proc_files_parse() {
        assert_eq!(parse_uptime("1736.46 1878.68\n"), Ok(1736));
        assert!(parse_uptime("").is_err());
        assert!(parse_uptime("x 1").is_err());
        assert_eq!(
            parse_loadavg("0.12 0.30 0.25 3/101 16270\n"),
            Ok([0.12, 0.30, 0.25])
        );
        assert!(parse_loadavg("0.12 0.30").is_err());
        let meminfo = "MemTotal:       24684084 kB\nMemFree:        20678152 kB\n\
                       MemAvailable:   24047328 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Ok((24_684_084 * 1024, 24_047_328 * 1024))
        );
        let err = parse_meminfo("MemTotal: 1 kB\n").unwrap_err();
        assert!(err.contains("MemAvailable"), "{err}");
    }

    #[test]
    fn this_host_has_plausible_facts() {
        let dir = tempfile::tempdir().unwrap();
        let (facts, errors) = collect(dir.path());
        assert!(errors.is_empty(), "{errors:?}");
        assert!(facts.cpu_count >= 1);
        assert!(facts.memory_total_bytes > 0);
        assert!(facts.memory_available_bytes <= facts.memory_total_bytes);
        assert!(facts.disk_total_bytes > 0);
        assert!(facts.disk_free_bytes <= facts.disk_total_bytes);
        assert!(facts.load_avg.iter().all(|l| *l >= 0.0));
    }

    #[test]
    fn a_missing_state_dir_is_an_error_naming_it() {
        let (facts, errors) = collect(Path::new("/nonexistent/mcp-state"));
        assert_eq!(facts.disk_total_bytes, 0);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].to_string().contains("/nonexistent/mcp-state"));
    }
}
