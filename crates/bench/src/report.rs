//! The results: one row per figure (ours, the baseline, the ratio, the target), notes on
//! where time went, and the machine they were measured on; as Markdown and as JSON.

use serde::Serialize;
use std::process::Command;

use crate::sandbox::Sandbox;

#[derive(Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub memory_mib: u64,
    pub kernel: String,
    pub podman: String,
    pub qemu: String,
    /// Filled in by the unikernel suite (the agent's probe verdict).
    pub accelerator: Option<String>,
    /// 1-minute load average when the run started: other work on the machine skews timings.
    pub load_at_start: String,
}

impl Machine {
    pub fn read(sb: &Sandbox) -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let first_line = |mut cmd: Command| {
            cmd.output()
                .ok()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "not found".into())
        };
        let mut podman = sb.podman_command(&["version", "--format", "{{.Client.Version}}"]);
        podman.stderr(std::process::Stdio::null());
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.arg("--version");
        Self {
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            memory_mib: memory_kib / 1024,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
            podman: first_line(podman),
            qemu: first_line(qemu),
            accelerator: None,
            load_at_start: std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_string(),
        }
    }
}

#[derive(Serialize)]
pub struct Row {
    pub figure: String,
    pub mcp: String,
    pub baseline: String,
    /// mcp / baseline.
    pub ratio: Option<f64>,
    pub target: String,
    /// Whether the target is met; `None` when the figure has no target.
    pub met: Option<bool>,
    /// Runs behind the median, and the spread.
    pub runs: String,
}

#[derive(Serialize)]
pub struct Report {
    pub machine: Machine,
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(machine: Machine) -> Self {
        Self {
            machine,
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn row(&mut self, row: Row) {
        eprintln!(
            "mcp-bench: {}: mcp {} / baseline {}{}",
            row.figure,
            row.mcp,
            row.baseline,
            row.ratio.map(|r| format!(" = {r:.2}×")).unwrap_or_default()
        );
        self.rows.push(row);
    }

    pub fn note(&mut self, note: String) {
        eprintln!("mcp-bench: {note}");
        self.notes.push(note);
    }

    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        out.push_str(&format!(
            "\nMachine: {} CPUs, {} MiB, Linux {}, podman {}, {}, accelerator {}, load {} at start\n\n",
            m.cpus,
            m.memory_mib,
            m.kernel,
            m.podman,
            m.qemu,
            m.accelerator.as_deref().unwrap_or("not measured"),
            m.load_at_start
        ));
        out.push_str("| Figure | mcp | Baseline | Ratio | Target | Met | Runs (spread of mcp) |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r.figure,
                r.mcp,
                r.baseline,
                r.ratio
                    .map(|v| format!("{v:.2}×"))
                    .unwrap_or_else(|| "–".into()),
                r.target,
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "–",
                },
                r.runs
            ));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                out.push_str(&format!("- {note}\n"));
            }
        }
        out
    }

    pub fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }
}
