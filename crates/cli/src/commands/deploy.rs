//! `mcp deploy FILE.toml|SERVICE [-n NODE] [--no-build] [--move]`: parse and validate locally,
//! make sure every component image is in its registry (building what is missing), make sure no
//! other node runs the service (or move it with `--move`), send to the agent.

use mcp_proto::v1 as pb;
use std::io::IsTerminal;

use crate::args::DeployArgs;
use crate::context::{Context, actor, fan_out_status_to};
use crate::{CliError, ExitCode};
use crate::{output, progress};
use mcp_client::NodeEntry;

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
    // Before any build: a deploy that would be refused should not push images first.
    let old_homes = other_homes(ctx, spec.name.as_str(), &node, args.move_service).await?;
    if !old_homes.is_empty() && !args.move_service {
        let names: Vec<&str> = old_homes.iter().map(|n| n.name.as_str()).collect();
        return Err(CliError::bad_input(format!(
            "{} is deployed on node {}; deploying it to node {} too would run it twice. \
             Pass --move to deploy it on {} and then undeploy it from {}, or deploy with -n {}",
            spec.name,
            names.join(", "),
            node.name,
            node.name,
            names.join(", "),
            names[0]
        )));
    }
    if !old_homes.is_empty() {
        // The move ends with an undeploy: find out now, not with the service on two nodes.
        ctx.require_role(
            pki::OperatorRole::Admin,
            "--move (it undeploys from the old node)",
        )?;
    }
    // Images first: a missing image fails the deploy before the node is contacted.
    if !args.no_build {
        let report = progress::reporter();
        images::before_deploy(&ctx.local_podman(), &spec, ctx.workspace(), &report).await?;
    }
    if !std::io::stderr().is_terminal() {
        eprintln!("deploying {} to node {}", spec.name, node.name);
    }
    let mut client = ctx.connect(&node).await?;
    let request = pb::DeployRequest {
        spec: Some(pb::ServiceSpec::from(&spec)),
        actor: actor(),
    };
    let response = deploy_watched(&mut client, request, &node.name).await?;
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
    // Only now, with the new node serving, does the old one let go; a failed deploy above
    // returned early and left it running.
    for old in &old_homes {
        undeploy_moved(ctx, spec.name.as_str(), old, &node).await?;
    }
    Ok(ExitCode::Ok)
}

/// Deploys with the node's steps shown as they happen; an agent without `DeployWatch` (an
/// older release of the same protocol) gets the plain `Deploy`.
async fn deploy_watched(
    client: &mut mcp_client::AgentConn,
    request: pb::DeployRequest,
    node: &str,
) -> Result<pb::DeployResponse, CliError> {
    let failed = |s: tonic::Status| CliError::from_status(node, &s);
    let mut stream = match client.deploy_watch(request.clone()).await {
        Ok(stream) => stream.into_inner(),
        Err(s) if s.code() == tonic::Code::Unimplemented => {
            return Ok(client.deploy(request).await.map_err(failed)?.into_inner());
        }
        Err(s) => return Err(failed(s)),
    };
    let steps = progress::DeploySteps::new(node);
    let outcome = loop {
        match stream.message().await {
            Ok(Some(pb::DeployProgress {
                kind: Some(pb::deploy_progress::Kind::Step(step)),
            })) => steps.step(&step),
            Ok(Some(pb::DeployProgress {
                kind: Some(pb::deploy_progress::Kind::Done(done)),
            })) => break Ok(done),
            Ok(Some(pb::DeployProgress { kind: None })) => {}
            Ok(None) => {
                break Err(CliError::failed(format!(
                    "node {node} ended the deploy without its outcome; see `mcp status`"
                )));
            }
            Err(s) => break Err(failed(s)),
        }
    };
    steps.finish();
    outcome
}

/// The nodes other than `target` whose registry holds `service`. A node that cannot answer
/// is warned about and not counted: a dead node must not block deploys to the living.
/// With `moving`, every other node must answer: a move cannot leave a copy on a node that
/// could not be asked.
async fn other_homes(
    ctx: &Context,
    service: &str,
    target: &NodeEntry,
    moving: bool,
) -> Result<Vec<NodeEntry>, CliError> {
    let others: Vec<NodeEntry> = ctx
        .config
        .nodes
        .iter()
        .filter(|n| n.name != target.name)
        .cloned()
        .collect();
    if others.is_empty() {
        return Ok(others);
    }
    let answers = fan_out_status_to(ctx, others, service).await;
    let mut homes = Vec::new();
    for (entry, answer) in answers {
        match answer {
            Ok(status) if !status.services.is_empty() => homes.push(entry),
            Ok(_) => {}
            Err(e) if e.not_found => {}
            Err(e) if e.code == ExitCode::PermissionDenied => return Err(e),
            Err(e) if moving => {
                return Err(CliError {
                    message: format!(
                        "--move needs every node to answer; cannot tell whether node {} runs \
                         {service}: {}",
                        entry.name, e.message
                    ),
                    ..e
                });
            }
            Err(e) => eprintln!(
                "warning: cannot tell whether node {} runs {service}: {}",
                entry.name, e.message
            ),
        }
    }
    Ok(homes)
}

async fn undeploy_moved(
    ctx: &Context,
    service: &str,
    old: &NodeEntry,
    new: &NodeEntry,
) -> Result<(), CliError> {
    let left_behind = |e: CliError| {
        CliError::failed(format!(
            "{service} now runs on node {} but is still deployed on node {}: {}; \
             run `mcp undeploy {service} -n {} --yes`",
            new.name, old.name, e.message, old.name
        ))
    };
    let mut client = ctx.connect(old).await.map_err(left_behind)?;
    client
        .undeploy(pb::ServiceRef {
            name: service.to_string(),
            actor: actor(),
        })
        .await
        .map_err(|s| left_behind(CliError::from_status(&old.name, &s)))?;
    println!(
        "moved {service} from node {} to node {}",
        old.name, new.name
    );
    Ok(())
}
