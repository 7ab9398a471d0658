//! Certificates for mutual TLS between the CLI and agents: a CA, node (server) certs,
//! operator (client) certs, and files written with the right modes.
//!
//! Architecture invariant: every private key this crate writes is mode 0600 from the moment
//! the file exists (created with that mode, never chmod-ed afterwards).

mod files;

pub use files::{create_private_dir, write_private, write_public};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot generate certificate {name}: {source}")]
    Generate {
        name: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable {what}: {source}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("{path} already exists; refusing to overwrite it")]
    Exists { path: PathBuf },
}

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertPair {
    // Never print key material, not even in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair").finish_non_exhaustive()
    }
}

/// What a leaf certificate is for.
#[derive(Debug, Clone)]
pub enum Role {
    /// An agent: serves TLS for these DNS names / IP addresses.
    Node { sans: Vec<String> },
    /// An operator's CLI: authenticates as a client.
    Operator,
}

const CA_YEARS: i64 = 10;
const LEAF_YEARS: i64 = 2;

fn validity(params: &mut CertificateParams, years: i64) {
    let now = OffsetDateTime::now_utc();
    // A little slack for clocks that disagree between operator and node.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365 * years);
}

fn generate_err(name: &str) -> impl FnOnce(rcgen::Error) -> PkiError + '_ {
    move |source| PkiError::Generate {
        name: name.to_string(),
        source,
    }
}

/// A new self-signed CA.
pub fn create_ca(common_name: &str) -> Result<CertPair, PkiError> {
    let key = KeyPair::generate().map_err(generate_err(common_name))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_YEARS);
    let cert = params
        .self_signed(&key)
        .map_err(generate_err(common_name))?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A leaf certificate for `role`, signed by `ca`.
pub fn issue(ca: &CertPair, common_name: &str, role: &Role) -> Result<CertPair, PkiError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(generate_err(common_name))?;
    let issuer =
        Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(generate_err(common_name))?;
    let mut params = match role {
        Role::Node { sans } => {
            let mut params =
                CertificateParams::new(sans.clone()).map_err(generate_err(common_name))?;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params
        }
        Role::Operator => {
            let mut params = CertificateParams::default();
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params
        }
    };
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, LEAF_YEARS);
    let key = KeyPair::generate().map_err(generate_err(common_name))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generate_err(common_name))?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Reads a certificate and key written by `save`.
pub fn load(cert: &Path, key: &Path) -> Result<CertPair, PkiError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| PkiError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let pair = CertPair {
        cert_pem: read(cert)?,
        key_pem: read(key)?,
    };
    KeyPair::from_pem(&pair.key_pem).map_err(|source| PkiError::Parse {
        path: key.to_path_buf(),
        what: "private key",
        source,
    })?;
    Ok(pair)
}

/// Writes the certificate (0644) and key (0600). Refuses to overwrite either file.
pub fn save(pair: &CertPair, cert: &Path, key: &Path) -> Result<(), PkiError> {
    for path in [cert, key] {
        if path.exists() {
            return Err(PkiError::Exists {
                path: path.to_path_buf(),
            });
        }
    }
    write_private(key, pair.key_pem.as_bytes())?;
    write_public(cert, pair.cert_pem.as_bytes())
}

/// File names of a TLS identity inside a directory: `<stem>.pem` and `<stem>.key`.
pub fn identity_paths(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    )
}

/// The subject common name of a DER certificate (who a client certificate says it is).
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
}

/// Selects aws-lc-rs as the process's rustls provider. tonic's TLS panics without one, and
/// two linked providers make the choice ambiguous, so both binaries call this first.
pub fn install_crypto_provider() {
    // Err means one is already installed, which is all we need.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn issued_certs_chain_to_their_ca() {
        let ca = create_ca("mcp test CA").unwrap();
        let node = issue(
            &ca,
            "local",
            &Role::Node {
                sans: vec!["localhost".into(), "127.0.0.1".into()],
            },
        )
        .unwrap();
        assert!(node.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(node.key_pem.contains("PRIVATE KEY"));
        assert_ne!(node.cert_pem, ca.cert_pem);
        assert!(!format!("{node:?}").contains("PRIVATE"));
        let der = rustls_pemfile_free_der(&node.cert_pem);
        assert_eq!(common_name(&der).as_deref(), Some("local"));
    }

    /// The DER inside a one-certificate PEM (base64 between the armour lines).
    fn rustls_pemfile_free_der(pem: &str) -> Vec<u8> {
        let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        parsed.contents
    }

    #[test]
    fn keys_are_written_0600_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ca = create_ca("ca").unwrap();
        let (cert, key) = identity_paths(dir.path(), "ca");
        save(&ca, &cert, &key).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            save(&ca, &cert, &key),
            Err(PkiError::Exists { .. })
        ));
        let loaded = load(&cert, &key).unwrap();
        assert_eq!(loaded.cert_pem, ca.cert_pem);
    }
}
