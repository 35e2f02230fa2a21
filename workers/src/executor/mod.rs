//! The executor: the only component with remediation rights. It takes a task (a rule id
//! and a finding), re-derives the action from its own policy, and runs it. A task can
//! never make it do anything its policy does not allow for that finding.

pub mod approvers;
mod blast_radius;
mod closure;
mod config_check;
mod dedup;
pub mod ledger;
mod ledger_closure;
pub mod ledger_requests;
mod locks;
mod outcome;
mod parameters;
mod reevaluator;
mod revoke;
mod runbook;
mod tags;
pub mod undo;
pub mod undo_resource;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::aws::retry::ErrorClass;
use crate::aws::sqs::{Queue, Received};
use redress::approver::{Approvers, Verified};
use redress::audit::{AuditDecision, AuditRecord, Outcome};
use redress::ingress::Permission;
use redress::ledger::{Actor, Change, Principal};
use redress::message::{Approval, ApprovalRequest, ApprovalsMessage, Returned, Task};
use redress::policy::{Fix, Mode, Policy, RenderedAction, Rule};
use tokio::sync::watch;

pub use crate::aws::ec2::SecurityGroups;
pub use crate::aws::targets::{Polling, TargetClients, Targets};
pub use blast_radius::Guards;
pub use dedup::{Finished, FinishedTasks};
pub use ledger::Ledger;
pub use locks::KeyedLocks;
pub use reevaluator::Reevaluator;

use crate::report::Disposition;
use crate::settle::{Ack, DeadLetterClass, Verdict};
use crate::worker::Handler;
pub use outcome::{Done, FixError, FixResult};
use redress::verify::BeforeFix;

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
    /// Who may approve, resolved to the unique ids SQS stamps as SenderId.
    pub approvers: Approvers,
    /// Tasks finished lately, to recognise duplicates.
    pub recent: FinishedTasks,
    /// Asks Config to re-evaluate fixed rules, off the fix's critical path.
    pub reevaluator: Reevaluator,
    /// Where automatic fixes a guard stopped go, as approval requests.
    pub approvals: Queue,
    /// The executor's own queue: closure checks wait on it for Config to confirm a fix.
    pub tasks: Queue,
    /// The executor's own STS UserId: closure checks are believed only from it.
    pub own_id: Option<String>,
    /// Serialises work on the same resource within this process.
    pub locks: KeyedLocks,
    /// Turns true on SIGTERM/SIGINT: tasks still waiting for their resource's lock are
    /// handed back instead of started.
    pub shutdown: watch::Receiver<bool>,
    /// The remediation ledger: each change's intent and outcome, and the lease that keeps
    /// other executors off a finding meanwhile ([`Ledger::off`]: none).
    pub ledger: Ledger,
}

/// A task the executor refuses, with the reason. `put_back`: the task carried an
/// approval that is void, so its request goes back to the approvals queue (no one can
/// make a request vanish by approving it badly).
struct Refusal {
    reason: String,
    put_back: bool,
}

impl Refusal {
    fn new(reason: String) -> Refusal {
        Refusal {
            reason,
            put_back: false,
        }
    }
}

/// What SQS asserts about a message: who sent it and when.
#[derive(Clone, Copy)]
struct Sender<'a> {
    sender_id: Option<&'a str>,
    sent_at_ms: Option<u64>,
}

/// On whose authority a task would run.
enum Authority {
    /// The policy fixes it automatically (the guards apply).
    Automatic,
    /// A person the policy lists approved it, as AWS verified (only the kill switch applies).
    Approved(Verified),
    /// The rule needs approval and the task carries none: it becomes a request.
    NeedsApproval,
}

/// What the policy allows for a task.
struct Allowed<'p> {
    rule: &'p Rule,
    action: RenderedAction,
    authority: Authority,
}

impl Executor {
    /// Whether SQS says this executor's own principal sent the message.
    fn own_message(&self, sender_id: Option<&str>) -> Result<(), String> {
        match (sender_id, self.own_id.as_deref()) {
            (Some(s), Some(own)) if redress::approver::same_principal(s, own) => Ok(()),
            (Some(s), _) => Err(format!(
                "it was sent by {s}, not by this executor's principal"
            )),
            (None, _) => Err("SQS names no sender".into()),
        }
    }

