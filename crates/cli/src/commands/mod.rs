//! One module per subcommand; each takes its parsed arguments and returns an exit code.

pub mod build;
pub mod deploy;
pub mod events;
pub mod history;
pub mod lifecycle;
pub mod logs;
pub mod node;
pub mod plan;
pub mod registry;
pub mod secret;
pub mod status;
pub mod tls;

use crate::args::{Cli, Command, NodeCommand};
use crate::context::Context;
use crate::{CliError, ExitCode, output};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let load = || Context::load(cli.config.as_deref());
    match cli.command {
        Command::Deploy(args) => deploy::run(&load()?, args).await,
        Command::Build(args) => build::run(&load()?, args).await,
        Command::Status(args) => status::status(&load()?, args).await,
        Command::Ps(args) => status::ps(&load()?, args).await,
        Command::Logs(args) => logs::run(&load()?, args).await,
        Command::Stop(args) => lifecycle::run(&load()?, lifecycle::Verb::Stop, args).await,
        Command::Start(args) => lifecycle::run(&load()?, lifecycle::Verb::Start, args).await,
        Command::Restart(args) => lifecycle::run(&load()?, lifecycle::Verb::Restart, args).await,
        Command::Undeploy(args) => {
            if !args.yes && !lifecycle::confirm_undeploy(&args.service.service)? {
                return Ok(ExitCode::Failed);
            }
            lifecycle::run(&load()?, lifecycle::Verb::Undeploy, args.service).await
        }
        Command::Events(args) => events::run(&load()?, args).await,
        Command::Plan(args) => plan::run(&load()?, args).await,
        Command::History(args) => history::history(&load()?, args).await,
        Command::Rollback(args) => history::rollback(&load()?, args).await,
        Command::Secret(cmd) => secret::run(&load()?, cmd).await,
        Command::Registry(cmd) => registry::run(&load()?, cmd).await,
        Command::Node(NodeCommand::Status { node, json, strict }) => {
            node::status(&load()?, node.as_deref(), json, strict).await
        }
        Command::Node(NodeCommand::List { json, strict }) => {
            node::list(&load()?, json, strict).await
        }
        Command::Tls(cmd) => tls::run(cmd),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "mcp", &mut script);
            output::print_text(String::from_utf8_lossy(&script).trim_end())?;
            Ok(ExitCode::Ok)
        }
    }
}
