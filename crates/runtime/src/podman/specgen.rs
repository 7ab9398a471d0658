//! The container a `ContainerSpec` asks for, as libpod's SpecGenerator JSON (the body of
//! `POST /libpod/containers/create`): the same container `podman run` with `args.rs`'s
//! vector creates. That equality was checked field by field against `podman inspect` and the
//! OCI config of both (podman 4.3), and `crates/cli/tests` deploy through it.
//!
//! A spec this cannot express exactly (an operator's `run_args` other than the log size, a
//! network mode other than a plain network name, host or none) gives `None`: the caller
//! then runs `podman run` instead, so nothing is silently dropped.

use serde_json::{Map, Value, json};

use crate::ContainerSpec;

/// The SpecGenerator for `spec`, with the operator's extra `podman run` arguments `extra`;
/// `None` when something in them has no exact equivalent here.
pub(super) fn spec_generator(spec: &ContainerSpec, extra: &[String]) -> Option<Value> {
    let mut body = Map::new();
    body.insert("name".into(), json!(spec.name));
    body.insert("image".into(), json!(spec.image));
    if !spec.cmd.is_empty() {
        body.insert("command".into(), json!(spec.cmd));
    }
    // What `podman run --detach` sets on its side.
    body.insert("terminal".into(), json!(false));
    body.insert("sdnotifyMode".into(), json!("container"));
    body.insert("labels".into(), json!(spec.labels));
    if !spec.env.is_empty() {
        // Later entries win, as they do in an env file.
        let env: Map<String, Value> = spec
            .env
            .iter()
            .map(|entry| {
                let (key, value) = entry.split_once('=').unwrap_or((entry, ""));
                (key.to_string(), json!(value))
            })
            .collect();
        body.insert("env".into(), Value::Object(env));
    }
    if !spec.secrets.is_empty() {
        let secrets: Map<String, Value> = spec
            .secrets
            .iter()
            .map(|secret| (secret.var.clone(), json!(secret.handle)))
            .collect();
        body.insert("secret_env".into(), Value::Object(secrets));
    }
    if !spec.volumes.is_empty() {
        let mounts = spec
            .volumes
            .iter()
            .map(|volume| bind_mount(volume))
            .collect::<Option<Vec<_>>>()?;
        body.insert("mounts".into(), Value::Array(mounts));
    }
    if !spec.ports.is_empty() {
        let ports = spec
            .ports
            .iter()
            .map(|port| port_mapping(port))
            .collect::<Option<Vec<_>>>()?;
        body.insert("portmappings".into(), Value::Array(ports));
    }
    if let Some(network) = &spec.network {
        network_mode(network, &mut body)?;
    }
    if let Some(user) = &spec.user {
        body.insert("user".into(), json!(user));
    }
    if let Some(mb) = spec.memory_mb {
        // `--memory 64m` is binary megabytes.
        let bytes = u64::from(mb) * 1024 * 1024;
        body.insert(
            "resource_limits".into(),
            json!({ "memory": { "limit": bytes } }),
        );
    }
    for (flag, value) in flags(extra)? {
        match (flag, value.split_once('=')) {
            ("--log-opt", Some(("max-size", size))) => {
                body.insert(
                    "log_configuration".into(),
                    json!({ "size": log_size(size)? }),
                );
            }
            _ => return None,
        }
    }
    Some(Value::Object(body))
}

/// `--flag=value` and `--flag value` pairs; `None` for anything else (a bare flag).
fn flags(extra: &[String]) -> Option<Vec<(&str, &str)>> {
    let mut pairs = Vec::new();
    let mut rest = extra.iter();
    while let Some(arg) = rest.next() {
        match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => pairs.push((flag, value)),
            _ if arg.starts_with("--") => pairs.push((arg.as_str(), rest.next()?.as_str())),
            _ => return None,
        }
    }
    Some(pairs)
}

/// `/host:/container[:opt,opt]` as an OCI bind mount; podman adds `rbind` and the
/// propagation itself, as it does for `--volume`.
fn bind_mount(volume: &str) -> Option<Value> {
    let mut parts = volume.splitn(3, ':');
    let (source, destination) = (parts.next()?, parts.next()?);
    if !source.starts_with('/') || !destination.starts_with('/') {
        return None;
    }
    let options: Vec<&str> = parts
        .next()
        .map(|opts| opts.split(',').collect())
        .unwrap_or_default();
    Some(json!({
        "type": "bind",
        "source": source,
        "destination": destination,
        "options": options,
    }))
}

/// `[ip:]host:container[/tcp|/udp]` (IPv6 bracketed) as libpod's port mapping.
fn port_mapping(port: &str) -> Option<Value> {
    let (mapping, protocol) = match port.rsplit_once('/') {
        Some((mapping, protocol @ ("tcp" | "udp"))) => (mapping, protocol),
        Some(_) => return None,
        None => (port, "tcp"),
    };
    let (rest, container) = mapping.rsplit_once(':')?;
    let (ip, host) = rest.rsplit_once(':').unwrap_or(("", rest));
    let ip = ip
        .strip_prefix('[')
        .and_then(|v6| v6.strip_suffix(']'))
        .unwrap_or(ip);
    Some(json!({
        "host_ip": ip,
        "host_port": host.parse::<u16>().ok()?,
        "container_port": container.parse::<u16>().ok()?,
        "protocol": protocol,
    }))
}

