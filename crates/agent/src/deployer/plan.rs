//! What a deploy must do: compare the desired spec with the service's instances (pure).

use registry::HostPorts;
use runtime::{
    ContainerInfo, ContainerSpec, InstanceState, LABEL_COMPONENT, LABEL_SERVICE, LABEL_SPEC_HASH,
};
use servicedef::{Component, RuntimeKind, Service};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// An existing instance and the backend that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceRef {
    pub name: String,
    pub kind: RuntimeKind,
}

impl From<&ContainerInfo> for InstanceRef {
    fn from(info: &ContainerInfo) -> Self {
        Self {
            name: info.name.clone(),
            kind: info.runtime,
        }
    }
}

impl PartialEq<&str> for InstanceRef {
    fn eq(&self, other: &&str) -> bool {
        self.name == *other
    }
}

/// Steps in the order they are applied: remove, stop, start, create.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// Instances of components no longer in the spec.
    pub remove: Vec<InstanceRef>,
    /// Instances built from an older spec of a component; `create` makes the new ones.
    pub replace_old: Vec<InstanceRef>,
    pub stop: Vec<InstanceRef>,
    pub start: Vec<InstanceRef>,
    pub create: Vec<&'a Component>,
}

impl Plan<'_> {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.replace_old.is_empty()
            && self.stop.is_empty()
            && self.start.is_empty()
            && self.create.is_empty()
    }
}

/// `instances` are the service's instances (label `mcp.service` = the service).
pub(crate) fn plan<'a>(spec: &'a Service, instances: &[ContainerInfo]) -> Plan<'a> {
    let mut plan = Plan::default();
    let wanted: Vec<String> = spec
        .components
        .iter()
        .map(|c| spec.container_name(&c.name))
        .collect();
    for info in instances {
        if !wanted.contains(&info.name) {
            plan.remove.push(info.into());
        }
    }
    for (component, name) in spec.components.iter().zip(wanted) {
        let existing = instances.iter().find(|i| i.name == name);
        let current = existing.filter(|i| i.spec_hash() == Some(component.spec_hash().as_str()));
        // A component that moved to another runtime is replaced, not restarted.
        let current = current.filter(|i| i.runtime == component.runtime);
        match (existing, current, spec.active) {
            (None, _, true) => plan.create.push(component),
            (Some(old), None, true) => {
                plan.replace_old.push(old.into());
                plan.create.push(component);
            }
            (Some(old), None, false) => plan.replace_old.push(old.into()),
            (Some(_), Some(info), true) if info.state != InstanceState::Running => {
                plan.start.push(info.into());
            }
            (Some(_), Some(info), false) if info.state == InstanceState::Running => {
                plan.stop.push(info.into());
            }
            _ => {}
        }
    }
    plan
}

/// The components of an active `spec` that are new or changed since `previous` (all of them
/// for a new service): the ones a deploy will create, unless their instance drifted.
pub(crate) fn changed_components<'a>(
    spec: &'a Service,
    previous: Option<&Service>,
) -> Vec<&'a Component> {
    if !spec.active {
        return Vec::new();
    }
    spec.components
        .iter()
        .filter(|c| {
            previous
                .and_then(|p| p.component(c.name.as_str()))
                .is_none_or(|old| old.spec_hash() != c.spec_hash())
        })
        .collect()
}

