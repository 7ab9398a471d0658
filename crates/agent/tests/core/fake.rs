//! A workload runtime in memory, under the real `Runtime` trait: instances are map entries,
//! a published port is a real listening socket (so the agent's readiness check connects),
//! and faults are chosen by image name.

use async_trait::async_trait;
use runtime::{
    ContainerSpec, InstanceInfo, InstanceState, LogOptions, LogStream, PortBinding, Runtime,
    RuntimeError,
};
use servicedef::RuntimeKind;
use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Duration;

/// Images whose `run` fails; images whose program exits at once.
pub const FAILS_TO_RUN: &str = "fails-to-run:1";
pub const EXITS_AT_ONCE: &str = "exits-at-once:1";
pub const NOT_PULLABLE: &str = "not-pullable:1";

#[derive(Default)]
pub struct FakeRuntime {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    instances: BTreeMap<String, InstanceInfo>,
    /// Listening sockets of running instances, by instance name.
    listeners: BTreeMap<String, Vec<TcpListener>>,
    runs: Vec<String>,
    next_id: u64,
}

fn failed(what: &str, detail: &str) -> RuntimeError {
    RuntimeError::Failed {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

/// `ip:host:container/tcp` (as the agent publishes routes) → the binding and a socket
/// listening on the host port.
fn publish(mapping: &str) -> (PortBinding, Option<TcpListener>) {
    let parts: Vec<&str> = mapping.trim_end_matches("/tcp").split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [ip, host, container] => (*ip, *host, *container),
        [host, container] => ("127.0.0.1", *host, *container),
        _ => ("127.0.0.1", "0", "0"),
    };
    let host_port: u16 = host.parse().unwrap_or(0);
    (
        PortBinding {
            host_ip: ip.to_string(),
            host_port,
            container_port: container.parse().unwrap_or(0),
            protocol: "tcp".into(),
        },
        TcpListener::bind((ip, host_port)).ok(),
    )
}

impl FakeRuntime {
    /// Names of the instances that exist, sorted.
    pub fn names(&self) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .instances
            .keys()
            .cloned()
            .collect()
    }

    pub fn instance(&self, name: &str) -> Option<InstanceInfo> {
        self.state.lock().unwrap().instances.get(name).cloned()
    }

    /// Every `run`, in order, by instance name.
    pub fn runs(&self) -> Vec<String> {
        self.state.lock().unwrap().runs.clone()
    }

    /// Creates the instance `name` of `component` of `service` as the agent would have, as
    /// if a crashed agent had left it behind.
    pub fn plant_for(&self, service: &servicedef::Service, component: &str, name: &str) {
        let c = service.component(component).unwrap();
        let spec = ContainerSpec {
            name: name.to_string(),
            image: c.image.to_string(),
            labels: BTreeMap::from([
                (runtime::LABEL_SERVICE.to_string(), service.name.to_string()),
                (runtime::LABEL_COMPONENT.to_string(), component.to_string()),
                (runtime::LABEL_SPEC_HASH.to_string(), c.spec_hash()),
            ]),
            ..ContainerSpec::default()
        };
        insert(
            &mut self.state.lock().unwrap(),
            &spec,
            InstanceState::Running,
        );
    }

    /// Removes an instance behind the agent's back.
    pub fn remove_now(&self, name: &str) {
        let mut state = self.state.lock().unwrap();
        state.instances.remove(name);
        state.listeners.remove(name);
    }
}

fn insert(state: &mut State, spec: &ContainerSpec, initial: InstanceState) {
    state.next_id += 1;
    let mut ports = Vec::new();
    let mut sockets = Vec::new();
    for mapping in &spec.ports {
        let (binding, socket) = publish(mapping);
        ports.push(binding);
        sockets.extend(socket);
    }
    let exited = initial == InstanceState::Exited;
    state.instances.insert(
        spec.name.clone(),
        InstanceInfo {
            name: spec.name.clone(),
            id: format!("fake-{}", state.next_id),
            image: spec.image.clone(),
            state: initial,
            started_at: Some(1),
            exit_code: exited.then_some(3),
            exited_at: exited.then_some(1),
            ports,
            runtime: RuntimeKind::Container,
            labels: spec.labels.clone(),
            accelerator: None,
        },
    );
    if !exited {
        state.listeners.insert(spec.name.clone(), sockets);
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn pull(&self, image: &str) -> Result<(), RuntimeError> {
        if image == NOT_PULLABLE {
            return Err(RuntimeError::ImageNotFound {
                image: image.into(),
                detail: "manifest unknown".into(),
            });
        }
        Ok(())
    }

    async fn run(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let mut state = self.state.lock().unwrap();
        if state.instances.contains_key(&spec.name) {
            return Err(failed(&spec.name, "name already in use"));
        }
        if spec.image == FAILS_TO_RUN {
            return Err(failed(&spec.name, "the runtime refused to start it"));
        }
        state.runs.push(spec.name.clone());
        let initial = if spec.image == EXITS_AT_ONCE {
            InstanceState::Exited
        } else {
            InstanceState::Running
        };
        insert(&mut state, spec, initial);
        Ok(state.instances[&spec.name].id.clone())
    }

    async fn start(&self, name: &str) -> Result<(), RuntimeError> {
        let mut state = self.state.lock().unwrap();
        let Some(info) = state.instances.get_mut(name) else {
            return Err(failed(name, "no such instance"));
        };
        info.state = InstanceState::Running;
        info.exit_code = None;
        let sockets: Vec<TcpListener> = info
            .ports
            .iter()
            .filter_map(|p| TcpListener::bind((p.host_ip.as_str(), p.host_port)).ok())
            .collect();
        state.listeners.insert(name.to_string(), sockets);
        Ok(())
    }

    async fn stop(&self, name: &str, _timeout: Duration) -> Result<(), RuntimeError> {
        let mut state = self.state.lock().unwrap();
        if let Some(info) = state.instances.get_mut(name) {
            info.state = InstanceState::Exited;
            info.exit_code = Some(0);
        }
        state.listeners.remove(name);
        Ok(())
    }

    async fn remove(&self, name: &str) -> Result<(), RuntimeError> {
        let mut state = self.state.lock().unwrap();
        state.instances.remove(name);
        state.listeners.remove(name);
        Ok(())
    }

    async fn inspect(&self, name: &str) -> Result<Option<InstanceInfo>, RuntimeError> {
        Ok(self.instance(name))
    }

    async fn list(&self) -> Result<Vec<InstanceInfo>, RuntimeError> {
        Ok(self
            .state
            .lock()
            .unwrap()
            .instances
            .values()
            .cloned()
            .collect())
    }

    async fn logs(&self, _name: &str, _options: &LogOptions) -> Result<LogStream, RuntimeError> {
        Ok(Box::pin(tokio_stream::empty()))
    }
}

/// Names of the services' instances the fake holds, as `(service, component)` pairs.
pub fn owners(fake: &FakeRuntime) -> BTreeSet<(String, String)> {
    fake.names()
        .iter()
        .filter_map(|n| fake.instance(n))
        .map(|i| {
            (
                i.service().unwrap_or_default().to_string(),
                i.component().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
