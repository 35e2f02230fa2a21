//! The router: events queue → a task (fix now), an approval request, or a skip; invalid
//! messages go to the events dead-letter queue. It holds no remediation rights.

use std::sync::Arc;
use std::time::Duration;

use redress::audit::{AuditDecision, AuditRecord};
use redress::decision::{decide, Decision};
use redress::event::parse_message;
use redress::message::{ApprovalRequest, Finding, Task, MESSAGE_VERSION};
use redress::policy::Policy;
use redress::sqs::{Queue, Received};

use crate::report::{Fate, Tally};
use crate::worker::{Ack, Handler};

const WORKER: &str = "router";

/// How long an approval request stays actionable.
pub const APPROVAL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Routes compliance events.
pub struct Router {
    /// The policy.
    pub policy: Arc<Policy>,
    /// Where tasks go.
    pub tasks: Queue,
    /// Where approval requests go.
    pub approvals: Queue,
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
                record(AuditDecision::Skipped)
                    .reason(reason.as_str())
                    .emit();
                let rule = decision.rule_id().unwrap_or("-");
                self.tally.add(
                    Fate::Skipped,
                    subject,
                    format!("{} (rule {rule})", reason.as_str()),
                );
                Ack::Done
            }
            Decision::Remediate { rule_id, severity } => {
                let task = Task::new(rule_id, *severity, finding.clone());
                if let Err(ack) = self.send(&self.tasks, &task).await {
                    return ack;
                }
                record(AuditDecision::Remediate).emit();
                self.tally.add(Fate::Forwarded, subject, rule_id.as_str());
                Ack::Done
            }
            Decision::RequestApproval { rule_id, severity } => {
                let task = Task::new(rule_id, *severity, finding.clone());
                let Some(rule) = self.policy.rule(rule_id) else {
                    // decide() only returns ids of rules in this policy.
                    return Ack::Retry { after_secs: 5 };
                };
                let proposed_action = match rule.action.render(&finding.facts()) {
                    Ok(a) => a,
                    Err(e) => {
                        return Ack::DeadLetter {
                            class: "permanent",
                            error: format!("cannot render action of rule {rule_id}: {e}"),
                        }
                    }
                };
                let request = ApprovalRequest {
                    version: MESSAGE_VERSION,
                    id: task.approval_id(),
                    proposed_action,
                    requested_at: redress::time::now_rfc3339(),
                    expires_at: redress::time::rfc3339_after(APPROVAL_TTL),
                    task,
                };
                if let Err(ack) = self.send(&self.approvals, &request).await {
                    return ack;
                }
                let mut r = record(AuditDecision::ApprovalRequested);
                r.action = Some(request.proposed_action.label());
                r.reason = Some(format!("approval id {}", request.id));
                r.emit();
                self.tally.add(
                    Fate::AwaitingApproval,
                    subject,
                    format!(
                        "{} ({}, {severity}): {}",
                        request.id,
                        rule_id,
                        request.proposed_action.describe()
                    ),
                );
                Ack::Done
            }
        }
    }
}

impl Router {
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
