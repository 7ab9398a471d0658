//! The node agent: serves the agent API over mTLS and runs each service's components on
//! this node through the runtimes, recording desired state in the registry.

pub mod access;
mod api;
pub mod args;
pub mod config;
mod convert;
pub mod deployer;
pub mod dev;
mod error;
pub mod failpoint;
pub mod monitor;
pub mod nat;
pub mod node;
pub mod podman_api;
pub mod ports;
pub mod probe;
pub mod progress;
pub mod proxy_link;
pub mod secret_box;
pub mod server;
pub mod startup;
pub mod traffic;

pub use error::AgentError;
