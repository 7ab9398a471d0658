//! Running the podman CLI: argument vectors (never a shell), CONTAINERS_CONF selection,
//! stderr captured into errors, values passed on stdin, and long commands (build, push)
//! streamed line by line with their tail kept for errors. Shared by the node's runtime and
//! the operator's image builds.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Receives a command's output lines as they come (progress on a terminal).
pub type OutputSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// How podman is invoked.
#[derive(Debug, Clone)]
pub struct PodmanCli {
    pub binary: PathBuf,
    /// Arguments placed before every subcommand, e.g. `--root`/`--runroot` for a private store.
    pub global_args: Vec<String>,
    /// A containers.conf selected through `CONTAINERS_CONF` for every podman call.
    pub containers_conf: Option<PathBuf>,
}

impl Default for PodmanCli {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("podman"),
            global_args: Vec::new(),
            containers_conf: None,
        }
    }
}

/// A podman call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PodmanError {
    #[error("cannot run {binary}: {source}")]
    Unavailable {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed (exit {}): {stderr}", code_text(*.code))]
    Command {
        what: String,
        /// `None` when podman was killed by a signal.
        code: Option<i32>,
        stderr: String,
    },
    /// A streamed command (build, push) failed; `last_lines` is the end of its output, which
    /// is where builders put the reason.
    #[error("{what} failed (exit {}); its last output:\n{last_lines}", code_text(*.code))]
    Output {
        what: String,
        code: Option<i32>,
        last_lines: String,
    },
}

fn code_text(code: Option<i32>) -> String {
    code.map_or_else(|| "by a signal".to_string(), |c| c.to_string())
}

impl PodmanError {
    /// podman's stderr, when the call ran and failed.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            Self::Command { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

/// How many of a streamed command's last lines a failure shows.
const TAIL_LINES: usize = 15;

/// Runs podman as configured.
#[derive(Debug, Clone)]
pub struct Podman {
    config: PodmanCli,
}

impl Podman {
    pub fn new(config: PodmanCli) -> Self {
        Self { config }
    }

    pub fn binary(&self) -> &std::path::Path {
        &self.config.binary
    }

    /// A ready-to-spawn command with the global arguments in place.
    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(&self.config.binary);
        cmd.args(&self.config.global_args);
        cmd.args(args.iter().map(AsRef::as_ref));
        if let Some(conf) = &self.config.containers_conf {
            cmd.env("CONTAINERS_CONF", conf);
        }
        cmd.stdin(Stdio::null());
        cmd.kill_on_drop(true);
        cmd
    }

    /// Runs podman to completion; its stdout on success, its stderr in the error otherwise.
    pub async fn output(&self, what: &str, args: &[&str]) -> Result<String, PodmanError> {
        stdout_or_error(what, self.timed(args).await?)
    }

