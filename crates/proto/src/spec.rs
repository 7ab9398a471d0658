//! Service specs between the domain (`servicedef`) and the wire, by hand and in one place: the
//! CLI sends what it parsed (`pb::ServiceSpec::from(&service)`), the agent rebuilds it
//! (`Service::try_from(wire)`) and re-validates it. Defaults come from `servicedef`.

use crate::v1 as pb;
use servicedef::{
    Component, ComponentName, HealthCheck, Probe, RestartPolicy, Route, RouteMode, RuntimeKind,
    SecretEnv, Service, ServiceName,
};

/// A wire spec that does not make a valid domain spec; names the field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

fn invalid(field: &str, e: impl std::fmt::Display) -> WireError {
    WireError(format!("{field}: {e}"))
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

impl TryFrom<pb::ServiceSpec> for Service {
    type Error = WireError;

    fn try_from(spec: pb::ServiceSpec) -> Result<Self, WireError> {
        service_from_wire(spec)
    }
}

impl From<&Service> for pb::ServiceSpec {
    fn from(service: &Service) -> Self {
        service_to_wire(service)
    }
}

fn service_from_wire(spec: pb::ServiceSpec) -> Result<Service, WireError> {
    let service_runtime = match spec.runtime.as_str() {
        "" => None,
        other => Some(
            other
                .parse::<RuntimeKind>()
                .map_err(|e| invalid("runtime", e))?,
        ),
    };
    let components = spec
        .components
        .into_iter()
        .enumerate()
        .map(|(i, c)| component_from_wire(i, c, service_runtime))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Service {
        name: ServiceName::new(spec.name).map_err(|e| invalid("name", e))?,
        node: spec.node,
        active: spec.active,
        path: opt(spec.path),
        runtime: service_runtime,
        build_images: spec.build_images.into_iter().collect(),
        components,
    })
}

