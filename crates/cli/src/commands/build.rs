//! `mcp build SERVICE[/IMAGE] [--force]`: build and push a service's images with the local
//! podman; tags already in their registry are skipped unless forced.

use std::path::Path;

use crate::args::BuildArgs;
use crate::context::Context;
use crate::progress;
use crate::{CliError, ExitCode};

pub async fn run(ctx: &Context, args: BuildArgs) -> Result<ExitCode, CliError> {
    let (service, image) = split_target(&args.target);
    let spec = servicedef::load_file(&ctx.definition_file(service)?)?;
    let report = progress::reporter();
    let podman = ctx.local_podman();
    images::build(&podman, &spec, ctx.workspace(), image, args.force, &report).await?;
    Ok(ExitCode::Ok)
}

/// `SERVICE` or `SERVICE/IMAGE`: an existing file or a `.toml` path is a whole service;
/// otherwise whatever follows the last `/` is the image.
fn split_target(target: &str) -> (&str, Option<&str>) {
    if target.ends_with(".toml") || Path::new(target).is_file() {
        return (target, None);
    }
    match target.rsplit_once('/') {
        Some((service, image)) if !service.is_empty() && !image.is_empty() => {
            (service, Some(image))
        }
        _ => (target, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_service_and_image() {
        assert_eq!(split_target("shop"), ("shop", None));
        assert_eq!(split_target("shop/web"), ("shop", Some("web")));
        assert_eq!(split_target("svc/shop.toml"), ("svc/shop.toml", None));
        assert_eq!(
            split_target("svc/shop.toml/web"),
            ("svc/shop.toml", Some("web"))
        );
    }
}