    /// `output` with `input` written to podman's stdin (secret values, passwords: never on
    /// a command line, where any local user could read them from /proc).
    pub async fn output_with_input(
        &self,
        what: &str,
        args: &[&str],
        input: &[u8],
    ) -> Result<String, PodmanError> {
        use tokio::io::AsyncWriteExt;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| self.unavailable(source))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A podman that exits before reading shows its reason on stderr, below.
            if let Err(e) = stdin.write_all(input).await {
                tracing::debug!(error = %e, what, "podman did not read its stdin");
            }
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|source| self.unavailable(source))?;
        stdout_or_error(what, out)
    }

    /// Runs a podman predicate (`image exists`, ...): exit 0 is true, 1 is false.
    pub async fn succeeds(&self, args: &[&str]) -> Result<bool, PodmanError> {
        let out = self.timed(args).await?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            code => Err(PodmanError::Command {
                what: format!("podman {}", args.join(" ")),
                code,
                stderr: clean_stderr(&out.stderr),
            }),
        }
    }

    /// Runs podman to completion, handing every line of stdout and stderr to `sink` as it
    /// comes; a failure carries the last lines (builders print the reason last).
    pub async fn stream(
        &self,
        what: &str,
        args: &[String],
        sink: OutputSink<'_>,
    ) -> Result<(), PodmanError> {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| self.unavailable(source))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(self.unavailable(std::io::Error::other(
                "podman's output pipes were not opened",
            )));
        };
        let mut out = BufReader::new(stdout).lines();
        let mut err = BufReader::new(stderr).lines();
        let mut tail = VecDeque::with_capacity(TAIL_LINES);
        let mut keep = |line: String| {
            sink(&line);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        };
        let (mut out_open, mut err_open) = (true, true);
        while out_open || err_open {
            // `next_line` is cancel-safe, so whichever pipe has a line first wins the select.
            tokio::select! {
                line = out.next_line(), if out_open => match line {
                    Ok(Some(line)) => keep(line),
                    _ => out_open = false,
                },
                line = err.next_line(), if err_open => match line {
                    Ok(Some(line)) => keep(line),
                    _ => err_open = false,
                },
            }
        }
        let status = child
            .wait()
            .await
            .map_err(|source| self.unavailable(source))?;
        if status.success() {
            return Ok(());
        }
        let last_lines: Vec<String> = tail.into_iter().map(|l| format!("  | {l}")).collect();
        Err(PodmanError::Output {
            what: what.to_string(),
            code: status.code(),
            last_lines: last_lines.join("\n"),
        })
    }

    /// Runs podman to completion and logs (at debug level) how long it took, so a deploy's
    /// or a monitor pass's time can be split by podman call (mcp-bench reads these lines).
    async fn timed(&self, args: &[&str]) -> Result<std::process::Output, PodmanError> {
        let started = std::time::Instant::now();
        let out = self
            .command(args)
            .output()
            .await
            .map_err(|source| self.unavailable(source))?;
        tracing::debug!(
            subcommand = %subcommand(args),
            elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "podman call"
        );
        Ok(out)
    }

    pub fn unavailable(&self, source: std::io::Error) -> PodmanError {
        PodmanError::Unavailable {
            binary: self.config.binary.clone(),
            source,
        }
    }
}

/// A finished podman's stdout, or its stderr in the error.
fn stdout_or_error(what: &str, out: std::process::Output) -> Result<String, PodmanError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(PodmanError::Command {
            what: what.to_string(),
            code: out.status.code(),
            stderr: clean_stderr(&out.stderr),
        })
    }
}

/// The subcommand words of an argument vector ("run", "image exists"), for the timing log.
fn subcommand(args: &[&str]) -> String {
    let words: Vec<&str> = args
        .iter()
        .take(2)
        .take_while(|a| !a.starts_with('-'))
        .copied()
        .collect();
    match words.as_slice() {
        [group @ ("image" | "container" | "system"), verb] => format!("{group} {verb}"),
        [first, ..] => (*first).to_string(),
        [] => String::new(),
    }
}

/// podman's stderr without its logrus warning lines (retry chatter), which bury the error.
fn clean_stderr(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !(l.starts_with("time=") && l.contains("level=warning")))
        .collect();
    let kept = if kept.is_empty() {
        text.lines().collect()
    } else {
        kept
    };
    kept.join("\n").trim().to_string()
}

/// Stop and remove treat an instance that no longer exists as done.
pub fn gone_is_ok(result: Result<String, PodmanError>) -> Result<(), PodmanError> {
    match result {
        Ok(_) => Ok(()),
        Err(PodmanError::Command { stderr, .. }) if is_no_such_container(&stderr) => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_no_such_container(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    lower.contains("no such container") || lower.contains("no container with name or id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_container_counts_as_gone() {
        let err = PodmanError::Command {
            what: "podman rm x".into(),
            code: Some(1),
            stderr: "Error: no container with name or ID \"x\" found: no such container".into(),
        };
        assert!(gone_is_ok(Err(err)).is_ok());
        let other = PodmanError::Command {
            what: "podman rm x".into(),
            code: Some(125),
            stderr: "Error: permission denied".into(),
        };
        assert!(gone_is_ok(Err(other)).is_err());
    }

    #[test]
    fn timing_lines_name_the_subcommand() {
        assert_eq!(subcommand(&["image", "exists", "x"]), "image exists");
        assert_eq!(subcommand(&["run", "--detach", "--name", "x"]), "run");
        assert_eq!(subcommand(&["ps", "-a"]), "ps");
    }

    #[test]
    fn retry_warnings_are_dropped_from_errors() {
        let raw = b"time=\"x\" level=warning msg=\"Failed, retrying\"\nError: connection refused\n";
        assert_eq!(clean_stderr(raw), "Error: connection refused");
    }
}
