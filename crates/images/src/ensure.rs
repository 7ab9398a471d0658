//! Check → build → push. Tags are immutable releases: a tag the registry holds is never
//! rebuilt unless the operator forces it, and everything that can be known wrong (an image
//! nobody can build, a missing build file) fails before the first build starts.

use oci::{BuildSpec, ImageBuilder};
use servicedef::Service;
use std::collections::BTreeMap;
use std::path::Path;

use crate::ImagesError;
use crate::plan::{self, BuildSource, PlannedImage};

/// What happens to images, for the caller to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// No registry host: nothing to check (see `servicedef::ImageRef::parse`).
    LocalOnly {
        image: &'a str,
    },
    /// The registry holds the tag: it is not rebuilt.
    Exists {
        image: &'a str,
    },
    Building {
        tags: &'a [String],
        file: &'a Path,
    },
    /// A line of the builder's (or pusher's) output.
    Output(&'a str),
    Built {
        tags: &'a [String],
    },
    Pushing {
        image: &'a str,
    },
    Pushed {
        image: &'a str,
    },
    /// A local-only image was built; there is no registry to push it to.
    NotPushed {
        image: &'a str,
    },
}

/// Receives events as they happen.
pub type Report<'a> = &'a (dyn Fn(Event<'_>) + Send + Sync);

/// Before a deploy: every component image with a registry host must be in its registry.
/// Missing ones that `[build.images]` covers are built and pushed; a missing one it does not
/// cover fails the whole call before anything is built.
pub async fn before_deploy(
    builder: &dyn ImageBuilder,
    service: &Service,
    workspace: Option<&Path>,
    report: Report<'_>,
) -> Result<(), ImagesError> {
    let mut missing: BTreeMap<String, Vec<PlannedImage>> = BTreeMap::new();
    let mut unbuildable = Vec::new();
    for image in plan::component_images(service) {
        if image.parsed.is_local_only() {
            report(Event::LocalOnly {
                image: &image.image,
            });
        } else if builder.image_exists(&image.image).await? {
            report(Event::Exists {
                image: &image.image,
            });
        } else if let Some(key) = &image.key {
            missing.entry(key.clone()).or_default().push(image);
        } else {
            unbuildable.push(image.image);
        }
    }
    if !unbuildable.is_empty() {
        return Err(ImagesError::NotInRegistry {
            service: service.name.to_string(),
            images: unbuildable,
        });
    }
    let jobs = missing
        .into_iter()
        .map(|(key, images)| Ok((plan::source(service, &key, workspace)?, images)))
        .collect::<Result<Vec<_>, ImagesError>>()?;
    for (source, images) in jobs {
        build_and_push(builder, &source, &images, report).await?;
    }
    Ok(())
}

/// `mcp build`: builds and pushes the images of every `[build.images]` entry (or only `only`).
/// Tags already in their registry are skipped unless `force`; local-only images are built
/// and not pushed.
pub async fn build(
    builder: &dyn ImageBuilder,
    service: &Service,
    workspace: Option<&Path>,
    only: Option<&str>,
    force: bool,
    report: Report<'_>,
) -> Result<(), ImagesError> {
    let service_name = service.name.to_string();
    if service.build_images.is_empty() {
        return Err(ImagesError::NothingToBuild {
            service: service_name,
        });
    }
    let keys: Vec<&str> = match only {
        Some(key) if service.build_images.contains_key(key) => vec![key],
        Some(key) => {
            return Err(ImagesError::UnknownImage {
                service: service_name,
                key: key.to_string(),
                known: plan::known_keys(service),
            });
        }
        None => service.build_images.keys().map(String::as_str).collect(),
    };
    let images = plan::component_images(service);
    let mut jobs = Vec::new();
    for key in keys {
        let mine: Vec<&PlannedImage> = images
            .iter()
            .filter(|i| i.key.as_deref() == Some(key))
            .collect();
        if mine.is_empty() {
            return Err(ImagesError::Unmatched {
                service: service_name,
                key: key.to_string(),
            });
        }
        jobs.push((plan::source(service, key, workspace)?, mine));
    }
    for (source, mine) in jobs {
        let mut todo = Vec::new();
        for image in mine {
            let check = !force && !image.parsed.is_local_only();
            if check && builder.image_exists(&image.image).await? {
                report(Event::Exists {
                    image: &image.image,
                });
            } else {
                todo.push(image.clone());
            }
        }
        if !todo.is_empty() {
            build_and_push(builder, &source, &todo, report).await?;
        }
    }
    Ok(())
}

/// One build giving every image its tag, then a push of each (local-only ones stay local).
async fn build_and_push(
    builder: &dyn ImageBuilder,
    source: &BuildSource,
    images: &[PlannedImage],
    report: Report<'_>,
) -> Result<(), ImagesError> {
    let spec = BuildSpec {
        file: source.file.clone(),
        context: source.context.clone(),
        tags: images.iter().map(|i| i.image.clone()).collect(),
    };
    report(Event::Building {
        tags: &spec.tags,
        file: &spec.file,
    });
    let output = |line: &str| report(Event::Output(line));
    builder.build(&spec, &output).await?;
    report(Event::Built { tags: &spec.tags });
    for image in images {
        if image.parsed.is_local_only() {
            report(Event::NotPushed {
                image: &image.image,
            });
        } else {
            report(Event::Pushing {
                image: &image.image,
            });
            builder.push(&image.image, &output).await?;
            report(Event::Pushed {
                image: &image.image,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