    /// The approval a task carries, checked against what AWS asserts: the request is this
    /// finding's, SQS's SenderId is an approver the policy lists (resolved to unique ids
    /// at start-up), every identity field in the message agrees with it, and the action
    /// the approver was shown is the one the policy renders now.
    fn check_approval(
        &self,
        task: &Task,
        a: &Approval,
        sent: Sender<'_>,
        expected: &str,
        shown: impl FnOnce() -> String,
    ) -> Result<Verified, String> {
        // An approval lasts as long as a request does: an old one (a task that sat in a
        // DLQ and came back by a native redrive) is not a decision about the resource now.
        let ttl = self.policy.approvals.ttl;
        let now = SystemTime::now();
        let approved = redress::time::parse_rfc3339(&a.approved_at);
        let sent_at = sent
            .sent_at_ms
            .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
        for t in [approved, sent_at].into_iter().flatten() {
            if t.checked_add(ttl).is_some_and(|end| end < now) {
                return Err(format!(
                    "the approval is older than the policy's approval ttl ({})",
                    humantime::format_duration(ttl)
                ));
            }
        }
        if approved.is_none() {
            return Err(format!("approved_at {:?} is not a time", a.approved_at));
        }
        let sender_id = sent.sender_id;
        if a.request_id != task.approval_id() {
            return Err(format!(
                "approval {} does not belong to this finding (its request is {})",
                a.request_id,
                task.approval_id()
            ));
        }
        let verified = self.approvers.verify(sender_id)?;
        if a.approver_user_id != verified.unique_id {
            return Err(format!(
                "the approval names approver id {} but SQS says the task was sent by {}",
                a.approver_user_id, verified.unique_id
            ));
        }
        if let Some(arn) = verified.arn.as_deref().filter(|arn| *arn != a.approved_by) {
            return Err(format!(
                "the approval names {} but the task was sent by {arn}",
                a.approved_by
            ));
        }
        match a.action_digest.as_deref() {
            Some(d) if d == expected => Ok(verified),
            Some(_) => Err(format!(
                "the action approved (policy {}) is not the one the policy now renders (policy {}): {}",
                a.policy_version.as_deref().unwrap_or("unknown"),
                self.policy.version,
                shown()
            )),
            None => Err("the approval carries no action digest (made by an older redress)".into()),
        }
    }

