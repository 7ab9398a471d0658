//! `mcp logs SERVICE[/COMPONENT] [-f] [--tail N] [--since WHEN] [--timestamps]`: the agent's
//! log stream, printed as it comes.

use mcp_proto::v1 as pb;
use std::io::Write;

use crate::args::LogsArgs;
use crate::context::Context;
use crate::{CliError, ExitCode, output};

/// `--since`: unix seconds, or a duration back from now (`90s`, `10m`, `2h`).
fn since_unix(when: &str) -> Result<i64, CliError> {
    if let Ok(seconds) = when.parse::<i64>() {
        return Ok(seconds);
    }
    let back_ms = servicedef::parse_duration_ms(when).map_err(|e| {
        CliError::bad_input(format!(
            "--since {when:?}: give unix seconds or a duration such as 10m ({e})"
        ))
    })?;
    let back = i64::try_from(back_ms / 1000).unwrap_or(i64::MAX);
    Ok(output::now_unix().saturating_sub(back).max(1))
}

pub async fn run(ctx: &Context, args: LogsArgs) -> Result<ExitCode, CliError> {
    let (service, component) = match args.target.split_once('/') {
        Some((s, c)) => (s.to_string(), c.to_string()),
        None => (args.target.clone(), String::new()),
    };
    servicedef::ServiceName::new(service.clone())
        .map_err(|e| CliError::bad_input(e.to_string()))?;
    let since = args.since.as_deref().map(since_unix).transpose()?;
    let node = ctx.node_of_service(&service, args.node.as_deref()).await?;
    let mut client = ctx.connect(&node).await?;
    let mut stream = client
        .logs(pb::LogsRequest {
            service,
            component: component.clone(),
            tail: args.tail.unwrap_or(0),
            follow: args.follow,
            timestamps: args.timestamps,
            since: since.unwrap_or(0),
        })
        .await
        .map_err(|s| CliError::from_status(&node.name, &s))?
        .into_inner();
    // Several components: prefix each line with its component, as compose does.
    let prefixed = component.is_empty();
    let mut stdout = std::io::stdout().lock();
    loop {
        match stream.message().await {
            Ok(Some(line)) => {
                let text = if prefixed {
                    format!("{} | {}", line.component, line.line)
                } else {
                    line.line
                };
                let written = if line.stream == "stderr" {
                    writeln!(std::io::stderr(), "{text}")
                } else {
                    writeln!(stdout, "{text}").and_then(|()| stdout.flush())
                };
                // A closed pipe (`mcp logs | head`) ends the command quietly.
                if written.is_err() {
                    return Ok(ExitCode::Ok);
                }
            }
            Ok(None) => return Ok(ExitCode::Ok),
            Err(status) => return Err(CliError::from_status(&node.name, &status)),
        }
    }
}
