//! The executor's side of the remediation ledger: the one place it records a change.
//! [`Ledger::begin`] writes the intent before the change, holding the finding's lease
//! (so no other executor acts on it meanwhile); [`Ledger::finish`] completes the entry
//! with the outcome and the state before and after, as the fix reported them.
//!
//! An intent whose holder died before its outcome (its lease lapsed) is taken over and
//! recovered: [`Ledger::begin`] re-checks the resource against the change the intent
//! recorded ([`redress::ledger::recovery`]), and a change found made is completed
//! without being made again ([`Intent::made`]).
//!
//! The ledger is optional: [`Ledger::off`] records nothing and holds nothing, and the
//! executor then works as it did without one. With one, every write is conditional on
//! what was read ([`redress::ledger::Expect`]), so of two executors given the same
//! finding exactly one acts; the other hands the task back to the queue.

use std::ops::Deref;
use std::time::{Duration, SystemTime};

use redress::audit::Outcome;
use redress::ingress::Permission;
use redress::ledger::lease::{self, Busy, Take};
use redress::ledger::recovery::{self, Recovery};
use redress::ledger::{Actor, Change, EntryAction, EntryId, LedgerEntry, Status};
use redress::message::Task;
use redress::policy::RenderedAction;

use crate::aws::ledger::{LedgerError, LedgerTable};
use crate::aws::retry::ErrorClass;

use super::outcome::{Done, FixError, FixResult};

/// How long an outcome write rides out transient errors: the change is made, and its
/// record should not be lost to a short outage.
const OUTCOME_PATIENCE: Duration = Duration::from_secs(20);

/// Why the executor must not act on a finding now.
#[derive(Debug)]
pub enum NotNow {
    /// Another executor holds the finding's lease, or took it between this executor's
    /// read and its write: try again after `retry_after`.
    Held {
        /// Who holds it, until when, as far as the entry says.
        why: String,
        /// When the holder's lease lapses (within bounds): by then it has finished, or died.
        retry_after: Duration,
    },
    /// The finding was dealt with already (a duplicate delivery).
    Finished {
        /// The entry.
        id: EntryId,
        /// Its status.
        status: Status,
    },
    /// The ledger could not be read or written: not knowing, do not act.
    Unavailable(FixError),
}

/// An intent as [`Ledger::begin`] wrote it, for [`Ledger::finish`]: the entry (which it
/// derefs to), and, when it took over a crashed attempt's intent, what the re-check found.
#[derive(Debug, Clone)]
pub struct Intent {
    entry: LedgerEntry,
    recovered: Option<Recovered>,
}

/// A take-over's re-check of the resource.
#[derive(Debug, Clone)]
struct Recovered {
    decision: Recovery,
    /// The entry's reason: who crashed, what was found, what is done about it.
    note: String,
}

impl Deref for Intent {
    type Target = LedgerEntry;
    fn deref(&self) -> &LedgerEntry {
        &self.entry
    }
}

impl Intent {
    /// When the crashed attempt this intent took over was found to have made its change:
    /// the outcome to report and record instead of making it again.
    pub fn made(&self) -> Option<Done> {
        match &self.recovered {
            Some(Recovered {
                decision: Recovery::Made(change),
                note,
            }) => Some(Done {
                execution_id: self.entry.execution_id.clone(),
                ..Done::succeeded(note.clone(), change.clone())
            }),
            _ => None,
        }
    }
}

/// The remediation ledger as the executor uses it.
#[derive(Debug)]
pub struct Ledger {
    table: Option<LedgerTable>,
    holder: String,
    lease: Duration,
    retention: Option<Duration>,
}

impl Ledger {
    /// No ledger: nothing recorded, no lease taken.
    pub fn off() -> Ledger {
        Ledger {
            table: None,
            holder: String::new(),
            lease: Duration::ZERO,
            retention: None,
        }
    }

    /// Records in `table` as `holder` (unique per executor process), each lease held for
    /// `lease` (longer than any fix takes: there is no renewal yet), finished entries
    /// kept for `retention`.
    pub fn new(
        table: LedgerTable,
        holder: &str,
        lease: Duration,
        retention: Option<Duration>,
    ) -> Ledger {
        Ledger {
            table: Some(table),
            holder: holder.to_string(),
            lease,
            retention,
        }
    }

    /// The table, when there is a ledger.
    pub fn table(&self) -> Option<&LedgerTable> {
        self.table.as_ref()
    }

    /// Who this executor is in leases, and how long it holds one.
    pub fn holder(&self) -> (&str, Duration) {
        (&self.holder, self.lease)
    }

    /// How long finished entries are kept.
    pub fn retention(&self) -> Option<Duration> {
        self.retention
    }

