//! Wire types and gRPC stubs of the agent API, generated from `proto/mcp/v1/agent.proto`.

#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, missing_docs)]
pub mod v1 {
    tonic::include_proto!("mcp.v1");
}
