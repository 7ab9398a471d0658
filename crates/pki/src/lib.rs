//! Certificates for mutual TLS between the CLI and agents: a CA, node (server) certs,
//! operator (client) certs, and files written with the right modes.
//!
//! Architecture invariant: every private key this crate writes is mode 0600 from the moment
//! the file exists (created with that mode, never chmod-ed afterwards).

mod files;
mod inspect;
mod role;

pub use files::{create_private_dir, replace_private, replace_public, write_private, write_public};
pub use inspect::{CertInfo, certificate_der, inspect_der, inspect_pem, normalize_serial};
pub use role::{OperatorRole, UnknownRole};

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
    #[error("{path} holds no readable certificate")]
    NotACertificate { path: PathBuf },
    #[error("{path} was not issued by this CA ({ca})")]
    OtherIssuer { path: PathBuf, ca: String },
    #[error("{path} is an operator certificate without a role (issued before roles); give --role")]
    NoRole { path: PathBuf },
    #[error("{path} is a CA certificate; renew node and operator certificates only")]
    IsCa { path: PathBuf },
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
    /// An operator's CLI: authenticates as a client, with what it may do.
    Operator { role: OperatorRole },
}

const CA_YEARS: i64 = 10;
/// Leaf certificates last two years unless asked otherwise.
pub const LEAF_DAYS: i64 = 730;

/// When a certificate is valid.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (slack for clocks that disagree between operator and node) until
    /// `days` from now.
    pub fn days_from_now(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(days),
        }
    }
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
    let validity = Validity::days_from_now(365 * CA_YEARS);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let cert = params
        .self_signed(&key)
        .map_err(generate_err(common_name))?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A leaf certificate for `role`, signed by `ca`, valid for `LEAF_DAYS`.
pub fn issue(ca: &CertPair, common_name: &str, role: &Role) -> Result<CertPair, PkiError> {
    issue_valid(ca, common_name, role, Validity::days_from_now(LEAF_DAYS))
}

/// A leaf certificate for `role`, signed by `ca`, valid during `validity`.
pub fn issue_valid(
    ca: &CertPair,
    common_name: &str,
    role: &Role,
    validity: Validity,
) -> Result<CertPair, PkiError> {
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
        Role::Operator { .. } => {
            let mut params = CertificateParams::default();
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params
        }
    };
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Role::Operator { role } = role {
        dn.push(DnType::OrganizationalUnitName, role.organizational_unit());
    }
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    let key = KeyPair::generate().map_err(generate_err(common_name))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generate_err(common_name))?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A new certificate and key for the holder of `old` (read from `path`): the same name and
/// role (or `role`, when given) or the same node names, valid for `days` from now.
pub fn renew(
    ca: &CertPair,
    old: &str,
    path: &Path,
    role: Option<OperatorRole>,
    days: i64,
) -> Result<CertPair, PkiError> {
    let not_a_cert = || PkiError::NotACertificate {
        path: path.to_path_buf(),
    };
    let info = inspect_pem(old).ok_or_else(not_a_cert)?;
    if info.ca {
        return Err(PkiError::IsCa {
            path: path.to_path_buf(),
        });
    }
    let authority = inspect_pem(&ca.cert_pem).ok_or_else(not_a_cert)?;
    if info.issuer_raw != authority.subject_raw {
        return Err(PkiError::OtherIssuer {
            path: path.to_path_buf(),
            ca: authority.common_name,
        });
    }
    let leaf = if info.client {
        let role = role.or(info.role).ok_or_else(|| PkiError::NoRole {
            path: path.to_path_buf(),
        })?;
        Role::Operator { role }
    } else {
        Role::Node { sans: info.sans }
    };
    issue_valid(ca, &info.common_name, &leaf, Validity::days_from_now(days))
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
        let info = inspect_der(&certificate_der(&node.cert_pem).unwrap()).unwrap();
        assert_eq!(info.common_name, "local");
        assert_eq!(info.sans, ["localhost", "127.0.0.1"]);
        assert!(!info.client);
        assert_eq!(info.role, None);
    }

    #[test]
    fn operator_certificates_carry_their_role_and_renew_with_it() {
        let ca = create_ca("ca").unwrap();
        let role = Role::Operator {
            role: OperatorRole::Deployer,
        };
        let old = issue_valid(&ca, "ann", &role, Validity::days_from_now(3)).unwrap();
        let info = inspect_pem(&old.cert_pem).unwrap();
        assert_eq!(info.role, Some(OperatorRole::Deployer));
        assert!(info.client);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!((2..=3).contains(&info.days_left(now)), "about 3 days");

        let path = Path::new("ann.pem");
        let renewed = renew(&ca, &old.cert_pem, path, None, 30).unwrap();
        let new = inspect_pem(&renewed.cert_pem).unwrap();
        assert_eq!(
            (new.common_name.as_str(), new.role),
            ("ann", Some(OperatorRole::Deployer))
        );
        assert_ne!(new.serial, info.serial);
        assert_ne!(renewed.key_pem, old.key_pem, "a renewal makes a new key");
        assert!(new.days_left(now) >= 29);

        let promoted = renew(&ca, &old.cert_pem, path, Some(OperatorRole::Admin), 30).unwrap();
        assert_eq!(
            inspect_pem(&promoted.cert_pem).unwrap().role,
            Some(OperatorRole::Admin)
        );
        let other = create_ca("other").unwrap();
        assert!(matches!(
            renew(&other, &old.cert_pem, path, None, 30),
            Err(PkiError::OtherIssuer { .. })
        ));
        assert!(
            matches!(
                renew(&ca, &ca.cert_pem, Path::new("ca.pem"), None, 30),
                Err(PkiError::IsCa { .. })
            ),
            "renewing the CA would replace it with a leaf"
        );
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
