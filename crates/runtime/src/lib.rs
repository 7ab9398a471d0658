//! Workload runtimes behind one small trait: podman containers and QEMU (Nanos) VMs.
//!
//! The agent holds one `Arc<dyn Runtime>` per backend and picks one per component. Only the
//! node links this crate: the operator's image work (build, push, tag checks) is `oci`'s.

mod error;
pub mod kvm;
pub mod podman;
pub mod qemu;
mod spec;
pub mod tools;

pub use error::RuntimeError;
pub use kvm::{Accel, ProbeResult, probe_accelerator, probe_accelerator_in};
pub use podman::{PodmanConfig, PodmanRuntime};
pub use qemu::{QemuConfig, QemuRuntime};
pub use spec::{
    ContainerSpec, InstanceInfo, InstanceState, LABEL_COMPONENT, LABEL_SERVICE, LABEL_SPEC_HASH,
    LogLine, LogOptions, LogStream, LogStreamKind, PortBinding, SecretEnv, SecretValue,
};
pub use tools::ToolVersion;

use async_trait::async_trait;
use std::time::Duration;

/// One backend that runs instances (containers or VMs) on this node.
///
/// Instances are addressed by name; every instance a backend creates carries the labels in
/// `ContainerSpec::labels`, and `list` returns only instances labelled `mcp.service`.
#[async_trait]
pub trait Runtime: Send + Sync {
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
    async fn inspect(&self, name: &str) -> Result<Option<InstanceInfo>, RuntimeError>;

    /// Every instance of ours on this node, in one call to the backend.
    async fn list(&self) -> Result<Vec<InstanceInfo>, RuntimeError>;

    /// The instances of `service`. podman selects them by label, looking only at theirs
    /// (a full listing waits for every container another operation holds).
    async fn list_service(&self, service: &str) -> Result<Vec<InstanceInfo>, RuntimeError> {
        let mut list = self.list().await?;
        list.retain(|info| info.service() == Some(service));
        Ok(list)
    }

    /// The instance's output as `options` say (the last lines, then new ones while following).
    /// Dropping the stream ends the underlying reader.
    async fn logs(&self, name: &str, options: &LogOptions) -> Result<LogStream, RuntimeError>;
}
