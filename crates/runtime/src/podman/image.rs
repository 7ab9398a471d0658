//! Reading files out of images: what the QEMU runtime needs to turn an OCI image into a
//! unikernel (the entrypoint and the ELF it names).

use serde::Deserialize;
use std::path::Path;

use super::PodmanRuntime;
use crate::RuntimeError;

#[derive(Deserialize)]
struct InspectEntry {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Config", default)]
    config: Option<ImageConfig>,
}

#[derive(Deserialize, Default)]
struct ImageConfig {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
}

/// What the QEMU runtime needs to know of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFacts {
    /// Content-addressed id: the cache key for extracted files.
    pub id: String,
    /// The entrypoint's program, or the command's when there is no entrypoint.
    pub program: Option<String>,
}

impl PodmanRuntime {
    /// The image's id and entrypoint program. The image must be present (see `pull`).
    pub async fn image_facts(&self, image: &str) -> Result<ImageFacts, RuntimeError> {
        let unreadable = |e: serde_json::Error| RuntimeError::Parse {
            what: format!("podman image inspect {image}"),
            detail: e.to_string(),
        };
        let entry = match self
            .through_api("api-image-inspect", true, |api| api.inspect_image(image))
            .await
        {
            Some(body) => Some(serde_json::from_slice::<InspectEntry>(&body?).map_err(unreadable)?),
            None => None,
        };
        let entry = match entry {
            Some(entry) => entry,
            None => {
                let out = self
                    .podman
                    .output(
                        &format!("podman image inspect {image}"),
                        &["image", "inspect", "--format", "json", image],
                    )
                    .await?;
                let entries: Vec<InspectEntry> = serde_json::from_str(&out).map_err(unreadable)?;
                entries
                    .into_iter()
                    .next()
                    .ok_or_else(|| RuntimeError::ImageNotFound {
                        image: image.to_string(),
                        detail: "podman image inspect returned nothing".into(),
                    })?
            }
        };
        let config = entry.config.unwrap_or_default();
        let program = config
            .entrypoint
            .and_then(|e| e.into_iter().next())
            .or_else(|| config.cmd.and_then(|c| c.into_iter().next()));
        Ok(ImageFacts {
            id: entry.id,
            program,
        })
    }

    /// Copies the file at `path` inside `image` to `dest` (through a created, never started,
    /// container that is removed again).
    pub async fn copy_from_image(
        &self,
        image: &str,
        path: &str,
        dest: &Path,
    ) -> Result<(), RuntimeError> {
        let created = self
            .podman
            .output(
                &format!("podman create {image}"),
                &["create", "--label", "mcp.extract=1", image],
            )
            .await?;
        let container = created.trim().to_string();
        let source = format!("{container}:{path}");
        let dest_text = dest.to_string_lossy().into_owned();
        let copied = self
            .podman
            .output(
                &format!("copying {path} out of {image}"),
                &["cp", &source, &dest_text],
            )
            .await;
        let _ = self
            .podman
            .output("podman rm", &["rm", "--force", &container])
            .await;
        Ok(copied.map(drop)?)
    }
}
