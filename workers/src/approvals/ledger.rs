//! The approvals queue against the ledger: decisions recorded on request entries, and
//! the comparison of the queue with the `awaiting_approval` entries
//! ([`redress::ledger::reconcile`]) that `approvals list` reports and `redress sweep`
//! repairs (a request someone deleted by hand goes back on the queue).
//!
//! The ledger is optional and never blocks an approver: without one (or when it cannot
//! be read) the commands work from the queue alone, and a decision that cannot be
//! recorded is logged.

use std::time::{Duration, SystemTime};

use redress::audit::{AuditDecision, AuditRecord};
use redress::ledger::reconcile::{self, RequestDecision};
use redress::ledger::{EntryId, LedgerEntry, Status};
use redress::message::{ApprovalRequest, ApprovalsMessage};
use redress::policy::Policy;
use serde::Serialize;

use crate::aws::ec2::SecurityGroups;
use crate::aws::ledger::{Index, LedgerError, LedgerTable};
use crate::aws::sqs::Queue;
use crate::cli::Global;
use crate::executor::ledger_requests::{self, Recorded};

/// The ledger table the approvals commands and the sweep compare with, if one is
/// configured (`--ledger-table`, or the default).
pub fn table(global: &Global, clients: &crate::aws::Clients) -> Option<LedgerTable> {
    let name = global.ledger_to_read().ok()?;
    Some(LedgerTable::new(clients.dynamodb.clone(), name))
}

/// The ledger entry a request is recorded under; `None` for an undo request (recorded by
/// the executor only when it runs).
pub fn entry_of(request: &ApprovalRequest) -> Option<EntryId> {
    request
        .task
        .undo
        .is_none()
        .then(|| EntryId::for_task(&request.task))
}

/// Records a decision on the request's entry. Best effort: a failure is logged (the
/// queue is the record of what waits; the sweep finds what the ledger missed).
pub async fn decide(table: Option<&LedgerTable>, request: &ApprovalRequest, d: RequestDecision) {
    let (Some(table), Some(id)) = (table, entry_of(request)) else {
        return;
    };
    match table.decide(&id, &d).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(request = %request.id, entry = %id, "the request's ledger entry is not waiting (never recorded, or decided already); left as it is")
        }
        Err(e) => {
            tracing::warn!(request = %request.id, entry = %id, error = %e, "the decision was not recorded in the ledger")
        }
    }
}

/// The `awaiting_approval` entries, or `None` when there is no ledger to read (no
/// table, or not readable: logged).
pub async fn awaiting(table: Option<&LedgerTable>) -> Option<Vec<LedgerEntry>> {
    let table = table?;
    match table
        .query(Index::Open, Status::AwaitingApproval.as_str(), None)
        .await
    {
        Ok(entries) => Some(entries),
        Err(LedgerError::Aws(e)) if e.code == "ResourceNotFoundException" => {
            tracing::debug!(
                table = table.name(),
                "no ledger table: the queue is not compared with it"
            );
            None
        }
        Err(e) => {
            tracing::warn!(table = table.name(), error = %e, "cannot read the ledger's waiting requests; the queue is not compared with it");
            None
        }
    }
}

/// A request the ledger records as waiting that is not on the queue.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    /// The ledger entry.
    pub entry: String,
    /// The approval request's id.
    pub request: String,
    /// Policy rule id.
    pub rule: String,
    /// The resource.
    pub resource_id: String,
    /// When the request was recorded.
    pub recorded_at: String,
}

impl Missing {
    fn of(e: &LedgerEntry) -> Missing {
        Missing {
            entry: e.id.to_string(),
            request: e
                .approval_request
                .clone()
                .or_else(|| reconcile::task_for(e).map(|t| t.approval_id()))
                .unwrap_or_default(),
            rule: e.rule_id.clone(),
            resource_id: e.finding.resource_id.clone(),
            recorded_at: redress::time::format_rfc3339(e.times.decided_at),
        }
    }
}

/// What `approvals list` says of the ledger: requests recorded as waiting but gone from
/// the queue.
pub fn missing(awaiting: &[LedgerEntry], queued: &[EntryId], ttl: Duration) -> Vec<Missing> {
    reconcile::reconcile(awaiting, queued, SystemTime::now(), ttl)
        .missing
        .into_iter()
        .map(Missing::of)
        .collect()
}

/// What the sweep did to bring the queue and the ledger together.
#[derive(Debug, Default, Serialize)]
pub struct Repaired {
    /// Requests the ledger records as waiting that were gone from the queue, put back.
    pub put_back: Vec<Missing>,
    /// Waiting entries past the approval ttl, marked expired.
    pub expired: usize,
    /// Queued requests with no entry (made before the ledger), recorded.
    pub recorded: usize,
    /// Queued requests with no entry that this role may not record (only the executor's
    /// rights write entries): their ids.
    pub unrecorded: Vec<String>,
    /// Steps that failed (see the log); the next sweep tries again.
    pub failed: usize,
}

