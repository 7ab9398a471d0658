//! What a deploy must do: compare the desired spec with the service's instances (pure).
//!
//! Invariant: instances are found by their labels, never by name; a component has one
//! instance, in slot `<name>` or `<name>.b`, except during a side-by-side replace.

use registry::{HostPorts, RouteKey};
use runtime::{
    ContainerSpec, InstanceInfo, InstanceState, LABEL_COMPONENT, LABEL_SERVICE, LABEL_SPEC_HASH,
};
use servicedef::{Component, RuntimeKind, Service};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// An existing instance and the backend that runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceRef {
    pub name: String,
    pub kind: RuntimeKind,
    /// Its `mcp.component` label ("" without one).
    pub component: String,
}

impl From<&InstanceInfo> for InstanceRef {
    fn from(info: &InstanceInfo) -> Self {
        Self {
            name: info.name.clone(),
            kind: info.runtime,
            component: info.component().unwrap_or_default().to_string(),
        }
    }
}

impl PartialEq<&str> for InstanceRef {
    fn eq(&self, other: &&str) -> bool {
        self.name == *other
    }
}

/// Steps in the order they are applied: remove, stop, start, create; then, once the
/// created instances are ready and traffic points at them, retire.
#[derive(Debug, Default)]
pub(crate) struct Plan<'a> {
    /// Instances of components no longer in the spec, and spare instances of a component
    /// (e.g. left by a crash between a side-by-side create and the retirement of the old).
    pub remove: Vec<InstanceRef>,
    /// Instances built from an older spec of a component, removed before `create` makes the
    /// new ones (components that cannot run twice at once).
    pub replace_old: Vec<InstanceRef>,
    pub stop: Vec<InstanceRef>,
    pub start: Vec<InstanceRef>,
    pub create: Vec<&'a Component>,
    /// Running instances of routed components replaced side by side: they keep serving
    /// until the new instance is ready and the proxy points at it, then drain and go.
    pub retire: Vec<InstanceRef>,
    /// Instance names of created components that differ from the canonical name: the
    /// other slot, beside an instance that is being retired.
    pub names: BTreeMap<String, String>,
}

impl Plan<'_> {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty()
            && self.replace_old.is_empty()
            && self.stop.is_empty()
            && self.start.is_empty()
            && self.create.is_empty()
            && self.retire.is_empty()
    }

    /// The name `component`'s new instance gets.
    pub fn instance_name(&self, spec: &Service, component: &Component) -> String {
        self.names
            .get(component.name.as_str())
            .cloned()
            .unwrap_or_else(|| spec.container_name(&component.name))
    }

    /// True when `component` is created beside a running old instance.
    pub fn side_by_side(&self, component: &str) -> bool {
        self.names.contains_key(component)
    }
}

/// Suffix of a component's second instance slot. Component names are `[a-z0-9-]`, so no
/// canonical name ends with it.
const OTHER_SLOT: &str = ".b";

/// The slot a side-by-side replacement of the instance `old` takes.
fn other_slot(spec: &Service, component: &Component, old: &str) -> String {
    let canonical = spec.container_name(&component.name);
    if old == canonical {
        format!("{canonical}{OTHER_SLOT}")
    } else {
        canonical
    }
}

/// A component replaced without downtime: it has routes for the proxy to switch, and no
/// fixed host ports that two instances could not both bind.
pub(crate) fn replaceable_side_by_side(component: &Component) -> bool {
    !component.routes.is_empty() && component.ports.is_empty()
}

/// `listing`'s instances of one component of `service`, found by their labels (its
/// instance may be in either slot).
pub(crate) fn instances_of<'l>(
    service: &str,
    component: &str,
    listing: &'l [InstanceInfo],
) -> impl Iterator<Item = &'l InstanceInfo> {
    listing
        .iter()
        .filter(move |i| i.service() == Some(service) && i.component() == Some(component))
}

/// The instance that stands for `component`: one built from its current spec (a running
/// one first), else a running one, else any. The spec comes first so that a stale instance
/// left running (a retirement that failed) never hides the current one from the monitor.
pub(crate) fn instance_of<'l>(
    service: &str,
    component: &Component,
    listing: &'l [InstanceInfo],
) -> Option<&'l InstanceInfo> {
    let hash = component.spec_hash();
    instances_of(service, component.name.as_str(), listing).max_by_key(|i| {
        (
            i.spec_hash() == Some(hash.as_str()),
            i.state == InstanceState::Running,
            i.started_at,
        )
    })
}

