//! Wire types and gRPC stubs of the agent API, generated from `proto/mcp/v1/agent.proto`,
//! and the conversions of service specs to and from them (`spec`).

mod spec;

pub use spec::WireError;

/// The wire contract's version. Raise it when a change would make an older CLI or agent
/// misread the other (a field's meaning changes, an RPC goes away); additions that old
/// peers ignore do not raise it. The CLI sends it in `PROTOCOL_HEADER` on every call and an
/// agent refuses a different one, naming both versions.
pub const PROTOCOL_VERSION: u32 = 1;
/// Request metadata: the caller's `PROTOCOL_VERSION`.
pub const PROTOCOL_HEADER: &str = "mcp-protocol";
/// Response metadata: the agent's package version (the CLI warns when it differs from its own).
pub const AGENT_VERSION_HEADER: &str = "mcp-agent-version";
/// Response metadata: unix seconds the agent's TLS certificate ends (the CLI warns when soon).
pub const AGENT_CERT_NOT_AFTER_HEADER: &str = "mcp-agent-cert-not-after";

#[allow(clippy::all, clippy::pedantic, clippy::unwrap_used, missing_docs)]
pub mod v1 {
    tonic::include_proto!("mcp.v1");
}

impl std::fmt::Debug for v1::SetSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetSecretRequest")
            .field("service", &self.service)
            .field("name", &self.name)
            .field("value", &format_args!("<{} bytes>", self.value.len()))
            .field("actor", &self.actor)
            .finish()
    }
}

impl std::fmt::Debug for v1::RegistryLoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryLoginRequest")
            .field("registry", &self.registry)
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::v1;

    #[test]
    fn debug_output_never_shows_secret_values_or_passwords() {
        let set = v1::SetSecretRequest {
            service: "web".into(),
            name: "DB".into(),
            value: b"hunter2".to_vec(),
            actor: "me".into(),
        };
        let login = v1::RegistryLoginRequest {
            registry: "r.example".into(),
            username: "alice".into(),
            password: "hunter2".into(),
        };
        for shown in [format!("{set:?}"), format!("{login:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("104, 117"), "{shown}");
        }
    }
}
