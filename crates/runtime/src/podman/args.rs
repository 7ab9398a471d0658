//! Argument vectors of `podman run`, `pull` and `login` (pure, so they are unit-tested).

use std::path::Path;

use crate::{ContainerSpec, RuntimeError};

/// `env_file` carries the spec's environment (see `PodmanRuntime::run`): values never appear
/// on a command line, where any local user could read them from /proc.
pub(super) fn run_args(
    spec: &ContainerSpec,
    extra: &[String],
    env_file: Option<&std::path::Path>,
) -> Result<Vec<String>, RuntimeError> {
    refuse_option_like(spec)?;
    let mut argv: Vec<String> = vec![
        "run".into(),
        "--detach".into(),
        "--name".into(),
        spec.name.clone(),
    ];
    for (key, value) in &spec.labels {
        argv.push("--label".into());
        argv.push(format!("{key}={value}"));
    }
    if let Some(path) = env_file {
        argv.push("--env-file".into());
        argv.push(path.to_string_lossy().into_owned());
    }
    for secret in &spec.secrets {
        argv.push("--secret".into());
        argv.push(format!("{},type=env,target={}", secret.handle, secret.var));
    }
    for volume in &spec.volumes {
        argv.push("--volume".into());
        argv.push(volume.clone());
    }
    for port in &spec.ports {
        argv.push("--publish".into());
        argv.push(port.clone());
    }
    if let Some(network) = &spec.network {
        argv.push("--network".into());
        argv.push(network.clone());
    }
    if let Some(user) = &spec.user {
        argv.push("--user".into());
        argv.push(user.clone());
    }
    if let Some(mb) = spec.memory_mb {
        argv.push("--memory".into());
        argv.push(format!("{mb}m"));
    }
    argv.extend(extra.iter().cloned());
    argv.push(spec.image.clone());
    argv.extend(spec.cmd.iter().cloned());
    Ok(argv)
}

/// Option-looking values would be read by podman as flags (and mean nothing as names on the
/// API): refuse them outright.
pub(super) fn refuse_option_like(spec: &ContainerSpec) -> Result<(), RuntimeError> {
    for (what, value) in [("name", &spec.name), ("image", &spec.image)] {
        if value.is_empty() || value.starts_with('-') {
            return Err(RuntimeError::InvalidSpec {
                name: spec.name.clone(),
                detail: format!("{what} {value:?} is empty or starts with '-'"),
            });
        }
    }
    Ok(())
}

/// `podman pull --quiet [--authfile F] [--tls-verify=false] IMAGE`.
pub(super) fn pull_args(image: &str, insecure: bool, auth_file: Option<&Path>) -> Vec<String> {
    let mut argv = vec!["pull".to_string(), "--quiet".into()];
    if let Some(file) = auth_file {
        argv.push(format!("--authfile={}", file.display()));
    }
    if insecure {
        argv.push("--tls-verify=false".into());
    }
    argv.push(image.to_string());
    argv
}

/// `podman login --authfile F [--tls-verify=false] -u USER --password-stdin REGISTRY`.
pub(super) fn login_args(
    registry: &str,
    username: &str,
    insecure: bool,
    auth_file: &Path,
) -> Vec<String> {
    let mut argv = vec![
        "login".to_string(),
        format!("--authfile={}", auth_file.display()),
        format!("--username={username}"),
        "--password-stdin".into(),
    ];
    if insecure {
        argv.push("--tls-verify=false".into());
    }
    argv.push(registry.to_string());
    argv
}

/// A spec with every field set, for the tests of both ways of creating a container.
#[cfg(test)]
pub(super) fn example_spec() -> ContainerSpec {
    ContainerSpec {
        name: "hello-web".into(),
        image: "127.0.0.1:5000/hello:v1".into(),
        cmd: vec!["serve".into(), "--verbose".into()],
        env: vec!["GREETING=hi there".into()],
        volumes: vec!["/srv/a:/a".into()],
        network: Some("podman".into()),
        user: Some("1000".into()),
        restart: "on-failure".into(),
        ports: vec!["127.0.0.1:48080:8080".into()],
        memory_mb: Some(64),
        vcpus: 1,
        labels: std::collections::BTreeMap::from([("mcp.service".into(), "hello".into())]),
        binary: None,
        secrets: vec![crate::SecretEnv {
            var: "DB_PASSWORD".into(),
            handle: "mcp.hello.db.3".into(),
            value: crate::SecretValue::new(b"hunter2".to_vec()),
        }],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_field_reaches_podman_in_order() {
        let spec = example_spec();
        let argv = run_args(
            &spec,
            &["--ulimit".into(), "nofile=1024:1024".into()],
            Some(std::path::Path::new("/run/x/env")),
        )
        .unwrap();
        assert_eq!(
            argv,
            [
                "run",
                "--detach",
                "--name",
                "hello-web",
                "--label",
                "mcp.service=hello",
                "--env-file",
                "/run/x/env",
                "--secret",
                "mcp.hello.db.3,type=env,target=DB_PASSWORD",
                "--volume",
                "/srv/a:/a",
                "--publish",
                "127.0.0.1:48080:8080",
                "--network",
                "podman",
                "--user",
                "1000",
                "--memory",
                "64m",
                "--ulimit",
                "nofile=1024:1024",
                "127.0.0.1:5000/hello:v1",
                "serve",
                "--verbose",
            ]
        );
    }

    #[test]
    fn option_like_image_is_refused() {
        let spec = ContainerSpec {
            name: "x".into(),
            image: "--privileged".into(),
            ..Default::default()
        };
        assert!(run_args(&spec, &[], None).is_err());
    }

    #[test]
    fn pull_and_login_vectors() {
        assert_eq!(
            pull_args("127.0.0.1:5000/a:1", true, None),
            [
                "pull",
                "--quiet",
                "--tls-verify=false",
                "127.0.0.1:5000/a:1"
            ]
        );
        assert_eq!(
            pull_args("r.example/a:1", false, Some(Path::new("/s/auth.json"))),
            [
                "pull",
                "--quiet",
                "--authfile=/s/auth.json",
                "r.example/a:1"
            ]
        );
        assert_eq!(
            login_args("127.0.0.1:5000", "alice", true, Path::new("/s/auth.json")),
            [
                "login",
                "--authfile=/s/auth.json",
                "--username=alice",
                "--password-stdin",
                "--tls-verify=false",
                "127.0.0.1:5000"
            ]
        );
    }
}
