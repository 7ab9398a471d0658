//! `mcp events [SERVICE] [-n N] [--json]`: the agents' history, newest first.

use mcp_proto::v1 as pb;
use serde::Serialize;

use crate::args::EventsArgs;
use crate::context::{Context, fan_out, fan_out_code};
use crate::output::{self, NodeErrorJson};
use crate::{CliError, ExitCode};

#[derive(Serialize)]
struct EventJson {
    node: String,
    id: i64,
    service: String,
    action: String,
    actor: String,
    /// Unix seconds.
    at: i64,
    detail: Option<String>,
}

#[derive(Serialize)]
struct EventsJson {
    events: Vec<EventJson>,
    errors: Vec<NodeErrorJson>,
}

pub async fn run(ctx: &Context, args: EventsArgs) -> Result<ExitCode, CliError> {
    let nodes = match (&args.service, &args.node) {
        (Some(service), _) => vec![ctx.node_of_service(service, args.node.as_deref()).await?],
        (None, node) => ctx.nodes(node.as_deref())?,
    };
    let asked = nodes.len();
    let (service, limit) = (args.service.clone().unwrap_or_default(), args.limit);
    let answers = fan_out(ctx, nodes, move |mut client| {
        let request = pb::EventsRequest {
            service: service.clone(),
            limit,
        };
        async move {
            client
                .events(request)
                .await
                .map(tonic::Response::into_inner)
        }
    })
    .await;
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let mut failures = Vec::new();
    for (node, result) in answers {
        match result {
            Ok(resp) => events.extend(resp.events.into_iter().map(|e| EventJson {
                node: node.name.clone(),
                id: e.id,
                service: e.service,
                action: e.action,
                actor: e.actor,
                at: e.at,
                detail: (!e.detail.is_empty()).then_some(e.detail),
            })),
            Err(e) => {
                eprintln!("mcp: {e}");
                failures.push(e.code);
                errors.push(NodeErrorJson {
                    node: node.name.clone(),
                    error: e.message,
                });
            }
        }
    }
    let code = fan_out_code(&failures, asked, args.strict);
    events.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
    if args.json {
        output::print_json(&EventsJson { events, errors })?;
    } else {
        let now = output::now_unix();
        for e in &events {
            println!(
                "{:>8} ago  {:<6} {:<20} {:<16} {:<20} {}",
                output::human_duration(now - e.at),
                e.node,
                e.service,
                e.action,
                e.actor,
                e.detail.as_deref().unwrap_or("")
            );
        }
    }
    Ok(code)
}
