//! Workload runtimes behind one small trait: podman containers and QEMU (Nanos) VMs.
//!
//! The agent holds one `Arc<dyn Runtime>` per backend and picks one per component; the CLI
//! uses the same trait on the operator's machine to build and push images, and asks
//! registries about tags through the OCI distribution API (`registry_client`).

mod error;
mod image_ref;
pub mod kvm;
pub mod podman;
pub mod qemu;
pub mod registry_client;
mod spec;
pub mod tools;

pub use error::RuntimeError;
pub use image_ref::{ImageRef, ImageRefError, ManifestRef};
pub use kvm::{Accel, ProbeResult, probe_accelerator};
pub use podman::{PodmanConfig, PodmanRuntime};
pub use qemu::{QemuConfig, QemuRuntime};
pub use registry_client::{RegistryClient, RegistryError};
pub use spec::{
    BuildSpec, ContainerInfo, ContainerSpec, InstanceState, LABEL_COMPONENT, LABEL_SERVICE,
    LABEL_SPEC_HASH, LogLine, LogStream, LogStreamKind, OutputSink, PortBinding, SecretEnv,
    SecretValue,
};
pub use tools::ToolVersion;

use async_trait::async_trait;
use servicedef::RuntimeKind;
use std::time::Duration;

/// One backend that runs instances (containers or VMs) on this node.
///
/// Instances are addressed by name; every instance a backend creates carries the labels in
/// `ContainerSpec::labels`, and `list` returns only instances labelled `mcp.service`.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Which kind of component this backend runs.
    fn kind(&self) -> RuntimeKind;

    /// Makes `image` available locally. Called on deploy before anything is created, so a
    /// missing image fails the deploy while nothing exists yet. Present locally: no network.
    async fn pull(&self, image: &str) -> Result<(), RuntimeError>;

    /// Creates and starts an instance. Called only when no instance of that name exists.
    /// Returns the runtime's id of the new instance.
    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError>;

    /// Starts an existing, stopped instance (stop → start keeps the instance).
    async fn start(&self, name: &str) -> Result<(), RuntimeError>;

    /// Stops (gracefully, up to `timeout`) and starts the instance again, keeping it and its
    /// ports. The default is stop then start; podman does both in one call, which avoids
    /// racing its own asynchronous network cleanup between the two.
    async fn restart(&self, name: &str, timeout: Duration) -> Result<(), RuntimeError> {
        self.stop(name, timeout).await?;
        self.start(name).await
    }

    /// Forgets stored secret versions of `service` (entries named `mcp.<service>.…`) other
    /// than `keep`. Backends without a secret store have nothing to do.
    async fn prune_secrets(&self, _service: &str, _keep: &[String]) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Asks the instance to stop, forcing it after `timeout`. Stopped or gone counts as success.
    async fn stop(&self, name: &str, timeout: Duration) -> Result<(), RuntimeError>;

    /// Removes the instance (forcefully if it still runs). Gone counts as success.
    async fn remove(&self, name: &str) -> Result<(), RuntimeError>;

    /// The instance's current state, or `None` when it does not exist.
    async fn inspect(&self, name: &str) -> Result<Option<ContainerInfo>, RuntimeError>;

    /// Every instance of ours on this node, in one call to the backend.
    async fn list(&self) -> Result<Vec<ContainerInfo>, RuntimeError>;

    /// The instance's output: the last `tail` lines (all when `None`), then new lines while
    /// `follow` is set. Dropping the stream ends the underlying reader.
    async fn logs(
        &self,
        name: &str,
        tail: Option<u32>,
        follow: bool,
    ) -> Result<LogStream, RuntimeError>;

    /// Builds an image from `spec.file` with context `spec.context`, tagged with every tag in
    /// `spec.tags`, into the local store. Called on the operator's machine (`mcp build`, and
    /// `mcp deploy` for tags the registry lacks). `output` gets the builder's lines as they
    /// come; a failure carries the last of them.
    async fn build(&self, spec: &BuildSpec, output: OutputSink<'_>) -> Result<(), RuntimeError>;

    /// Pushes a built `image` to the registry its reference names. Called right after `build`,
    /// only for tags the registry lacked (or that the operator forced).
    async fn push(&self, image: &str, output: OutputSink<'_>) -> Result<(), RuntimeError>;

    /// Whether the registry named in `image` holds its tag, asked through the registry's API
    /// (never a local image list). Called before a deploy, to build only what is missing.
    /// Local-only images (no registry host) are an error: there is nobody to ask.
    async fn image_exists(&self, image: &str) -> Result<bool, RuntimeError>;
}