    /// Checks the task against the policy and returns what it allows, on whose authority.
    fn authorise(&self, task: &Task, sent: Sender<'_>) -> Result<Allowed<'_>, Refusal> {
        let f = &task.finding;
        f.validate()
            .map_err(|m| Refusal::new(format!("invalid finding: {m}")))?;
        let rule = self.policy.rule(&task.rule_id).ok_or_else(|| {
            Refusal::new(format!(
                "no_policy: rule {:?} is not in the executor's policy",
                task.rule_id
            ))
        })?;
        if !rule.matches(&f.subject()) {
            return Err(Refusal::new(format!(
                "rule {} does not cover Config rule {} on {}",
                rule.id, f.config_rule_name, f.resource_type
            )));
        }
        if f.compliance != redress::event::ComplianceType::NON_COMPLIANT {
            return Err(Refusal::new(format!(
                "finding is {}, not NON_COMPLIANT",
                f.compliance
            )));
        }
        let mode = self.policy.mode_of(rule);
        if mode == Mode::Notify {
            return Err(Refusal::new(format!("rule {} is notify-only", rule.id)));
        }
        if let Some(why) = self.targets.unreachable(&f.account_id) {
            return Err(Refusal::new(why));
        }
        let action = rule
            .action
            .render(&f.facts())
            .map_err(|m| Refusal::new(format!("cannot render action: {m}")))?;
        // An automatic fix a guard stopped comes back approved, so an approval is
        // checked whatever the rule's mode.
        let authority = match &task.approval {
            Some(a) => {
                let digest = action.digest();
                let verified = self
                    .check_approval(task, a, sent, &digest, || action.describe())
                    .map_err(|m| Refusal {
                        reason: format!("approval refused: {m}"),
                        put_back: true,
                    })?;
                Authority::Approved(verified)
            }
            None if mode == Mode::Approve => Authority::NeedsApproval,
            None => Authority::Automatic,
        };
        Ok(Allowed {
            rule,
            action,
            authority,
        })
    }

    async fn execute(
        &self,
        seams: &TargetClients,
        task: &Task,
        action: &RenderedAction,
        ingress: Option<Vec<Permission>>,
    ) -> FixResult {
        let id = &task.finding.resource_id;
        match action {
            RenderedAction::Fix(Fix::RevokePublicIngress { ports }) => {
                revoke::revoke_public_ingress(&seams.security_groups, id, ports.as_deref(), ingress)
                    .await
            }
            RenderedAction::Fix(Fix::RestoreParameterBaseline {
                baseline_prefix,
                current_prefix,
            }) => {
                parameters::restore_baseline(&seams.parameters, id, baseline_prefix, current_prefix)
                    .await
            }
            RenderedAction::Fix(Fix::CreateParameterFromBaseline {
                baseline_prefix,
                current_prefix,
            }) => {
                parameters::create_from_baseline(
                    &seams.parameters,
                    id,
                    baseline_prefix,
                    current_prefix,
                )
                .await
            }
            RenderedAction::Fix(Fix::DeleteUnauthorizedParameter {
                baseline_prefix,
                current_prefix,
            }) => {
                parameters::delete_unauthorized(
                    &seams.parameters,
                    id,
                    baseline_prefix,
                    current_prefix,
                )
                .await
            }
            RenderedAction::Runbook(runbook) => {
                runbook::run(&seams.automation, runbook, &task.client_token()).await
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

    /// Reads the policy's exemption tag (if it names one) of an EC2 resource in the
    /// finding's account. When the fix revokes a security group's ingress, one read
    /// returns the tags and the ingress, which the fix then uses as its pre-check instead
    /// of reading it again.
    async fn tag_check(
        &self,
        task: &Task,
        seams: &TargetClients,
        action: &RenderedAction,
    ) -> Result<(Option<String>, Option<Vec<Permission>>), FixError> {
        let f = &task.finding;
        let key = self.policy.exemptions.tag.as_deref();
        let revoke = matches!(action, RenderedAction::Fix(Fix::RevokePublicIngress { .. }));
        let (exempt, ingress) = match key {
            _ if revoke => {
                let (ingress, tags) = seams.security_groups.describe(&f.resource_id).await?;
                let exempt = key.is_some_and(|k| {
                    tags::exempt(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())), k)
                });
                (exempt, Some(ingress))
            }
            Some(k) if tags::taggable(&f.resource_type) => {
                let tags = seams.tags.named(&f.resource_id, k).await?;
                let exempt = tags::exempt(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())), k);
                (exempt, None)
            }
            _ => (false, None),
        };
        let why = exempt.then(|| {
            format!(
                "exempt: tagged {}={}",
                key.unwrap_or_default(),
                tags::EXEMPT_VALUE
            )
        });
        Ok((why, ingress))
    }

    /// Hands a task to a person as an approval request: an automatic fix a guard
    /// stopped, a rule that needs approval, or (with `returned`) an approved fix the kill
    /// switch held. The task message is deleted once the request is on the queue.
    async fn divert(
        &self,
        task: Task,
        why: String,
        returned: Option<Returned>,
        record: AuditRecord,
        subject: String,
    ) -> Verdict {
        let request = match self.request_for(task, returned).await {
            Ok(r) => r,
            Err(e) => return self.failed(e, 1, record, subject),
        };
        if let Some(decided) = self.record_request(&request).await {
            return self.skip(record, subject, decided);
        }
        let mut audit = record;
        audit.decision = AuditDecision::ApprovalRequested;
        audit.action = Some(request.proposed_action.label());
        audit.reason = Some(format!("{why}; approval id {}", request.id));
        let line = format!("{} ({why})", request.id);
        match serde_json::to_string(&ApprovalsMessage::Request(Box::new(request))) {
            Ok(body) => Verdict::done()
                .send(&self.approvals, body)
                .record(audit)
                .report(Disposition::AwaitingApproval, subject, line),
            Err(e) => Verdict::dead_letter(
                DeadLetterClass::Permanent,
                format!("cannot serialise approval request: {e}"),
            ),
        }
    }

