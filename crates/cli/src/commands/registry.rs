//! `mcp registry login|logout`: the nodes' credentials for private registries, stored by
//! each agent (its podman auth file, 0600) after the registry accepted them.

use mcp_proto::v1 as pb;
use std::future::Future;
use std::io::{IsTerminal, Read};
use tonic::transport::Channel;

use crate::args::RegistryCommand;
use crate::context::Context;
use crate::{CliError, ExitCode};

type Client = mcp_proto::v1::agent_client::AgentClient<Channel>;

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

/// Runs `call` on every node (or the one named), one after the other, printing what each
/// answered; the first failure's exit code is the command's.
async fn on_nodes<F, Fut>(ctx: &Context, only: Option<&str>, call: F) -> Result<ExitCode, CliError>
where
    F: Fn(Client) -> Fut,
    Fut: Future<Output = Result<String, tonic::Status>>,
{
    let mut failure: Option<ExitCode> = None;
    for node in ctx.nodes(only)? {
        let answer = match ctx.connect(&node).await {
            Ok(client) => call(client)
                .await
                .map_err(|s| CliError::from_status(&node.name, &s)),
            Err(e) => Err(e),
        };
        match answer {
            Ok(line) => println!("node {}: {line}", node.name),
            Err(e) => {
                eprintln!("mcp: {e}");
                failure.get_or_insert(e.code);
            }
        }
    }
    Ok(failure.unwrap_or(ExitCode::Ok))
}

pub async fn run(ctx: &Context, cmd: RegistryCommand) -> Result<ExitCode, CliError> {
    match cmd {
        RegistryCommand::Login {
            registry,
            username,
            node,
            ..
        } => {
            let password = read_password()?;
            on_nodes(ctx, node.as_deref(), |mut client| {
                let request = pb::RegistryLoginRequest {
                    registry: registry.clone(),
                    username: username.clone(),
                    password: password.clone(),
                };
                let done = format!("logged in to {registry} as {username}");
                async move { client.registry_login(request).await.map(|_| done) }
            })
            .await
        }
        RegistryCommand::Logout { registry, node, .. } => {
            on_nodes(ctx, node.as_deref(), |mut client| {
                let request = pb::RegistryLogoutRequest {
                    registry: registry.clone(),
                };
                let registry = registry.clone();
                async move {
                    let answer = client.registry_logout(request).await?;
                    Ok(if answer.get_ref().was_logged_in {
                        format!("logged out of {registry}")
                    } else {
                        format!("was not logged in to {registry}")
                    })
                }
            })
            .await
        }
    }
}
