//! The executor: the only component with remediation rights. It takes a task (a rule id
//! and a finding), re-derives the action from its own policy, and runs it. A task can
//! never make it do anything its policy does not allow for that finding.

mod automation;
mod dedup;
mod guards;
mod locks;
mod outcome;
mod parameter;
mod reevaluate;
mod reevaluator;
mod security_group;
mod tags;
mod targets;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use redress::audit::{AuditDecision, AuditRecord, Outcome};
use redress::ingress::Permission;
use redress::message::{ApprovalsMessage, Task};
use redress::policy::{Fix, Mode, Policy, RenderedAction, Rule};
use redress::retry::ErrorClass;
use redress::sqs::{Queue, Received};
use tokio::sync::watch;

pub use automation::Automation;
pub use dedup::{Recent, Seen};
pub use guards::Guards;
pub use locks::KeyedLocks;
pub use parameter::Parameters;
pub use reevaluate::{ConfigRules, Reevaluation};
pub use reevaluator::Reevaluator;
pub use security_group::SecurityGroups;
pub use tags::Tags;
pub use targets::{Polling, Seams, Targets};

use crate::report::{Fate, Tally};
use crate::worker::{Ack, Handler};
use outcome::{FixError, FixResult};

const WORKER: &str = "executor";

/// Executes tasks.
pub struct Executor {
    /// The executor's own policy: the only source of actions.
    pub policy: Arc<Policy>,
    /// Decide and audit, change nothing.
    pub dry_run: bool,
    /// Attempts before a transient failure is dead-lettered.
    pub max_attempts: u32,
    /// The seams for each account and region.
    pub targets: Targets,
    /// Kill switch, breaker and rate caps on automatic fixes.
    pub guards: Guards,
    /// Tasks finished lately, to recognise duplicates.
    pub recent: Recent,
    /// Asks Config to re-evaluate fixed rules, off the fix's critical path.
    pub reevaluator: Reevaluator,
    /// Where automatic fixes a guard stopped go, as approval requests.
    pub approvals: Queue,
    /// Serialises work on the same resource within this process.
    pub locks: KeyedLocks,
    /// Turns true on SIGTERM/SIGINT: tasks still waiting for their resource's lock are
    /// handed back instead of started.
    pub shutdown: watch::Receiver<bool>,
    /// Report of what happened.
    pub tally: Arc<Tally>,
}

/// A task the executor refuses, with the reason.
struct Refusal(String);

/// What the policy allows for a task.
struct Allowed<'p> {
    rule: &'p Rule,
    action: RenderedAction,
    /// A person approved it (guards do not apply to a person's decision).
    approved: bool,
}

impl Executor {
    /// A task carrying an approval runs only if the approval is for this very finding,
    /// was sent by the approver themself (SQS's SenderId matches the approver's STS
    /// UserId), and the policy's `approvers` list allows that principal.
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

