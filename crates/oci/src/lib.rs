//! The operator's side of images: asking registries about tags through the OCI distribution
//! API (`registry_client`) and building and pushing images (`ImageBuilder`, done by the local
//! podman in `PodmanBuilder`). Nothing here runs a workload: the CLI links this, never the
//! node's runtimes.

mod builder;
mod podman_builder;
pub mod registry_client;

pub use builder::{BuildError, BuildSpec, ImageBuilder};
pub use podman_builder::{PodmanBuilder, PodmanBuilderConfig};
pub use podman_cli::OutputSink;
pub use registry_client::{AuthEnv, Credentials, RegistryApiError, RegistryClient};
