//! Undo, as the executor carries it out: an approved task that names a ledger entry and
//! the plan the approver was shown. The executor trusts neither: it reads the entry from
//! its own ledger, reads the resource, plans the undo again ([`plan_undo`]), and acts
//! only if the new plan is the approved one. Before the change it records the undo's own
//! entry (intent, with a lease) and the exception that keeps the finding from being fixed
//! again until the requested end; after it, the outcome, and the original entry becomes
//! `undone`.
//!
//! The reads and writes on the resource are [`super::undo_resource`]; `redress undo` plans
//! with the same `observe`, so the request and the execution see the resource alike.

use std::time::SystemTime;

use redress::audit::{AuditDecision, AuditRecord, Outcome};
use redress::catalog::Catalog;
use redress::ledger::lease::{self, Busy};
use redress::ledger::undo::undo_entry;
use redress::ledger::{
    plan_undo, Actor, Change, EntryAction, Expect, LedgerEntry, Principal, Status, UndoException,
    UndoPlan, UndoRequest,
};
use redress::message::{ApprovalsMessage, Task, UndoTask};

use crate::aws::ledger::{LedgerError, LedgerTable};
use crate::aws::sqs::Received;
use crate::report::Disposition;
use crate::settle::{Ack, Verdict};

use super::ledger::fix_error;
use super::outcome::{FixError, FixResult};
use super::undo_resource::{apply, observe};
use super::{Executor, Refusal, Sender};

/// What the executor checked of an undo task before acting.
struct Checked {
    original: LedgerEntry,
    approver: Principal,
}

impl Executor {
    /// The undo exception covering this finding now, if any: the reason to leave it.
    pub(super) async fn undone(&self, task: &Task) -> Result<Option<String>, FixError> {
        let Some(table) = self.ledger.table() else {
            return Ok(None);
        };
        let f = &task.finding;
        let key = redress::ledger::undo::exception_key(
            &task.rule_id,
            &f.account_id,
            &f.region,
            &f.resource_id,
        );
        let found = match table.exception(&key).await {
            Ok(found) => found,
            // An exception can only stop fixes: one that cannot be read stops none (an
            // item under its key that no undo wrote).
            Err(e @ LedgerError::Unreadable { .. }) => {
                tracing::warn!(error = %e, "an unreadable undo exception is ignored");
                None
            }
            Err(e) => return Err(fix_error(e)),
        };
        let now = SystemTime::now();
        let Some(x) = found
            .filter(|x| x.applies(&task.rule_id, &f.account_id, &f.region, &f.resource_id, now))
        else {
            return Ok(None);
        };
        // Only an undo that was carried out (or is being carried out now) leaves a
        // finding alone: an exception left by a crash before the change, or by an undo
        // that then failed, does not.
        let holds = match table.get(&x.undo).await.map_err(fix_error)? {
            Some(e) if e.status == Status::Succeeded => true,
            Some(e) if e.status == Status::Intent => e.lease.is_some_and(|l| l.expires_at > now),
            _ => false,
        };
        Ok(holds.then(|| format!("exempt: {}", x.describe())))
    }

    /// What any undo task must name: a finding the policy still covers, and a ledger
    /// entry of this finding whose change redress made. Returns the entry.
    async fn undo_target(
        &self,
        task: &Task,
        u: &UndoTask,
        table: &LedgerTable,
    ) -> Result<Result<LedgerEntry, Refusal>, FixError> {
        let refuse = |why: String| Ok(Err(Refusal::new(why)));
        if let Err(m) = task.finding.validate() {
            return refuse(format!("invalid finding: {m}"));
        }
        if self.policy.rule(&task.rule_id).is_none() {
            return refuse(format!(
                "no_policy: rule {:?} is not in the executor's policy",
                task.rule_id
            ));
        }
        let Some(original) = table.get(&u.entry).await.map_err(fix_error)? else {
            return refuse(format!("no ledger entry {} in {}", u.entry, table.name()));
        };
        let (f, g) = (&original.finding, &task.finding);
        if original.rule_id != task.rule_id
            || (
                f.account_id.as_str(),
                f.region.as_str(),
                f.resource_id.as_str(),
            ) != (
                g.account_id.as_str(),
                g.region.as_str(),
                g.resource_id.as_str(),
            )
        {
            return refuse(format!(
                "the undo names entry {} but a finding that is not the entry's ({} {} in {}/{})",
                u.entry, original.rule_id, f.resource_id, f.account_id, f.region
            ));
        }
        Ok(Ok(original))
    }

