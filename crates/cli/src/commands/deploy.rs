//! `mcp deploy FILE.toml|SERVICE [-n NODE]`: parse and validate locally, send to the agent.

use mcp_proto::v1 as pb;
use std::io::IsTerminal;
use std::path::PathBuf;

use crate::args::DeployArgs;
use crate::context::{Context, actor};
use crate::output;
use crate::{CliError, ExitCode};

/// A path-looking target is a file; a bare name is looked up in the services directory.
fn definition_file(ctx: &Context, target: &str) -> Result<PathBuf, CliError> {
    let as_path = PathBuf::from(target);
    if target.ends_with(".toml") || target.contains('/') || as_path.is_file() {
        return Ok(as_path);
    }
    ctx.definition_path(target).ok_or_else(|| {
        let dir = ctx.config.services_dir.as_ref().map_or_else(
            || format!("{} sets no services_dir", ctx.config_path.display()),
            |d| format!("{} has no {target}.toml", d.display()),
        );
        CliError::bad_input(format!("no definition for service {target}: {dir}"))
    })
}

pub async fn run(ctx: &Context, args: DeployArgs) -> Result<ExitCode, CliError> {
    let path = definition_file(ctx, &args.target)?;
    let mut spec = servicedef::load_file(&path)?;
    if let Some(node) = args.node {
        spec.node = node;
    }
    let node = ctx.node(&spec.node)?.clone();
    if std::io::stderr().is_terminal() {
        eprintln!("deploying {} to node {}…", spec.name, node.name);
    }
    let mut client = ctx.connect(&node).await?;
    let response = client
        .deploy(pb::DeployRequest {
            spec: Some(mcp_client::wire::service_to_wire(&spec)),
            actor: actor(),
        })
        .await
        .map_err(|s| CliError::from_status(&node.name, &s))?
        .into_inner();
    if response.changed {
        let replaced = if response.replaced.is_empty() {
            String::new()
        } else {
            format!(" (created: {})", response.replaced.join(", "))
        };
        println!("deployed {} to node {}{replaced}", spec.name, node.name);
    } else {
        println!("{} is unchanged on node {}", spec.name, node.name);
    }
    if let Some(status) = response.status {
        let now = output::now_unix();
        print!(
            "{}",
            output::status_table(&[output::service_json(&status, now)])
        );
        println!();
    }
    Ok(ExitCode::Ok)
}
