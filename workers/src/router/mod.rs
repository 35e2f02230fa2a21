//! The router: events queue → a task (fix now), an approval request, or a skip; invalid
//! messages go to the events dead-letter queue. It holds no remediation rights (it reads
//! security groups, to show approvers what a fix would change).
//!
//! With a ledger, findings that need approval go to the executor as tasks instead of
//! becoming requests here: only the executor writes ledger entries, and it records each
//! request as `awaiting_approval` before sending it
//! ([`crate::executor::ledger_requests`]), so a request deleted from the queue by hand
//! is noticed.

mod preview;
mod request;

use std::sync::Arc;

use crate::aws::sqs::{Queue, Received};
use redress::audit::{AuditDecision, AuditRecord};
use redress::decision::{decide, Decision, SkipReason};
use redress::event::parse_message;
use redress::message::{ApprovalsMessage, Finding, MootNotice, Task};
use redress::policy::{Mode, Policy};

use crate::aws::ec2::SecurityGroups;
use crate::aws::ledger::LedgerTable;
use crate::report::Disposition;
use crate::settle::{DeadLetterClass, Verdict};
use crate::worker::Handler;

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
    /// A ledger is in use: findings that need approval go to the executor, which records
    /// each request before making it ([`ledger_in_use`]).
    pub requests_via_executor: bool,
}

/// Whether `table` is there to record approval requests in: the executor records them
/// when it is. A table that cannot be asked about counts as absent (the router then
/// makes requests itself, and `redress sweep` records them), with a warning.
pub async fn ledger_in_use(table: &LedgerTable) -> bool {
    match table.exists().await {
        Ok(exists) => exists,
        Err(e) => {
            tracing::warn!(table = table.name(), error = %e, "cannot tell whether the ledger table exists; approval requests are made by the router, unrecorded");
            false
        }
    }
}

impl Handler for Router {
    async fn handle(&self, m: &Received) -> Verdict {
        let event = match parse_message(&m.body) {
            Ok(e) => e,
            Err(e) => {
                let reason = format!("invalid event: {e}");
                let mut record =
                    AuditRecord::bare(WORKER, AuditDecision::DeadLettered).reason(&reason);
                record.event_id = Some(m.message_id.clone());
                return Verdict::dead_letter(DeadLetterClass::InvalidInput, &reason)
                    .record(record)
                    .report(Disposition::DeadLettered, &m.message_id, reason);
            }
        };
        let decision = decide(&event, &self.policy);
        let finding = Finding::from_event(&event);
        match &decision {
            Decision::Skip { reason, .. } => self.skip(*reason, &decision, &finding),
            Decision::Remediate { rule_id, severity } => {
                let mut task = Task::new(rule_id, *severity, finding.clone());
                task.dry_run = self.dry_run;
                let mut audit = self.record(&decision, &finding, AuditDecision::Remediate);
                audit.dry_run = self.dry_run;
                forward(&self.tasks, &task).record(audit).report(
                    Disposition::Forwarded,
                    subject(&finding),
                    rule_id.clone(),
                )
            }
            Decision::RequestApproval { rule_id, severity } => {
                self.request(&decision, &finding, rule_id, *severity).await
            }
        }
    }
}

/// How a finding is named in the report.
fn subject(f: &Finding) -> String {
    format!("{} {}", f.resource_type, f.resource_id)
}

/// Hands a message on: the settler sends it (batched) and records the decision once SQS
/// has accepted it.
fn forward<T: serde::Serialize>(to: &Queue, message: &T) -> Verdict {
    match serde_json::to_string(message) {
        Ok(body) => Verdict::done().send(to, body),
        Err(e) => Verdict::dead_letter(
            DeadLetterClass::Permanent,
            format!("cannot serialise message: {e}"),
        ),
    }
}

impl Router {
    fn record(&self, decision: &Decision, f: &Finding, d: AuditDecision) -> AuditRecord {
        AuditRecord::for_finding(WORKER, f, decision.rule_id(), decision.severity(), d)
    }

    /// A skip, audited with its reason; a COMPLIANT event for a rule that needs approval
    /// also leaves a moot notice for any pending request.
    fn skip(&self, reason: SkipReason, decision: &Decision, finding: &Finding) -> Verdict {
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
        let verdict = match self.moot_notice(reason, decision, finding) {
            Some(notice) => forward(&self.approvals, &notice),
            None => Verdict::done(),
        };
        verdict
            .record(
                self.record(decision, finding, AuditDecision::Skipped)
                    .reason(&text),
            )
            .report(
                Disposition::Skipped,
                subject(finding),
                format!("{text} (rule {rule})"),
            )
    }

    /// An approval request for the finding (in a dry run, only its audit record).
    async fn request(
        &self,
        decision: &Decision,
        finding: &Finding,
        rule_id: &str,
        severity: redress::policy::Severity,
    ) -> Verdict {
        let task = Task::new(rule_id, severity, finding.clone());
        if self.requests_via_executor && !self.dry_run {
            // The executor diverts it into a request (the rule needs approval) and records
            // that request in the ledger; it audits the request.
            return forward(&self.tasks, &task).report(
                Disposition::Forwarded,
                subject(finding),
                format!("{rule_id}: needs approval; the executor makes and records the request"),
            );
        }
        let request = match approval_request(&self.policy, task, &self.security_groups, None).await
        {
            Ok(r) => r,
            Err(error) => return Verdict::dead_letter(DeadLetterClass::Permanent, error),
        };
        let mut audit = self.record(decision, finding, AuditDecision::ApprovalRequested);
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
            return Verdict::done().record(audit).report(
                Disposition::DryRun,
                subject(finding),
                "would request approval",
            );
        }
        let line = format!(
            "{} ({}, {severity}): {}",
            request.id,
            rule_id,
            request.proposed_action.describe()
        );
        forward(
            &self.approvals,
            &ApprovalsMessage::Request(Box::new(request)),
        )
        .record(audit)
        .report(Disposition::AwaitingApproval, subject(finding), line)
    }

    /// A COMPLIANT event for a rule that needs approval makes any pending request for
    /// that resource moot: the notice to leave on the approvals queue for `approvals list`.
    fn moot_notice(
        &self,
        reason: SkipReason,
        decision: &Decision,
        f: &Finding,
    ) -> Option<ApprovalsMessage> {
        let rule = decision.rule_id().and_then(|id| self.policy.rule(id))?;
        if self.dry_run
            || reason != SkipReason::Compliant
            || self.policy.mode_of(rule) != Mode::Approve
        {
            return None;
        }
        Some(ApprovalsMessage::Moot(MootNotice {
            rule_id: rule.id.clone(),
            account_id: f.account_id.clone(),
            region: f.region.clone(),
            resource_id: f.resource_id.clone(),
            event_id: f.event_id.clone(),
            seen_at: redress::time::now_rfc3339(),
            config_rule_name: Some(f.config_rule_name.clone()),
            config_rule_arn: f.config_rule_arn.clone(),
        }))
    }
}