    /// Checks an approved undo task: approved by a listed approver AWS verified, bound
    /// to this undo, asked for earlier through this executor (its ledger holds the undo
    /// with the requester SQS asserted then), and not approved by that requester.
    async fn check_undo(
        &self,
        task: &Task,
        u: &UndoTask,
        sent: Sender<'_>,
        table: &LedgerTable,
    ) -> Result<Result<Checked, Refusal>, FixError> {
        let refuse = |why: String| Ok(Err(Refusal::new(why)));
        let Some(a) = &task.approval else {
            return refuse("an undo runs only with an approver's approval".into());
        };
        // A forged fix can only close something; a forged undo opens it. So an undo
        // needs a named approver, never "whoever the queue admits".
        if self.approvers.is_open() {
            return refuse(
                "an undo needs the policy's [approvals] approvers list: with none, anyone the tasks queue admits could approve one"
                    .into(),
            );
        }
        let verified = match self.check_approval(task, a, sent, &u.digest(), || {
            format!("undo {}: {}", u.entry, u.plan.describe())
        }) {
            Ok(v) => v,
            Err(m) => return refuse(format!("approval refused: {m}")),
        };
        // Four eyes, by what AWS asserted: the requester is the SenderId the executor
        // recorded when the undo was asked; the approver is this task's SenderId.
        let recorded = table.get(&u.entry_id()).await.map_err(fix_error)?;
        let asked = recorded
            .as_ref()
            .and_then(|e| match (&e.actor, e.action.undo()) {
                (Some(Actor::Undo { requested_by, .. }), Some(of)) if of.entry == u.entry => {
                    Some((requested_by.clone(), of.plan.clone()))
                }
                _ => None,
            });
        let Some((requested_by, asked_plan)) = asked else {
            return refuse(format!(
                "no undo of {} was asked through this executor's ledger (ask with `redress undo`)",
                u.entry
            ));
        };
        if requested_by.user_id != u.requested_by.user_id || asked_plan != u.plan {
            return refuse(format!(
                "the approved undo is not the one asked: the ledger holds {} asked by {}",
                asked_plan.describe(),
                requested_by.user_id
            ));
        }
        if verified.unique_id == requested_by.user_id {
            return refuse(format!(
                "the undo was approved by the person who asked for it ({}); another approver must approve it",
                verified.actor()
            ));
        }
        let original = match self.undo_target(task, u, table).await? {
            Ok(o) => o,
            Err(refusal) => return Ok(Err(refusal)),
        };
        Ok(Ok(Checked {
            original,
            approver: Principal {
                arn: verified.actor(),
                user_id: verified.unique_id,
            },
        }))
    }

