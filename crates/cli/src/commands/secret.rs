//! `mcp secret set|list|rm`: secrets live on the service's node; values go one way only.

use mcp_proto::v1 as pb;
use serde::Serialize;
use std::io::{IsTerminal, Read};
use std::path::Path;

use crate::args::SecretCommand;
use crate::context::{Context, actor};
use crate::{CliError, ExitCode, output};

/// The agent's limit, checked here first so a large file is refused before it is sent.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

#[derive(Debug, Serialize)]
struct SecretJson {
    node: String,
    service: String,
    name: String,
    version: u64,
    /// Unix seconds.
    set_at: i64,
    used_by: Vec<String>,
}

fn check(service: &str, name: Option<&str>) -> Result<(), CliError> {
    servicedef::ServiceName::new(service.to_string())
        .map_err(|e| CliError::bad_input(format!("service: {e}")))?;
    if let Some(name) = name {
        servicedef::check_secret_name(name).map_err(CliError::bad_input)?;
    }
    Ok(())
}

/// The value: a file exactly, or stdin without one trailing newline (`echo v | mcp …`).
fn read_value(from_file: Option<&Path>) -> Result<Vec<u8>, CliError> {
    let limit = MAX_SECRET_BYTES + 2;
    let mut value = Vec::new();
    match from_file {
        Some(path) => {
            let file = std::fs::File::open(path)
                .map_err(|e| CliError::bad_input(format!("cannot read {}: {e}", path.display())))?;
            file.take(limit)
                .read_to_end(&mut value)
                .map_err(|e| CliError::bad_input(format!("cannot read {}: {e}", path.display())))?;
        }
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(CliError::bad_input(
                    "pipe the secret's value on stdin (e.g. `printf %s \"$VALUE\" | mcp secret \
                     set …`) or use --from-file FILE",
                ));
            }
            stdin
                .lock()
                .take(limit)
                .read_to_end(&mut value)
                .map_err(|e| CliError::bad_input(format!("cannot read stdin: {e}")))?;
            if value.ends_with(b"\n") {
                value.pop();
                if value.ends_with(b"\r") {
                    value.pop();
                }
            }
        }
    }
    if value.is_empty() {
        return Err(CliError::bad_input("the secret's value is empty"));
    }
    if value.len() as u64 > MAX_SECRET_BYTES {
        return Err(CliError::bad_input(format!(
            "the secret's value is larger than {MAX_SECRET_BYTES} bytes"
        )));
    }
    Ok(value)
}

pub async fn run(ctx: &Context, cmd: SecretCommand) -> Result<ExitCode, CliError> {
    match cmd {
        SecretCommand::Set {
            service,
            name,
            from_file,
            node,
        } => {
            check(&service, Some(&name))?;
            let value = read_value(from_file.as_deref())?;
            let node = ctx.node_of_service(&service, node.as_deref()).await?;
            let mut client = ctx.connect(&node).await?;
            let info = client
                .set_secret(pb::SetSecretRequest {
                    service: service.clone(),
                    name: name.clone(),
                    value,
                    actor: actor(),
                })
                .await
                .map_err(|s| CliError::from_status(&node.name, &s))?
                .into_inner();
            let note = if info.used_by.is_empty() {
                String::new()
            } else {
                format!(
                    "; deploy {service} again to pass it to {}",
                    info.used_by.join(", ")
                )
            };
            println!(
                "secret {name} of {service} set on node {} (version {}){note}",
                node.name, info.version
            );
            Ok(ExitCode::Ok)
        }
        SecretCommand::List {
            service,
            node,
            json,
        } => {
            check(&service, None)?;
            let node = ctx.node_of_service(&service, node.as_deref()).await?;
            let mut client = ctx.connect(&node).await?;
            let secrets: Vec<SecretJson> = client
                .list_secrets(pb::ListSecretsRequest {
                    service: service.clone(),
                })
                .await
                .map_err(|s| CliError::from_status(&node.name, &s))?
                .into_inner()
                .secrets
                .into_iter()
                .map(|s| SecretJson {
                    node: node.name.clone(),
                    service: s.service,
                    name: s.name,
                    version: s.version,
                    set_at: s.set_at,
                    used_by: s.used_by,
                })
                .collect();
            if json {
                output::print_json(&secrets)?;
                return Ok(ExitCode::Ok);
            }
            let now = output::now_unix();
            let mut table = output::table(&["NAME", "VERSION", "SET", "USED BY"]);
            for s in &secrets {
                table.add_row(vec![
                    s.name.clone(),
                    s.version.to_string(),
                    format!("{} ago", output::human_duration(now - s.set_at)),
                    s.used_by.join(", "),
                ]);
            }
            output::print_text(&table.trim_fmt())?;
            Ok(ExitCode::Ok)
        }
        SecretCommand::Rm {
            service,
            name,
            node,
        } => {
            check(&service, Some(&name))?;
            let node = ctx.node_of_service(&service, node.as_deref()).await?;
            let mut client = ctx.connect(&node).await?;
            client
                .remove_secret(pb::RemoveSecretRequest {
                    service: service.clone(),
                    name: name.clone(),
                    actor: actor(),
                })
                .await
                .map_err(|s| CliError::from_status(&node.name, &s))?;
            println!("secret {name} of {service} removed from node {}", node.name);
            Ok(ExitCode::Ok)
        }
    }
}
