//! The executor: the only component with remediation rights. It takes a task (a rule id
//! and a finding), re-derives the action from its own policy, and runs it. A task can
//! never make it do anything its policy does not allow for that finding.

mod automation;
mod locks;
mod outcome;
mod parameter;
mod security_group;

use std::sync::Arc;

use redress::audit::{AuditDecision, AuditRecord, Outcome};
use redress::message::Task;
use redress::policy::{Fix, Mode, Policy, RenderedAction};
use redress::retry::ErrorClass;
use redress::sqs::Received;

pub use automation::Automation;
pub use locks::KeyedLocks;
pub use parameter::Parameters;
pub use security_group::SecurityGroups;

use crate::report::{Fate, Tally};
use crate::worker::{Ack, Handler};
use outcome::FixResult;

const WORKER: &str = "executor";

/// Executes tasks.
pub struct Executor {
    /// The executor's own policy: the only source of actions.
    pub policy: Arc<Policy>,
    /// Account the credentials act in.
    pub account: String,
    /// Region the clients act in.
    pub region: String,
    /// Decide and audit, change nothing.
    pub dry_run: bool,
    /// Attempts before a transient failure is dead-lettered.
    pub max_attempts: u32,
    /// EC2 seam.
    pub security_groups: SecurityGroups,
    /// Parameter Store seam.
    pub parameters: Parameters,
    /// SSM Automation seam.
    pub automation: Automation,
    /// Serialises work on the same resource within this process.
    pub locks: KeyedLocks,
    /// Report of what happened.
    pub tally: Arc<Tally>,
}

/// A task the executor refuses, with the reason.
struct Refusal(String);

impl Executor {
    /// An approval-mode task runs only with an approval for this very finding, sent by
    /// the approver themself (SQS's SenderId matches the approver's STS UserId), by a
    /// principal the policy's `approvers` list allows.
    fn check_approval(&self, task: &Task, sender_id: Option<&str>) -> Result<(), Refusal> {
        let rule = &task.rule_id;
        let Some(a) = &task.approval else {
            return Err(Refusal(format!(
                "rule {rule} requires approval and the task carries none"
            )));
        };
        if a.request_id != task.approval_id() {
            return Err(Refusal(format!(
                "approval {} does not belong to this finding (its request is {})",
                a.request_id,
                task.approval_id()
            )));
        }
        if sender_id != Some(a.approver_user_id.as_str()) {
            return Err(Refusal(format!(
                "task claims approval by {} ({}) but was sent by {}",
                a.approved_by,
                a.approver_user_id,
                sender_id.unwrap_or("an unknown sender")
            )));
        }
        if !self.policy.approvals.allows(&a.approved_by) {
            return Err(Refusal(format!(
                "approver {} is not on the policy's approvers list",
                a.approved_by
            )));
        }
        Ok(())
    }

    /// Checks the task against the policy and returns the action it allows.
    fn authorise(&self, task: &Task, sender_id: Option<&str>) -> Result<RenderedAction, Refusal> {
        let f = &task.finding;
        f.validate()
            .map_err(|m| Refusal(format!("invalid finding: {m}")))?;
        let rule = self.policy.rule(&task.rule_id).ok_or_else(|| {
            Refusal(format!(
                "no_policy: rule {:?} is not in the executor's policy",
                task.rule_id
            ))
        })?;
        if !rule.matches(&f.config_rule_name, &f.resource_type) {
            return Err(Refusal(format!(
                "rule {} does not cover Config rule {} on {}",
                rule.id, f.config_rule_name, f.resource_type
            )));
        }
        if f.compliance != redress::event::ComplianceType::NON_COMPLIANT {
            return Err(Refusal(format!(
                "finding is {}, not NON_COMPLIANT",
                f.compliance
            )));
        }
        match self.policy.mode_of(rule) {
            Mode::Auto => {}
            Mode::Approve => self.check_approval(task, sender_id)?,
            Mode::Notify => return Err(Refusal(format!("rule {} is notify-only", rule.id))),
        }
        if f.account_id != self.account || f.region != self.region {
            return Err(Refusal(format!(
                "finding is in {}/{} but this executor acts in {}/{} (cross-account roles are not configured)",
                f.account_id, f.region, self.account, self.region
            )));
        }
        rule.action
            .render(&f.facts())
            .map_err(|m| Refusal(format!("cannot render action: {m}")))
    }