    /// Checks the task against the policy and returns what it allows.
    fn authorise(&self, task: &Task, sender_id: Option<&str>) -> Result<Allowed<'_>, Refusal> {
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
        let mode = self.policy.mode_of(rule);
        if mode == Mode::Notify {
            return Err(Refusal(format!("rule {} is notify-only", rule.id)));
        }
        // An automatic fix a guard stopped comes back approved, so an approval is
        // checked whatever the rule's mode.
        let approved = task.approval.is_some() || mode == Mode::Approve;
        if approved {
            self.check_approval(task, sender_id)?;
        }
        if let Some(why) = self.targets.unreachable(&f.account_id) {
            return Err(Refusal(why));
        }
        let action = rule
            .action
            .render(&f.facts())
            .map_err(|m| Refusal(format!("cannot render action: {m}")))?;
        Ok(Allowed {
            rule,
            action,
            approved,
        })
    }

    async fn execute(
        &self,
        seams: &Seams,
        task: &Task,
        action: &RenderedAction,
        ingress: Option<Vec<Permission>>,
    ) -> FixResult {
        let id = &task.finding.resource_id;
        match action {
            RenderedAction::Fix(Fix::RevokePublicIngress { ports }) => {
                security_group::revoke_public_ingress(
                    &seams.security_groups,
                    id,
                    ports.as_deref(),
                    ingress,
                )
                .await
            }
            RenderedAction::Fix(Fix::RestoreParameterBaseline {
                baseline_prefix,
                current_prefix,
            }) => {
                parameter::restore_baseline(&seams.parameters, id, baseline_prefix, current_prefix)
                    .await
            }
            RenderedAction::Runbook(runbook) => {
                seams.automation.run(runbook, &task.client_token()).await
            }
        }
    }

    /// The policy exception covering this finding now, if any.
    fn exception(&self, task: &Task) -> Option<String> {
        let f = &task.finding;
        self.policy
            .exception_for(
                &task.rule_id,
                &f.account_id,
                &f.resource_id,
                SystemTime::now(),
            )
            .map(|e| format!("exempt: {}", e.describe()))
    }

    /// Reads the `redress:exempt=true` tag of an EC2 resource in the finding's account.
    /// When the fix revokes a security group's ingress, one read returns the tags and the
    /// ingress, which the fix then uses as its pre-check instead of reading it again.
    async fn tag_check(
        &self,
        task: &Task,
        seams: &Seams,
        action: &RenderedAction,
    ) -> Result<(Option<String>, Option<Vec<Permission>>), FixError> {
        let f = &task.finding;
        let revoke = matches!(action, RenderedAction::Fix(Fix::RevokePublicIngress { .. }));
        let (exempt, ingress) = if revoke {
            let (ingress, tags) = seams.security_groups.describe(&f.resource_id).await?;
            let exempt = tags::exempt(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            (exempt, Some(ingress))
        } else if tags::taggable(&f.resource_type) {
            (seams.tags.exempt(&f.resource_id).await?, None)
        } else {
            (false, None)
        };
        let (k, v) = tags::EXEMPT_TAG;
        Ok((exempt.then(|| format!("exempt: tagged {k}={v}")), ingress))
    }

    /// Hands an automatic fix a guard stopped to a person, as an approval request.
    async fn divert(&self, task: Task, why: String, record: AuditRecord, subject: String) -> Ack {
        let groups = match self
            .targets
            .seams(&task.finding.account_id, &task.finding.region)
            .await
        {
            Ok(s) => s,
            Err(e) => return self.failed(FixError::from(e), 1, record, subject),
        };
        let request = match crate::router::approval_request(
            &self.policy,
            task,
            &groups.security_groups,
        )
        .await
        {
            Ok(r) => r,
            Err(error) => {
                return Ack::DeadLetter {
                    class: "permanent",
                    error,
                }
            }
        };
        let mut audit = record;
        audit.decision = AuditDecision::ApprovalRequested;
        audit.action = Some(request.proposed_action.label());
        audit.reason = Some(format!("{why}; approval id {}", request.id));
        let line = format!("{} ({why})", request.id);
        let body = match serde_json::to_string(&ApprovalsMessage::Request(Box::new(request))) {
            Ok(b) => b,
            Err(e) => {
                return Ack::DeadLetter {
                    class: "permanent",
                    error: format!("cannot serialise approval request: {e}"),
                }
            }
        };
        let tally = self.tally.clone();
        Ack::Forward {
            to: self.approvals.clone(),
            body,
            then: Box::new(move || {
                audit.emit();
                tally.add(Fate::AwaitingApproval, subject, line);
            }),
        }
    }

    /// A fix that did not finish: retry a transient failure through the queue until the
    /// attempt cap, else dead-letter it with the reason.
    fn failed(&self, e: FixError, attempt: u32, mut r: AuditRecord, subject: String) -> Ack {
        if e.class == ErrorClass::Transient && attempt < self.max_attempts {
            tracing::warn!(error = %e.message, attempt, "transient failure; will retry");
            self.tally.add(Fate::Retrying, subject, &e.message);
            // Back off through the queue: 2, 4, 8 ... seconds, at most a minute.
            return Ack::Retry {
                after_secs: 2_i32.saturating_pow(attempt.min(6)),
            };
        }
        let class = if e.class == ErrorClass::Transient {
            "exhausted"
        } else {
            "permanent"
        };
        let reason = if class == "exhausted" {
            format!("gave up after {attempt} attempts: {}", e.message)
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

    /// Audits a skip and reports it.
    fn skip(&self, mut r: AuditRecord, subject: String, reason: String) -> Ack {
        r.decision = AuditDecision::Skipped;
        r.reason = Some(reason.clone());
        r.emit();
        self.tally.add(Fate::Skipped, subject, reason);
        Ack::Done
    }
}

impl Handler for Executor {
    async fn settle(&self) {
        self.reevaluator.flush().await;
    }

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
        let allowed = match self.authorise(&task, m.sender_id.as_deref()) {
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
        r.action = Some(allowed.action.label());
        let dry_run = self.dry_run || task.dry_run;
        r.dry_run = dry_run;
        let seams = match self.targets.seams(&f.account_id, &f.region).await {
            Ok(s) => s,
            Err(e) => return self.failed(e.into(), m.receive_count, r, subject),
        };
        if let Some(why) = self.exception(&task) {
            return self.skip(r, subject, why);
        }
        if dry_run {
            // Ask the guards without taking from the rate caps: a dry run fixes nothing.
            if !allowed.approved {
                if let Err(why) = self.guards.admit(allowed.rule, false).await {
                    r.outcome = Some(Outcome::DryRun);
                    r.reason = Some(format!("would ask for approval: {why}"));
                    r.emit();
                    self.tally.add(Fate::DryRun, subject, why);
                    return Ack::Done;
                }
            }
            match self.tag_check(&task, &seams, &allowed.action).await {
                Ok((Some(why), _)) => return self.skip(r, subject, why),
                Ok(_) => {}
                Err(e) => return self.failed(e, m.receive_count, r, subject),
            }
            r.outcome = Some(Outcome::DryRun);
            r.reason = Some(format!("would run {}", allowed.action.describe()));
            r.emit();
            self.tally
                .add(Fate::DryRun, subject, allowed.action.describe());
            return Ack::Done;
        }
        let key = format!("{}/{}/{}", f.account_id, f.region, f.resource_id);
        let mut shutdown = self.shutdown.clone();
        let _guard = tokio::select! {
            g = self.locks.lock(&key) => g,
            // Not started yet: hand it back for another worker rather than hold it.
            _ = crate::worker::stop_requested(&mut shutdown) => return Ack::Release,
        };
        let token = task.client_token();
        if let Some(seen) = self.recent.get(&token, Instant::now()) {
            let exec = seen
                .execution_id
                .map(|e| format!(", execution {e}"))
                .unwrap_or_default();
            return self.skip(
                r,
                subject,
                format!(
                    "duplicate: this executor finished the same task at {} ({}{exec})",
                    seen.at, seen.outcome
                ),
            );
        }
        // Under the lock, so the state read here is current for the fix.
        let ingress = match self.tag_check(&task, &seams, &allowed.action).await {
            Ok((Some(why), _)) => return self.skip(r, subject, why),
            Ok((None, ingress)) => ingress,
            // Not knowing whether it is exempt, leave it alone.
            Err(e) => return self.failed(e, m.receive_count, r, subject),
        };
        // Last, so duplicates and exempt resources take nothing from the rate caps.
        if !allowed.approved {
            if let Err(why) = self.guards.admit(allowed.rule, true).await {
                return self.divert(task.clone(), why, r, subject).await;
            }
        }
        let result = self.execute(&seams, &task, &allowed.action, ingress).await;
        let finished = |outcome: &str, execution_id: Option<String>| Seen {
            outcome: outcome.into(),
            at: redress::time::now_rfc3339(),
            execution_id,
        };
        match result {
            Ok(done) => {
                self.guards.record(true);
                self.recent.insert(
                    &token,
                    finished(done.outcome.as_str(), done.execution_id.clone()),
                    Instant::now(),
                );
                let mut detail = done.detail.clone();
                if done.outcome == Outcome::Succeeded {
                    self.reevaluator.request(
                        &seams.config_rules,
                        &f.account_id,
                        &f.region,
                        &f.config_rule_name,
                    );
                    detail.push_str("; Config re-evaluation queued");
                }
                r.outcome = Some(done.outcome);
                r.execution_id = done.execution_id.clone();
                r.reason = Some(detail);
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
            Err(e) => {
                let last = e.class != ErrorClass::Transient || m.receive_count >= self.max_attempts;
                if last {
                    self.guards.record(false);
                    // Not remembered as finished: if dead-lettering fails, the message
                    // must come back and fail again, not pass as a duplicate.
                }
                self.failed(e, m.receive_count, r, subject)
            }
        }
    }
}