/// The approvals queue read in full (and made visible again at once): the requests on it.
async fn queued_requests(
    approvals: &Queue,
    visibility: i32,
) -> Result<Vec<ApprovalRequest>, crate::aws::retry::AwsError> {
    let messages = approvals.scan(visibility).await?;
    let handles: Vec<&str> = messages.iter().map(|m| m.receipt_handle.as_str()).collect();
    approvals.release_all(&handles).await?;
    Ok(messages
        .iter()
        .filter_map(
            |m| match serde_json::from_str::<ApprovalsMessage>(&m.body) {
                Ok(ApprovalsMessage::Request(r)) if r.id == r.task.approval_id() => Some(*r),
                _ => None,
            },
        )
        .collect())
}

/// `redress sweep`'s reconciliation: puts back requests deleted by hand (rebuilt from the
/// entry's rule and finding, keeping their first request time and expiry), marks
/// entries past the ttl expired, and records queued requests that have no entry (a write
/// only the executor's rights allow; otherwise they are reported). `dry_run`: only says
/// what it would put back.
pub async fn repair(
    policy: &Policy,
    table: &LedgerTable,
    awaiting: &[LedgerEntry],
    approvals: &Queue,
    groups: &SecurityGroups,
    visibility: i32,
    dry_run: bool,
) -> Result<Repaired, crate::aws::retry::AwsError> {
    let requests = queued_requests(approvals, visibility).await?;
    let ids: Vec<Option<EntryId>> = requests.iter().map(entry_of).collect();
    let queued: Vec<EntryId> = ids.iter().flatten().cloned().collect();
    let ttl = policy.approvals.ttl;
    let found = reconcile::reconcile(awaiting, &queued, SystemTime::now(), ttl);
    let mut out = Repaired::default();
    if dry_run {
        // What would be put back; nothing is written or sent.
        out.put_back = found.missing.into_iter().map(Missing::of).collect();
        return Ok(out);
    }
    for e in found.expired {
        let reason = format!(
            "expired: no decision within the approval ttl ({})",
            humantime::format_duration(ttl)
        );
        match table
            .decide(
                &e.id,
                &RequestDecision::Expired {
                    reason: reason.clone(),
                },
            )
            .await
        {
            Ok(true) => {
                out.expired += 1;
                entry_audit(e, AuditDecision::Expired).reason(reason).emit();
            }
            Ok(false) => {}
            Err(err) => {
                out.failed += 1;
                tracing::warn!(entry = %e.id, error = %err, "cannot mark the entry expired");
            }
        }
    }
    for e in found.missing {
        match put_back(policy, e, approvals, groups).await {
            Ok(()) => out.put_back.push(Missing::of(e)),
            Err(why) => {
                out.failed += 1;
                tracing::warn!(entry = %e.id, error = %why, "cannot put the request back");
            }
        }
    }
    // Entry ids of queued requests, by position among the non-undo ones.
    let recordable: Vec<&ApprovalRequest> = requests
        .iter()
        .zip(&ids)
        .filter(|(_, id)| id.is_some())
        .map(|(r, _)| r)
        .collect();
    for i in found.unrecorded {
        let r = recordable[i];
        match ledger_requests::record(table, r, None).await {
            Ok(Recorded::New) => out.recorded += 1,
            Ok(_) => {}
            Err(LedgerError::Aws(e)) if e.code == "AccessDeniedException" => {
                out.unrecorded.push(r.id.clone())
            }
            Err(e) => {
                out.failed += 1;
                tracing::warn!(request = %r.id, error = %e, "cannot record the request in the ledger");
            }
        }
    }
    Ok(out)
}

/// Rebuilds an entry's request and sends it to the approvals queue, audited.
async fn put_back(
    policy: &Policy,
    e: &LedgerEntry,
    approvals: &Queue,
    groups: &SecurityGroups,
) -> Result<(), String> {
    let task = reconcile::task_for(e)
        .ok_or_else(|| format!("no task of rule {} has the entry's id", e.rule_id))?;
    let mut request = crate::router::approval_request(policy, task, groups, None).await?;
    // The same request as before: asked when it was first asked, expiring then too.
    request.requested_at = redress::time::format_rfc3339(e.times.decided_at);
    request.expires_at = redress::time::format_rfc3339(e.times.decided_at + policy.approvals.ttl);
    let body = serde_json::to_string(&ApprovalsMessage::Request(Box::new(request.clone())))
        .expect("a request serialises");
    approvals.send(&body).await.map_err(|e| e.to_string())?;
    let mut r = entry_audit(e, AuditDecision::ApprovalRequested).reason(format!(
        "put back: request {} is recorded in the ledger (entry {}) but was missing from the approvals queue",
        request.id, e.id
    ));
    r.action = Some(request.label());
    r.emit();
    Ok(())
}

fn entry_audit(e: &LedgerEntry, decision: AuditDecision) -> AuditRecord {
    AuditRecord::for_finding(
        "sweep",
        &e.finding,
        Some(&e.rule_id),
        Some(e.severity),
        decision,
    )
}