    /// An undo asked for (`redress undo`, no approval): recorded in the ledger as
    /// awaiting approval with the requester SQS asserts, planned again, and turned into
    /// an approval request. Nothing changes.
    async fn ask_undo(
        &self,
        task: Task,
        u: UndoTask,
        m: &Received,
        table: &LedgerTable,
        mut r: AuditRecord,
        subject: String,
    ) -> Verdict {
        let sender = m.sender_id.as_deref().unwrap_or("no one");
        // Exactly: a role's sessions are different people.
        if sender != u.requested_by.user_id {
            let why = format!(
                "the undo names {} ({}) as who asked, but SQS says it was sent by {sender}",
                u.requested_by.arn, u.requested_by.user_id
            );
            return self.refuse(&task, Refusal::new(why), r, subject).await;
        }
        let original = match self.undo_target(&task, &u, table).await {
            Ok(Ok(o)) => o,
            Ok(Err(refusal)) => return self.refuse(&task, refusal, r, subject).await,
            Err(e) => return self.failed(e, m.receive_count, r, subject),
        };
        let plan = match self.replan(&task, &u, &original).await {
            Ok(Ok(p)) => p,
            Ok(Err(refusal)) => return self.refuse(&task, refusal, r, subject).await,
            Err(e) => return self.failed(e, m.receive_count, r, subject),
        };
        let now = SystemTime::now();
        let asked = UndoRequest {
            reason: u.reason.clone(),
            until: u.until_time().unwrap_or(now),
            force: u.force,
            requested_by: u.requested_by.clone(),
        };
        let requested_at = redress::time::parse_rfc3339(&u.requested_at).unwrap_or(now);
        let entry = match undo_entry(&original, plan, &asked, requested_at) {
            Ok(e) => e,
            Err(refusal) => {
                let why = format!("undo refused: {refusal}");
                return self.refuse(&task, Refusal::new(why), r, subject).await;
            }
        };
        match table
            .write(&entry, &Expect::Absent, self.ledger.retention())
            .await
        {
            Ok(()) => {}
            // Asked before (a redelivery): ask the approver again only while it waits.
            Err(LedgerError::HeldByAnother) => match table.get(&entry.id).await {
                Ok(Some(e)) if e.status == Status::AwaitingApproval => {}
                Ok(Some(e)) => {
                    let why = format!("duplicate: undo {} is already {}", e.id, e.status);
                    return self.skip(r, subject, why);
                }
                Ok(None) => {}
                Err(e) => return self.failed(fix_error(e), m.receive_count, r, subject),
            },
            Err(e) => return self.failed(fix_error(e), m.receive_count, r, subject),
        }
        let EntryAction::Remediate(action) = &original.action else {
            let why = format!("{} is itself an undo", u.entry);
            return self.refuse(&task, Refusal::new(why), r, subject).await;
        };
        let request = redress::ledger::undo::approval_request(
            &original,
            action,
            task.clone(),
            self.policy.approvals.ttl,
            &self.policy.version,
            now,
        )
        .expect("an undo task");
        r.decision = AuditDecision::ApprovalRequested;
        r.actor = Some(u.requested_by.arn.clone());
        r.actor_id = Some(u.requested_by.user_id.clone());
        r.reason = Some(format!(
            "undo of {} asked: {}; approval id {}",
            u.entry, u.reason, request.id
        ));
        let line = format!(
            "{} (undo of {}: {})",
            request.id,
            u.entry,
            request.describe_action()
        );
        let body = serde_json::to_string(&ApprovalsMessage::Request(Box::new(request)))
            .expect("a request serialises");
        Verdict::done()
            .send(&self.approvals, body)
            .record(r)
            .report(Disposition::AwaitingApproval, subject, line)
    }

    /// The undo planned again from the resource as it is now; refused when it is not the
    /// plan the task carries (the resource changed since it was asked or approved).
    async fn replan(
        &self,
        task: &Task,
        u: &UndoTask,
        original: &LedgerEntry,
    ) -> Result<Result<UndoPlan, Refusal>, FixError> {
        let f = &task.finding;
        let seams = self.targets.seams(&f.account_id, &f.region).await?;
        let change = original
            .change
            .clone()
            .unwrap_or_else(|| Change::RunbookInverse {
                document: String::new(),
                inverse: String::new(),
                restored: Default::default(),
            });
        let observed = observe(&seams, &change).await?;
        let plan = match plan_undo(original, &observed, Catalog::shipped(), u.force) {
            Ok(p) => p,
            Err(refusal) => return Ok(Err(Refusal::new(format!("undo refused: {refusal}")))),
        };
        if plan != u.plan {
            return Ok(Err(Refusal::new(format!(
                "undo refused: the resource changed since the undo was asked or approved: it would now {}, but the undo says: {}",
                plan.describe(),
                u.plan.describe()
            ))));
        }
        Ok(Ok(plan))
    }

