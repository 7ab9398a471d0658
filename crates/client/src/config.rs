//! `mcp.toml`: which agents exist, how the operator authenticates to them, and where the
//! operator's machine builds images from.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliConfig {
    /// Where a bare SERVICE argument is looked up as `<services_dir>/<SERVICE>.toml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services_dir: Option<PathBuf>,
    /// How long a command that asks every node waits for each (default 5000): a node that is
    /// down or hangs is reported unreachable while the others answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_timeout_ms: Option<u64>,
    pub tls: TlsFiles,
    /// Image builds on this machine (`mcp build`, and `mcp deploy` of tags a registry lacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSection>,
    #[serde(default)]
    pub nodes: Vec<NodeEntry>,
}

/// `[build]`: sources and registries as the operator's machine sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSection {
    /// Source tree; a service's `path` (default: its name) is a directory under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<PathBuf>,
    /// Registries (`host[:port]`, exactly as written in images) spoken to over plain HTTP:
    /// tag checks use `http://`, pushes `--tls-verify=false`. Every other one uses TLS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insecure_registries: Vec<String>,
    /// podman binary for builds and pushes (default `podman`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub podman: Option<PathBuf>,
    /// Arguments before every podman subcommand, e.g. `["--root", "/srv/build-store"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub podman_args: Vec<String>,
}

/// The operator's identity and the CA that signed the agents' certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    pub name: String,
    /// `https://host:port` of the node's agent.
    pub address: String,
    /// Name the agent's certificate must carry; defaults to the node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read CLI config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, an unknown key or a value of the wrong type, located by line, column and key.
    #[error("invalid CLI config {0}")]
    Parse(servicedef::DefinitionError),
    #[error("unknown node {name:?}: {path} defines {known}")]
    UnknownNode {
        name: String,
        path: PathBuf,
        known: String,
    },
}

impl CliConfig {
    /// Reads `path`; relative paths inside are taken relative to the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: CliConfig = servicedef::parse_toml(&path.display().to_string(), &text)
            .map_err(ConfigError::Parse)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let absolute = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        absolute(&mut config.tls.ca);
        absolute(&mut config.tls.cert);
        absolute(&mut config.tls.key);
        if let Some(dir) = config.services_dir.as_mut() {
            absolute(dir);
        }
        if let Some(workspace) = config.build.as_mut().and_then(|b| b.workspace.as_mut()) {
            absolute(workspace);
        }
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        // Serialising plain structs of strings and paths cannot fail.
        toml::to_string_pretty(self).unwrap_or_default()
    }

    pub fn node(&self, name: &str, path: &Path) -> Result<&NodeEntry, ConfigError> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| ConfigError::UnknownNode {
                name: name.to_string(),
                path: path.to_path_buf(),
                known: if self.nodes.is_empty() {
                    "no nodes".to_string()
                } else {
                    let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                    format!("nodes {}", names.join(", "))
                },
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcp.toml");
        std::fs::write(
            &path,
            "services_dir = \"svc\"\n[tls]\nca = \"tls/ca.pem\"\ncert = \"/abs/op.pem\"\nkey = \"op.key\"\n\
             [build]\nworkspace = \"..\"\ninsecure_registries = [\"127.0.0.1:5000\"]\n\
             [[nodes]]\nname = \"local\"\naddress = \"https://127.0.0.1:7443\"\n",
        )
        .unwrap();
        let config = CliConfig::load(&path).unwrap();
        assert_eq!(config.tls.ca, dir.path().join("tls/ca.pem"));
        assert_eq!(config.tls.cert, PathBuf::from("/abs/op.pem"));
        assert_eq!(config.services_dir, Some(dir.path().join("svc")));
        let build = config.build.clone().unwrap();
        assert_eq!(build.workspace, Some(dir.path().join("..")));
        assert_eq!(build.insecure_registries, ["127.0.0.1:5000"]);
        assert_eq!(build.podman, None);
        assert_eq!(
            config.node("local", &path).unwrap().address,
            "https://127.0.0.1:7443"
        );
        let err = config.node("nope", &path).unwrap_err().to_string();
        assert!(err.contains("\"nope\"") && err.contains("local"), "{err}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mcp.toml");
        std::fs::write(
            &path,
            "[tls]\nca=\"a\"\ncert=\"b\"\nkey=\"c\"\ncolour = 1\n",
        )
        .unwrap();
        let err = CliConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }
}
