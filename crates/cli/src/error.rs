//! Failures of the CLI and their documented exit codes.

use mcp_client::{ConfigError, ConnectError};

/// 0 ok, 1 operation failed, 2 bad input or usage, 3 agent unreachable, 4 permission
/// denied (the operator certificate's role does not allow it, or it is revoked or expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    Ok = 0,
    Failed = 1,
    BadInput = 2,
    Unreachable = 3,
    PermissionDenied = 4,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub code: ExitCode,
    pub message: String,
    /// The agent answered that the service does not exist there (fan-out skips these).
    pub not_found: bool,
}

impl CliError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self {
            code: ExitCode::BadInput,
            message: message.into(),
            not_found: false,
        }
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self {
            code: ExitCode::PermissionDenied,
            message: message.into(),
            not_found: false,
        }
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            code: ExitCode::Failed,
            message: message.into(),
            not_found: false,
        }
    }

    /// An agent's answer, with the node it came from.
    pub fn from_status(node: &str, status: &tonic::Status) -> Self {
        use tonic::Code;
        let code = match status.code() {
            Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::AlreadyExists => ExitCode::BadInput,
            Code::Unavailable => ExitCode::Unreachable,
            // mcp's own refusals (roles, revoked certificates); a registry's refusal of a
            // login comes as Unauthenticated and is a failed operation.
            Code::PermissionDenied => ExitCode::PermissionDenied,
            _ => ExitCode::Failed,
        };
        // Transport failures (refused TLS, reset connections) surface as bare
        // "transport error" statuses; their cause chain says what happened.
        let transport = matches!(status.code(), Code::Unknown | Code::Cancelled)
            && std::error::Error::source(status).is_some();
        let code = if transport {
            ExitCode::Unreachable
        } else {
            code
        };
        let message = if transport {
            let cause = std::error::Error::source(status)
                .map(mcp_client::error_chain)
                .unwrap_or_default();
            format!(
                "agent of node {node} closed the connection ({cause}); \
                 is the operator certificate signed by the agent's CA?"
            )
        } else if status.code() == Code::Unavailable {
            format!("agent of node {node} is unreachable: {}", status.message())
        } else {
            format!("node {node}: {}", status.message())
        };
        Self {
            code,
            message,
            not_found: status.code() == Code::NotFound,
        }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        Self::bad_input(e.to_string())
    }
}

impl From<ConnectError> for CliError {
    fn from(e: ConnectError) -> Self {
        let code = match e {
            ConnectError::Unreachable { .. } => ExitCode::Unreachable,
            ConnectError::TlsFile { .. } | ConnectError::Address { .. } => ExitCode::BadInput,
        };
        Self {
            code,
            message: e.to_string(),
            not_found: false,
        }
    }
}

impl From<images::ImagesError> for CliError {
    /// A definition or configuration that cannot work is bad input; a registry or builder
    /// failing is a failed operation.
    fn from(e: images::ImagesError) -> Self {
        if e.is_bad_input() {
            Self::bad_input(e.to_string())
        } else {
            Self::failed(e.to_string())
        }
    }
}

impl From<servicedef::DefinitionError> for CliError {
    fn from(e: servicedef::DefinitionError) -> Self {
        Self::bad_input(e.to_string())
    }
}