    async fn execute(&self, task: &Task, action: &RenderedAction) -> FixResult {
        let id = &task.finding.resource_id;
        match action {
            RenderedAction::Fix(Fix::RevokePublicIngress { ports }) => {
                security_group::revoke_public_ingress(&self.security_groups, id, ports.as_deref())
                    .await
            }
            RenderedAction::Fix(Fix::RestoreParameterBaseline {
                baseline_prefix,
                current_prefix,
            }) => {
                parameter::restore_baseline(&self.parameters, id, baseline_prefix, current_prefix)
                    .await
            }
            RenderedAction::Runbook(runbook) => {
                self.automation.run(runbook, &task.client_token()).await
            }
        }
    }
}

impl Handler for Executor {
    async fn handle(&self, m: &Received) -> Ack {
        let task: Task = match serde_json::from_str(&m.body) {
            Ok(t) => t,
            Err(e) => {
                let reason = format!("invalid task: {e}");
                AuditRecord::bare(WORKER, AuditDecision::DeadLettered)
                    .reason(&reason)
                    .emit();
                self.tally.add(Fate::DeadLettered, &m.message_id, &reason);
                return Ack::DeadLetter {
                    class: "invalid_input",
                    error: reason,
                };
            }
        };
        let f = &task.finding;
        let subject = format!("{} {}", f.resource_type, f.resource_id);
        let severity = self.policy.rule(&task.rule_id).map(|r| r.severity);
        let record = || {
            AuditRecord::for_finding(
                WORKER,
                f,
                Some(&task.rule_id),
                severity,
                AuditDecision::Remediate,
            )
        };
        let action = match self.authorise(&task, m.sender_id.as_deref()) {
            Ok(a) => a,
            Err(Refusal(reason)) => {
                let mut r = record().reason(&reason);
                r.decision = AuditDecision::DeadLettered;
                r.emit();
                self.tally.add(Fate::DeadLettered, subject, &reason);
                return Ack::DeadLetter {
                    class: "refused",
                    error: reason,
                };
            }
        };
        let mut r = record();
        r.actor = task.approval.as_ref().map(|a| a.approved_by.clone());
        r.action = Some(action.label());
        r.dry_run = self.dry_run;
        if self.dry_run {
            r.outcome = Some(Outcome::DryRun);
            r.reason = Some(format!("would run {}", action.describe()));
            r.emit();
            self.tally.add(Fate::DryRun, subject, action.describe());
            return Ack::Done;
        }
        let key = format!("{}/{}/{}", f.account_id, f.region, f.resource_id);
        let _guard = self.locks.lock(&key).await;
        match self.execute(&task, &action).await {
            Ok(done) => {
                r.outcome = Some(done.outcome);
                r.execution_id = done.execution_id.clone();
                r.reason = Some(done.detail.clone());
                r.emit();
                let fate = if done.outcome == Outcome::AlreadyCompliant {
                    Fate::AlreadyCompliant
                } else {
                    Fate::Fixed
                };
                let exec = done
                    .execution_id
                    .map(|e| format!(" [execution {e}]"))
                    .unwrap_or_default();
                self.tally.add(
                    fate,
                    subject,
                    format!("{} ({}){exec}", done.detail, task.rule_id),
                );
                Ack::Done
            }
            Err(e) if e.class == ErrorClass::Transient && m.receive_count < self.max_attempts => {
                tracing::warn!(error = %e.message, attempt = m.receive_count, "transient failure; will retry");
                self.tally.add(Fate::Retrying, subject, &e.message);
                // Back off through the queue: 2, 4, 8 ... seconds, at most a minute.
                Ack::Retry {
                    after_secs: 2_i32.saturating_pow(m.receive_count.min(6)),
                }
            }
            Err(e) => {
                let class = if e.class == ErrorClass::Transient {
                    "exhausted"
                } else {
                    "permanent"
                };
                let reason = if class == "exhausted" {
                    format!("gave up after {} attempts: {}", m.receive_count, e.message)
                } else {
                    e.message.clone()
                };
                r.outcome = Some(Outcome::Failed);
                r.execution_id = e.execution_id.clone();
                r.reason = Some(reason.clone());
                r.emit();
                self.tally.add(Fate::DeadLettered, subject, &reason);
                Ack::DeadLetter {
                    class,
                    error: reason,
                }
            }
        }
    }
}
