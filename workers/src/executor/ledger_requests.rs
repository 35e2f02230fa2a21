//! Approval requests in the ledger, as the executor records them. Every request the
//! pipeline makes with a ledger configured passes through the executor (the router hands
//! it findings that need approval), which records it as an `awaiting_approval` entry
//! under the id the approved task later claims ([`EntryId::for_task`]), before sending
//! it. Only the executor writes entries whole; approvers record their decisions with a
//! narrow update ([`crate::aws::ledger::LedgerTable::decide`]), and `redress sweep`
//! compares the queue with these entries ([`redress::ledger::reconcile`]).
//!
//! A failed ledger write is logged and the request is still made: a person must hear of
//! the finding even when the ledger is down (the sweep records it later).

use std::time::{Duration, SystemTime};

use redress::ledger::{EntryAction, EntryId, Expect, LedgerEntry, Status};
use redress::message::ApprovalRequest;

use crate::aws::ledger::{LedgerError, LedgerTable};

use super::Executor;

/// What the ledger held for a request's finding when it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A new `awaiting_approval` entry.
    New,
    /// The entry was waiting already (a copy of the request, or one put back); an
    /// approval an executor gave back is cleared, since a fresh decision is asked for.
    Waiting,
    /// The finding's entry is in another status.
    Other(Status),
}

/// Records `request` (not an undo's) in `table` as an `awaiting_approval` entry,
/// conditional on there being no entry for its finding yet.
pub async fn record(
    table: &LedgerTable,
    request: &ApprovalRequest,
    retention: Option<Duration>,
) -> Result<Recorded, LedgerError> {
    let task = &request.task;
    let mut entry = LedgerEntry::new(
        EntryId::for_task(task),
        &task.rule_id,
        task.severity,
        task.finding.clone(),
        EntryAction::Remediate(request.proposed_action.clone()),
        Status::AwaitingApproval,
        SystemTime::now(),
    )
    .expect("an entry may start awaiting approval");
    entry.approval_request = Some(request.id.clone());
    entry.policy_version = request.policy_version.clone();
    match table.write(&entry, &Expect::Absent, retention).await {
        Ok(()) => return Ok(Recorded::New),
        Err(LedgerError::HeldByAnother) => {}
        Err(e) => return Err(e),
    }
    let Some(mut stored) = table.get(&entry.id).await? else {
        // Written and removed between the two calls: nothing to add to.
        return Ok(Recorded::Waiting);
    };
    // A request that expired unanswered is asked again when its finding comes back (a
    // person's rejection stands for that evaluation; a new evaluation is a new entry).
    // The decision sits beside a stored `awaiting_approval`, which the whole write
    // replaces.
    if stored.decision.is_some() && matches!(stored.status, Status::Expired | Status::Skipped) {
        let expect = Expect::Entry {
            status: Status::AwaitingApproval,
            lease: stored.lease.clone(),
        };
        table.write(&entry, &expect, retention).await?;
        return Ok(Recorded::New);
    }
    if stored.status != Status::AwaitingApproval {
        return Ok(Recorded::Other(stored.status));
    }
    if stored.approved_at.is_some() {
        let expect = Expect::Entry {
            status: Status::AwaitingApproval,
            lease: stored.lease.clone(),
        };
        stored.approved_by = None;
        stored.approved_at = None;
        stored.times.updated_at = redress::ledger::model::second(SystemTime::now());
        table.write(&stored, &expect, retention).await?;
    }
    Ok(Recorded::Waiting)
}

impl Executor {
    /// Records an approval request in the ledger before it is sent. Returns why not to
    /// send it when the ledger says this finding was decided already (rejected, expired,
    /// moot, or acted on): a new request for it could never be acted on, since the
    /// approved task's claim needs a waiting entry. A failed write is logged and the
    /// request goes ahead. Undo requests and an executor without a ledger record nothing.
    pub(super) async fn record_request(&self, request: &ApprovalRequest) -> Option<String> {
        let table = self.ledger.table()?;
        if request.task.undo.is_some() {
            return None;
        }
        match record(table, request, self.ledger.retention()).await {
            Ok(Recorded::New | Recorded::Waiting | Recorded::Other(Status::Failed)) => None,
            Ok(Recorded::Other(status)) => Some(format!(
                "decided: ledger entry {} of this finding is already {status}; no new approval request",
                EntryId::for_task(&request.task)
            )),
            Err(e) => {
                tracing::error!(request = %request.id, error = %e, "the approval request was not recorded in the ledger; it is sent anyway (`redress sweep` records it)");
                None
            }
        }
    }
}
