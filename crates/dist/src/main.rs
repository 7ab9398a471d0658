//! `mcp-dist man DIR`: writes the man pages of `mcp` (one per subcommand, as `git` has),
//! `mcp-agent` and `mcp-proxy` into DIR, from the same clap definitions the binaries parse
//! with, so a page never describes flags a binary does not have.

use anyhow::Context;
use clap::CommandFactory;
use std::path::{Path, PathBuf};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(verb), Some(dir), None) = (args.next(), args.next(), args.next()) else {
        anyhow::bail!("usage: mcp-dist man DIR");
    };
    anyhow::ensure!(verb == "man", "usage: mcp-dist man DIR");
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    for command in [
        mcp_cli::args::Cli::command(),
        agent::args::AgentArgs::command(),
        proxy::args::ProxyArgs::command(),
    ] {
        written += write_pages(&dir, command, None)?;
    }
    println!("wrote {written} man pages to {}", dir.display());
    Ok(())
}

/// The page of `command` and of each of its subcommands: `mcp tls cert create` is the page
/// `mcp-tls-cert-create.1`, as git names its pages. `parent` is (page name, command line).
fn write_pages(
    dir: &Path,
    command: clap::Command,
    parent: Option<(&str, &str)>,
) -> anyhow::Result<usize> {
    let (name, spoken) = match parent {
        Some((page, line)) => (
            format!("{page}-{}", command.get_name()),
            format!("{line} {}", command.get_name()),
        ),
        None => (
            command.get_name().to_string(),
            command.get_name().to_string(),
        ),
    };
    let command = command
        .name(name.clone())
        .display_name(spoken.clone())
        .bin_name(spoken.clone());
    let mut count = 0;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        count += write_pages(dir, sub.clone(), Some((&name, &spoken)))?;
    }
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .with_context(|| format!("rendering {name}"))?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    Ok(count + 1)
}
