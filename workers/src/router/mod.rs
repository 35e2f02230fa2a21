//! The router: events queue → a task (fix now), an approval request, or a skip; invalid
//! messages go to the events dead-letter queue. It holds no remediation rights (it reads
//! security groups, to show approvers what a fix would change).

mod preview;
mod request;

use std::sync::Arc;

use redress::audit::{AuditDecision, AuditRecord};
use redress::decision::{decide, Decision, SkipReason};
use redress::event::parse_message;
use redress::message::{ApprovalsMessage, Finding, MootNotice, Task};
use redress::policy::{Mode, Policy};
use crate::aws::sqs::{Queue, Received};

use crate::executor::SecurityGroups;
use crate::report::{Fate, Tally};
use crate::worker::{Ack, Handler};

pub use request::approval_request;

const WORKER: &str = "router";

/// Routes compliance events.
pub struct Router {
    /// The policy.
    pub policy: Arc<Policy>,
    /// Where tasks go.
    pub tasks: Queue,
    /// Where approval requests go.
    pub approvals: Queue,
    /// Read-only EC2, for approval previews.
    pub security_groups: SecurityGroups,
    /// Decide and audit only: tasks are marked dry-run, approval requests and moot
    /// notices are not sent.
    pub dry_run: bool,
    /// Report of what happened.
    pub tally: Arc<Tally>,
}

impl Handler for Router {
    async fn handle(&self, m: &Received) -> Ack {
        let event = match parse_message(&m.body) {
            Ok(e) => e,
            Err(e) => {
                let reason = format!("invalid event: {e}");
                let mut record =
                    AuditRecord::bare(WORKER, AuditDecision::DeadLettered).reason(&reason);
                record.event_id = Some(m.message_id.clone());
                record.emit();
                self.tally.add(Fate::DeadLettered, &m.message_id, &reason);
                return Ack::DeadLetter {
                    class: "invalid_input",
                    error: reason,
                };
            }
        };
        let decision = decide(&event, &self.policy);
        let finding = Finding::from_event(&event);
        let subject = format!("{} {}", finding.resource_type, finding.resource_id);
        let record = |d| {
            AuditRecord::for_finding(WORKER, &finding, decision.rule_id(), decision.severity(), d)
        };
        match &decision {
            Decision::Skip { reason, .. } => {
                if let Err(ack) = self.note_moot(*reason, &decision, &finding).await {
                    return ack;
                }
                let rule = decision.rule_id().unwrap_or("-");
                let text = match reason {
                    SkipReason::Exempt => self
                        .policy
                        .exception_for(
                            rule,
                            &finding.account_id,
                            &finding.resource_id,
                            std::time::SystemTime::now(),
                        )
                        .map(|e| format!("exempt: {}", e.describe()))
                        .unwrap_or_else(|| "exempt".into()),
                    other => other.as_str().to_string(),
                };
                record(AuditDecision::Skipped).reason(&text).emit();
                self.tally
                    .add(Fate::Skipped, subject, format!("{text} (rule {rule})"));
                Ack::Done
            }
            Decision::Remediate { rule_id, severity } => {
                let mut task = Task::new(rule_id, *severity, finding.clone());
                task.dry_run = self.dry_run;
                let mut audit = record(AuditDecision::Remediate);
                audit.dry_run = self.dry_run;
                let (tally, rule) = (self.tally.clone(), rule_id.clone());
                forward(&self.tasks, &task, move || {
                    audit.emit();
                    tally.add(Fate::Forwarded, subject, rule);
                })
            }
            Decision::RequestApproval { rule_id, severity } => {
                let task = Task::new(rule_id, *severity, finding.clone());
                let request =
                    match approval_request(&self.policy, task, &self.security_groups, None).await {
                        Ok(r) => r,
                        Err(error) => {
                            return Ack::DeadLetter {
                                class: "permanent",
                                error,
                            }
                        }
                    };
                let mut audit = record(AuditDecision::ApprovalRequested);
                audit.action = Some(request.proposed_action.label());
                audit.reason = Some(format!("approval id {}", request.id));
                if self.dry_run {
                    audit.dry_run = true;
                    audit.outcome = Some(redress::audit::Outcome::DryRun);
                    audit.reason = Some(format!(
                        "would request approval {}: {}",
                        request.id,
                        request.proposed_action.describe()
                    ));
                    audit.emit();
                    self.tally
                        .add(Fate::DryRun, subject, "would request approval");
                    return Ack::Done;
                }
                let line = format!(
                    "{} ({}, {severity}): {}",
                    request.id,
                    rule_id,
                    request.proposed_action.describe()
                );
                let tally = self.tally.clone();
                let message = ApprovalsMessage::Request(Box::new(request));
                forward(&self.approvals, &message, move || {
                    audit.emit();
                    tally.add(Fate::AwaitingApproval, subject, line);
                })
            }
        }
    }
}

/// Hands a message to the worker loop to send (batched); `then` records the decision
/// once SQS has accepted it.
fn forward<T: serde::Serialize>(
    to: &Queue,
    message: &T,
    then: impl FnOnce() + Send + 'static,
) -> Ack {
    match serde_json::to_string(message) {
        Ok(body) => Ack::Forward {
            to: to.clone(),
            body,
            then: Box::new(then),
        },
        Err(e) => Ack::DeadLetter {
            class: "permanent",
            error: format!("cannot serialise message: {e}"),
        },
    }
}

impl Router {
    /// A COMPLIANT event for a rule that needs approval makes any pending request for
    /// that resource moot: leave a notice on the approvals queue for `approvals list`.
    async fn note_moot(
        &self,
        reason: SkipReason,
        decision: &Decision,
        f: &Finding,
    ) -> Result<(), Ack> {
        let Some(rule) = decision.rule_id().and_then(|id| self.policy.rule(id)) else {
            return Ok(());
        };
        if self.dry_run
            || reason != SkipReason::Compliant
            || self.policy.mode_of(rule) != Mode::Approve
        {
            return Ok(());
        }
        let notice = ApprovalsMessage::Moot(MootNotice {
            rule_id: rule.id.clone(),
            account_id: f.account_id.clone(),
            region: f.region.clone(),
            resource_id: f.resource_id.clone(),
            event_id: f.event_id.clone(),
            seen_at: redress::time::now_rfc3339(),
        });
        self.send(&self.approvals, &notice).await
    }

    /// Sends a message on; a failure leaves the event for redelivery.
    async fn send<T: serde::Serialize>(&self, queue: &Queue, message: &T) -> Result<(), Ack> {
        let body = serde_json::to_string(message).map_err(|e| Ack::DeadLetter {
            class: "permanent",
            error: format!("cannot serialise message: {e}"),
        })?;
        queue.send(&body).await.map(|_| ()).map_err(|e| {
            tracing::warn!(queue = %queue.name, error = %e, "send failed; event left for redelivery");
            Ack::Retry { after_secs: 5 }
        })
    }
}
