//! The operator side's configuration (`mcp.toml`: nodes, TLS identity, services dir, builds) and
//! mTLS connections to agents. Shared by the `mcp` CLI, the agent's `--dev` bootstrap (which
//! writes such a file) and the tests.

mod config;
mod connect;
mod versioned;

pub use config::{BuildSection, CliConfig, ConfigError, NodeEntry, TlsFiles};
pub use connect::{AgentConn, ConnectError, connect, error_chain};
pub use versioned::{VersionedChannel, agent_certificates, version_mismatches};
