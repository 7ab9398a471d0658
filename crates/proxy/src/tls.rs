//! TLS termination for l7 ports: loading PEM certs and keys, and choosing the cert by SNI.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, crypto::aws_lc_rs};

use crate::hosts::HostMap;
use crate::table::Route;

/// Why a route's certificate cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate chain {path:?}: {source}")]
    Cert {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("cannot read private key {path:?}: {source}")]
    Key {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path:?} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("certificate {cert:?} with key {key:?}: {source}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The crypto provider of the whole process: aws-lc-rs, as everywhere in the workspace.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// Loads a PEM certificate chain and its private key, checking that they belong together.
pub(crate) fn load(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Cert {
            path: cert.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
        path: key.to_path_buf(),
        source,
    })?;
    CertifiedKey::from_der(chain, private, provider)
        .map(Arc::new)
        .map_err(|source| TlsError::Unusable {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })
}

/// Chooses the certificate by the ClientHello's SNI; a route without hostname gives the default.
#[derive(Debug)]
struct SniResolver(HostMap<Arc<CertifiedKey>>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.lookup(hello.server_name()).cloned()
    }
}

/// The certificates of one l7 port's routes by hostname. The error names the failing route.
pub(crate) fn load_certs<'a>(
    routes: &[&'a Route],
    provider: &CryptoProvider,
) -> Result<HostMap<Arc<CertifiedKey>>, (&'a Route, TlsError)> {
    let mut certs = HostMap::default();
    for route in routes {
        if let Some(tls) = &route.tls {
            let key = load(&tls.cert, &tls.key, provider).map_err(|err| (*route, err))?;
            certs.insert(route.hostname.as_deref(), key);
        }
    }
    Ok(certs)
}

/// The server config of one l7 port: the cert chosen by SNI, ALPN offering h2 and http/1.1,
/// stateless session tickets.
pub(crate) fn server_config(
    certs: HostMap<Arc<CertifiedKey>>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(certs)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = aws_lc_rs::Ticketer::new().map_err(TlsError::Config)?;
    Ok(Arc::new(config))
}
