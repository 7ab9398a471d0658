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