    /// A fresh approval request for the task, rendered from this executor's policy.
    async fn request_for(
        &self,
        task: Task,
        returned: Option<Returned>,
    ) -> Result<ApprovalRequest, FixError> {
        let f = &task.finding;
        let seams = self.targets.seams(&f.account_id, &f.region).await?;
        crate::router::approval_request(&self.policy, task, &seams.security_groups, returned)
            .await
            .map_err(FixError::permanent)
    }

    /// A refused task is dead-lettered with the reason; if it carried an approval, its
    /// request is also put back on the approvals queue (audited), so a bad approval never
    /// makes a finding disappear. If the request cannot be sent, the task comes back
    /// rather than being dead-lettered alone.
    async fn refuse(
        &self,
        task: &Task,
        refusal: Refusal,
        record: AuditRecord,
        subject: String,
    ) -> Verdict {
        let Refusal { reason, put_back } = refusal;
        let mut verdict = Verdict::dead_letter(DeadLetterClass::Refused, &reason);
        if put_back && self.policy.rule(&task.rule_id).is_some() {
            let returned = Returned {
                why: reason.clone(),
                approved_by: None,
                approved_at: task.approval.as_ref().map(|a| a.approved_at.clone()),
                at: redress::time::now_rfc3339(),
            };
            match self.request_for(task.clone(), Some(returned)).await {
                Ok(request) => {
                    self.record_request(&request).await;
                    let mut r = record.clone();
                    r.decision = AuditDecision::ApprovalRequested;
                    r.reason = Some(format!(
                        "{reason}; request {} put back for a fresh decision",
                        request.id
                    ));
                    let message = ApprovalsMessage::Request(Box::new(request));
                    let body = serde_json::to_string(&message).expect("a request serialises");
                    verdict = verdict.send(&self.approvals, body).record(r);
                }
                Err(e) if e.class == ErrorClass::Transient => {
                    tracing::warn!(error = %e.message, "cannot rebuild the request yet; will retry");
                    return Verdict::ack(Ack::Retry { after_secs: 5 });
                }
                Err(e) => {
                    tracing::warn!(error = %e.message, "the request could not be rebuilt; the task alone is dead-lettered")
                }
            }
        }
        let mut r = record.reason(&reason);
        r.decision = AuditDecision::DeadLettered;
        verdict
            .record(r)
            .report(Disposition::DeadLettered, subject, reason)
    }

    /// A fix that did not finish: retry a transient failure through the queue until the
    /// attempt cap, else dead-letter it with the reason.
    fn failed(&self, e: FixError, attempt: u32, mut r: AuditRecord, subject: String) -> Verdict {
        if e.class == ErrorClass::Transient && attempt < self.max_attempts {
            tracing::warn!(error = %e.message, attempt, "transient failure; will retry");
            // Back off through the queue: 2, 4, 8 ... seconds, at most a minute.
            return Verdict::ack(Ack::Retry {
                after_secs: 2_i32.saturating_pow(attempt.min(6)),
            })
            .report(Disposition::Retrying, subject, &e.message);
        }
        let class = match (e.refused, e.class) {
            (true, _) => DeadLetterClass::Refused,
            (false, ErrorClass::Transient) => DeadLetterClass::Exhausted,
            (false, _) => DeadLetterClass::Permanent,
        };
        let reason = if class == DeadLetterClass::Exhausted {
            format!("gave up after {attempt} attempts: {}", e.message)
        } else {
            e.message.clone()
        };
        r.outcome = Some(Outcome::Failed);
        r.execution_id = e.execution_id.clone();
        r.reason = Some(reason.clone());
        Verdict::dead_letter(class, &reason).record(r).report(
            Disposition::DeadLettered,
            subject,
            reason,
        )
    }

