//! The semantic rules of a service definition, written once over the domain types; the TOML
//! path converts first and then runs these, mapping the reported field path back to a position.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::model::{Component, Probe, Route, RuntimeKind, Service, SpecError};
use crate::name::check_name;

/// Longest container name the agent will create (`<service>-<component>`, and `.b` after it
/// for a component's second slot during a side-by-side replace).
pub const MAX_CONTAINER_NAME_LEN: usize = 127;
/// What the second slot adds to a component's instance name.
const SLOT_SUFFIX_LEN: usize = ".b".len();

/// Checks a route's public port; the TOML layer reads it as i64 so 0 and 70000 get this message.
pub(crate) fn check_port(value: i64) -> Result<u16, String> {
    match u16::try_from(value) {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("port {value} is out of range 1..=65535")),
    }
}

/// Checks a vCPU count.
pub(crate) fn check_vcpus(value: i64) -> Result<u32, String> {
    match u32::try_from(value) {
        Ok(n) if (1..=64).contains(&n) => Ok(n),
        _ => Err(format!("vcpus {value} is out of range 1..=64")),
    }
}

/// Checks a memory size given in MiB.
pub(crate) fn check_memory(value: i64) -> Result<u32, String> {
    match u32::try_from(value) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "memory_mb {value} must be greater than 0 and at most {}",
            u32::MAX
        )),
    }
}

/// `Err` at `field` unless `ok`; keeps each rule to one statement.
fn ensure(ok: bool, field: impl Into<String>, message: impl Into<String>) -> Result<(), SpecError> {
    if ok {
        Ok(())
    } else {
        Err(SpecError::new(field, message))
    }
}

/// True when every byte is a lowercase letter, a digit or one of `extra`.
fn lower_digits_or(s: &str, extra: &[u8]) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || extra.contains(&b))
}

/// Node names appear in configs, certificates and errors: 1 to 63 of `[a-z0-9.-]`.
pub fn validate_node_name(node: &str) -> Result<(), SpecError> {
    let ok = !node.is_empty() && node.len() <= 63 && lower_digits_or(node, b"-.");
    let why = format!("invalid node \"{node}\": must be 1 to 63 characters of [a-z0-9.-]");
    ensure(ok, "node", why)
}

pub(crate) fn service(s: &Service) -> Result<(), SpecError> {
    validate_node_name(&s.node)?;
    if let Some(path) = &s.path {
        relative_path(path).map_err(|m| SpecError::new("path", m))?;
    }
    for (repo, file) in &s.build_images {
        let field = format!("build.images.{repo}");
        let ok = !repo.is_empty() && lower_digits_or(repo, b"._/-");
        let why = format!("invalid image name \"{repo}\": must be non-empty [a-z0-9._/-]");
        ensure(ok, &field, why)?;
        relative_path(file).map_err(|m| SpecError::new(field, m))?;
    }
    let why = "at least one [[components]] entry is required";
    ensure(!s.components.is_empty(), "components", why)?;
    let mut seen = HashSet::new();
    for (i, c) in s.components.iter().enumerate() {
        let (at, name) = (format!("components[{i}]"), &c.name);
        let why = format!("duplicate component name \"{name}\"");
        ensure(seen.insert(name.as_str()), format!("{at}.name"), why)?;
        let container = s.container_name(name);
        let why = format!("container name \"{container}\" is longer than {MAX_CONTAINER_NAME_LEN}");
        ensure(
            container.len() + SLOT_SUFFIX_LEN <= MAX_CONTAINER_NAME_LEN,
            format!("{at}.name"),
            why,
        )?;
        component(&at, c)?;
    }
    public_ports(s)
}

/// Routes of one service that share a public port: one mode per port, and no two routes on
/// the same port and host name (the proxy could not tell them apart).
fn public_ports(s: &Service) -> Result<(), SpecError> {
    let mut seen: Vec<(u16, Option<String>, crate::model::RouteMode, String)> = Vec::new();
    for (i, c) in s.components.iter().enumerate() {
        for (k, r) in c.routes.iter().enumerate() {
            let at = format!("components[{i}].routes[{k}]");
            let host = r.hostname.as_ref().map(|h| h.to_ascii_lowercase());
            for (port, other_host, mode, other) in &seen {
                if *port != r.port {
                    continue;
                }
                let why = format!("port {port} is {mode} at {other}; one port has one mode");
                ensure(*mode == r.mode, format!("{at}.mode"), why)?;
                let why = match &host {
                    Some(h) => format!("port {port} with hostname \"{h}\" is already {other}"),
                    None => format!("port {port} without a hostname is already {other}"),
                };
                ensure(*other_host != host, format!("{at}.port"), why)?;
            }
            seen.push((r.port, host, r.mode, at));
        }
    }
    Ok(())
}

