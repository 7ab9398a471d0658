//! The container runtime as the deployer holds it once status answers from the observed
//! state: every change it asks for (run, start, restart, stop, remove) is noted there when
//! the call returns, failed or not, so the next status lists that service again unless a
//! later listing has seen it (`observed.rs`). Reads pass straight through.

use async_trait::async_trait;
use runtime::{ContainerSpec, InstanceInfo, LogOptions, LogStream, Runtime, RuntimeError};
use std::sync::Arc;
use std::time::Duration;

use super::ObservedCache;

pub(super) struct Noted {
    inner: Arc<dyn Runtime>,
    observed: Arc<ObservedCache>,
}

impl Noted {
    pub(super) fn new(inner: Arc<dyn Runtime>, observed: Arc<ObservedCache>) -> Self {
        Self { inner, observed }
    }

    fn note<T>(&self, name: &str, result: Result<T, RuntimeError>) -> Result<T, RuntimeError> {
        self.observed.changed(name, None);
        result
    }
}

#[async_trait]
impl Runtime for Noted {
    async fn pull(&self, image: &str) -> Result<(), RuntimeError> {
        self.inner.pull(image).await
    }

    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let result = self.inner.run(spec).await;
        let service = spec.labels.get(runtime::LABEL_SERVICE).map(String::as_str);
        self.observed.changed(&spec.name, service);
        result
    }

    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        let result = self.inner.start(name).await;
        self.note(name, result)
    }

    async fn restart(&self, name: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let result = self.inner.restart(name, timeout).await;
        self.note(name, result)
    }

    async fn prune_secrets(&self, service: &str, keep: &[String]) -> Result<(), RuntimeError> {
        self.inner.prune_secrets(service, keep).await
    }

    async fn stop(&self, name: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let result = self.inner.stop(name, timeout).await;
        self.note(name, result)
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let result = self.inner.remove(name).await;
        self.note(name, result)
    }

    async fn inspect(&self, name: &str) -> Result<Option<InstanceInfo>, RuntimeError> {
        self.inner.inspect(name).await
    }

    async fn list(&self) -> Result<Vec<InstanceInfo>, RuntimeError> {
        self.inner.list().await
    }

    async fn list_service(&self, service: &str) -> Result<Vec<InstanceInfo>, RuntimeError> {
        self.inner.list_service(service).await
    }

    async fn logs(&self, name: &str, options: &LogOptions) -> Result<LogStream, RuntimeError> {
        self.inner.logs(name, options).await
    }
}