    /// The verdict when the ledger stops a fix: another executor holds the finding
    /// (handed back, to be tried once its lease lapses), it was dealt with already (a
    /// duplicate), or the ledger cannot be asked (as a failure of the fix).
    fn not_now(
        &self,
        not_now: ledger::NotNow,
        attempt: u32,
        r: AuditRecord,
        subject: String,
    ) -> Verdict {
        match not_now {
            ledger::NotNow::Held { why, retry_after } => {
                tracing::info!(%why, "another executor holds the finding; handing it back");
                let after_secs = i32::try_from(retry_after.as_secs()).unwrap_or(i32::MAX);
                Verdict::ack(Ack::Retry { after_secs }).report(
                    Disposition::Retrying,
                    subject,
                    format!("held by another executor ({why}); handed back"),
                )
            }
            ledger::NotNow::Finished { id, status } => self.skip(
                r,
                subject,
                format!("duplicate: ledger entry {id} is already {status}"),
            ),
            ledger::NotNow::Unavailable(e) => self.failed(e, attempt, r, subject),
        }
    }

    /// Audits a skip (`skipped`, or `exempt_by_tag`) and reports it.
    fn skip(&self, mut r: AuditRecord, subject: String, reason: String) -> Verdict {
        r.decision = if reason.starts_with("exempt: tagged") {
            AuditDecision::ExemptByTag
        } else {
            AuditDecision::Skipped
        };
        r.reason = Some(reason.clone());
        Verdict::done()
            .record(r)
            .report(Disposition::Skipped, subject, reason)
    }

    /// Why an automatic fix must go to a person instead, if it must: the fix would reach
    /// beyond its rule's severity, or a guard stopped it. `take`: count it against the
    /// rate caps (not in a dry run).
    async fn stop_automatic(
        &self,
        rule: &Rule,
        action: &RenderedAction,
        ingress: Option<&[Permission]>,
        take: bool,
    ) -> Result<blast_radius::Taken, String> {
        if let (RenderedAction::Fix(Fix::RevokePublicIngress { ports }), Some(ingress)) =
            (action, ingress)
        {
            let revoking = redress::ingress::world_open(ingress, ports.as_deref());
            if let Some(why) = self.policy.exceeds_severity(rule, &revoking) {
                return Err(why);
            }
        }
        self.guards.admit(rule, take).await
    }

    /// Audits and reports a dry run's decision.
    fn dry_run(&self, mut r: AuditRecord, subject: String, reason: String) -> Verdict {
        r.outcome = Some(Outcome::DryRun);
        r.reason = Some(reason.clone());
        Verdict::done()
            .record(r)
            .report(Disposition::DryRun, subject, reason)
    }

    /// Decides and audits without changing anything.
    async fn rehearse(
        &self,
        task: &Task,
        allowed: &Allowed<'_>,
        seams: &TargetClients,
        r: AuditRecord,
        subject: String,
        attempt: u32,
    ) -> Verdict {
        let (exempt, ingress) = match self.tag_check(task, seams, &allowed.action).await {
            Ok(v) => v,
            Err(e) => return self.failed(e, attempt, r, subject),
        };
        if let Some(why) = exempt {
            return self.skip(r, subject, why);
        }
        match self.ask_config(task, allowed.rule, seams).await {
            Ok(BeforeFix::Act) => {}
            Ok(
                BeforeFix::AlreadyCompliant(why)
                | BeforeFix::NotApplicable(why)
                | BeforeFix::Refuse(why),
            ) => return self.dry_run(r, subject, format!("would not act: {why}")),
            Err(e) => return self.failed(e, attempt, r, subject),
        }
        let stopped = match &allowed.authority {
            Authority::Automatic => self
                .stop_automatic(allowed.rule, &allowed.action, ingress.as_deref(), false)
                .await
                .err(),
            Authority::Approved(_) => self.guards.kill_switch().await,
            Authority::NeedsApproval => Some(format!("rule {} needs approval", allowed.rule.id)),
        };
        match stopped {
            Some(why) => self.dry_run(r, subject, format!("would ask for approval: {why}")),
            None => self.dry_run(
                r,
                subject,
                format!("would run {}", allowed.action.describe()),
            ),
        }
    }

