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
}
