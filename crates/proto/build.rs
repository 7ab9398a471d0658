//! Compiles the agent's .proto with protox, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/mcp/v1/agent.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    // Messages that carry a secret value or a password get a hand-written Debug (lib.rs)
    // that leaves it out: a request logged by accident must not leak it.
    tonic_prost_build::configure()
        .skip_debug([".mcp.v1.SetSecretRequest", ".mcp.v1.RegistryLoginRequest"])
        .compile_fds(descriptors)?;
    Ok(())
}