fn health(at: &str, c: &Component) -> Result<(), SpecError> {
    let Some(h) = &c.health else { return Ok(()) };
    let field = |f: &str| format!("{at}.health.{f}");
    if let Probe::Http(path) = &h.probe {
        let ok =
            path.starts_with('/') && !path.chars().any(|ch| ch.is_whitespace() || ch.is_control());
        let why = format!("http path \"{path}\" must start with '/' and have no whitespace");
        ensure(ok, field("http"), why)?;
    }
    let why =
        "a health check probes a route's host port: the component has no [[components.routes]]";
    ensure(!c.routes.is_empty(), format!("{at}.health"), why)?;
    match &h.route {
        Some(name) => {
            let why = format!("no route named \"{name}\" in this component");
            ensure(c.health_route().is_some(), field("route"), why)?;
        }
        None => {
            let why = "the component has several routes: name the one to check (route = \"...\")";
            ensure(c.routes.len() == 1, field("route"), why)?;
        }
    }
    for (name, ms) in [("interval", h.interval_ms), ("timeout", h.timeout_ms)] {
        ensure(
            ms >= 10,
            field(name),
            format!("{name} must be at least 10ms"),
        )?;
    }
    let why = format!("retries {} is out of range 1..=100", h.retries);
    ensure((1..=100).contains(&h.retries), field("retries"), why)?;
    let why = "start_period must be at least 100ms";
    ensure(h.start_period_ms >= 100, field("start_period"), why)
}

fn component(at: &str, c: &Component) -> Result<(), SpecError> {
    let field = |f: &str| format!("{at}.{f}");
    if let Some(mb) = c.memory_mb {
        check_memory(i64::from(mb)).map_err(|m| SpecError::new(field("memory_mb"), m))?;
    }
    let ok = c.memory_mb.is_some() || c.runtime != RuntimeKind::Unikernel;
    let why = "memory_mb is required for a unikernel component";
    ensure(ok, field("memory_mb"), why)?;
    check_vcpus(i64::from(c.vcpus)).map_err(|m| SpecError::new(field("vcpus"), m))?;
    if let Some(binary) = &c.binary {
        let why = format!("binary \"{binary}\" must be an absolute path in the image");
        ensure(binary.starts_with('/'), field("binary"), why)?;
    }
    let mut env_keys = HashSet::new();
    for (j, entry) in c.env.iter().enumerate() {
        let at = field(&format!("env[{j}]"));
        let key = env_key(entry).map_err(|m| SpecError::new(&at, m))?;
        ensure(
            env_keys.insert(key),
            at,
            format!("duplicate env key \"{key}\""),
        )?;
    }
    for (j, s) in c.secrets.iter().enumerate() {
        let at = field(&format!("secrets[{j}]"));
        s.check().map_err(|m| SpecError::new(&at, m))?;
        let why = format!(
            "secret variable \"{}\" is also an env key or another secret's",
            s.var
        );
        ensure(env_keys.insert(s.var.as_str()), at, why)?;
    }
    for (j, v) in c.volumes.iter().enumerate() {
        volume(v).map_err(|m| SpecError::new(field(&format!("volumes[{j}]")), m))?;
    }
    for (j, p) in c.ports.iter().enumerate() {
        port_mapping(p).map_err(|m| SpecError::new(field(&format!("ports[{j}]")), m))?;
    }
    routes(at, &c.routes, &env_keys)?;
    health(at, c)
}

fn routes(at: &str, routes: &[Route], env_keys: &HashSet<&str>) -> Result<(), SpecError> {
    let mut names = HashSet::new();
    let mut vars = HashSet::new();
    for (k, r) in routes.iter().enumerate() {
        let field = |f: &str| format!("{at}.routes[{k}].{f}");
        let name_field = field("name");
        match &r.name {
            None => {
                let why = "a component with more than one route must name each route";
                ensure(routes.len() == 1, &name_field, why)?;
            }
            Some(name) => {
                let named = check_name("route name", name).map_err(|e| e.to_string());
                named.map_err(|m| SpecError::new(&name_field, m))?;
                let why = format!("duplicate route name \"{name}\"");
                ensure(names.insert(name.as_str()), &name_field, why)?;
            }
        }
        check_port(i64::from(r.port)).map_err(|m| SpecError::new(field("port"), m))?;
        if let Some(host) = &r.hostname {
            let bad_char = |ch: char| ch.is_whitespace() || ch == '/';
            let ok = !host.is_empty() && host.len() <= 253 && !host.contains(bad_char);
            let why =
                format!("invalid hostname \"{host}\": must be non-empty, no whitespace or '/'");
            ensure(ok, field("hostname"), why)?;
        }
        for var in r.env_vars(routes.len() == 1) {
            let why = format!("route variable ${var} clashes with an env entry or another route");
            let free = !env_keys.contains(var.as_str()) && vars.insert(var);
            ensure(free, &name_field, why)?;
        }
    }
    Ok(())
}

