//! `mcp deploy FILE.toml|SERVICE [-n NODE] [--no-build]`: parse and validate locally, make
//! sure every component image is in its registry (building what is missing), send to the agent.

use mcp_proto::v1 as pb;
use std::io::IsTerminal;

use crate::args::DeployArgs;
use crate::context::{Context, actor};
use crate::{CliError, ExitCode};
use crate::{output, progress};

pub async fn run(ctx: &Context, args: DeployArgs) -> Result<ExitCode, CliError> {
    let path = ctx.definition_file(&args.target)?;
    let mut spec = servicedef::load_file(&path)?;
    if let Some(node) = args.node {
        spec.node = node;
    }
    let node = ctx.node(&spec.node)?.clone();
    if args.dry_run {
        return super::plan::show(ctx, &node, &spec, args.json).await;
    }
    // Images first: a missing image fails the deploy before the node is contacted.
    if !args.no_build {
        let report = progress::reporter();
        images::before_deploy(&ctx.local_podman(), &spec, ctx.workspace(), &report).await?;
    }
    if std::io::stderr().is_terminal() {
        eprintln!("deploying {} to node {}…", spec.name, node.name);
    }
    let mut client = ctx.connect(&node).await?;
    let response = client
        .deploy(pb::DeployRequest {
            spec: Some(pb::ServiceSpec::from(&spec)),
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
        output::print_service_table(&status);
    }
    Ok(ExitCode::Ok)
}
