//! `mcp node status [--json]`: every node's agent facts, in parallel.

use mcp_proto::v1 as pb;
use serde::Serialize;

use crate::context::Context;
use crate::output::{self, NodeErrorJson};
use crate::{CliError, ExitCode};

#[derive(Serialize)]
struct NodeJson {
    node: String,
    address: String,
    agent_version: String,
    agent_uptime_secs: u64,
    hostname: String,
}

#[derive(Serialize)]
struct NodesJson {
    nodes: Vec<NodeJson>,
    errors: Vec<NodeErrorJson>,
}

pub async fn status(ctx: &Context, only: Option<&str>, json: bool) -> Result<ExitCode, CliError> {
    let mut tasks = Vec::new();
    for node in ctx.nodes(only)? {
        let tls = ctx.config.tls.clone();
        tasks.push(tokio::spawn(async move {
            let result = async {
                let mut client = mcp_client::connect(&node, &tls).await?;
                client
                    .node_status(pb::NodeStatusRequest {})
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| CliError::from_status(&node.name, &s))
            }
            .await;
            (node, result)
        }));
    }
    let mut nodes = Vec::new();
    let mut errors = Vec::new();
    let mut code = ExitCode::Ok;
    for task in tasks {
        let Ok((entry, result)) = task.await else {
            continue;
        };
        match result {
            Ok(r) => nodes.push(NodeJson {
                node: r.node,
                address: entry.address,
                agent_version: r.agent_version,
                agent_uptime_secs: r.agent_uptime_secs,
                hostname: r.hostname,
            }),
            Err(e) => {
                eprintln!("mcp: {e}");
                if code == ExitCode::Ok {
                    code = e.code;
                }
                errors.push(NodeErrorJson {
                    node: entry.name,
                    error: e.message,
                });
            }
        }
    }
    if json {
        output::print_json(&NodesJson { nodes, errors })?;
    } else {
        for n in &nodes {
            println!("node:     {}", n.node);
            println!("address:  {}", n.address);
            println!("hostname: {}", n.hostname);
            println!(
                "agent:    {} (up {})",
                n.agent_version,
                output::human_duration(i64::try_from(n.agent_uptime_secs).unwrap_or(i64::MAX))
            );
            println!();
        }
    }
    Ok(code)
}
