//! `mcp registry login|logout`: the nodes' credentials for private registries, stored by
//! each agent (its podman auth file, 0600) after the registry accepted them.

use mcp_proto::v1 as pb;
use std::io::{IsTerminal, Read};

use crate::args::RegistryCommand;
use crate::context::Context;
use crate::{CliError, ExitCode};

/// The password from stdin, without its trailing newline (as `podman login --password-stdin`).
fn read_password() -> Result<String, CliError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Err(CliError::bad_input(
            "pipe the password on stdin, e.g. `printf %s \"$TOKEN\" | mcp registry login …`",
        ));
    }
    let mut password = String::new();
    stdin
        .lock()
        .take(64 * 1024)
        .read_to_string(&mut password)
        .map_err(|e| CliError::bad_input(format!("cannot read the password from stdin: {e}")))?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        return Err(CliError::bad_input("the password on stdin is empty"));
    }
    Ok(password)
}

/// Every node, or the one named. Results are reported per node; the first failure's code is
/// the exit code.
pub async fn run(ctx: &Context, cmd: RegistryCommand) -> Result<ExitCode, CliError> {
    match cmd {
        RegistryCommand::Login {
            registry,
            username,
            password_stdin: _,
            node,
            all: _,
        } => {
            let password = read_password()?;
            let mut failure: Option<CliError> = None;
            for node in ctx.nodes(node.as_deref())? {
                let result = async {
                    let mut client = ctx.connect(&node).await?;
                    client
                        .registry_login(pb::RegistryLoginRequest {
                            registry: registry.clone(),
                            username: username.clone(),
                            password: password.clone(),
                        })
                        .await
                        .map_err(|s| CliError::from_status(&node.name, &s))
                }
                .await;
                match result {
                    Ok(_) => println!("node {}: logged in to {registry} as {username}", node.name),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failure.get_or_insert(e);
                    }
                }
            }
            failure.map_or(Ok(ExitCode::Ok), |e| Ok(e.code))
        }
        RegistryCommand::Logout {
            registry,
            node,
            all: _,
        } => {
            let mut failure: Option<CliError> = None;
            for node in ctx.nodes(node.as_deref())? {
                let result = async {
                    let mut client = ctx.connect(&node).await?;
                    client
                        .registry_logout(pb::RegistryLogoutRequest {
                            registry: registry.clone(),
                        })
                        .await
                        .map_err(|s| CliError::from_status(&node.name, &s))
                }
                .await;
                match result {
                    Ok(response) if response.get_ref().was_logged_in => {
                        println!("node {}: logged out of {registry}", node.name);
                    }
                    Ok(_) => println!("node {}: was not logged in to {registry}", node.name),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failure.get_or_insert(e);
                    }
                }
            }
            failure.map_or(Ok(ExitCode::Ok), |e| Ok(e.code))
        }
    }
}