    /// Records a finished fix and reports it.
    fn finished(
        &self,
        task: &Task,
        seams: &TargetClients,
        done: Done,
        mut r: AuditRecord,
        subject: String,
    ) -> Verdict {
        let f = &task.finding;
        self.recent.insert(
            &task.client_token(),
            Finished {
                outcome: done.outcome.as_str().into(),
                at: redress::time::now_rfc3339(),
                execution_id: done.execution_id.clone(),
            },
            Instant::now(),
        );
        let mut detail = done.detail.clone();
        let mut verdict = Verdict::done();
        if done.outcome == Outcome::Succeeded {
            self.reevaluator.request(
                &seams.config_rules,
                &f.account_id,
                &f.region,
                &f.config_rule_name,
            );
            detail.push_str("; Config re-evaluation queued");
            if self.policy.config.verify {
                verdict = self.await_closure(verdict, task, &done);
                r.verification = Some(redress::audit::AWAITING_VERIFICATION);
                detail.push_str("; awaiting Config's confirmation");
            }
        }
        r.outcome = Some(done.outcome);
        r.execution_id = done.execution_id.clone();
        r.reason = Some(detail);
        let fate = if done.outcome == Outcome::AlreadyCompliant {
            Disposition::AlreadyCompliant
        } else {
            Disposition::Fixed
        };
        let exec = done
            .execution_id
            .map(|e| format!(" [execution {e}]"))
            .unwrap_or_default();
        verdict.record(r).report(
            fate,
            subject,
            format!("{} ({}){exec}", done.detail, task.rule_id),
        )
    }

    /// Config's word on a finding before anything changes: act when the policy turned
    /// verification off.
    async fn ask_config(
        &self,
        task: &Task,
        rule: &Rule,
        seams: &TargetClients,
    ) -> Result<BeforeFix, FixError> {
        if !self.policy.config.verify {
            return Ok(BeforeFix::Act);
        }
        let f = &task.finding;
        let current = config_check::current(&seams.compliance, &self.policy, rule, f).await?;
        Ok(redress::verify::before_fix(
            &self.policy,
            f,
            &task.rule_id,
            &current,
        ))
    }

    /// The verdict when Config's word stops a fix (already compliant, not applicable,
    /// refused, or retried when Config cannot be asked); `None` to go on.
    fn config_stop(
        &self,
        said: Result<BeforeFix, FixError>,
        task: &Task,
        seams: &TargetClients,
        r: &AuditRecord,
        subject: &str,
        attempt: u32,
    ) -> Option<Verdict> {
        let (r, subject) = (r.clone(), subject.to_string());
        match said {
            Ok(BeforeFix::Act) => None,
            Ok(BeforeFix::AlreadyCompliant(why)) => {
                let done = Done::already_compliant(why);
                Some(self.finished(task, seams, done, r, subject))
            }
            Ok(BeforeFix::NotApplicable(why)) => Some(self.skip(r, subject, why)),
            // Nothing was attempted: a refusal, audited as the message's dead-lettering.
            Ok(BeforeFix::Refuse(why)) => {
                let mut r = r.reason(&why);
                r.decision = AuditDecision::DeadLettered;
                Some(
                    Verdict::dead_letter(DeadLetterClass::Refused, &why)
                        .record(r)
                        .report(Disposition::DeadLettered, subject, why),
                )
            }
            Err(e) => Some(self.failed(e, attempt, r, subject)),
        }
    }

