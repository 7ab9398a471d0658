//! What `mcp build` and `mcp deploy` say about images, on stderr (stdout stays the command's
//! result): one line per decision always, the builder's own lines only on a terminal.

use images::Event;
use std::io::IsTerminal;

/// A reporter for `images::build` / `images::before_deploy`.
pub fn reporter() -> impl Fn(Event<'_>) + Send + Sync {
    let terminal = std::io::stderr().is_terminal();
    move |event| report(event, terminal)
}

fn report(event: Event<'_>, terminal: bool) {
    match event {
        Event::LocalOnly { image } => {
            eprintln!("{image}: local-only image (no registry host), not checked");
        }
        Event::Exists { image } => eprintln!("{image} exists in registry, not rebuilt"),
        Event::Building { tags, file } => {
            eprintln!("building {} from {}", tags.join(", "), file.display());
        }
        Event::Output(line) if terminal => eprintln!("  | {line}"),
        Event::Output(_) => {}
        Event::Built { tags } => eprintln!("built {}", tags.join(", ")),
        Event::Pushing { image } => eprintln!("pushing {image}"),
        Event::Pushed { image } => eprintln!("pushed {image}"),
        Event::NotPushed { image } => eprintln!("{image} is local-only: built, not pushed"),
    }
}
