//! `mcp plan FILE|SERVICE [--json]` (and `mcp deploy --dry-run`): what a deploy would do,
//! per component, diffed by the agent against what runs; nothing changes.

use mcp_client::NodeEntry;
use mcp_proto::v1 as pb;
use serde::Serialize;
use servicedef::Service;

use crate::args::PlanArgs;
use crate::context::{Context, actor};
use crate::output;
use crate::{CliError, ExitCode};

#[derive(Debug, Serialize)]
struct PlanJson {
    service: String,
    node: String,
    changed: bool,
    components: Vec<ComponentPlanJson>,
}

#[derive(Debug, Serialize)]
struct ComponentPlanJson {
    name: String,
    /// "create" | "replace" | "remove" | "start" | "stop" | "unchanged"
    action: String,
    fields: Vec<String>,
    /// "replace": the new instance starts beside the old one, no downtime.
    side_by_side: bool,
}

pub async fn run(ctx: &Context, args: PlanArgs) -> Result<ExitCode, CliError> {
    let path = ctx.definition_file(&args.target)?;
    let mut spec = servicedef::load_file(&path)?;
    if let Some(node) = args.node {
        spec.node = node;
    }
    let node = ctx.node(&spec.node)?.clone();
    show(ctx, &node, &spec, args.json).await
}

/// Asks `node` for the plan of `spec` and prints it.
pub async fn show(
    ctx: &Context,
    node: &NodeEntry,
    spec: &Service,
    json: bool,
) -> Result<ExitCode, CliError> {
    let mut client = ctx.connect(node).await?;
    let plan = client
        .plan(pb::DeployRequest {
            spec: Some(pb::ServiceSpec::from(spec)),
            actor: actor(),
        })
        .await
        .map_err(|s| CliError::from_status(&node.name, &s))?
        .into_inner();
    let out = PlanJson {
        service: spec.name.to_string(),
        node: node.name.clone(),
        changed: plan.changed,
        components: plan
            .components
            .into_iter()
            .map(|c| ComponentPlanJson {
                name: c.name,
                action: c.action,
                fields: c.fields,
                side_by_side: c.side_by_side,
            })
            .collect(),
    };
    if json {
        output::print_json(&out)?;
        return Ok(ExitCode::Ok);
    }
    let verdict = if out.changed {
        "would change"
    } else {
        "is unchanged"
    };
    println!("{} on node {} {verdict}:", out.service, out.node);
    for c in &out.components {
        let mark = match c.action.as_str() {
            "create" => "+",
            "remove" => "-",
            "replace" => "~",
            "unchanged" => "=",
            _ => ">",
        };
        let fields = if c.fields.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.fields.join(", "))
        };
        let how = match (c.action.as_str(), c.side_by_side) {
            ("replace", true) => ", side by side: no downtime",
            ("replace", false) => ", in place: it stops first",
            _ => "",
        };
        println!("  {mark} {} {}{fields}{how}", c.name, c.action);
    }
    Ok(ExitCode::Ok)
}
