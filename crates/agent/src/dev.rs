//! `mcp-agent --dev`: a self-contained local agent. Creates a CA, the agent's certificate
//! and an operator certificate in DIR (kept across restarts), and writes `DIR/mcp.toml` so
//! the CLI can talk to it as node `local`.

use pki::{CertPair, Role};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::config::{
    AgentConfig, CertFiles, DevSettings, MonitorSection, PodmanSection, PortsSection, ProxySection,
    QemuSection, ServerTls,
};

pub const DEV_NODE: &str = "local";

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("cannot write the CLI config: {0}")]
    Render(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DevError + '_ {
    move |source| DevError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates DIR and its certificates when missing; returns the agent's configuration.
pub fn prepare(
    dir: &Path,
    listen: SocketAddr,
    podman: PodmanSection,
    ports: PortsSection,
    monitor: MonitorSection,
    proxy_bind: std::net::IpAddr,
    settings: Option<DevSettings>,
) -> Result<AgentConfig, DevError> {
    create_private_dir(dir)?;
    // Paths written into mcp.toml must not depend on the agent's working directory.
    let dir = &std::path::absolute(dir).map_err(io_err(dir))?;
    let tls_dir = dir.join("tls");
    create_private_dir(&tls_dir)?;
    let (ca_cert, ca_key) = pki::identity_paths(&tls_dir, "ca");
    let ca = if ca_cert.exists() {
        pki::load(&ca_cert, &ca_key)?
    } else {
        let ca = pki::create_ca("mcp dev CA")?;
        pki::save(&ca, &ca_cert, &ca_key)?;
        ca
    };
    let (agent_cert, agent_key) = pki::identity_paths(&tls_dir, "agent");
    ensure_leaf(
        &ca,
        &agent_cert,
        &agent_key,
        DEV_NODE,
        &Role::Node {
            sans: vec![
                DEV_NODE.into(),
                "localhost".into(),
                "127.0.0.1".into(),
                "::1".into(),
            ],
        },
    )?;
    let (op_cert, op_key) = pki::identity_paths(&tls_dir, "operator");
    // The dev operator is an admin. One issued before roles existed is replaced, or the
    // agent would refuse it.
    let role_less = std::fs::read_to_string(&op_cert)
        .ok()
        .and_then(|pem| pki::inspect_pem(&pem))
        .is_some_and(|info| info.role.is_none());
    if role_less {
        for stale in [&op_cert, &op_key] {
            std::fs::remove_file(stale).map_err(io_err(stale))?;
        }
    }
    ensure_leaf(
        &ca,
        &op_cert,
        &op_key,
        "operator",
        &Role::Operator {
            role: pki::OperatorRole::Admin,
        },
    )?;
    let config = AgentConfig {
        node: DEV_NODE.to_string(),
        listen,
        state_dir: dir.join("state"),
        tls: ServerTls {
            ca: ca_cert.clone(),
            cert: agent_cert,
            key: agent_key,
            revoked_serials: Vec::new(),
        },
        podman,
        ports,
        monitor,
        qemu: QemuSection::default(),
        proxy: ProxySection {
            bind: proxy_bind,
            issuer: Some(CertFiles {
                cert: ca_cert.clone(),
                key: ca_key.clone(),
            }),
            ..ProxySection::default()
        },
        stop_timeout_secs: 10,
        keep_versions: 20,
    };
    Ok(settings.unwrap_or_default().apply(config))
}

fn ensure_leaf(
    ca: &CertPair,
    cert: &Path,
    key: &Path,
    name: &str,
    role: &Role,
) -> Result<(), DevError> {
    if !cert.exists() {
        pki::save(&pki::issue(ca, name, role)?, cert, key)?;
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), DevError> {
    pki::create_private_dir(dir).map_err(io_err(dir))
}

/// Writes `DIR/mcp.toml` for the address the agent actually listens on (atomically).
pub fn write_cli_config(
    dir: &Path,
    config: &AgentConfig,
    bound: SocketAddr,
) -> Result<PathBuf, DevError> {
    let dir = &std::path::absolute(dir).map_err(io_err(dir))?;
    let path = dir.join("mcp.toml");
    // What the operator added (services_dir, [build], other nodes) survives a restart; only
    // this agent's address and the dev TLS files are rewritten.
    // The file is edited as a TOML table, so the agent knows only the keys it writes (the
    // CLI's crate owns the format; its tests load this file).
    let mut cli: toml::Table = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_default();
    let text = |p: &Path| toml::Value::String(p.display().to_string());
    let mut tls = toml::Table::new();
    tls.insert("ca".into(), text(&config.tls.ca));
    tls.insert("cert".into(), text(&dir.join("tls/operator.pem")));
    tls.insert("key".into(), text(&dir.join("tls/operator.key")));
    cli.insert("tls".into(), toml::Value::Table(tls));
    let mut nodes = match cli.remove("nodes") {
        Some(toml::Value::Array(nodes)) => nodes,
        _ => Vec::new(),
    };
    nodes.retain(|n| n.get("name").and_then(toml::Value::as_str) != Some(DEV_NODE));
    let mut local = toml::Table::new();
    local.insert("name".into(), toml::Value::String(DEV_NODE.into()));
    local.insert(
        "address".into(),
        toml::Value::String(format!("https://{bound}")),
    );
    nodes.insert(0, toml::Value::Table(local));
    cli.insert("nodes".into(), toml::Value::Array(nodes));
    let rendered = toml::to_string(&cli).map_err(|e| DevError::Render(e.to_string()))?;
    let tmp = dir.join(".mcp.toml.tmp");
    std::fs::write(&tmp, rendered).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    Ok(path)
}
