//! Errors of the runtime backends, each naming the instance or image it concerns.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
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
    #[error("{what} failed (exit {code}): {stderr}")]
    Command {
        what: String,
        code: i32,
        stderr: String,
    },
    #[error("cannot parse {what}: {detail}")]
    Parse { what: String, detail: String },
    #[error("invalid spec for {name}: {detail}")]
    InvalidSpec { name: String, detail: String },
    #[error(transparent)]
    InvalidImage(#[from] crate::ImageRefError),
    /// A streamed command (build, push) failed; `last_lines` is the end of its output, which
    /// is where builders put the reason.
    #[error("{what} failed (exit {code}); its last output:\n{last_lines}")]
    Output {
        what: String,
        code: i32,
        last_lines: String,
    },
    #[error("cannot check {image} in its registry: {source}")]
    Registry {
        image: String,
        #[source]
        source: crate::RegistryError,
    },
}
