//! Why images could not be made ready, each naming the image, entry or file concerned.

use oci::BuildError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error(
        "{} not in the registry, and service {service} has no [build.images] entry \
         for {}: push {}, or add a build entry",
        list(images), if images.len() == 1 { "it" } else { "them" },
        if images.len() == 1 { "it" } else { "them" }
    )]
    NotInRegistry {
        service: String,
        images: Vec<String>,
    },
    #[error(
        "service {service} builds {key} (build.images.{key}), but the CLI config has no \
         [build] workspace to find its sources in"
    )]
    NoWorkspace { service: String, key: String },
    #[error("build.images.{key} of service {service}: {} does not exist", path.display())]
    MissingBuildFile {
        service: String,
        key: String,
        path: PathBuf,
    },
    #[error("service {service} has no [build.images]: nothing to build")]
    NothingToBuild { service: String },
    #[error("service {service} has no image {key:?} in [build.images] (it has: {known})")]
    UnknownImage {
        service: String,
        key: String,
        known: String,
    },
    #[error(
        "build.images.{key} of service {service} matches no component image, so there is no \
         tag to build it under"
    )]
    Unmatched { service: String, key: String },
    /// The registry could not be asked, or podman failed to build or push.
    #[error(transparent)]
    Build(#[from] BuildError),
}

impl ImagesError {
    /// The definition or configuration is wrong (as opposed to a registry or builder failing).
    pub fn is_bad_input(&self) -> bool {
        match self {
            Self::Build(e) => matches!(
                e,
                BuildError::InvalidImage(_) | BuildError::InvalidSpec { .. }
            ),
            _ => true,
        }
    }
}

fn list(images: &[String]) -> String {
    match images {
        [one] => format!("image {one} is"),
        many => format!("images {} are", many.join(", ")),
    }
}
