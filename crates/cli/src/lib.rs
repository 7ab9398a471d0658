//! The `mcp` CLI as a library: argument definitions, one module per subcommand, and the
//! mapping of failures to documented exit codes. `main.rs` only parses and dispatches.

pub mod args;
pub mod commands;
mod context;
mod error;
mod output;
mod progress;

pub use error::{CliError, ExitCode};