/// The runtime's view of one component of `spec`, labelled so it can be found again. Each
/// route's host port is published as `bind:port:port` and passed in `$PORT`/`$PORT_<NAME>`:
/// the component listens on the host port number itself.
pub(crate) fn container_spec(
    spec: &Service,
    component: &Component,
    host_ports: &HostPorts,
    bind: IpAddr,
) -> ContainerSpec {
    let mut env = component.env.clone();
    let mut ports = component.ports.clone();
    for route in &component.routes {
        let key = (
            component.name.to_string(),
            route.name.clone().unwrap_or_default(),
        );
        if let Some(port) = host_ports.get(&key) {
            env.push(format!("{}={port}", route.env_var()));
            let host = match bind {
                IpAddr::V6(v6) => format!("[{v6}]"),
                IpAddr::V4(v4) => v4.to_string(),
            };
            ports.push(format!("{host}:{port}:{port}/tcp"));
        }
    }
    let labels = BTreeMap::from([
        (LABEL_SERVICE.to_string(), spec.name.to_string()),
        (LABEL_COMPONENT.to_string(), component.name.to_string()),
        (LABEL_SPEC_HASH.to_string(), component.spec_hash()),
    ]);
    ContainerSpec {
        name: spec.container_name(&component.name),
        image: component.image.clone(),
        cmd: component.cmd.clone(),
        env,
        volumes: component.volumes.clone(),
        network: component.network.clone(),
        user: component.user.clone(),
        restart: component.restart.to_string(),
        ports,
        memory_mb: component.memory_mb,
        vcpus: component.vcpus,
        labels,
        binary: component.binary.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn service(active: bool) -> Service {
        servicedef::parse_str(
            "t.toml",
            &format!(
                "name = \"svc\"\nnode = \"n\"\nactive = {active}\n\
                 [[components]]\nname = \"web\"\nimage = \"img:1\"\n\
                 [[components]]\nname = \"db\"\nimage = \"img:2\"\n"
            ),
        )
        .unwrap()
    }

    #[test]
    fn changed_components_are_the_new_and_the_edited_ones() {
        let old = service(true);
        let names = |cs: Vec<&Component>| -> Vec<String> {
            cs.iter().map(|c| c.name.to_string()).collect()
        };
        assert_eq!(names(changed_components(&old, None)), ["web", "db"]);
        assert!(changed_components(&old, Some(&old)).is_empty());
        let mut new = service(true);
        new.components[1].image = "img:3".into();
        assert_eq!(names(changed_components(&new, Some(&old))), ["db"]);
        assert!(changed_components(&service(false), None).is_empty());
    }

    fn instance(spec: &Service, component: &str, state: InstanceState) -> ContainerInfo {
        let c = spec.component(component).unwrap();
        ContainerInfo {
            name: spec.container_name(&c.name),
            id: "id".into(),
            image: c.image.clone(),
            state,
            started_at: None,
            exit_code: None,
            exited_at: None,
            ports: vec![],
            runtime: RuntimeKind::Container,
            accelerator: None,
            labels: container_spec(spec, c, &HostPorts::new(), IpAddr::from([127, 0, 0, 1])).labels,
        }
    }

    #[test]
    fn fresh_service_creates_every_component() {
        let spec = service(true);
        let plan = plan(&spec, &[]);
        assert_eq!(plan.create.len(), 2);
        assert!(plan.remove.is_empty() && plan.start.is_empty());
    }

    #[test]
    fn identical_running_spec_plans_nothing() {
        let spec = service(true);
        let running = [
            instance(&spec, "web", InstanceState::Running),
            instance(&spec, "db", InstanceState::Running),
        ];
        assert!(plan(&spec, &running).is_empty());
    }

    #[test]
    fn changed_component_is_replaced_and_only_it() {
        let old = service(true);
        let running = [
            instance(&old, "web", InstanceState::Running),
            instance(&old, "db", InstanceState::Running),
        ];
        let mut new = old.clone();
        new.components[0].image = "img:9".into();
        let plan = plan(&new, &running);
        assert_eq!(plan.replace_old, ["svc-web"]);
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].name.as_str(), "web");
    }

    #[test]
    fn dropped_component_is_removed_and_stopped_one_started() {
        let spec = service(true);
        let mut stray = instance(&spec, "web", InstanceState::Running);
        stray.name = "svc-old".into();
        let instances = [
            stray,
            instance(&spec, "web", InstanceState::Exited),
            instance(&spec, "db", InstanceState::Running),
        ];
        let plan = plan(&spec, &instances);
        assert_eq!(plan.remove, ["svc-old"]);
        assert_eq!(plan.start, ["svc-web"]);
        assert!(plan.create.is_empty());
    }

    #[test]
    fn routes_become_env_and_published_host_ports() {
        let spec = servicedef::parse_str(
            "t.toml",
            "name = \"svc\"\nnode = \"n\"\n[[components]]\nname = \"web\"\nimage = \"i\"\n\
             ports = [\"127.0.0.1:8000:80\"]\n\
             [[components.routes]]\nname = \"rest-api\"\nport = 443\n\
             [[components.routes]]\nname = \"admin\"\nport = 9000\n",
        )
        .unwrap();
        let ports = HostPorts::from([
            (("web".into(), "rest-api".into()), 20001),
            (("web".into(), "admin".into()), 20002),
        ]);
        let c = container_spec(
            &spec,
            &spec.components[0],
            &ports,
            IpAddr::from([127, 0, 0, 1]),
        );
        assert!(
            c.env.contains(&"PORT_REST_API=20001".to_string()),
            "{:?}",
            c.env
        );
        assert!(c.env.contains(&"PORT_ADMIN=20002".to_string()));
        assert_eq!(
            c.ports,
            [
                "127.0.0.1:8000:80",
                "127.0.0.1:20001:20001/tcp",
                "127.0.0.1:20002:20002/tcp"
            ]
        );
    }

    #[test]
    fn inactive_service_runs_nothing_and_stops_what_runs() {
        let spec = service(false);
        assert!(plan(&spec, &[]).is_empty());
        let plan = plan(&spec, &[instance(&spec, "web", InstanceState::Running)]);
        assert_eq!(plan.stop, ["svc-web"]);
    }
}
