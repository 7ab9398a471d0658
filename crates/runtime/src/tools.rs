//! Versions of the external tools the runtimes drive (qemu, ops), for node status.
//!
//! A tool that is absent or broken is a normal answer here, not an error: the result says
//! why, so an operator sees "not found in PATH" instead of a failed call.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// A `--version` answer should take milliseconds; a hung tool must not hang node status.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// One tool's version, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolVersion {
    pub name: String,
    /// The version number alone ("7.2.22"); empty when unavailable.
    pub version: String,
    pub available: bool,
    /// The tool's own version line when available; the reason when not.
    pub detail: String,
}

impl ToolVersion {
    pub fn available(name: &str, version: String, detail: String) -> Self {
        Self {
            name: name.to_string(),
            version,
            available: true,
            detail,
        }
    }

    pub fn unavailable(name: &str, detail: String) -> Self {
        Self {
            name: name.to_string(),
            version: String::new(),
            available: false,
            detail,
        }
    }
}

/// `qemu-system-x86_64 --version`: "QEMU emulator version 7.2.22 (Debian ...)" → "7.2.22".
pub async fn qemu_version(binary: &Path) -> ToolVersion {
    tool_version("qemu", binary, &["--version"], parse_qemu_version).await
}

/// `ops version`: "Ops version: 0.1.43" → "0.1.43".
pub async fn ops_version(binary: &Path) -> ToolVersion {
    tool_version("ops", binary, &["version"], parse_ops_version).await
}

/// Runs `binary args` and reads a version number from its stdout with `parse`.
async fn tool_version(
    name: &str,
    binary: &Path,
    args: &[&str],
    parse: fn(&str) -> Option<(String, String)>,
) -> ToolVersion {
    let run = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(VERSION_TIMEOUT, run).await {
        Err(_) => {
            return ToolVersion::unavailable(
                name,
                format!(
                    "{} {} did not answer within {} s",
                    binary.display(),
                    args.join(" "),
                    VERSION_TIMEOUT.as_secs()
                ),
            );
        }
        Ok(Err(e)) => return ToolVersion::unavailable(name, spawn_failure(binary, &e)),
        Ok(Ok(out)) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        return ToolVersion::unavailable(
            name,
            format!(
                "{} {} failed ({}): {}",
                binary.display(),
                args.join(" "),
                out.status,
                first.trim()
            ),
        );
    }
    match parse(&stdout) {
        Some((version, line)) => ToolVersion::available(name, version, line),
        None => ToolVersion::unavailable(
            name,
            format!(
                "cannot read a version from {} {}: {:?}",
                binary.display(),
                args.join(" "),
                stdout.lines().next().unwrap_or("")
            ),
        ),
    }
}

/// "not found in PATH" for a bare name that is not installed; the OS error otherwise.
pub fn spawn_failure(binary: &Path, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound if binary.components().count() == 1 => {
            format!("{} not found in PATH", binary.display())
        }
        std::io::ErrorKind::NotFound => format!("{} does not exist", binary.display()),
        _ => format!("cannot run {}: {e}", binary.display()),
    }
}

/// The version from QEMU's first line, and that line.
pub fn parse_qemu_version(stdout: &str) -> Option<(String, String)> {
    let line = stdout.lines().next()?.trim();
    let rest = line.split_once("version ")?.1;
    let version = rest.split_whitespace().next()?;
    looks_like_version(version).then(|| (version.to_string(), line.to_string()))
}

/// The version from `ops version`'s "Ops version: X" line (older ops print only "X"), and
/// that line.
pub fn parse_ops_version(stdout: &str) -> Option<(String, String)> {
    let lines: Vec<&str> = stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .find(|l| l.to_ascii_lowercase().starts_with("ops version"))
        .or_else(|| lines.first())?;
    let version = line.rsplit([' ', ':']).next()?.trim_start_matches('v');
    looks_like_version(version).then(|| (version.to_string(), (*line).to_string()))
}

fn looks_like_version(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit()) && s.contains('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_version_is_the_number_only() {
        let out = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n\
                   Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n";
        let (version, line) = parse_qemu_version(out).unwrap();
        assert_eq!(version, "7.2.22");
        assert_eq!(
            line,
            "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 8.0.0\n")
                .unwrap()
                .0,
            "8.0.0"
        );
        assert_eq!(parse_qemu_version("something else\n"), None);
        assert_eq!(parse_qemu_version(""), None);
    }

    #[test]
    fn ops_version_from_its_line() {
        let out = "Ops version: 0.1.43\nNanos version: 0.1.52\n";
        assert_eq!(parse_ops_version(out).unwrap().0, "0.1.43");
        assert_eq!(parse_ops_version("0.1.30\n").unwrap().0, "0.1.30");
        assert_eq!(
            parse_ops_version("Ops version: v0.1.40\n").unwrap().0,
            "0.1.40"
        );
        assert_eq!(parse_ops_version("usage: ops ...\n"), None);
    }

    #[tokio::test]
    async fn a_missing_tool_says_why() {
        let v = ops_version(Path::new("mcp-no-such-ops")).await;
        assert!(!v.available);
        assert!(v.version.is_empty());
        assert_eq!(v.detail, "mcp-no-such-ops not found in PATH");
        let v = qemu_version(Path::new("/nonexistent/qemu")).await;
        assert_eq!(v.detail, "/nonexistent/qemu does not exist");
    }

    #[tokio::test]
    async fn a_failing_tool_reports_its_exit() {
        // `false` exists everywhere and fails: the detail carries the exit status.
        let v = ops_version(Path::new("false")).await;
        assert!(!v.available);
        assert!(v.detail.contains("failed"), "{}", v.detail);
    }
}
