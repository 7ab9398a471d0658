//! Image references (`[host[:port]/]repo[:tag][@digest]`): which registry holds an image, under
//! which repository and tag. Pure parsing, so the rules are unit-tested.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What names a manifest in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestRef {
    Tag(String),
    /// `algorithm:hex`, e.g. `sha256:...`.
    Digest(String),
}

impl fmt::Display for ManifestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(t) | Self::Digest(t) => f.write_str(t),
        }
    }
}

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` of the registry; `None` for local-only images (see [`ImageRef::parse`]).
    pub registry: Option<String>,
    /// Repository path without the registry, e.g. `team/hello`.
    pub repository: String,
    /// Tag (default `latest`) or digest.
    pub reference: ManifestRef,
}

/// Why a reference cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {image:?}: {reason}")]
pub struct ImageRefError {
    pub image: String,
    pub reason: String,
}

impl ImageRef {
    /// Parses `image`. The first path segment is a registry host when it contains `.` or `:`
    /// (the usual rule). `localhost/x` and unqualified names such as `hello:v1` have no
    /// registry host: they are local-only images (podman's convention for what it built
    /// itself), so nothing asks a registry about them.
    pub fn parse(image: &str) -> Result<Self, ImageRefError> {
        let fail = |reason: &str| ImageRefError {
            image: image.to_string(),
            reason: reason.to_string(),
        };
        if image.is_empty() || image.starts_with('-') || image.chars().any(char::is_whitespace) {
            return Err(fail("empty, starts with '-' or contains whitespace"));
        }
        let (name, digest) = match image.split_once('@') {
            Some((name, digest)) => {
                let ok = digest
                    .split_once(':')
                    .is_some_and(|(alg, hex)| !alg.is_empty() && !hex.is_empty());
                if !ok {
                    return Err(fail("digest must be algorithm:hex"));
                }
                (name, Some(digest))
            }
            None => (image, None),
        };
        let (registry, rest) = match name.split_once('/') {
            Some((first, rest)) if first.contains('.') || first.contains(':') => {
                (Some(first.to_string()), rest)
            }
            _ => (None, name),
        };
        // A tag is a ':' after the last '/'; a ':' before it belongs to a host.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|seg| {
                !seg.is_empty()
                    && seg.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            });
        if !repo_ok {
            return Err(fail(
                "repository must be non-empty segments of [a-z0-9._-] separated by '/'",
            ));
        }
        let reference = match (tag, digest) {
            (_, Some(digest)) => ManifestRef::Digest(digest.to_string()),
            (Some(tag), None) => {
                let ok = !tag.is_empty()
                    && tag.len() <= 128
                    && !tag.starts_with(['.', '-'])
                    && tag
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !ok {
                    return Err(fail("tag must be 1 to 128 of [A-Za-z0-9._-]"));
                }
                ManifestRef::Tag(tag.to_string())
            }
            (None, None) => ManifestRef::Tag("latest".to_string()),
        };
        Ok(Self {
            registry,
            repository: repository.to_string(),
            reference,
        })
    }

    /// No registry host: built and used on one machine, never pushed or checked remotely.
    pub fn is_local_only(&self) -> bool {
        self.registry.is_none()
    }

    /// Whether `[build.images]` key `repo` names this image's repository: the whole path
    /// (`team/hello`) or its last segment (`hello`).
    pub fn matches_repo(&self, repo: &str) -> bool {
        self.repository == repo
            || self
                .repository
                .strip_suffix(repo)
                .is_some_and(|prefix| prefix.ends_with('/'))
    }

    /// Host to send distribution API requests to (Docker Hub's API lives elsewhere than its name).
    pub fn api_host(&self) -> Option<&str> {
        match self.registry.as_deref() {
            Some("docker.io" | "index.docker.io") => Some("registry-1.docker.io"),
            other => other,
        }
    }

    /// Repository as the registry's API names it (Docker Hub's official images are `library/x`).
    pub fn api_repository(&self) -> String {
        let hub = matches!(
            self.registry.as_deref(),
            Some("docker.io" | "index.docker.io")
        );
        if hub && !self.repository.contains('/') {
            format!("library/{}", self.repository)
        } else {
            self.repository.clone()
        }
    }
}

/// A component's image: the reference as written, parsed once when the definition (or a wire
/// spec) is read, so every user sees the same verdict. Serialized as the plain string, so
/// recorded specs and their hashes are what they were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Image {
    text: String,
    parsed: ImageRef,
}

impl Image {
    pub fn parse(text: &str) -> Result<Self, ImageRefError> {
        Ok(Self {
            parsed: ImageRef::parse(text)?,
            text: text.to_string(),
        })
    }

    /// The reference as written, e.g. for podman's command line.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn reference(&self) -> &ImageRef {
        &self.parsed
    }
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl TryFrom<String> for Image {
    type Error = ImageRefError;

    fn try_from(text: String) -> Result<Self, ImageRefError> {
        Self::parse(&text)
    }
}

impl From<Image> for String {
    fn from(image: Image) -> Self {
        image.text
    }
}

impl PartialEq<str> for Image {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}

impl PartialEq<&str> for Image {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn registry_repository_and_tag_are_split() {
        let r = ImageRef::parse("127.0.0.1:5000/hello:v1.0.0").unwrap();
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(r.repository, "hello");
        assert_eq!(r.reference, ManifestRef::Tag("v1.0.0".into()));

        let r = ImageRef::parse("registry.example.com/team/app").unwrap();
        assert_eq!(r.registry.as_deref(), Some("registry.example.com"));
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.reference.to_string(), "latest");

        let r = ImageRef::parse("localhost:5000/a/b:x@sha256:abc").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost:5000"));
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.reference, ManifestRef::Digest("sha256:abc".into()));
    }

    #[test]
    fn images_without_a_registry_host_are_local_only() {
        for image in ["localhost/hello:v1", "hello:v1", "hello", "team/hello:v2"] {
            let r = ImageRef::parse(image).unwrap();
            assert!(r.is_local_only(), "{image}");
        }
        let r = ImageRef::parse("localhost/hello:v1").unwrap();
        assert_eq!(r.repository, "localhost/hello");
        assert!(
            !ImageRef::parse("localhost:5000/hello")
                .unwrap()
                .is_local_only()
        );
    }

    #[test]
    fn bad_references_are_refused() {
        for image in [
            "",
            "--privileged",
            "a b",
            "Hello:v1",
            "127.0.0.1:5000/:v1",
            "x//y",
            "x:",
            "x:-v",
            "x@sha256",
        ] {
            assert!(ImageRef::parse(image).is_err(), "{image}");
        }
    }

    #[test]
    fn build_keys_match_the_whole_repository_or_its_last_segment() {
        let r = ImageRef::parse("127.0.0.1:5000/team/hello:v1").unwrap();
        assert!(r.matches_repo("team/hello"));
        assert!(r.matches_repo("hello"));
        assert!(!r.matches_repo("ello"));
        assert!(!r.matches_repo("team"));
        assert!(!r.matches_repo("hello2"));
        let local = ImageRef::parse("localhost/hello:v1").unwrap();
        assert!(local.matches_repo("hello"));
    }

    #[test]
    fn docker_hub_names_map_to_its_api() {
        let r = ImageRef::parse("docker.io/nginx:1").unwrap();
        assert_eq!(r.api_host(), Some("registry-1.docker.io"));
        assert_eq!(r.api_repository(), "library/nginx");
        let r = ImageRef::parse("127.0.0.1:5000/nginx:1").unwrap();
        assert_eq!(r.api_host(), Some("127.0.0.1:5000"));
        assert_eq!(r.api_repository(), "nginx");
    }
}
