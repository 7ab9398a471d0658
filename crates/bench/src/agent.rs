//! One `mcp-agent --dev` process in the run directory, and the `mcp` CLI pointed at it.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::interrupt;
use crate::sandbox::{Sandbox, checked};

/// How an agent is started.
#[derive(Clone, Default)]
pub struct AgentOptions {
    /// `--monitor-interval-ms`; the agent's default (5 s) when `None`.
    pub monitor_interval_ms: Option<u64>,
    /// Contents of a `--settings` file; `OPS_HOME` is replaced by a directory of the agent's.
    pub settings: Option<String>,
    pub env: Vec<(String, String)>,
    /// RUST_LOG; "info" (the agent's default) when empty.
    pub log: String,
}

pub struct Agent<'a> {
    sb: &'a Sandbox,
    pub dir: PathBuf,
    options: AgentOptions,
    child: Option<Child>,
}

impl<'a> Agent<'a> {
    /// Waits until the agent's podman API service has exited for want of requests.
    pub fn wait_for_idle_podman(&self, limit: std::time::Duration) -> anyhow::Result<()> {
        let state = self.state_dir().to_string_lossy().into_owned();
        let started = std::time::Instant::now();
        while !testkit::processes(&["system service", &state]).is_empty() {
            if started.elapsed() > limit {
                anyhow::bail!("the agent's podman service did not exit when idle within {limit:?}");
            }
            crate::interrupt::sleep(std::time::Duration::from_millis(200))?;
        }
        Ok(())
    }

    /// Starts an agent in `<run dir>/<name>` and waits until it listens.
    pub fn start(sb: &'a Sandbox, name: &str, options: AgentOptions) -> anyhow::Result<Self> {
        let dir = sb.subdir(name)?;
        let mut agent = Self {
            sb,
            dir,
            options,
            child: None,
        };
        agent.spawn()?;
        Ok(agent)
    }

    /// Stops the agent (its workloads keep running) and starts it again with `options`.
    pub fn restart(&mut self, options: AgentOptions) -> anyhow::Result<()> {
        self.stop()?;
        self.options = options;
        self.spawn()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new(self.sb.bins.join("mcp-agent"));
        cmd.arg("--dev")
            .arg("--dir")
            .arg(self.dir.join("agent"))
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(ms) = self.options.monitor_interval_ms {
            cmd.arg("--monitor-interval-ms").arg(ms.to_string());
        }
        if let Some(settings) = &self.options.settings {
            let ops_home = self.dir.join("ops-home");
            std::fs::create_dir_all(&ops_home).context("creating the ops home")?;
            let path = self.dir.join("settings.toml");
            let text = settings.replace("OPS_HOME", &ops_home.to_string_lossy());
            std::fs::write(&path, text).context("writing the agent's settings")?;
            cmd.arg("--settings").arg(path);
        }
        for arg in self.sb.podman_global_args() {
            cmd.arg(format!("--podman-arg={arg}"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("opening the agent's log")?;
        let level = if self.options.log.is_empty() {
            "info"
        } else {
            &self.options.log
        };
        let mut child = cmd
            .env("CONTAINERS_CONF", self.sb.containers_conf())
            .env("RUST_LOG", level)
            .env("NO_COLOR", "1")
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("starting mcp-agent")?;
        let stdout = child.stdout.take().context("the agent's stdout")?;
        self.child = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("mcp-agent listening on ") {
                    let _ = tx.send(());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            interrupt::check()?;
            if rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("mcp-agent exited ({status}) at start:\n{}", self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("mcp-agent did not listen within 60 s:\n{}", self.log_tail());
            }
        }
    }

    /// SIGTERM, then SIGKILL after 15 s; the workloads keep running.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).context("agent pid")?);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if child.try_wait().context("waiting for mcp-agent")?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        child.wait().context("waiting for mcp-agent")?;
        bail!("mcp-agent ignored SIGTERM for 15 s; killed it")
    }

    pub fn pid(&self) -> anyhow::Result<i32> {
        let child = self.child.as_ref().context("the agent is not running")?;
        Ok(i32::try_from(child.id())?)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("agent.log")
    }

    /// The log's current length, to read what an operation logs from there on.
    pub fn log_offset(&self) -> u64 {
        std::fs::metadata(self.log_path()).map_or(0, |m| m.len())
    }

    /// What the agent logged since `offset`.
    pub fn log_since(&self, offset: u64) -> String {
        let text = std::fs::read(self.log_path()).unwrap_or_default();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(text.len());
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    fn log_tail(&self) -> String {
        let text = self.log_since(0);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("agent/state")
    }

    /// The CLI config `--dev` wrote for this agent.
    pub fn cli_config(&self) -> PathBuf {
        self.dir.join("agent/mcp.toml")
    }

    /// The CLI, configured for this agent, not yet run.
    pub fn mcp_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.sb.bins.join("mcp"));
        cmd.args(args)
            .env("MCP_CONFIG", self.cli_config())
            .stdin(Stdio::null());
        cmd
    }

    pub fn mcp_output(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.mcp_command(args).output().context("running mcp")
    }

    /// Runs the CLI; its stdout, or an error with its stderr and the agent's last log lines.
    pub fn mcp(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.mcp_output(args)?;
        checked(&format!("mcp {}", args.join(" ")), out)
            .with_context(|| format!("agent log ends with:\n{}", self.log_tail()))
    }

    /// Writes a service definition into the agent's directory; its path.
    pub fn definition(&self, name: &str, body: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Waits for the accelerator probe's verdict ("kvm", "tcg" or "none").
    pub fn accelerator(&self) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.mcp(&["node", "status", "--json"])?;
            let json: serde_json::Value =
                serde_json::from_str(&text).context("parsing `mcp node status --json`")?;
            let accel = json
                .pointer("/nodes/0/accelerator")
                .and_then(|v| v.as_str())
                .with_context(|| format!("no accelerator in node status: {text}"))?
                .to_string();
            if accel != "probing" {
                return Ok(accel);
            }
            if Instant::now() > deadline {
                bail!("the accelerator probe gave no verdict within 60 s");
            }
            interrupt::sleep(Duration::from_millis(250))?;
        }
    }
}

impl Drop for Agent<'_> {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
