//! Progress of a deploy for a caller that watches it (`DeployWatch`): the steps the deployer
//! takes (pull, start, health, switch, drain), each when it begins and when it ends.
//!
//! The sink is task-local: the deployer announces steps wherever it takes them without every
//! function passing a reporter along, and a deploy nobody watches (plain `Deploy`, rollback,
//! recovery) pays one failed task-local lookup per step.

use std::future::Future;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// One step of an operation, begun or finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// "pull", "start", "stop", "health", "switch", "drain".
    pub phase: &'static str,
    /// The component it concerns; empty for the whole service.
    pub component: String,
    /// What is happening ("pulling …") or happened ("pulled …").
    pub message: String,
    pub finished: bool,
    /// Time the step took, once finished.
    pub elapsed_ms: u64,
}

tokio::task_local! {
    static SINK: UnboundedSender<Step>;
}

/// Runs `operation` with its steps sent to `sink`.
pub async fn watched<F: Future>(sink: UnboundedSender<Step>, operation: F) -> F::Output {
    SINK.scope(sink, operation).await
}

fn send(step: Step) {
    // Nobody watching, or the watcher went away: the operation goes on either way.
    let _ = SINK.try_with(|sink| sink.send(step));
}

/// A step that began; `done` reports its end with the time it took.
#[must_use = "a begun step should be reported done"]
pub struct Begun {
    phase: &'static str,
    component: String,
    started: Instant,
}

/// Announces a step of `component` ("" for the service).
pub fn begin(phase: &'static str, component: &str, message: String) -> Begun {
    send(Step {
        phase,
        component: component.to_string(),
        message,
        finished: false,
        elapsed_ms: 0,
    });
    Begun {
        phase,
        component: component.to_string(),
        started: Instant::now(),
    }
}

impl Begun {
    pub fn done(self, message: String) {
        send(Step {
            phase: self.phase,
            component: self.component,
            message,
            finished: true,
            elapsed_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn steps_reach_the_watcher_of_their_task_only() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        watched(tx, async {
            let step = begin("pull", "web", "pulling x".into());
            step.done("pulled x".into());
        })
        .await;
        let first = rx.recv().await.unwrap();
        assert_eq!((first.phase, first.finished), ("pull", false));
        let second = rx.recv().await.unwrap();
        assert_eq!(
            (second.message.as_str(), second.finished),
            ("pulled x", true)
        );
        assert!(
            rx.recv().await.is_none(),
            "the sink is dropped with the scope"
        );
        // Unwatched: nothing to send to, nothing fails.
        begin("pull", "web", "pulling y".into()).done("pulled y".into());
    }
}
