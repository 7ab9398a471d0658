//! `mcp history SERVICE` and `mcp rollback SERVICE [--to VERSION]`.

use mcp_proto::v1 as pb;
use serde::Serialize;

use crate::args::{HistoryArgs, RollbackArgs};
use crate::context::{Context, actor};
use crate::{CliError, ExitCode, output};

#[derive(Debug, Serialize)]
struct VersionJson {
    version: u32,
    /// Unix seconds.
    at: i64,
    actor: String,
    /// `component=image`.
    images: Vec<String>,
    spec_hash: String,
    current: bool,
    detail: Option<String>,
}

fn valid_service(name: &str) -> Result<(), CliError> {
    servicedef::ServiceName::new(name.to_string())
        .map(|_| ())
        .map_err(|e| CliError::bad_input(e.to_string()))
}

pub async fn history(ctx: &Context, args: HistoryArgs) -> Result<ExitCode, CliError> {
    valid_service(&args.service)?;
    let node = ctx
        .node_of_service(&args.service, args.node.as_deref())
        .await?;
    let mut client = ctx.connect(&node).await?;
    let versions: Vec<VersionJson> = client
        .history(pb::HistoryRequest {
            service: args.service.clone(),
        })
        .await
        .map_err(|s| CliError::from_status(&node.name, &s))?
        .into_inner()
        .versions
        .into_iter()
        .map(|v| VersionJson {
            version: v.version,
            at: v.at,
            actor: v.actor,
            images: v.images,
            spec_hash: v.spec_hash,
            current: v.current,
            detail: (!v.detail.is_empty()).then_some(v.detail),
        })
        .collect();
    if args.json {
        output::print_json(&versions)?;
        return Ok(ExitCode::Ok);
    }
    let now = output::now_unix();
    let mut table = output::table(&["VERSION", "AGE", "ACTOR", "IMAGES", "NOTE"]);
    for v in &versions {
        let mark = if v.current { " (current)" } else { "" };
        table.add_row(vec![
            format!("{}{mark}", v.version),
            format!("{} ago", output::human_duration(now - v.at)),
            v.actor.clone(),
            v.images.join(" "),
            v.detail.clone().unwrap_or_default(),
        ]);
    }
    output::print_text(&table.trim_fmt())?;
    Ok(ExitCode::Ok)
}

pub async fn rollback(ctx: &Context, args: RollbackArgs) -> Result<ExitCode, CliError> {
    valid_service(&args.service)?;
    let node = ctx
        .node_of_service(&args.service, args.node.as_deref())
        .await?;
    let mut client = ctx.connect(&node).await?;
    let response = client
        .rollback(pb::RollbackRequest {
            service: args.service.clone(),
            version: args.to.unwrap_or(0),
            actor: actor(),
        })
        .await
        .map_err(|s| CliError::from_status(&node.name, &s))?
        .into_inner();
    let to = args.to.map_or_else(
        || "the previous version".to_string(),
        |v| format!("version {v}"),
    );
    if response.changed {
        println!("rolled {} back to {to} on node {}", args.service, node.name);
    } else {
        println!("{} already runs {to} on node {}", args.service, node.name);
    }
    if let Some(status) = response.status {
        output::print_service_table(&status);
    }
    Ok(ExitCode::Ok)
}
