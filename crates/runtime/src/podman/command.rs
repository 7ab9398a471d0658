//! Running podman: argument vectors, CONTAINERS_CONF selection, stderr captured into errors,
//! and long commands (build, push) streamed line by line with their tail kept for errors.

use std::collections::VecDeque;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::PodmanConfig;
use crate::{OutputSink, RuntimeError};

/// How many of a streamed command's last lines a failure shows.
const TAIL_LINES: usize = 15;

pub(super) struct Podman {
    config: PodmanConfig,
}

impl Podman {
    pub(super) fn new(config: PodmanConfig) -> Self {
        Self { config }
    }

    /// A ready-to-spawn command with the global arguments in place.
    pub(super) fn command<S: AsRef<str>>(&self, args: &[S]) -> Command {
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
    pub(super) async fn output(&self, what: &str, args: &[&str]) -> Result<String, RuntimeError> {
        stdout_or_error(what, self.timed(args).await?)
    }

    /// `output` with `input` written to podman's stdin (secret values, passwords: never on
    /// a command line, where any local user could read them from /proc).
    pub(super) async fn output_with_input(
        &self,
        what: &str,
        args: &[&str],
        input: &[u8],
    ) -> Result<String, RuntimeError> {
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
    pub(super) async fn succeeds(&self, args: &[&str]) -> Result<bool, RuntimeError> {
        let out = self.timed(args).await?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            code => Err(RuntimeError::Command {
                what: format!("podman {}", args.join(" ")),
                code: code.unwrap_or(-1),
                stderr: clean_stderr(&out.stderr),
            }),
        }
    }

    /// Runs podman to completion, handing every line of stdout and stderr to `sink` as it
    /// comes; a failure carries the last lines (builders print the reason last).
    pub(super) async fn stream(
        &self,
        what: &str,
        args: &[String],
        sink: OutputSink<'_>,
    ) -> Result<(), RuntimeError> {
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| self.unavailable(source))?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(RuntimeError::Command {
                what: what.to_string(),
                code: -1,
                stderr: "podman's output pipes were not opened".into(),
            });
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
        Err(RuntimeError::Output {
            what: what.to_string(),
            code: status.code().unwrap_or(-1),
            last_lines: last_lines.join("\n"),
        })
    }

    /// Runs podman to completion and logs (at debug level) how long it took, so a deploy's
    /// or a monitor pass's time can be split by podman call (mcp-bench reads these lines).
    async fn timed(&self, args: &[&str]) -> Result<std::process::Output, RuntimeError> {
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

    pub(super) fn unavailable(&self, source: std::io::Error) -> RuntimeError {
        RuntimeError::Unavailable {
            binary: self.config.binary.clone(),
            source,
        }
    }
}

/// A finished podman's stdout, or its stderr in the error.
fn stdout_or_error(what: &str, out: std::process::Output) -> Result<String, RuntimeError> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(RuntimeError::Command {
            what: what.to_string(),
            code: out.status.code().unwrap_or(-1),
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
pub(super) fn gone_is_ok(result: Result<String, RuntimeError>) -> Result<(), RuntimeError> {
    match result {
        Ok(_) => Ok(()),
        Err(RuntimeError::Command { stderr, .. }) if is_no_such_container(&stderr) => Ok(()),
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
        let err = RuntimeError::Command {
            what: "podman rm x".into(),
            code: 1,
            stderr: "Error: no container with name or ID \"x\" found: no such container".into(),
        };
        assert!(gone_is_ok(Err(err)).is_ok());
        let other = RuntimeError::Command {
            what: "podman rm x".into(),
            code: 125,
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
