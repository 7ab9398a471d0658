//! What `mcp build` and `mcp deploy` need from an image builder: build, push, and "does the
//! registry hold this tag".

use async_trait::async_trait;
use std::path::PathBuf;

use crate::{OutputSink, RegistryApiError};

/// One image build: a Containerfile/Dockerfile, its context directory, the tags to give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSpec {
    pub file: PathBuf,
    pub context: PathBuf,
    /// Full references, e.g. `127.0.0.1:5000/hello:v1.0.0`; at least one.
    pub tags: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Podman(#[from] podman_cli::PodmanError),
    #[error("invalid build of {name}: {detail}")]
    InvalidSpec { name: String, detail: String },
    #[error(transparent)]
    InvalidImage(#[from] servicedef::ImageRefError),
    #[error("cannot check {image} in its registry: {source}")]
    Registry {
        image: String,
        #[source]
        source: RegistryApiError,
    },
}

#[async_trait]
pub trait ImageBuilder: Send + Sync {
    /// Builds an image from `spec.file` with context `spec.context`, tagged with every tag in
    /// `spec.tags`, into the local store. `output` gets the builder's lines as they come; a
    /// failure carries the last of them.
    async fn build(&self, spec: &BuildSpec, output: OutputSink<'_>) -> Result<(), BuildError>;

    /// Pushes a built `image` to the registry its reference names.
    async fn push(&self, image: &str, output: OutputSink<'_>) -> Result<(), BuildError>;

    /// Whether the registry named in `image` holds its tag, asked through the registry's API
    /// (never a local image list). Local-only images (no registry host) are an error.
    async fn image_exists(&self, image: &str) -> Result<bool, BuildError>;
}