/// The key of a `KEY=VALUE` entry.
fn env_key(entry: &str) -> Result<&str, String> {
    let Some((key, _)) = entry.split_once('=') else {
        return Err(format!("env entry \"{entry}\" must be KEY=VALUE"));
    };
    env_var_name(key)?;
    Ok(key)
}

/// The longest secret name: it becomes part of a podman secret's name.
pub const MAX_SECRET_NAME_LEN: usize = 64;

/// A secret's name: `[A-Za-z0-9_][A-Za-z0-9_.-]*`, at most 64 characters. It reaches podman
/// command lines and secret names, so nothing option-like or path-like passes.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if first_ok && rest_ok && name.len() <= MAX_SECRET_NAME_LEN {
        Ok(())
    } else {
        Err(format!(
            "secret name \"{name}\" must match [A-Za-z0-9_][A-Za-z0-9_.-]* and be at most \
             {MAX_SECRET_NAME_LEN} characters"
        ))
    }
}

/// An environment variable's name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn env_var_name(key: &str) -> Result<(), String> {
    let mut bytes = key.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!(
            "env key \"{key}\" must match [A-Za-z_][A-Za-z0-9_]*"
        ));
    }
    Ok(())
}

fn volume(spec: &str) -> Result<(), String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let ok = matches!(parts.len(), 2 | 3)
        && parts[0].starts_with('/')
        && parts[1].starts_with('/')
        && parts.get(2).is_none_or(|opts| !opts.is_empty());
    let message = format!("volume \"{spec}\" must be /host/path:/container/path[:options]");
    if ok { Ok(()) } else { Err(message) }
}

fn port_mapping(spec: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "port mapping \"{spec}\" {why}; expected [ip:]hostport:containerport[/tcp|/udp]"
        ))
    };
    let mapping = match spec.rsplit_once('/') {
        Some((m, "tcp" | "udp")) => m,
        Some(_) => return bad("has an unknown protocol"),
        None => spec,
    };
    let Some((rest, container)) = mapping.rsplit_once(':') else {
        return bad("has no container port");
    };
    let (ip, host) = match rest.rsplit_once(':') {
        Some((ip, host)) => (Some(ip), host),
        None => (None, rest),
    };
    for port in [host, container] {
        if !port.parse::<i64>().is_ok_and(|p| check_port(p).is_ok()) {
            return bad(&format!("has invalid port \"{port}\""));
        }
    }
    if let Some(ip) = ip {
        // IPv6 must be bracketed, as podman wants it, so the colons stay unambiguous.
        let valid = match ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')) {
            Some(v6) => v6.parse::<Ipv6Addr>().is_ok(),
            None => ip.parse::<Ipv4Addr>().is_ok(),
        };
        if !valid {
            return bad(&format!("has invalid IP address \"{ip}\""));
        }
    }
    Ok(())
}

/// A path inside the build workspace: relative, non-empty, never climbing out with `..`.
fn relative_path(path: &str) -> Result<(), String> {
    let ok = !path.is_empty() && !path.starts_with('/') && !path.split('/').any(|seg| seg == "..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "path \"{path}\" must be relative, non-empty and without \"..\""
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn port_mappings() {
        for ok in [
            "8080:80",
            "127.0.0.1:48080:8080",
            "1:65535/udp",
            "[::1]:80:80/tcp",
        ] {
            assert!(port_mapping(ok).is_ok(), "{ok}");
        }
        for bad in [
            "80",
            "0:80",
            "80:70000",
            "x:80",
            "1.2.3:80:80",
            "80:80/sctp",
            "::1:80:80",
        ] {
            assert!(port_mapping(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn volumes_env_and_paths() {
        assert!(volume("/a:/b").is_ok() && volume("/a:/b:ro,z").is_ok());
        for bad in ["a:/b", "/a:b", "/a", "/a:/b:", "/a:/b:c:d"] {
            assert!(volume(bad).is_err(), "{bad}");
        }
        assert_eq!(env_key("_A1=x=y").unwrap(), "_A1");
        for bad in ["A", "=x", "1A=x", "A-B=x"] {
            assert!(env_key(bad).is_err(), "{bad}");
        }
        assert!(relative_path("a/b").is_ok());
        for bad in ["", "/a", "a/../b", ".."] {
            assert!(relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numeric_ranges() {
        assert!(check_port(0).is_err() && check_port(70000).is_err() && check_port(-1).is_err());
        assert_eq!(check_port(65535).unwrap(), 65535);
        assert!(check_vcpus(0).is_err() && check_vcpus(65).is_err());
        assert!(check_memory(0).is_err() && check_memory(-5).is_err());
    }
}
