//! `mcp tls ca create`, `mcp tls cert create|renew|show`: the production certificate workflow.

use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::args::{CaFiles, TlsCaCommand, TlsCertCommand, TlsCommand};
use crate::output::now_unix;
use crate::{CliError, ExitCode};

fn pki_err(e: pki::PkiError) -> CliError {
    match e {
        pki::PkiError::Generate { .. } | pki::PkiError::Write { .. } => {
            CliError::failed(e.to_string())
        }
        other => CliError::bad_input(other.to_string()),
    }
}

/// What `mcp tls cert show --json` prints (stable field names).
#[derive(Debug, Serialize)]
struct CertJson {
    name: String,
    /// "operator" or "node".
    kind: &'static str,
    /// Operator certificates: "admin", "deployer", "viewer"; null for node certificates and
    /// operator certificates issued before roles.
    role: Option<String>,
    serial: String,
    not_after: i64,
    days_left: i64,
    sans: Vec<String>,
}

pub fn run(cmd: TlsCommand) -> Result<ExitCode, CliError> {
    match cmd {
        TlsCommand::Ca(TlsCaCommand::Create { out, common_name }) => {
            let ca = pki::create_ca(&common_name).map_err(pki_err)?;
            let (cert, key) = pki::identity_paths(&out, "ca");
            pki::save(&ca, &cert, &key).map_err(pki_err)?;
            println!("wrote {} and {}", cert.display(), key.display());
            Ok(ExitCode::Ok)
        }
        TlsCommand::Cert(TlsCertCommand::Create {
            ca,
            node,
            san,
            operator,
            role,
            days,
            out,
        }) => {
            let authority = load_ca(&ca)?;
            let (name, leaf) = match (node, operator, role) {
                (Some(node), _, _) => {
                    servicedef::validate_node_name(&node)
                        .map_err(|e| CliError::bad_input(e.to_string()))?;
                    let mut sans = vec![node.clone()];
                    sans.extend(san);
                    (node, pki::Role::Node { sans })
                }
                (None, Some(op), Some(role)) => (op, pki::Role::Operator { role: role.into() }),
                _ => {
                    return Err(CliError::bad_input(
                        "give --node NAME, or --operator NAME --role ROLE",
                    ));
                }
            };
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(CliError::bad_input(format!(
                    "{name:?} cannot name a certificate file"
                )));
            }
            let pair =
                pki::issue_valid(&authority, &name, &leaf, pki::Validity::days_from_now(days))
                    .map_err(pki_err)?;
            let (cert, key) = pki::identity_paths(Path::new(&out), &name);
            pki::save(&pair, &cert, &key).map_err(pki_err)?;
            println!("wrote {} and {}", cert.display(), key.display());
            print_summary(&pair.cert_pem);
            Ok(ExitCode::Ok)
        }
        TlsCommand::Cert(TlsCertCommand::Renew {
            cert,
            key,
            ca,
            role,
            days,
        }) => {
            let authority = load_ca(&ca)?;
            let key = key.unwrap_or_else(|| cert.with_extension("key"));
            let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
                (Ok(a), Ok(b)) => a == b,
                _ => a == b,
            };
            if same(&key, &ca.ca_key) || same(&cert, &ca.ca) {
                return Err(CliError::bad_input(
                    "the certificate or key to renew is the CA's own; renew node and \
                     operator certificates only",
                ));
            }
            let old = read_cert(&cert)?;
            if !key.is_file() {
                return Err(CliError::bad_input(format!(
                    "{} not found: give the key with --key",
                    key.display()
                )));
            }
            let pair =
                pki::renew(&authority, &old, &cert, role.map(Into::into), days).map_err(pki_err)?;
            // The key first: a crash in between leaves the old certificate with a key that
            // does not match it, which fails loudly, never a new certificate on an old key.
            pki::replace_private(&key, pair.key_pem.as_bytes()).map_err(pki_err)?;
            pki::replace_public(&cert, pair.cert_pem.as_bytes()).map_err(pki_err)?;
            println!("renewed {} and {}", cert.display(), key.display());
            print_summary(&pair.cert_pem);
            Ok(ExitCode::Ok)
        }
        TlsCommand::Cert(TlsCertCommand::Show { cert, json }) => {
            let info = inspect(&cert)?;
            if json {
                let out = CertJson {
                    name: info.common_name.clone(),
                    kind: if info.client { "operator" } else { "node" },
                    role: info.role.map(|r| r.to_string()),
                    serial: info.serial.clone(),
                    not_after: info.not_after_unix,
                    days_left: info.days_left(now_unix()),
                    sans: info.sans.clone(),
                };
                crate::output::print_json(&out)?;
            } else {
                println!("{}", summary(&info));
            }
            Ok(ExitCode::Ok)
        }
    }
}

fn load_ca(ca: &CaFiles) -> Result<pki::CertPair, CliError> {
    pki::load(&ca.ca, &ca.ca_key).map_err(pki_err)
}

fn read_cert(path: &PathBuf) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::bad_input(format!("cannot read {}: {e}", path.display())))
}

fn inspect(path: &PathBuf) -> Result<pki::CertInfo, CliError> {
    pki::inspect_pem(&read_cert(path)?).ok_or_else(|| {
        CliError::bad_input(format!("{} holds no readable certificate", path.display()))
    })
}

fn print_summary(pem: &str) {
    if let Some(info) = pki::inspect_pem(pem) {
        println!("{}", summary(&info));
    }
}

/// One line: who, role or names, serial, expiry.
fn summary(info: &pki::CertInfo) -> String {
    let who = if info.client {
        let role = info
            .role
            .map_or_else(|| "no role".to_string(), |r| format!("role {r}"));
        format!("operator {} ({role})", info.common_name)
    } else {
        format!("node {} ({})", info.common_name, info.sans.join(", "))
    };
    format!(
        "{who}, serial {}, {}",
        info.serial,
        expiry_text(info.not_after_unix, now_unix())
    )
}

/// "expires 2028-11-30 (729 days)" or "expired 2026-01-01".
pub fn expiry_text(not_after: i64, now: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(not_after)
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| not_after.to_string());
    let days = (not_after - now).div_euclid(86_400);
    if not_after <= now {
        format!("expired {date}")
    } else {
        format!("expires {date} ({days} days)")
    }
}
