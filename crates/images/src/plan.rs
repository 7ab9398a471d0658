//! Which images a definition uses, which `[build.images]` entry builds each, and from which
//! file and context directory (pure, apart from checking that the build file exists).

use servicedef::ImageRef;
use servicedef::Service;
use std::path::{Path, PathBuf};

use crate::ImagesError;

/// One distinct component image of a service, in definition order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedImage {
    /// The reference as written in the definition (also the tag a build gives it).
    pub image: String,
    pub parsed: ImageRef,
    /// The `[build.images]` key that builds it, if any.
    pub key: Option<String>,
}

/// Where a `[build.images]` entry is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSource {
    pub key: String,
    /// `<workspace>/<path>/<file>`.
    pub file: PathBuf,
    /// `<workspace>/<path>`.
    pub context: PathBuf,
}

/// The service's distinct component images, each with the build entry that makes it. The
/// images were parsed when the definition was read (`servicedef::Image`).
pub fn component_images(service: &Service) -> Vec<PlannedImage> {
    let mut out: Vec<PlannedImage> = Vec::new();
    for component in &service.components {
        if out.iter().any(|p| component.image == p.image.as_str()) {
            continue;
        }
        let parsed = component.image.reference().clone();
        out.push(PlannedImage {
            image: component.image.to_string(),
            key: build_key(service, &parsed).map(str::to_string),
            parsed,
        });
    }
    out
}

/// The `[build.images]` key naming `image`'s repository: an exact match of the whole
/// repository path wins over a match of its last segment (`team/hello` or `hello`).
pub fn build_key<'s>(service: &'s Service, image: &ImageRef) -> Option<&'s str> {
    let keys = || service.build_images.keys().map(String::as_str);
    keys()
        .find(|key| *key == image.repository)
        .or_else(|| keys().find(|key| image.matches_repo(key)))
}

/// Where entry `key` is built: its file under `<workspace>/<path>`, `path` defaulting to the
/// service name. The file must exist, so a typo fails before any build starts.
pub fn source(
    service: &Service,
    key: &str,
    workspace: Option<&Path>,
) -> Result<BuildSource, ImagesError> {
    let service_name = service.name.to_string();
    let file = service
        .build_images
        .get(key)
        .ok_or_else(|| ImagesError::UnknownImage {
            service: service_name.clone(),
            key: key.to_string(),
            known: known_keys(service),
        })?;
    let workspace = workspace.ok_or_else(|| ImagesError::NoWorkspace {
        service: service_name.clone(),
        key: key.to_string(),
    })?;
    let context = workspace.join(service.path.as_deref().unwrap_or(service.name.as_str()));
    let file = context.join(file);
    if !file.is_file() {
        return Err(ImagesError::MissingBuildFile {
            service: service_name,
            key: key.to_string(),
            path: file,
        });
    }
    Ok(BuildSource {
        key: key.to_string(),
        file,
        context,
    })
}

/// `[build.images]` keys, for error messages.
pub(crate) fn known_keys(service: &Service) -> String {
    let keys: Vec<&str> = service.build_images.keys().map(String::as_str).collect();
    if keys.is_empty() {
        "none".to_string()
    } else {
        keys.join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn service(extra: &str, images: &[&str]) -> Service {
        let mut text = format!("name = \"shop\"\nnode = \"local\"\n{extra}\n");
        for (i, image) in images.iter().enumerate() {
            text.push_str(&format!(
                "[[components]]\nname = \"c{i}\"\nimage = \"{image}\"\n"
            ));
        }
        servicedef::parse_str("shop.toml", &text).unwrap()
    }

    #[test]
    fn each_image_once_with_the_entry_that_builds_it() {
        let s = service(
            "[build.images]\nhello = \"Containerfile\"\n\"team/api\" = \"api/Dockerfile\"\napi = \"other\"\n",
            &[
                "127.0.0.1:5000/hello:v1.0.0",
                "127.0.0.1:5000/team/api:v2",
                "127.0.0.1:5000/hello:v1.0.0",
                "127.0.0.1:5000/db:v3",
            ],
        );
        let planned = component_images(&s);
        let keys: Vec<(&str, Option<&str>)> = planned
            .iter()
            .map(|p| (p.image.as_str(), p.key.as_deref()))
            .collect();
        assert_eq!(
            keys,
            [
                ("127.0.0.1:5000/hello:v1.0.0", Some("hello")),
                // The whole repository path beats the last segment ("api").
                ("127.0.0.1:5000/team/api:v2", Some("team/api")),
                ("127.0.0.1:5000/db:v3", None),
            ]
        );
    }

    /// A workspace with `<dir>/Containerfile`.
    fn workspace(dir: &str) -> tempfile::TempDir {
        let ws = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(ws.path().join(dir)).unwrap();
        std::fs::write(ws.path().join(dir).join("Containerfile"), "FROM scratch\n").unwrap();
        ws
    }

    #[test]
    fn sources_live_under_workspace_and_path() {
        let ws = workspace("src/shop");
        let s = service(
            "path = \"src/shop\"\n[build.images]\nhello = \"Containerfile\"\nmissing = \"Nope\"\n",
            &["127.0.0.1:5000/hello:v1"],
        );
        let src = source(&s, "hello", Some(ws.path())).unwrap();
        assert_eq!(src.context, ws.path().join("src/shop"));
        assert_eq!(src.file, ws.path().join("src/shop/Containerfile"));

        let err = source(&s, "missing", Some(ws.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("src/shop/Nope"), "{err}");
        let err = source(&s, "hello", None).unwrap_err().to_string();
        assert!(err.contains("[build] workspace"), "{err}");
        let err = source(&s, "zzz", Some(ws.path())).unwrap_err().to_string();
        assert!(err.contains("hello, missing"), "{err}");
    }

    #[test]
    fn path_defaults_to_the_service_name() {
        let ws = workspace("shop");
        let s = service(
            "[build.images]\nhello = \"Containerfile\"\n",
            &["127.0.0.1:5000/hello:v1"],
        );
        assert_eq!(
            source(&s, "hello", Some(ws.path())).unwrap().context,
            ws.path().join("shop")
        );
    }
}
