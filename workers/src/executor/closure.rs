//! Confirmed closure: after a fix, the finding waits (`awaiting_verification`) for Config
//! to agree. The wait is a closure check sent to the executor's own queue with a delay,
//! so it survives restarts and costs no process anything while it waits; each check
//! asks Config and either closes the finding (`verified`, with the time to remediate),
//! sends itself again for later, or, past the policy's deadline, hands the finding to a
//! person (`still_non_compliant` and an approval request).
//!
//! Either conclusion is also recorded in the fix's ledger entry
//! ([`Executor::record_closure`]), best effort.
//!
//! A closure check never changes anything. A forged one can only make the executor ask
//! Config, and at worst (Config disagreeing with a fix that never happened) ask a person.

use std::time::{Duration, SystemTime};

use redress::audit::{AuditDecision, AuditRecord};
use redress::ledger::{EntryId, Status};
use redress::message::{Closure, Task};
use redress::policy::Mode;
use redress::verify::AfterFix;

use super::config_check;
use super::outcome::Done;
use super::{Executor, WORKER};
use crate::aws::sqs::Received;
use crate::report::Disposition;
use crate::settle::{DeadLetterClass, Verdict};

impl Executor {
    /// Adds the first closure check for a fix that just succeeded.
    pub(super) fn await_closure(&self, verdict: Verdict, task: &Task, done: &Done) -> Verdict {
        let check = Task {
            approval: None,
            closure: Some(Closure {
                fixed_at: redress::time::now_rfc3339(),
                execution_id: done.execution_id.clone(),
                actor: task.approval.as_ref().map(|a| a.approved_by.clone()),
                checks: 0,
            }),
            ..task.clone()
        };
        let body = serde_json::to_string(&check).expect("a task serialises");
        let secs = i32::try_from(self.policy.config.recheck_after.as_secs().max(1)).unwrap_or(900);
        // The fix has happened: its record must not wait on the check. A check SQS does
        // not take is lost (logged); the next sweep finds the finding if Config still
        // disagrees.
        verdict.send_later_best_effort(&self.tasks, body, secs)
    }

    fn send_check(&self, verdict: Verdict, check: &Task, wait: Duration) -> Verdict {
        let body = serde_json::to_string(check).expect("a task serialises");
        let secs = i32::try_from(wait.as_secs().max(1)).unwrap_or(900);
        verdict.send_later(&self.tasks, body, secs)
    }

    /// Handles a closure check: asks Config, then closes, waits again, or escalates.
    pub(super) async fn close(&self, mut task: Task, m: &Received) -> Verdict {
        let closure = task.closure.take().expect("a closure check");
        // The fix's entry: the check carries the task's rule, finding and generation.
        let entry = EntryId::for_task(&task);
        let f = &task.finding;
        let subject = format!("{} {}", f.resource_type, f.resource_id);
        let rule = self.policy.rule(&task.rule_id);
        let mut r = AuditRecord::for_finding(
            WORKER,
            f,
            Some(&task.rule_id),
            rule.map(|r| r.severity),
            AuditDecision::DeadLettered,
        );
        r.execution_id = closure.execution_id.clone();
        let refuse = |why: String| {
            Verdict::dead_letter(DeadLetterClass::Refused, &why)
                .record(r.clone().reason(&why))
                .report(Disposition::DeadLettered, &subject, why)
        };
        // Only this executor's own checks are believed: their fix time, execution and
        // approver were written by it, from a fix it made.
        if let Err(why) = self.own_message(m.sender_id.as_deref()) {
            return refuse(format!("closure check refused: {why}"));
        }
        if let Err(m) = f.validate() {
            return refuse(format!("invalid closure check: {m}"));
        }
        let Some(rule) = rule.filter(|r| r.matches(&f.subject())) else {
            return refuse(format!(
                "no_policy: rule {:?} of a closure check is not in the executor's policy or does not cover the finding",
                task.rule_id
            ));
        };
        if self.dry_run || task.dry_run || self.policy.mode_of(rule) == Mode::Notify {
            return refuse(
                "a closure check in a dry run or under a notify-only rule: no fix was made".into(),
            );
        }
        r.actor = closure.actor.clone();
        if !self.policy.config.verify {
            let why = "verification is off ([config] verify = false): the fix is not confirmed"
                .to_string();
            let mut skipped = r.reason(&why);
            skipped.decision = AuditDecision::Skipped;
            return Verdict::done()
                .record(skipped)
                .report(Disposition::Skipped, subject, why);
        }
        let now = SystemTime::now();
        let sent_at = m
            .sent_at_ms
            .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms));
        let claimed = redress::time::parse_rfc3339(&closure.fixed_at);
        let fixed_at = redress::verify::fixed_at(claimed, sent_at, now);
        let settings = &self.policy.config;
        let unanswered = |e: crate::aws::AwsError| (e.to_string(), e.is_transient());
        let asked = match self.targets.seams(&f.account_id, &f.region).await {
            Ok(seams) => config_check::current(&seams.compliance, &self.policy, rule, f)
                .await
                .map_err(unanswered),
            Err(e) => Err(unanswered(e)),
        };
        let schedule = redress::verify::Schedule {
            fixed_at,
            now,
            checks: closure.checks,
            first: settings.recheck_after,
            deadline: settings.verify_deadline,
        };
        let conclusion = match asked {
            Ok(current) => redress::verify::after_fix(&current, &schedule),
            Err((why, transient)) => redress::verify::unanswered(&why, transient, &schedule),
        };
        match conclusion {
            AfterFix::Verified(why) => {
                // Time to remediate: from Config's evaluation of the finding (the fix's
                // time when the event gave none) to now.
                let from = f
                    .evaluation_time
                    .as_deref()
                    .and_then(redress::time::parse_rfc3339)
                    .unwrap_or(fixed_at);
                let secs = now.duration_since(from).unwrap_or_default().as_secs();
                let mut verified = r.reason(&why);
                verified.decision = AuditDecision::Verified;
                verified.time_to_remediate_secs = Some(secs);
                let line = format!(
                    "{why}; time to remediate {}",
                    humantime::format_duration(Duration::from_secs(secs))
                );
                self.record_closure(&entry, Status::Verified, &why, now)
                    .await;
                Verdict::done()
                    .record(verified)
                    .report(Disposition::Verified, subject, line)
            }
            AfterFix::Recheck(wait) => {
                let check = Task {
                    closure: Some(Closure {
                        checks: closure.checks.saturating_add(1),
                        fixed_at: redress::time::format_rfc3339(fixed_at),
                        ..closure
                    }),
                    ..task
                };
                let line = format!(
                    "Config does not agree yet; looking again in {}",
                    humantime::format_duration(wait)
                );
                self.send_check(Verdict::done(), &check, wait).report(
                    Disposition::AwaitingVerification,
                    subject,
                    line,
                )
            }
            AfterFix::StillNonCompliant(why) => {
                let mut still = r.clone().reason(&why);
                still.decision = AuditDecision::StillNonCompliant;
                self.record_closure(&entry, Status::StillNonCompliant, &why, now)
                    .await;
                let mut request = r;
                request.action = Some(rule.action.label());
                // A new generation: approving it runs the fix again (a fresh SSM
                // idempotency token) instead of passing as the fix already made.
                task.generation = task.generation.saturating_add(1);
                self.divert(task, why, None, request, subject)
                    .await
                    .record(still)
            }
        }
    }
}