    /// Under the resource's lock: duplicate check, exemption tag, the checks of the
    /// task's authority against the state just read, then the fix.
    async fn fix(
        &self,
        task: &Task,
        allowed: Allowed<'_>,
        seams: &TargetClients,
        r: AuditRecord,
        subject: String,
        attempt: u32,
    ) -> Verdict {
        let f = &task.finding;
        let key = format!("{}/{}/{}", f.account_id, f.region, f.resource_id);
        let mut shutdown = self.shutdown.clone();
        let _guard = tokio::select! {
            g = self.locks.lock(&key) => g,
            // Not started yet: hand it back for another worker rather than hold it.
            _ = crate::worker::stop_requested(&mut shutdown) => return Verdict::ack(Ack::Release),
        };
        if let Some(seen) = self.recent.get(&task.client_token(), Instant::now()) {
            let exec = seen
                .execution_id
                .map(|e| format!(", execution {e}"))
                .unwrap_or_default();
            let why = format!(
                "duplicate: this executor finished the same task at {} ({}{exec})",
                seen.at, seen.outcome
            );
            return self.skip(r, subject, why);
        }
        // Under the lock, so the state read here is current for the fix.
        let ingress = match self.tag_check(task, seams, &allowed.action).await {
            Ok((Some(why), _)) => return self.skip(r, subject, why),
            Ok((None, ingress)) => ingress,
            // Not knowing whether it is exempt, leave it alone.
            Err(e) => return self.failed(e, attempt, r, subject),
        };
        let said = self.ask_config(task, allowed.rule, seams).await;
        if let Some(stopped) = self.config_stop(said, task, seams, &r, &subject, attempt) {
            return stopped;
        }
        let mut taken = None;
        match &allowed.authority {
            // Last, so duplicates, exempt resources and findings Config does not back
            // take nothing from the rate caps.
            Authority::Automatic => {
                match self
                    .stop_automatic(allowed.rule, &allowed.action, ingress.as_deref(), true)
                    .await
                {
                    Ok(t) => taken = Some(t),
                    Err(why) => return self.divert(task.clone(), why, None, r, subject).await,
                }
            }
            Authority::Approved(v) => {
                if let Some(why) = self.guards.kill_switch().await {
                    let returned = Returned {
                        why: format!("held: {why}"),
                        approved_by: Some(v.actor()),
                        approved_at: task.approval.as_ref().map(|a| a.approved_at.clone()),
                        at: redress::time::now_rfc3339(),
                    };
                    let why = format!("held: {why} (approved by {})", v.actor());
                    return self
                        .divert(task.clone(), why, Some(returned), r, subject)
                        .await;
                }
            }
            Authority::NeedsApproval => unreachable!("diverted before the lock"),
        }
        // Last before the change, so only changes leave entries (duplicates, exempt
        // resources, Config's word and the guards change nothing): the intent and the
        // finding's lease; another executor holding it takes the task back to the queue.
        let intent = match self
            .ledger
            .begin(
                task,
                &allowed.action,
                actor(task, &allowed.authority),
                before(task, &allowed.action, ingress.as_deref()),
            )
            .await
        {
            Ok(intent) => intent,
            Err(not_now) => {
                // Nothing runs: a held or finished finding gives its rate-cap take back.
                if let Some(t) = taken {
                    self.guards.give_back(t).await;
                }
                return self.not_now(not_now, attempt, r, subject);
            }
        };
        // A crashed attempt's change found made is completed, not made again.
        let result = match intent.as_ref().and_then(ledger::Intent::made) {
            Some(done) => Ok(done),
            None => self.execute(seams, task, &allowed.action, ingress).await,
        };
        self.ledger.finish(intent, &result).await;
        match result {
            Ok(done) => {
                // Only a change made counts for the breaker: findings that needed nothing
                // (some forged) must not dilute its error rate.
                if done.outcome == Outcome::Succeeded {
                    self.guards.record(true).await;
                } else if let Some(t) = taken {
                    // Nothing was changed: the cap counts changes, so copies of a
                    // finding that needs nothing cannot use it up.
                    self.guards.give_back(t).await;
                }
                self.finished(task, seams, done, r, subject)
            }
            Err(e) => {
                if e.class != ErrorClass::Transient || attempt >= self.max_attempts {
                    self.guards.record(false).await;
                    // Not remembered as finished: if dead-lettering fails, the message
                    // must come back and fail again, not pass as a duplicate.
                }
                self.failed(e, attempt, r, subject)
            }
        }
    }
}

/// Who the ledger records as acting: the pipeline, or the approver AWS verified.
fn actor(task: &Task, authority: &Authority) -> Actor {
    match authority {
        Authority::Approved(v) => Actor::Approved {
            approver: Principal {
                arn: v.actor(),
                user_id: v.unique_id.clone(),
            },
            approved_at: task
                .approval
                .as_ref()
                .and_then(|a| redress::time::parse_rfc3339(&a.approved_at))
                .unwrap_or_else(SystemTime::now),
        },
        Authority::Automatic | Authority::NeedsApproval => Actor::Automatic,
    }
}

