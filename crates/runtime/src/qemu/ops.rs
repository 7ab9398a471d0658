//! Building a Nanos image with `ops`: the config.json it reads and the command line. Env and
//! args are baked into the image at build time, so a changed env means a new image.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::Command;

use crate::RuntimeError;

/// The subset of ops' config.json the runtime fills in.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct OpsConfig {
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub run_config: RunConfig,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// e.g. "256m".
    pub memory: String,
    #[serde(rename = "CPUs")]
    pub cpus: u32,
}

impl OpsConfig {
    /// `env` entries are `KEY=VALUE` (validated upstream; an entry without `=` is a key with
    /// an empty value).
    pub fn new(args: &[String], env: &[String], memory_mb: u32, vcpus: u32) -> Self {
        Self {
            args: args.to_vec(),
            env: env
                .iter()
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (e.clone(), String::new()),
                })
                .collect(),
            run_config: RunConfig {
                memory: format!("{memory_mb}m"),
                cpus: vcpus.max(1),
            },
        }
    }
}

/// `ops build <elf> -i <image> -c <config.json>`.
pub fn build_argv(elf: &Path, image_name: &str, config: &Path) -> Vec<String> {
    vec![
        "build".into(),
        elf.to_string_lossy().into_owned(),
        "-i".into(),
        image_name.into(),
        "-c".into(),
        config.to_string_lossy().into_owned(),
    ]
}

/// Where ops leaves the image: `$HOME/.ops/images/<name>`; ops before mid-2022 wrote
/// `<name>.img`, so both are looked for.
pub fn built_image_candidates(ops_home: &Path, image_name: &str) -> [PathBuf; 2] {
    let dir = ops_home.join(".ops/images");
    [dir.join(image_name), dir.join(format!("{image_name}.img"))]
}

/// Runs ops and returns the path of the image it wrote.
pub async fn build(
    ops: &Path,
    ops_home: &Path,
    elf: &Path,
    image_name: &str,
    config: &Path,
) -> Result<PathBuf, RuntimeError> {
    let out = Command::new(ops)
        .args(build_argv(elf, image_name, config))
        .env("HOME", ops_home)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| RuntimeError::Unavailable {
            binary: ops.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let text = if stderr.trim().is_empty() {
            stdout
        } else {
            stderr
        };
        return Err(RuntimeError::Command {
            what: format!("ops build {image_name}"),
            code: out.status.code(),
            stderr: last_lines(&text, 20),
        });
    }
    built_image_candidates(ops_home, image_name)
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| RuntimeError::Failed {
            what: format!("ops build {image_name}"),
            detail: format!(
                "ops reported success but wrote no image under {}",
                ops_home.join(".ops/images").display()
            ),
        })
}

pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn config_json_carries_args_env_and_resources() {
        let config = OpsConfig::new(
            &["serve".into(), "--fast".into()],
            &["GREETING=hi=there".into(), "PORT=20001".into()],
            256,
            2,
        );
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "Args": ["serve", "--fast"],
                "Env": {"GREETING": "hi=there", "PORT": "20001"},
                "RunConfig": {"Memory": "256m", "CPUs": 2}
            })
        );
    }

    #[test]
    fn the_ops_command_line_is_the_documented_one() {
        let argv = build_argv(
            Path::new("/c/elf/hello"),
            "hello-vm",
            Path::new("/s/vm/hello-vm/config.json"),
        );
        assert_eq!(
            argv,
            [
                "build",
                "/c/elf/hello",
                "-i",
                "hello-vm",
                "-c",
                "/s/vm/hello-vm/config.json"
            ]
        );
        let [new, old] = built_image_candidates(Path::new("/h"), "hello-vm");
        assert_eq!(new, Path::new("/h/.ops/images/hello-vm"));
        assert_eq!(old, Path::new("/h/.ops/images/hello-vm.img"));
    }
}