    /// Before a change: takes the finding's lease and records the intent (the action,
    /// who acts, and `before`, what is known of the change before it is made, read just
    /// now). Returns the intent as written, for [`finish`](Self::finish); `None` without
    /// a ledger.
    ///
    /// Taking over a crashed attempt's intent, it first decides from `before` (for a
    /// revoke, the group's ingress now) whether that attempt's recorded change was made
    /// ([`recovery::decide`]); the intent then says so, and [`Intent::made`] tells the
    /// caller not to make a change found made.
    pub async fn begin(
        &self,
        task: &Task,
        action: &RenderedAction,
        actor: Actor,
        before: Option<Change>,
    ) -> Result<Option<Intent>, NotNow> {
        let Some(table) = &self.table else {
            return Ok(None);
        };
        let id = EntryId::for_task(task);
        let now = SystemTime::now();
        let existing = table.get(&id).await.map_err(unavailable)?;
        let how = lease::may_take(existing.as_ref(), &self.holder, now)
            .map_err(|busy| not_now(&id, busy))?;
        let mut entry = match existing {
            Some(e) => e,
            None => LedgerEntry::for_task(task, action.clone(), Status::Intent, now)
                .expect("an entry may start as an intent"),
        };
        let recovered = match &how {
            Take::TakeOver { from } => {
                let decision = recovery::decide(entry.change.as_ref(), ingress_now(&before));
                let note = decision.note(from.as_ref());
                tracing::warn!(entry = %id, %note, "taking over a crashed attempt's intent");
                Some(Recovered { decision, note })
            }
            _ => None,
        };
        // What this attempt will do, as decided now (an earlier attempt's result and
        // reason no longer stand), except that a change found made stays as recorded.
        entry.action = EntryAction::Remediate(action.clone());
        entry.actor = Some(actor);
        let made = matches!(&recovered, Some(r) if matches!(r.decision, Recovery::Made(_)));
        if !made {
            entry.change = before;
            entry.execution_id = None;
        }
        entry.reason = recovered.as_ref().map(|r| r.note.clone());
        lease::take(&mut entry, &self.holder, now, self.lease)
            .expect("may_take allows only takes whose status may move to intent");
        match table
            .write(&entry, &how.expect(&self.holder), self.retention)
            .await
        {
            Ok(()) => Ok(Some(Intent { entry, recovered })),
            // Someone wrote between the read and the write: say who, if the entry says.
            Err(LedgerError::HeldByAnother) => {
                let seen = table.get(&id).await.ok().flatten();
                Err(
                    match lease::may_take(seen.as_ref(), &self.holder, SystemTime::now()) {
                        Err(busy) => not_now(&id, busy),
                        Ok(_) => NotNow::Held {
                            why: format!("ledger entry {id}: {}", LedgerError::HeldByAnother),
                            retry_after: MIN_RETRY,
                        },
                    },
                )
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// After the change: completes the intent with the outcome (`succeeded`, `skipped`
    /// when there was nothing to do, or `failed`), the state before and after, the
    /// execution and the reason, releasing the lease. A write that fails is logged: the
    /// change is made and its message must still settle; the entry stays open, and its
    /// lapsed lease shows the crash-like gap.
    ///
    /// A recovered intent's reason says so, and a partly made change is recorded whole
    /// (what the crashed attempt made and what this one did).
    pub async fn finish(&self, intent: Option<Intent>, result: &FixResult) {
        let (
            Some(table),
            Some(Intent {
                mut entry,
                recovered,
            }),
        ) = (&self.table, intent)
        else {
            return;
        };
        let expect = match lease::may_complete(&entry, &self.holder) {
            Ok(expect) => expect,
            Err(e) => {
                tracing::error!(entry = %entry.id, error = %e, "not this executor's to complete");
                return;
            }
        };
        let (to, reason) = match result {
            Ok(done) if done.outcome == Outcome::Succeeded => {
                let change = match &recovered {
                    Some(r) => r.decision.merge(done.change.clone()),
                    None => done.change.clone(),
                };
                if change.is_some() {
                    entry.change = change;
                }
                entry.execution_id = done.execution_id.clone();
                (Status::Succeeded, done.detail.clone())
            }
            Ok(done) => {
                // Nothing was changed: no state before or after to keep.
                entry.change = None;
                entry.execution_id = done.execution_id.clone();
                (Status::Skipped, done.detail.clone())
            }
            Err(e) => {
                entry.execution_id = e.execution_id.clone();
                (Status::Failed, e.message.clone())
            }
        };
        entry.reason = Some(match recovered {
            // The outcome of a change found made is the note itself.
            Some(r) if matches!(r.decision, Recovery::Made(_)) => r.note,
            Some(r) => format!("{}; {reason}", r.note),
            None => reason,
        });
        entry
            .advance(to, SystemTime::now())
            .expect("an intent may end in any outcome");
        match table
            .write_patiently(&entry, &expect, self.retention, OUTCOME_PATIENCE)
            .await
        {
            Ok(()) => {}
            Err(e @ LedgerError::HeldByAnother) => {
                tracing::error!(entry = %entry.id, error = %e, "the outcome was not recorded in the ledger: another executor took the entry over")
            }
            Err(e) => {
                tracing::error!(entry = %entry.id, error = %e, "the outcome was not recorded in the ledger; the entry stays open")
            }
        }
    }
}

/// Bounds of the wait before a held finding is tried again.
const MIN_RETRY: Duration = Duration::from_secs(5);
const MAX_RETRY: Duration = Duration::from_secs(300);

fn not_now(id: &EntryId, busy: Busy) -> NotNow {
    match busy {
        Busy::Held(ref lease) => NotNow::Held {
            why: format!("ledger entry {id}: {busy}"),
            retry_after: lease
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .clamp(MIN_RETRY, MAX_RETRY),
        },
        Busy::Finished(status) => NotNow::Finished {
            id: id.clone(),
            status,
        },
    }
}

/// The group's ingress as just read, when the change about to be made is a revoke: what
/// a take-over re-checks a crashed revoke against.
fn ingress_now(before: &Option<Change>) -> Option<&[Permission]> {
    match before {
        Some(Change::RevokeIngress { before, .. }) => Some(before),
        _ => None,
    }
}

fn unavailable(e: LedgerError) -> NotNow {
    NotNow::Unavailable(fix_error(e))
}

/// A ledger failure as a fix failure: throttling and outages are retried, an unreadable
/// item is not.
pub(super) fn fix_error(e: LedgerError) -> FixError {
    match e {
        LedgerError::Aws(e) => FixError::from(e),
        other => FixError {
            class: ErrorClass::Permanent,
            message: format!("ledger: {other}"),
            execution_id: None,
            refused: false,
        },
    }
}

#[cfg(test)]
#[path = "test_ledger.rs"]
mod tests;