    /// An undo task: asked (no approval yet) or approved (see the module's notes).
    pub(super) async fn undo(&self, task: Task, m: &Received) -> Verdict {
        let u = task.undo.clone().expect("called for undo tasks only");
        let f = &task.finding;
        let (mut r, subject) = self.record(&task);
        r.action = Some(format!("undo {}", u.entry));
        let Some(table) = self.ledger.table() else {
            let why = "an undo needs the ledger (--ledger-table), which this executor runs without"
                .to_string();
            return self.refuse(&task, Refusal::new(why), r, subject).await;
        };
        if task.approval.is_none() {
            return self.ask_undo(task, u, m, table, r, subject).await;
        }
        let sent = Sender {
            sender_id: m.sender_id.as_deref(),
            sent_at_ms: m.sent_at_ms,
        };
        let checked = match self.check_undo(&task, &u, sent, table).await {
            Ok(Ok(c)) => c,
            Ok(Err(refusal)) => return self.refuse(&task, refusal, r, subject).await,
            Err(e) => return self.failed(e, m.receive_count, r, subject),
        };
        r.actor = Some(checked.approver.arn.clone());
        r.actor_id = Some(checked.approver.user_id.clone());
        let key = format!("{}/{}/{}", f.account_id, f.region, f.resource_id);
        let _guard = self.locks.lock(&key).await;
        let seams = match self.targets.seams(&f.account_id, &f.region).await {
            Ok(s) => s,
            Err(e) => return self.failed(e.into(), m.receive_count, r, subject),
        };
        let plan = match self.replan(&task, &u, &checked.original).await {
            Ok(Ok(p)) => p,
            Ok(Err(refusal)) => return self.refuse(&task, refusal, r, subject).await,
            Err(e) => return self.failed(e, m.receive_count, r, subject),
        };
        if self.dry_run || task.dry_run {
            r.outcome = Some(Outcome::DryRun);
            let why = format!("would {}", plan.describe());
            r.reason = Some(why.clone());
            return Verdict::done()
                .record(r)
                .report(Disposition::DryRun, subject, why);
        }
        if let Some(why) = self.guards.kill_switch().await {
            let why = format!(
                "undo held: {why}; replay it from the dead-letter queue once the switch is off"
            );
            return self.refuse(&task, Refusal::new(why), r, subject).await;
        }
        let entry = match self.begin_undo(table, &checked, &u, plan.clone()).await {
            Ok(e) => e,
            Err(verdict) => return verdict(self, r, subject, m.receive_count),
        };
        let exception = UndoException::of(&entry).expect("an undo entry has an exception");
        if let Err(e) = table.put_exception(&exception).await {
            let e = FixError {
                message: format!(
                    "the undo's exception could not be recorded, so nothing was changed: {}",
                    fix_error(e).message
                ),
                ..FixError::transient("")
            };
            let failed: FixResult = Err(e.clone());
            self.end_undo(table, entry, &failed).await;
            return self.failed(e, m.receive_count, r, subject);
        }
        let result = apply(&seams, &plan).await;
        self.end_undo(table, entry, &result).await;
        match result {
            Ok(done) => {
                mark_undone(table, &checked.original, self.ledger.retention()).await;
                r.outcome = Some(Outcome::Succeeded);
                r.reason = Some(format!(
                    "{}; undo of {} ({}); {}",
                    done.detail,
                    u.entry,
                    u.reason,
                    exception.describe()
                ));
                Verdict::done().record(r).report(
                    Disposition::Fixed,
                    subject,
                    format!("undone {}: {}", u.entry, done.detail),
                )
            }
            Err(e) => {
                if let Err(x) = table.end_exception(&exception, SystemTime::now()).await {
                    tracing::error!(error = %x, "the failed undo's exception could not be ended; it lapses at its end");
                }
                self.failed(e, m.receive_count, r, subject)
            }
        }
    }
}

/// A verdict to give instead of acting, once the audit record is at hand.
type Instead = Box<dyn FnOnce(&Executor, AuditRecord, String, u32) -> Verdict + Send>;

