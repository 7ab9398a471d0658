//! `mcp status [SERVICE]` and `mcp ps`: one status call per node, in parallel.

use serde::Serialize;

use crate::args::{PsArgs, StatusArgs};
use crate::context::{Context, fan_out_code, fan_out_status};
use crate::output::{self, NodeErrorJson, ServiceJson, StrayJson};
use crate::{CliError, ExitCode};

#[derive(Serialize)]
struct StatusJson {
    services: Vec<ServiceJson>,
    /// Instances carrying our labels that no deployed service describes.
    strays: Vec<StrayJson>,
    /// Nodes that could not answer.
    errors: Vec<NodeErrorJson>,
}

/// Every node's answer, gathered.
struct Collected {
    services: Vec<ServiceJson>,
    strays: Vec<StrayJson>,
    failures: Vec<CliError>,
    errors: Vec<NodeErrorJson>,
    /// How many nodes were asked.
    asked: usize,
}

/// Collects every node's services; a missing service on one node is not an error when
/// another node has it.
async fn collect(
    ctx: &Context,
    node: Option<&str>,
    service: Option<&str>,
) -> Result<Collected, CliError> {
    if let Some(name) = node {
        ctx.node(name)?;
    }
    let now = output::now_unix();
    let mut services = Vec::new();
    let mut strays = Vec::new();
    let mut failures = Vec::new();
    let mut errors = Vec::new();
    let answers = fan_out_status(ctx, node, service.unwrap_or_default()).await;
    let asked = answers.len();
    for (entry, result) in answers {
        match result {
            Ok(resp) => {
                services.extend(resp.services.iter().map(|s| output::service_json(s, now)));
                strays.extend(
                    resp.strays
                        .iter()
                        .map(|s| output::stray_json(&entry.name, s)),
                );
            }
            Err(e) if service.is_some() && e.not_found => {}
            Err(e) => {
                errors.push(NodeErrorJson {
                    node: entry.name.clone(),
                    error: e.message.clone(),
                });
                failures.push(e);
            }
        }
    }
    services.sort_by(|a, b| (&a.name, &a.node).cmp(&(&b.name, &b.node)));
    Ok(Collected {
        services,
        strays,
        failures,
        errors,
        asked,
    })
}

fn finish(
    services_found: bool,
    service: Option<&str>,
    failures: Vec<CliError>,
    asked: usize,
    strict: bool,
) -> Result<ExitCode, CliError> {
    for failure in &failures {
        eprintln!("mcp: {failure}");
    }
    let codes: Vec<ExitCode> = failures.iter().map(|f| f.code).collect();
    let code = fan_out_code(&codes, asked, strict);
    if code != ExitCode::Ok {
        return Ok(code);
    }
    match service {
        Some(name) if !services_found => Err(CliError::bad_input(format!(
            "no node runs a service named {name}"
        ))),
        _ => Ok(ExitCode::Ok),
    }
}

pub async fn status(ctx: &Context, args: StatusArgs) -> Result<ExitCode, CliError> {
    let Collected {
        services,
        strays,
        failures,
        errors,
        asked,
    } = collect(ctx, args.node.as_deref(), args.service.as_deref()).await?;
    let found = !services.is_empty();
    if args.json {
        output::print_json(&StatusJson {
            services,
            strays,
            errors,
        })?;
    } else {
        if found {
            print!("{}", output::status_table(&services));
            println!();
        } else if args.service.is_none() && failures.is_empty() {
            println!("no services deployed");
        }
        for stray in &strays {
            println!(
                "stray on node {}: {} ({}, {}) carries mcp labels for service {} but no deployed service describes it",
                stray.node, stray.instance, stray.image, stray.state, stray.service
            );
        }
    }
    finish(found, args.service.as_deref(), failures, asked, args.strict)
}

pub async fn ps(ctx: &Context, args: PsArgs) -> Result<ExitCode, CliError> {
    let Collected {
        services,
        failures,
        errors,
        asked,
        ..
    } = collect(ctx, args.node.as_deref(), None).await?;
    if args.json {
        #[derive(Serialize)]
        struct Instance<'a> {
            node: &'a str,
            service: &'a str,
            #[serde(flatten)]
            component: &'a output::ComponentJson,
        }
        #[derive(Serialize)]
        struct PsJson<'a> {
            instances: Vec<Instance<'a>>,
            errors: &'a [NodeErrorJson],
        }
        let instances = services
            .iter()
            .flat_map(|s| {
                s.components.iter().map(|c| Instance {
                    node: &s.node,
                    service: &s.name,
                    component: c,
                })
            })
            .collect();
        output::print_json(&PsJson {
            instances,
            errors: &errors,
        })?;
    } else {
        print!("{}", output::ps_table(&services));
        println!();
    }
    finish(true, None, failures, asked, args.strict)
}
