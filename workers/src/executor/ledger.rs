//! The executor's side of the remediation ledger: the one place it records a change.
//! [`Ledger::begin`] writes the intent before the change, holding the finding's lease
//! (so no other executor acts on it meanwhile); [`Ledger::finish`] completes the entry
//! with the outcome and the state before and after, as the fix reported them.
//!
//! The ledger is optional: [`Ledger::off`] records nothing and holds nothing, and the
//! executor then works as it did without one. With one, every write is conditional on
//! what was read ([`redress::ledger::Expect`]), so of two executors given the same
//! finding exactly one acts; the other hands the task back to the queue.

use std::time::{Duration, SystemTime};

use redress::audit::Outcome;
use redress::ledger::lease::{self, Busy};
use redress::ledger::{Actor, Change, EntryAction, EntryId, LedgerEntry, Status};
use redress::message::Task;
use redress::policy::RenderedAction;

use crate::aws::ledger::{LedgerError, LedgerTable};
use crate::aws::retry::{with_backoff, ErrorClass};

use super::outcome::{FixError, FixResult};

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

    /// Before a change: takes the finding's lease and records the intent (the action,
    /// who acts, and `before`, what is known of the change before it is made). Returns
    /// the entry as written, for [`finish`](Self::finish); `None` without a ledger.
    pub async fn begin(
        &self,
        task: &Task,
        action: &RenderedAction,
        actor: Actor,
        before: Option<Change>,
    ) -> Result<Option<LedgerEntry>, NotNow> {
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
        // What this attempt will do, as decided now (an earlier attempt's result and
        // reason no longer stand).
        entry.action = EntryAction::Remediate(action.clone());
        entry.actor = Some(actor);
        entry.change = before;
        entry.execution_id = None;
        entry.reason = None;
        lease::take(&mut entry, &self.holder, now, self.lease)
            .expect("may_take allows only takes whose status may move to intent");
        match table
            .write(&entry, &how.expect(&self.holder), self.retention)
            .await
        {
            Ok(()) => Ok(Some(entry)),
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
    pub async fn finish(&self, intent: Option<LedgerEntry>, result: &FixResult) {
        let (Some(table), Some(mut entry)) = (&self.table, intent) else {
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
                if done.change.is_some() {
                    entry.change = done.change.clone();
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
        entry.reason = Some(reason);
        entry
            .advance(to, SystemTime::now())
            .expect("an intent may end in any outcome");
        let written = with_backoff(OUTCOME_PATIENCE, || async {
            match table.write(&entry, &expect, self.retention).await {
                Err(LedgerError::Aws(e)) => Err(e),
                other => Ok(other),
            }
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
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

fn unavailable(e: LedgerError) -> NotNow {
    NotNow::Unavailable(match e {
        LedgerError::Aws(e) => FixError::from(e),
        other => FixError {
            class: ErrorClass::Permanent,
            message: format!("ledger: {other}"),
            execution_id: None,
            refused: false,
        },
    })
}

#[cfg(test)]
#[path = "test_ledger.rs"]
mod tests;
