//! Serving the agent API over mutual TLS until a shutdown signal.
//!
//! Architecture invariant: the agent never serves without TLS, and a client must present a
//! certificate signed by the configured CA (tonic requires it once a client CA is set).

use mcp_proto::v1::agent_server::AgentServer;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::access::{AccessPolicy, AuthorizeLayer};
use crate::api::AgentApi;
use crate::config::ServerTls;
use crate::deployer::Deployer;
use crate::node::NodeInspector;

/// Open streams (`logs -f`) get this long to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot read TLS file {path}: {source}")]
    TlsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("server failed: {0}")]
    Transport(String),
}

fn read(path: &Path) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::TlsFile {
        path: path.to_path_buf(),
        source,
    })
}

pub fn tls_config(tls: &ServerTls) -> Result<ServerTlsConfig, ServeError> {
    Ok(ServerTlsConfig::new()
        .identity(Identity::from_pem(read(&tls.cert)?, read(&tls.key)?))
        .client_ca_root(Certificate::from_pem(read(&tls.ca)?)))
}

/// The access rules of `tls` (its revocation list is normalised by config loading).
pub fn access_policy(tls: &ServerTls) -> Arc<AccessPolicy> {
    Arc::new(
        AccessPolicy::new(tls.revoked_serials.iter().cloned())
            .with_certificate_not_after(certificate_not_after(&tls.cert)),
    )
}

/// When the certificate in `path` ends, if it can be read.
pub fn certificate_not_after(path: &Path) -> Option<i64> {
    let pem = std::fs::read_to_string(path).ok()?;
    Some(pki::inspect_pem(&pem)?.not_after_unix)
}

/// Serves on `listener` until `shutdown` completes, then lets open calls finish briefly.
/// Every call passes `access` first.
pub async fn serve(
    deployer: Arc<Deployer>,
    node: Arc<NodeInspector>,
    logins: Arc<runtime::PodmanRuntime>,
    listener: TcpListener,
    (tls, access): (ServerTlsConfig, Arc<AccessPolicy>),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
        let _ = tx.send(());
    });
    let server = Server::builder()
        .tls_config(tls)
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .layer(AuthorizeLayer::new(access))
        .add_service(AgentServer::new(AgentApi::new(deployer, node, logins)))
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY, a response's last small write waits for the client's
            // delayed ACK: every other short call took ~40 ms longer (BENCHMARKS.md).
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                let _ = rx.await;
            },
        );
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result.map_err(|e| ServeError::Transport(e.to_string())),
        _ = async {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::info!("open streams did not end within the grace period; closing them");
            Ok(())
        }
    }
}
