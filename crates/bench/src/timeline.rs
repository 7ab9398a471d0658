//! Where an operation's time went, from the agent's debug log: the runtime logs one line
//! per podman call ("podman call subcommand=ps elapsed_us=…") and per VM phase ("vm phase
//! phase=ops-build elapsed_us=…"), each stamped with the time it ended.

use std::collections::BTreeMap;

/// One timed step: what it was, when it ended (seconds into the day) and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub what: String,
    pub end_s: f64,
    pub ms: f64,
}

/// Every timed step in `log`, in order.
pub fn steps(log: &str) -> Vec<Step> {
    log.lines().filter_map(step).collect()
}

fn step(line: &str) -> Option<Step> {
    let (key, prefix, rest) = match line.split_once("podman call ") {
        Some((_, rest)) => ("subcommand=", "podman ", rest),
        None => ("phase=", "vm ", line.split_once("vm phase ")?.1),
    };
    let what = rest.split_once(key)?.1;
    let (what, elapsed) = what.split_once(" elapsed_us=")?;
    let us: f64 = elapsed.split_whitespace().next()?.parse().ok()?;
    Some(Step {
        what: format!("{prefix}{what}"),
        end_s: seconds_of_day(line)?,
        ms: us / 1000.0,
    })
}

/// The time of day of a line stamped like `2026-01-01T02:14:38.804469Z`.
fn seconds_of_day(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let time = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Per step name: how many times it ran and its total milliseconds.
pub fn totals(steps: &[Step]) -> BTreeMap<String, (usize, f64)> {
    let mut map: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for step in steps {
        let entry = map.entry(step.what.clone()).or_default();
        entry.0 += 1;
        entry.1 += step.ms;
    }
    map
}

/// Milliseconds of wall time during which at least one of `steps` ran (steps that ran at
/// the same time count once).
pub fn covered_ms(steps: &[&Step]) -> f64 {
    let mut spans: Vec<(f64, f64)> = steps
        .iter()
        .map(|s| (s.end_s - s.ms / 1000.0, s.end_s))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    total * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_podman_and_vm_lines() {
        let log = "2025-01-01T00:00:01.100000Z DEBUG runtime::podman::command: podman call \
                   subcommand=image exists elapsed_us=31250\n\
                   2025-01-01T00:00:01.200000Z  INFO agent: something else\n\
                   2025-01-01T01:00:00.300000Z DEBUG runtime::qemu: vm phase phase=ops-build \
                   elapsed_us=700000 vm=x\n";
        let steps = steps(log);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[0].what, "podman image exists");
        assert!((steps[0].ms - 31.25).abs() < 1e-9);
        assert!((steps[0].end_s - 1.1).abs() < 1e-9);
        assert_eq!(steps[1].what, "vm ops-build");
        assert!((steps[1].end_s - 3600.3).abs() < 1e-9);
    }

    #[test]
    fn overlapping_steps_count_once() {
        let step = |end_s: f64, ms: f64| Step {
            what: String::new(),
            end_s,
            ms,
        };
        // [0.0, 0.1] and [0.05, 0.12] overlap; [0.2, 0.25] stands alone.
        let steps = [step(0.1, 100.0), step(0.12, 70.0), step(0.25, 50.0)];
        let refs: Vec<&Step> = steps.iter().collect();
        assert!((covered_ms(&refs) - 170.0).abs() < 1e-6);
    }
}
