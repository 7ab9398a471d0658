//! The operator's side of images: which component images a service definition can build
//! (`[build.images]`, the CLI's `[build] workspace`), and the check → build → push sequence
//! that `mcp build` and `mcp deploy` run through an `oci::ImageBuilder` on the operator's machine.

mod ensure;
mod error;
mod plan;

pub use ensure::{Event, Report, before_deploy, build};
pub use error::ImagesError;
pub use plan::{BuildSource, PlannedImage, build_key, component_images, source};