impl Executor {
    /// Records the undo's entry as an intent this executor holds, approved by the
    /// verified approver. A duplicate delivery finds it finished or held.
    async fn begin_undo(
        &self,
        table: &LedgerTable,
        checked: &Checked,
        u: &UndoTask,
        plan: UndoPlan,
    ) -> Result<LedgerEntry, Instead> {
        let now = SystemTime::now();
        let request = UndoRequest {
            reason: u.reason.clone(),
            until: u.until_time().unwrap_or(now),
            force: u.force,
            requested_by: u.requested_by.clone(),
        };
        // The entry's id comes from the request's time, so every delivery of one
        // approved undo claims the same entry (a duplicate finds it held or finished).
        let requested_at = redress::time::parse_rfc3339(&u.requested_at).unwrap_or(now);
        let mut entry = match undo_entry(&checked.original, plan, &request, requested_at) {
            Ok(e) => e,
            Err(refusal) => {
                let why = format!("undo refused: {refusal}");
                return Err(Box::new(move |x: &Executor, r, subject, _| {
                    x.skip_refused(r, subject, why)
                }));
            }
        };
        entry.actor = Some(Actor::Undo {
            requested_by: u.requested_by.clone(),
            approver: Some(checked.approver.clone()),
        });
        let (holder, ttl) = self.ledger.holder();
        let existing = match table.get(&entry.id).await {
            Ok(e) => e,
            Err(e) => {
                let e = fix_error(e);
                return Err(Box::new(move |x: &Executor, r, s, attempt| {
                    x.failed(e, attempt, r, s)
                }));
            }
        };
        let how = match lease::may_take(existing.as_ref(), holder, now) {
            Ok(how) => how,
            Err(busy) => return Err(busy_verdict(&entry, busy)),
        };
        if let Some(stored) = existing {
            // The undo as asked (its requester as SQS asserted then), now approved.
            let requested_by = match &stored.actor {
                Some(Actor::Undo { requested_by, .. }) => requested_by.clone(),
                _ => u.requested_by.clone(),
            };
            entry = stored;
            entry.actor = Some(Actor::Undo {
                requested_by,
                approver: Some(checked.approver.clone()),
            });
        }
        lease::take(&mut entry, holder, now, ttl).expect("may_take allows the move to intent");
        match table
            .write(&entry, &how.expect(holder), self.ledger.retention())
            .await
        {
            Ok(()) => Ok(entry),
            Err(LedgerError::HeldByAnother) => Err(Box::new(|_: &Executor, _, subject, _| {
                Verdict::ack(Ack::Retry { after_secs: 5 }).report(
                    Disposition::Retrying,
                    subject,
                    "another executor took this undo; handed back",
                )
            })),
            Err(e) => {
                let e = fix_error(e);
                Err(Box::new(move |x: &Executor, r, s, attempt| {
                    x.failed(e, attempt, r, s)
                }))
            }
        }
    }

    /// Completes the undo's entry with its outcome.
    async fn end_undo(&self, table: &LedgerTable, mut entry: LedgerEntry, result: &FixResult) {
        let (holder, _) = self.ledger.holder();
        let Ok(expect) = lease::may_complete(&entry, holder) else {
            return;
        };
        let to = match result {
            Ok(done) => {
                entry.change = done.change.clone();
                entry.reason = Some(done.detail.clone());
                Status::Succeeded
            }
            Err(e) => {
                entry.reason = Some(e.message.clone());
                Status::Failed
            }
        };
        entry
            .advance(to, SystemTime::now())
            .expect("an intent may end in any outcome");
        if let Err(e) = table.write(&entry, &expect, self.ledger.retention()).await {
            tracing::error!(entry = %entry.id, error = %e, "the undo's outcome was not recorded in the ledger; the entry stays open");
        }
    }

    /// A refusal found while recording: audited as a skip of nothing.
    fn skip_refused(&self, r: AuditRecord, subject: String, why: String) -> Verdict {
        let mut r = r.reason(&why);
        r.decision = AuditDecision::DeadLettered;
        Verdict::dead_letter(crate::settle::DeadLetterClass::Refused, &why)
            .record(r)
            .report(Disposition::DeadLettered, subject, why)
    }
}

/// The verdict when the undo's entry is finished (a duplicate) or held by another.
fn busy_verdict(entry: &LedgerEntry, busy: Busy) -> Instead {
    let id = entry.id.clone();
    match busy {
        Busy::Finished(status) => Box::new(move |x: &Executor, r, subject, _| {
            x.skip(
                r,
                subject,
                format!("duplicate: undo {id} is already {status}"),
            )
        }),
        Busy::Held(_) => {
            let why = format!("undo {id}: {busy}; handed back");
            Box::new(move |_: &Executor, _, subject, _| {
                Verdict::ack(Ack::Retry { after_secs: 5 }).report(
                    Disposition::Retrying,
                    subject,
                    why,
                )
            })
        }
    }
}

/// Moves the undone fix's entry to `undone`, conditional on it being as read. A failure
/// is logged: the undo's own entry records what happened either way.
async fn mark_undone(
    table: &LedgerTable,
    original: &LedgerEntry,
    retention: Option<std::time::Duration>,
) {
    let expect = Expect::Entry {
        status: original.status,
        lease: original.lease.clone(),
    };
    let mut e = original.clone();
    if let Err(x) = e.advance(Status::Undone, SystemTime::now()) {
        tracing::error!(entry = %e.id, error = %x, "the undone entry cannot be marked undone");
        return;
    }
    if let Err(x) = table.write(&e, &expect, retention).await {
        tracing::error!(entry = %e.id, error = %x, "the undone entry was not marked undone in the ledger");
    }
}
