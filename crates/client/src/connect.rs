//! An mTLS gRPC channel to one agent.

use mcp_proto::v1::agent_client::AgentClient;
use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::{NodeEntry, TlsFiles, VersionedChannel};

/// A connection to one agent.
pub type AgentConn = AgentClient<VersionedChannel>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read TLS file {path}: {source}")]
    TlsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid agent address {address:?} for node {node}: {detail}")]
    Address {
        node: String,
        address: String,
        detail: String,
    },
    #[error("agent of node {node} at {address} is unreachable: {detail}")]
    Unreachable {
        node: String,
        address: String,
        detail: String,
    },
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn read(path: &PathBuf) -> Result<Vec<u8>, ConnectError> {
    std::fs::read(path).map_err(|source| ConnectError::TlsFile {
        path: path.clone(),
        source,
    })
}

/// Connects to `node`'s agent, authenticating with the operator identity in `tls`.
pub async fn connect(node: &NodeEntry, tls: &TlsFiles) -> Result<AgentConn, ConnectError> {
    pki::install_crypto_provider();
    let address_err = |detail: String| ConnectError::Address {
        node: node.name.clone(),
        address: node.address.clone(),
        detail,
    };
    let tls_config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&tls.ca)?))
        .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?))
        .domain_name(
            node.tls_server_name
                .clone()
                .unwrap_or_else(|| node.name.clone()),
        );
    let endpoint = Endpoint::from_shared(node.address.clone())
        .map_err(|e| address_err(e.to_string()))?
        .tls_config(tls_config)
        .map_err(|e| address_err(e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| ConnectError::Unreachable {
            node: node.name.clone(),
            address: node.address.clone(),
            detail: error_chain(&e),
        })?;
    Ok(AgentClient::new(VersionedChannel::new(channel, &node.name)))
}

/// tonic's transport errors say "transport error" on top; the cause is further down.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.dedup();
    parts.join(": ")
}
