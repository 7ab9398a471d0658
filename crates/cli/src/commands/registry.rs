//! `mcp registry login|logout`: the nodes' credentials for private registries, stored by
//! each agent (its podman auth file, 0600) after the registry accepted them.

use mcp_proto::v1 as pb;
use std::future::Future;
use std::io::{IsTerminal, Read};

use crate::args::RegistryCommand;
use crate::context::{Context, fan_out};
use crate::{CliError, ExitCode};

type Client = mcp_client::AgentConn;

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

/// Runs `call` on every node (or the one named) through the fan-out (in parallel, with the
/// node timeout), printing what each answered. Credentials must reach every node asked: the
/// first failure's exit code is the command's.
async fn on_nodes<F, Fut>(ctx: &Context, only: Option<&str>, call: F) -> Result<ExitCode, CliError>
where
    F: Fn(Client) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<String, tonic::Status>> + Send,
{
    let mut failure: Option<ExitCode> = None;
    for (node, answer) in fan_out(ctx, ctx.nodes(only)?, call).await {
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
            on_nodes(ctx, node.as_deref(), move |mut client| {
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
            on_nodes(ctx, node.as_deref(), move |mut client| {
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