/// `instances` are the service's instances (label `mcp.service` = the service).
pub(crate) fn plan<'a>(spec: &'a Service, instances: &[InstanceInfo]) -> Plan<'a> {
    let mut plan = Plan::default();
    let service = spec.name.as_str();
    for info in instances {
        if info.component().and_then(|c| spec.component(c)).is_none() {
            plan.remove.push(info.into());
        }
    }
    for component in &spec.components {
        let existing = instance_of(service, component, instances);
        for spare in instances_of(service, component.name.as_str(), instances) {
            if existing.is_some_and(|e| e.name != spare.name) {
                plan.remove.push(spare.into());
            }
        }
        let current = existing.filter(|i| i.spec_hash() == Some(component.spec_hash().as_str()));
        // A component that moved to another runtime is replaced, not restarted.
        let current = current.filter(|i| i.runtime == component.runtime);
        match (existing, current, spec.active) {
            (None, _, true) => plan.create.push(component),
            (Some(old), None, true)
                if old.state == InstanceState::Running && replaceable_side_by_side(component) =>
            {
                plan.names.insert(
                    component.name.to_string(),
                    other_slot(spec, component, &old.name),
                );
                plan.retire.push(old.into());
                plan.create.push(component);
            }
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
        let key = RouteKey::of(component, route);
        if let Some(port) = host_ports.get(&key) {
            for var in route.env_vars(component.routes.len() == 1) {
                env.push(format!("{var}={port}"));
            }
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
        image: component.image.to_string(),
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
        // Values are the caller's to add (`Deployer::secret_envs`): planning reads no secret.
        secrets: Vec::new(),
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
        new.components[1].image = servicedef::Image::parse("img:3").unwrap();
        assert_eq!(names(changed_components(&new, Some(&old))), ["db"]);
        assert!(changed_components(&service(false), None).is_empty());
    }

    fn instance(spec: &Service, component: &str, state: InstanceState) -> InstanceInfo {
        let c = spec.component(component).unwrap();
        InstanceInfo {
            name: spec.container_name(&c.name),
            id: "id".into(),
            image: c.image.to_string(),
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
        new.components[0].image = servicedef::Image::parse("img:9").unwrap();
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
        stray
            .labels
            .insert(LABEL_COMPONENT.to_string(), "old".to_string());
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
            (RouteKey::new("web", "rest-api"), 20001),
            (RouteKey::new("web", "admin"), 20002),
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
        assert!(!c.env.iter().any(|e| e.starts_with("PORT=")), "{:?}", c.env);
    }

    #[test]
    fn a_single_route_gets_port_whether_or_not_it_is_named() {
        for (route, expected) in [
            ("", vec!["PORT=20001"]),
            ("name = \"api\"\n", vec!["PORT=20001", "PORT_API=20001"]),
        ] {
            let spec = servicedef::parse_str(
                "t.toml",
                &format!(
                    "name = \"svc\"\nnode = \"n\"\n[[components]]\nname = \"web\"\nimage = \"i\"\n\
                     [[components.routes]]\n{route}port = 443\n"
                ),
            )
            .unwrap();
            let name = spec.components[0].routes[0]
                .name
                .clone()
                .unwrap_or_default();
            let ports = HostPorts::from([(RouteKey::new("web", name), 20001)]);
            let c = container_spec(
                &spec,
                &spec.components[0],
                &ports,
                IpAddr::from([127, 0, 0, 1]),
            );
            assert_eq!(c.env, expected);
        }
    }

    fn routed(ports: &str) -> Service {
        servicedef::parse_str(
            "t.toml",
            &format!(
                "name = \"svc\"\nnode = \"n\"\n[[components]]\nname = \"web\"\nimage = \"i:1\"\n\
                 {ports}\n[[components.routes]]\nport = 443\n"
            ),
        )
        .unwrap()
    }

    #[test]
    fn a_running_routed_component_is_replaced_side_by_side_in_the_other_slot() {
        let old = routed("");
        let mut new = old.clone();
        new.components[0].env.push("A=b".into());
        let running = instance(&old, "web", InstanceState::Running);
        let plan1 = plan(&new, std::slice::from_ref(&running));
        assert_eq!(plan1.retire, ["svc-web"]);
        assert!(plan1.replace_old.is_empty());
        assert_eq!(plan1.instance_name(&new, &new.components[0]), "svc-web.b");
        // The next replacement goes back to the canonical slot.
        let mut moved = instance(&new, "web", InstanceState::Running);
        moved.name = "svc-web.b".into();
        let plan2 = plan(&old, &[moved]);
        assert_eq!(plan2.retire, ["svc-web.b"]);
        assert_eq!(plan2.instance_name(&old, &old.components[0]), "svc-web");
        // And an unchanged one in the other slot is left alone.
        let mut settled = instance(&new, "web", InstanceState::Running);
        settled.name = "svc-web.b".into();
        assert!(plan(&new, &[settled]).is_empty());
    }

    #[test]
    fn fixed_ports_or_a_stopped_instance_are_replaced_in_place() {
        let old = routed("ports = [\"127.0.0.1:8000:80\"]");
        let mut new = old.clone();
        new.components[0].env.push("A=b".into());
        let plan1 = plan(&new, &[instance(&old, "web", InstanceState::Running)]);
        assert_eq!(plan1.replace_old, ["svc-web"]);
        assert!(plan1.retire.is_empty());
        let old = routed("");
        let mut new = old.clone();
        new.components[0].env.push("A=b".into());
        let plan2 = plan(&new, &[instance(&old, "web", InstanceState::Exited)]);
        assert_eq!(plan2.replace_old, ["svc-web"]);
    }

    #[test]
    fn a_spare_instance_of_a_component_is_removed() {
        let spec = routed("");
        let mut spare = instance(&spec, "web", InstanceState::Exited);
        spare.name = "svc-web.b".into();
        let plan = plan(
            &spec,
            &[instance(&spec, "web", InstanceState::Running), spare],
        );
        assert_eq!(plan.remove, ["svc-web.b"]);
        assert!(plan.create.is_empty() && plan.retire.is_empty());
    }

    #[test]
    fn inactive_service_runs_nothing_and_stops_what_runs() {
        let spec = service(false);
        assert!(plan(&spec, &[]).is_empty());
        let plan = plan(&spec, &[instance(&spec, "web", InstanceState::Running)]);
        assert_eq!(plan.stop, ["svc-web"]);
    }
}
