//! What `mcp build` and `mcp deploy` say as they work, on stderr (stdout stays the command's
//! result): about images, one line per decision always, the builder's own lines only on a
//! terminal; about the node's deploy steps, a live line on a terminal, plain lines otherwise.

use images::Event;
use mcp_proto::v1 as pb;
use std::io::IsTerminal;
use std::time::Duration;

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

/// Shows a node's deploy steps (`DeployWatch`) as they come.
pub struct DeploySteps {
    /// A spinner with the step in progress, on a terminal; finished steps are printed above it.
    bar: Option<indicatif::ProgressBar>,
}

impl DeploySteps {
    pub fn new(node: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            {
                bar.set_style(style);
            }
            bar.set_message(format!("deploying on node {node}"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { bar }
    }

    pub fn step(&self, step: &pb::DeployStep) {
        let line = step_line(step);
        match &self.bar {
            Some(bar) if step.finished => bar.println(format!("  ✓ {line}")),
            Some(bar) => bar.set_message(line),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// "web: pulling host/app:1", "web: pulled host/app:1 (1.2s)", "switching traffic".
fn step_line(step: &pb::DeployStep) -> String {
    let who = if step.component.is_empty() {
        String::new()
    } else {
        format!("{}: ", step.component)
    };
    if step.finished {
        let took = if step.elapsed_ms < 1000 {
            format!("{}ms", step.elapsed_ms)
        } else {
            format!("{:.1}s", step.elapsed_ms as f64 / 1000.0)
        };
        format!("{who}{} ({took})", step.message)
    } else {
        format!("{who}{}", step.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_lines_name_the_component_and_the_time_taken() {
        let mut step = pb::DeployStep {
            phase: "pull".into(),
            component: "web".into(),
            message: "pulling r/app:1".into(),
            finished: false,
            elapsed_ms: 0,
        };
        assert_eq!(step_line(&step), "web: pulling r/app:1");
        step.finished = true;
        step.message = "pulled r/app:1".into();
        step.elapsed_ms = 1234;
        assert_eq!(step_line(&step), "web: pulled r/app:1 (1.2s)");
        step.component.clear();
        step.elapsed_ms = 40;
        assert_eq!(step_line(&step), "pulled r/app:1 (40ms)");
    }
}
