//! `mcp stop|start|restart|undeploy SERVICE`.

use mcp_proto::v1 as pb;

use crate::args::ServiceArgs;
use crate::context::{Context, actor};
use crate::output;
use crate::{CliError, ExitCode};

#[derive(Debug, Clone, Copy)]
pub enum Verb {
    Stop,
    Start,
    Restart,
    Undeploy,
}

impl Verb {
    fn past(self) -> &'static str {
        match self {
            Verb::Stop => "stopped",
            Verb::Start => "started",
            Verb::Restart => "restarted",
            Verb::Undeploy => "undeployed",
        }
    }
}

/// On a terminal, asks before an undeploy (true: go ahead); elsewhere (scripts, pipes) goes
/// ahead, as `--yes` does.
pub fn confirm_undeploy(service: &str) -> Result<bool, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(true);
    }
    eprint!("Undeploy {service}? Its components are removed and the node forgets it. [y/N] ");
    // A prompt that cannot be shown or answered is a "no".
    if std::io::stderr().flush().is_err() {
        return Ok(false);
    }
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer).is_err() {
        return Ok(false);
    }
    let yes = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
    if !yes {
        eprintln!("not undeployed");
    }
    Ok(yes)
}

pub async fn run(ctx: &Context, verb: Verb, args: ServiceArgs) -> Result<ExitCode, CliError> {
    servicedef::ServiceName::new(args.service.clone())
        .map_err(|e| CliError::bad_input(e.to_string()))?;
    let node = ctx
        .node_of_service(&args.service, args.node.as_deref())
        .await?;
    let mut client = ctx.connect(&node).await?;
    let request = pb::ServiceRef {
        name: args.service.clone(),
        actor: actor(),
    };
    let response = match verb {
        Verb::Stop => client.stop(request).await,
        Verb::Start => client.start(request).await,
        Verb::Restart => client.restart(request).await,
        Verb::Undeploy => client.undeploy(request).await,
    }
    .map_err(|s| CliError::from_status(&node.name, &s))?
    .into_inner();
    println!("{} {} on node {}", verb.past(), args.service, node.name);
    if let Some(status) = response.status {
        output::print_service_table(&status);
    }
    Ok(ExitCode::Ok)
}
