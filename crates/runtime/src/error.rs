//! Errors of the runtime backends, each naming the instance or image it concerns.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Podman(#[from] podman_cli::PodmanError),
    #[error(transparent)]
    PodmanApi(#[from] crate::podman::api::ApiError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {binary}: {source}")]
    Unavailable {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image {image} is not available: {detail}")]
    ImageNotFound { image: String, detail: String },
    #[error(
        "registry {registry} refused to let this node pull {image} ({detail}); store \
         credentials on the node with `mcp registry login {registry} -u USER --password-stdin`"
    )]
    PullDenied {
        registry: String,
        image: String,
        detail: String,
    },
    #[error("registry {registry} refused the login of {username}: {detail}")]
    LoginRefused {
        registry: String,
        username: String,
        detail: String,
    },
    /// A process (qemu, ops, podman logs) exited unsuccessfully; `code` is `None` when a
    /// signal ended it.
    #[error("{what} failed (exit {}): {stderr}", code.map_or_else(|| "by a signal".to_string(), |c| c.to_string()))]
    Command {
        what: String,
        code: Option<i32>,
        stderr: String,
    },
    /// Something other than a process failed (a guest that never answered, a QMP exchange).
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
    #[error("invalid spec for {name}: {detail}")]
    InvalidSpec { name: String, detail: String },
    #[error(transparent)]
    InvalidImage(#[from] servicedef::ImageRefError),
}
