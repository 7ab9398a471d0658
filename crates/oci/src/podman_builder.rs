//! `ImageBuilder` on the operator's podman: `podman build`, `podman push` (podman's own
//! credentials), and the tag check through the registry client (the same credentials, read
//! from the containers auth files).

use async_trait::async_trait;
use servicedef::ImageRef;
use std::path::Path;

use crate::{BuildError, BuildSpec, ImageBuilder, OutputSink, RegistryClient};
use podman_cli::{Podman, PodmanCli};

/// podman on the operator's machine.
#[derive(Debug, Clone, Default)]
pub struct PodmanBuilderConfig {
    pub podman: PodmanCli,
    /// Registries (`host[:port]`, as written in image references) spoken to over plain HTTP:
    /// `--tls-verify=false` for push, `http://` for tag checks. Nothing else is.
    pub insecure_registries: Vec<String>,
}

pub struct PodmanBuilder {
    podman: Podman,
    registry: RegistryClient,
}

impl PodmanBuilder {
    pub fn new(config: PodmanBuilderConfig) -> Self {
        Self {
            podman: Podman::new(config.podman),
            registry: RegistryClient::new(config.insecure_registries),
        }
    }

    fn insecure(&self, image: &str) -> bool {
        ImageRef::parse(image)
            .ok()
            .and_then(|parsed| parsed.registry)
            .is_some_and(|registry| self.registry.is_insecure(&registry))
    }
}

#[async_trait]
impl ImageBuilder for PodmanBuilder {
    async fn build(&self, spec: &BuildSpec, output: OutputSink<'_>) -> Result<(), BuildError> {
        let argv = build_args(spec)?;
        let what = format!("podman build of {}", spec.tags.join(", "));
        Ok(self.podman.stream(&what, &argv, output).await?)
    }

    async fn push(&self, image: &str, output: OutputSink<'_>) -> Result<(), BuildError> {
        ImageRef::parse(image)?;
        let argv = push_args(image, self.insecure(image));
        Ok(self
            .podman
            .stream(&format!("podman push {image}"), &argv, output)
            .await?)
    }

    async fn image_exists(&self, image: &str) -> Result<bool, BuildError> {
        let parsed = ImageRef::parse(image)?;
        self.registry
            .manifest_exists(&parsed)
            .await
            .map_err(|source| BuildError::Registry {
                image: image.to_string(),
                source,
            })
    }
}

/// `podman build -f FILE -t TAG... CONTEXT`.
fn build_args(spec: &BuildSpec) -> Result<Vec<String>, BuildError> {
    let Some(first) = spec.tags.first() else {
        return Err(BuildError::InvalidSpec {
            name: spec.file.display().to_string(),
            detail: "a build needs at least one tag".into(),
        });
    };
    let path = |p: &Path| match p.to_str() {
        Some(s) if !s.is_empty() && !s.starts_with('-') => Ok(s.to_string()),
        _ => Err(BuildError::InvalidSpec {
            name: first.clone(),
            detail: format!("path {} is not UTF-8, empty or option-like", p.display()),
        }),
    };
    let mut argv = vec!["build".to_string(), "-f".into(), path(&spec.file)?];
    for tag in &spec.tags {
        ImageRef::parse(tag)?;
        argv.push("-t".into());
        argv.push(tag.clone());
    }
    argv.push(path(&spec.context)?);
    Ok(argv)
}

/// `podman push [--tls-verify=false] IMAGE`; TLS checks are off only for an insecure registry.
fn push_args(image: &str, insecure: bool) -> Vec<String> {
    let mut argv = vec!["push".to_string()];
    if insecure {
        argv.push("--tls-verify=false".into());
    }
    argv.push(image.to_string());
    argv
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn build_and_push_vectors() {
        let spec = BuildSpec {
            file: "/ws/hello/Containerfile".into(),
            context: "/ws/hello".into(),
            tags: vec![
                "127.0.0.1:5000/hello:v1".into(),
                "127.0.0.1:5000/hello:v1-b".into(),
            ],
        };
        assert_eq!(
            build_args(&spec).unwrap(),
            [
                "build",
                "-f",
                "/ws/hello/Containerfile",
                "-t",
                "127.0.0.1:5000/hello:v1",
                "-t",
                "127.0.0.1:5000/hello:v1-b",
                "/ws/hello",
            ]
        );
        assert_eq!(push_args("r.example/a:1", false), ["push", "r.example/a:1"]);
        assert_eq!(
            push_args("127.0.0.1:5000/a:1", true),
            ["push", "--tls-verify=false", "127.0.0.1:5000/a:1"]
        );
    }

    #[test]
    fn builds_refuse_option_like_paths_bad_tags_and_no_tags() {
        let good = BuildSpec {
            file: "/ws/Containerfile".into(),
            context: "/ws".into(),
            tags: vec!["127.0.0.1:5000/hello:v1".into()],
        };
        for bad in [
            BuildSpec {
                context: "--squash".into(),
                ..good.clone()
            },
            BuildSpec {
                tags: vec!["--rm".into()],
                ..good.clone()
            },
            BuildSpec {
                tags: vec![],
                ..good.clone()
            },
        ] {
            assert!(build_args(&bad).is_err(), "{bad:?}");
        }
    }
}