/// What is known of a change before it is made, for the ledger's intent: a revoke's
/// ingress and the permissions it will revoke, a runbook's document and inputs. A
/// parameter fix reads its state itself; its outcome carries it.
fn before(task: &Task, action: &RenderedAction, ingress: Option<&[Permission]>) -> Option<Change> {
    match (action, ingress) {
        (RenderedAction::Fix(Fix::RevokePublicIngress { ports }), Some(ingress)) => {
            Some(Change::RevokeIngress {
                group_id: task.finding.resource_id.clone(),
                before: ingress.to_vec(),
                revoked: redress::ingress::world_open(ingress, ports.as_deref()),
            })
        }
        (RenderedAction::Runbook(runbook), _) => Some(runbook::change(runbook)),
        _ => None,
    }
}

impl Handler for Executor {
    async fn settle(&self) {
        self.reevaluator.flush().await;
    }

    async fn handle(&self, m: &Received) -> Verdict {
        let mut verdict = self.decide(m).await;
        // Guard trips and resets seen while deciding are written whatever becomes of
        // this message.
        verdict.notes.extend(self.guards.take_notes());
        verdict
    }
}

impl Executor {
    /// The audit record of a task's remediation (severity from this executor's policy),
    /// and its subject for the run's report.
    fn record(&self, task: &Task) -> (AuditRecord, String) {
        let f = &task.finding;
        let severity = self.policy.rule(&task.rule_id).map(|r| r.severity);
        let r = AuditRecord::for_finding(
            WORKER,
            f,
            Some(&task.rule_id),
            severity,
            AuditDecision::Remediate,
        );
        (r, format!("{} {}", f.resource_type, f.resource_id))
    }

    async fn decide(&self, m: &Received) -> Verdict {
        let task: Task = match serde_json::from_str(&m.body) {
            Ok(t) => t,
            Err(e) => {
                let reason = format!("invalid task: {e}");
                return Verdict::dead_letter(DeadLetterClass::InvalidInput, &reason)
                    .record(AuditRecord::bare(WORKER, AuditDecision::DeadLettered).reason(&reason))
                    .report(Disposition::DeadLettered, &m.message_id, reason);
            }
        };
        if task.closure.is_some() {
            return self.close(task, m).await;
        }
        if task.undo.is_some() {
            return self.undo(task, m).await;
        }
        let f = &task.finding;
        let (mut r, subject) = self.record(&task);
        let sent = Sender {
            sender_id: m.sender_id.as_deref(),
            sent_at_ms: m.sent_at_ms,
        };
        let allowed = match self.authorise(&task, sent) {
            Ok(a) => a,
            Err(refusal) => return self.refuse(&task, refusal, r, subject).await,
        };
        if let Authority::Approved(v) = &allowed.authority {
            r.actor = Some(v.actor());
            r.actor_id = Some(v.unique_id.clone());
        }
        r.action = Some(allowed.action.label());
        let dry_run = self.dry_run || task.dry_run;
        r.dry_run = dry_run;
        if let Some(why) = self.exception(&task) {
            return self.skip(r, subject, why);
        }
        match self.undone(&task).await {
            Ok(Some(why)) => return self.skip(r, subject, why),
            Ok(None) => {}
            // Not knowing whether an undo left it alone on purpose, do not fix it.
            Err(e) => return self.failed(e, m.receive_count, r, subject),
        }
        if matches!(allowed.authority, Authority::NeedsApproval) && !dry_run {
            let why = format!("rule {} needs approval", allowed.rule.id);
            return self.divert(task.clone(), why, None, r, subject).await;
        }
        let seams = match self.targets.seams(&f.account_id, &f.region).await {
            Ok(s) => s,
            Err(e) => return self.failed(e.into(), m.receive_count, r, subject),
        };
        if dry_run {
            return self
                .rehearse(&task, &allowed, &seams, r, subject, m.receive_count)
                .await;
        }
        self.fix(&task, allowed, &seams, r, subject, m.receive_count)
            .await
    }
}
