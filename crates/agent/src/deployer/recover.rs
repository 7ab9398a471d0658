//! After a crash: finish or undo what the journal says was interrupted. Runs once at start,
//! before the agent serves or the monitor looks.
//!
//! Stop, start, restart and undeploy are idempotent, so they are finished, as is the
//! retirement of old instances after a recorded deploy. An interrupted deploy is undone: the
//! client saw it fail, and the registry still holds the previous spec, so instances it does
//! not describe are removed and the previous ones brought back.
//!
//! Invariant: every `registry::Operation` has its case here (the match is exhaustive).

use registry::{DesiredState, EventAction, Operation};

use super::Deployer;
use crate::AgentError;

const ACTOR: &str = "agent-recovery";

impl Deployer {
    /// Returns one line per recovered operation, for the agent's log.
    pub async fn recover(&self) -> Result<Vec<String>, AgentError> {
        let mut report = Vec::new();
        for op in self.read(|r| r.pending_operations())? {
            let _guard = self.lock_service(&op.service).await;
            let result = match op.action {
                Operation::Deploy => self.undo_deploy(&op.service).await,
                Operation::Retire => self.remove_undescribed(&op.service).await.map(drop),
                Operation::Stop => self.stop_locked(&op.service, ACTOR).await,
                Operation::Start => {
                    self.start_locked(&op.service, EventAction::Start, ACTOR)
                        .await
                }
                Operation::Restart => {
                    self.start_locked(&op.service, EventAction::Restart, ACTOR)
                        .await
                }
                Operation::Undeploy => self.undeploy_locked(&op.service, ACTOR).await,
            };
            let verb = if op.action == Operation::Deploy {
                "undone"
            } else {
                "finished"
            };
            let line = match &result {
                Ok(()) => format!("{} by {} interrupted, {verb}", op.action, op.actor),
                Err(e) => format!(
                    "{} by {} interrupted, could not be {verb}: {e}",
                    op.action, op.actor
                ),
            };
            self.record_best_effort("recovery event", |r| {
                r.record_event(&op.service, EventAction::Recovered, ACTOR, Some(&line))
            });
            self.end_operation(&op.service);
            report.push(format!("{}: {line}", op.service));
        }
        Ok(report)
    }

    async fn undo_deploy(&self, service: &str) -> Result<(), AgentError> {
        let record = self.remove_undescribed(service).await?;
        match record {
            Some(rec) if rec.desired == DesiredState::Running => {
                self.start_locked(service, EventAction::DeployRolledBack, ACTOR)
                    .await
            }
            _ => Ok(()),
        }
    }

    /// Removes the service's instances its record does not describe (a deploy's new ones,
    /// or the old ones a recorded deploy was retiring); returns the record.
    async fn remove_undescribed(
        &self,
        service: &str,
    ) -> Result<Option<registry::ServiceRecord>, AgentError> {
        let record = self.read(|r| r.service(service))?;
        for instance in self.service_instances(service).await? {
            let described = record.as_ref().is_some_and(|rec| {
                rec.spec.components.iter().any(|c| {
                    instance.component() == Some(c.name.as_str())
                        && instance.spec_hash() == Some(c.spec_hash().as_str())
                })
            });
            if !described {
                self.remove_instance(&instance.name, instance.runtime)
                    .await?;
            }
        }
        Ok(record)
    }
}