fn component_from_wire(
    index: usize,
    c: pb::ComponentSpec,
    service_runtime: Option<RuntimeKind>,
) -> Result<Component, WireError> {
    let field = |name: &str| format!("components[{index}].{name}");
    let own = match c.runtime.as_str() {
        "" => None,
        other => Some(other.parse().map_err(|e| invalid(&field("runtime"), e))?),
    };
    let runtime = Component::effective_runtime(own, service_runtime);
    let restart = match c.restart.as_str() {
        "" => RestartPolicy::default(),
        other => other.parse().map_err(|e| invalid(&field("restart"), e))?,
    };
    let routes = c
        .routes
        .into_iter()
        .enumerate()
        .map(|(j, r)| {
            let route_field = field(&format!("routes[{j}]"));
            Ok(Route {
                name: opt(r.name),
                port: u16::try_from(r.port)
                    .map_err(|_| invalid(&format!("{route_field}.port"), "out of range"))?,
                mode: match r.mode.as_str() {
                    "" => RouteMode::default(),
                    other => other
                        .parse()
                        .map_err(|e| invalid(&format!("{route_field}.mode"), e))?,
                },
                hostname: opt(r.hostname),
            })
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    let secrets = c
        .secrets
        .iter()
        .enumerate()
        .map(|(j, entry)| {
            SecretEnv::parse(entry).map_err(|e| invalid(&field(&format!("secrets[{j}]")), e))
        })
        .collect::<Result<Vec<_>, WireError>>()?;
    Ok(Component {
        name: ComponentName::new(c.name).map_err(|e| invalid(&field("name"), e))?,
        image: servicedef::Image::parse(&c.image).map_err(|e| invalid(&field("image"), e))?,
        runtime,
        memory_mb: (c.memory_mb > 0).then_some(c.memory_mb),
        vcpus: if c.vcpus == 0 {
            servicedef::DEFAULT_VCPUS
        } else {
            c.vcpus
        },
        cmd: c.cmd,
        env: c.env,
        secrets,
        volumes: c.volumes,
        ports: c.ports,
        network: opt(c.network),
        user: opt(c.user),
        restart,
        routes,
        binary: opt(c.binary),
        health: c
            .health
            .map(|h| health_from_wire(&field("health"), h))
            .transpose()?,
    })
}

fn health_from_wire(at: &str, h: pb::HealthSpec) -> Result<HealthCheck, WireError> {
    let probe = match (h.http.is_empty(), h.tcp) {
        (false, false) => Probe::Http(h.http),
        (true, true) => Probe::Tcp,
        _ => return Err(invalid(at, "needs exactly one of http and tcp")),
    };
    Ok(HealthCheck {
        probe,
        route: opt(h.route),
        interval_ms: h.interval_ms,
        timeout_ms: h.timeout_ms,
        retries: h.retries,
        start_period_ms: h.start_period_ms,
    })
}

fn health_to_wire(h: &HealthCheck) -> pb::HealthSpec {
    let (http, tcp) = match &h.probe {
        Probe::Http(path) => (path.clone(), false),
        Probe::Tcp => (String::new(), true),
    };
    pb::HealthSpec {
        http,
        tcp,
        route: h.route.clone().unwrap_or_default(),
        interval_ms: h.interval_ms,
        timeout_ms: h.timeout_ms,
        retries: h.retries,
        start_period_ms: h.start_period_ms,
    }
}

fn service_to_wire(s: &Service) -> pb::ServiceSpec {
    pb::ServiceSpec {
        name: s.name.to_string(),
        node: s.node.clone(),
        active: s.active,
        path: s.path.clone().unwrap_or_default(),
        runtime: s.runtime.map(|r| r.to_string()).unwrap_or_default(),
        build_images: s.build_images.clone().into_iter().collect(),
        components: s
            .components
            .iter()
            .map(|c| pb::ComponentSpec {
                name: c.name.to_string(),
                image: c.image.to_string(),
                runtime: c.runtime.to_string(),
                memory_mb: c.memory_mb.unwrap_or(0),
                vcpus: c.vcpus,
                cmd: c.cmd.clone(),
                env: c.env.clone(),
                volumes: c.volumes.clone(),
                ports: c.ports.clone(),
                network: c.network.clone().unwrap_or_default(),
                user: c.user.clone().unwrap_or_default(),
                restart: c.restart.to_string(),
                routes: c
                    .routes
                    .iter()
                    .map(|r| pb::RouteSpec {
                        name: r.name.clone().unwrap_or_default(),
                        port: u32::from(r.port),
                        mode: r.mode.to_string(),
                        hostname: r.hostname.clone().unwrap_or_default(),
                    })
                    .collect(),
                binary: c.binary.clone().unwrap_or_default(),
                health: c.health.as_ref().map(health_to_wire),
                // Versions are the node's business: the agent resolves them at deploy.
                secrets: c.secrets.iter().map(SecretEnv::entry).collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_service_survives_the_wire_unchanged() {
        let text = "name = \"hello\"\nnode = \"local\"\nactive = false\npath = \"src\"\n\
            runtime = \"container\"\n[build.images]\nhello = \"Containerfile\"\n\
            [[components]]\nname = \"web\"\nimage = \"127.0.0.1:5000/hello:v1\"\nmemory_mb = 64\n\
            vcpus = 2\ncmd = [\"serve\"]\nenv = [\"A=b\"]\nsecrets = [\"DB\", \"TOKEN=api.token\"]\nvolumes = [\"/a:/b\"]\n\
            ports = [\"127.0.0.1:1234:80\"]\nrestart = \"always\"\n\
            [[components.routes]]\nname = \"rest\"\nport = 8443\nmode = \"l7\"\n\
            [components.health]\nhttp = \"/up\"\ninterval = \"3s\"\nretries = 5\n";
        let service = servicedef::parse_str("t.toml", text).unwrap();
        let back = Service::try_from(pb::ServiceSpec::from(&service)).unwrap();
        assert_eq!(back, service);
    }

    #[test]
    fn bad_names_from_the_wire_are_refused() {
        let mut wire = pb::ServiceSpec::from(
            &servicedef::parse_str(
                "t.toml",
                "name = \"a\"\nnode = \"n\"\n[[components]]\nname = \"b\"\nimage = \"i\"\n",
            )
            .unwrap(),
        );
        wire.name = "../etc".into();
        assert!(matches!(Service::try_from(wire), Err(WireError(_))));
    }
}
