//! `mcp`: parse arguments, run one command, exit with its documented code.

use clap::Parser;
use mcp_cli::ExitCode;
use mcp_cli::args::Cli;

fn main() -> std::process::ExitCode {
    // clap exits 2 on usage errors, matching our "bad input" code.
    let cli = Cli::parse();
    pki::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(ExitCode::Failed as u8);
        }
    };
    let code = match runtime.block_on(mcp_cli::commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mcp: {e}");
            e.code
        }
    };
    mcp_cli::commands::node::warn_about_agents();
    std::process::ExitCode::from(code as u8)
}
