//! `mcp tls ca create` and `mcp tls cert create`: the production certificate workflow.

use std::path::Path;

use crate::args::{TlsCaCommand, TlsCertCommand, TlsCommand};
use crate::{CliError, ExitCode};

fn pki_err(e: pki::PkiError) -> CliError {
    match e {
        pki::PkiError::Exists { .. } | pki::PkiError::Read { .. } | pki::PkiError::Parse { .. } => {
            CliError::bad_input(e.to_string())
        }
        other => CliError::failed(other.to_string()),
    }
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
            ca_key,
            node,
            san,
            operator,
            out,
        }) => {
            let authority = pki::load(&ca, &ca_key).map_err(pki_err)?;
            let (name, role) = match (node, operator) {
                (Some(node), _) => {
                    servicedef::validate_node_name(&node)
                        .map_err(|e| CliError::bad_input(e.to_string()))?;
                    let mut sans = vec![node.clone()];
                    sans.extend(san);
                    (node, pki::Role::Node { sans })
                }
                (None, Some(op)) => (op, pki::Role::Operator),
                (None, None) => {
                    return Err(CliError::bad_input("give --node NAME or --operator NAME"));
                }
            };
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(CliError::bad_input(format!(
                    "{name:?} cannot name a certificate file"
                )));
            }
            let pair = pki::issue(&authority, &name, &role).map_err(pki_err)?;
            let (cert, key) = pki::identity_paths(Path::new(&out), &name);
            pki::save(&pair, &cert, &key).map_err(pki_err)?;
            println!("wrote {} and {}", cert.display(), key.display());
            Ok(ExitCode::Ok)
        }
    }
}