/// `--network NAME`: a named network joins it over a bridge; `host`, `none` and `bridge`
/// are modes. Other modes (`slirp4netns:…`, `container:…`, `ns:…`) are left to the CLI.
fn network_mode(network: &str, body: &mut Map<String, Value>) -> Option<()> {
    let plain_name = !network.is_empty()
        && network
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !network.starts_with(['-', '.']);
    match network {
        "host" | "none" | "bridge" => {
            body.insert("netns".into(), json!({ "nsmode": network }));
        }
        "private" | "slirp4netns" | "pasta" => return None,
        name if plain_name => {
            body.insert("netns".into(), json!({ "nsmode": "bridge" }));
            body.insert("Networks".into(), json!({ name: {} }));
        }
        _ => return None,
    }
    Some(())
}

/// podman's `max-size` (go-units' `FromHumanSize`: decimal units, an optional `i` and `b`
/// ignored, case-insensitive), in bytes.
fn log_size(size: &str) -> Option<u64> {
    let lower = size.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let scale: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "p" => 1e15,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    // Whole bytes, as go-units truncates.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Some((value * scale) as u64)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn full_spec() -> ContainerSpec {
        ContainerSpec {
            env: vec!["GREETING=hi there".into(), "EMPTY=".into(), "A=b=c".into()],
            volumes: vec!["/srv/a:/a".into(), "/srv/b:/b:ro,z".into()],
            ports: vec![
                "127.0.0.1:48080:8080".into(),
                "9090:90/udp".into(),
                "[::1]:48081:81".into(),
            ],
            ..super::super::args::example_spec()
        }
    }

    #[test]
    fn every_field_is_carried() {
        let body = spec_generator(&full_spec(), &["--log-opt=max-size=10mb".to_string()]).unwrap();
        assert_eq!(
            body,
            json!({
                "name": "hello-web",
                "image": "127.0.0.1:5000/hello:v1",
                "command": ["serve", "--verbose"],
                "terminal": false,
                "sdnotifyMode": "container",
                "labels": { "mcp.service": "hello" },
                "env": { "GREETING": "hi there", "EMPTY": "", "A": "b=c" },
                "secret_env": { "DB_PASSWORD": "mcp.hello.db.3" },
                "mounts": [
                    { "type": "bind", "source": "/srv/a", "destination": "/a", "options": [] },
                    { "type": "bind", "source": "/srv/b", "destination": "/b",
                      "options": ["ro", "z"] },
                ],
                "portmappings": [
                    { "host_ip": "127.0.0.1", "host_port": 48080, "container_port": 8080,
                      "protocol": "tcp" },
                    { "host_ip": "", "host_port": 9090, "container_port": 90,
                      "protocol": "udp" },
                    { "host_ip": "::1", "host_port": 48081, "container_port": 81,
                      "protocol": "tcp" },
                ],
                "netns": { "nsmode": "bridge" },
                "Networks": { "podman": {} },
                "user": "1000",
                "resource_limits": { "memory": { "limit": 67_108_864 } },
                "log_configuration": { "size": 10_000_000 },
            })
        );
    }

    #[test]
    fn what_has_no_exact_equivalent_goes_to_the_cli() {
        let spec = full_spec();
        for extra in [
            vec!["--ulimit".to_string(), "nofile=1024:1024".to_string()],
            vec!["--privileged".to_string()],
            vec!["--log-opt=tag=x".to_string()],
            vec!["--log-opt".to_string()],
        ] {
            assert!(spec_generator(&spec, &extra).is_none(), "{extra:?}");
        }
        for network in [
            "slirp4netns:port_handler=slirp4netns",
            "container:db",
            "ns:/x",
            "-x",
        ] {
            let spec = ContainerSpec {
                network: Some(network.into()),
                ..full_spec()
            };
            assert!(spec_generator(&spec, &[]).is_none(), "{network}");
        }
        let spec = ContainerSpec {
            volumes: vec!["named:/data".into()],
            ..full_spec()
        };
        assert!(spec_generator(&spec, &[]).is_none());
    }

    #[test]
    fn modes_and_sizes() {
        let spec = ContainerSpec {
            network: Some("host".into()),
            ..ContainerSpec::default()
        };
        let body = spec_generator(&spec, &["--log-opt".into(), "max-size=1.5k".into()]).unwrap();
        assert_eq!(body["netns"], json!({ "nsmode": "host" }));
        assert!(body.get("Networks").is_none());
        assert_eq!(body["log_configuration"]["size"], json!(1500));
        assert_eq!(log_size("10MiB"), Some(10_000_000));
        assert_eq!(log_size("512"), Some(512));
        assert_eq!(log_size("10 gb"), Some(10_000_000_000));
        assert_eq!(log_size("ten"), None);
        assert_eq!(log_size("10x"), None);
    }
}
