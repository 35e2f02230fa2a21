//! Approval requests in the ledger: what a person's decision writes on a request's entry,
//! and how the approvals queue and the ledger's `awaiting_approval` entries are compared,
//! so a request someone deleted from the queue by hand is noticed and put back.
//!
//! Only the executor writes entries whole (it records each request it makes as an
//! `awaiting_approval` entry under the id the approved task later claims). Approvers
//! record their decisions with a narrow update of the attributes in
//! [`APPROVER_ATTRIBUTES`], nothing else: they can never write a change, an actor or a
//! finding, so no one can fake a fix that an undo would then put back. Undo requests are
//! not recorded as waiting entries (the executor records the undo when it runs it) and
//! stay out of the comparison.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use super::item::{AttrValue, Item, ID};
use super::model::{EntryId, LedgerEntry};
use super::status::Status;
use crate::message::Task;

/// Attribute: the entry's status.
pub const STATUS: &str = "status";
/// Attribute: why.
pub const REASON: &str = "reason";
/// Attribute: a decision on a waiting request ([`LedgerEntry::decision`]).
pub const DECISION: &str = "decision";
/// Attribute: why, with the decision.
pub const DECISION_REASON: &str = "decision_reason";
/// Attribute: who approved (the verified ARN).
pub const APPROVED_BY: &str = "approved_by";
/// Attribute: when.
pub const APPROVED_AT: &str = "approved_at";

/// Every attribute an approver's update may name (the key included, as DynamoDB counts
/// it): the template's `dynamodb:Attributes` condition lists exactly these.
pub const APPROVER_ATTRIBUTES: [&str; 5] =
    [ID, DECISION, DECISION_REASON, APPROVED_BY, APPROVED_AT];

/// A decision on an approval request, as recorded on its entry by whoever made it
/// (`approvals approve`/`reject`, expiry, `prune`, the sweep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestDecision {
    /// A person approved it: the entry stays `awaiting_approval` until an executor claims
    /// it, and says who approved and when.
    Approved {
        /// The approver's ARN, as STS verified it.
        by: String,
        /// When.
        at: SystemTime,
    },
    /// A person rejected it.
    Rejected {
        /// Why, naming who.
        reason: String,
    },
    /// It expired unacted.
    Expired {
        /// Why.
        reason: String,
    },
    /// The resource complied meanwhile (moot, pruned).
    Moot {
        /// Why.
        reason: String,
    },
}

/// One update of an entry: the attributes a decision sets (never the status itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Attributes set, name → value.
    pub set: Vec<(&'static str, AttrValue)>,
}

impl RequestDecision {
    /// The status the entry ends in.
    pub fn status(&self) -> Status {
        match self {
            RequestDecision::Approved { .. } => Status::AwaitingApproval,
            RequestDecision::Rejected { .. } => Status::Rejected,
            RequestDecision::Expired { .. } => Status::Expired,
            RequestDecision::Moot { .. } => Status::Skipped,
        }
    }

    /// What the decision writes. A final decision leaves the `open` index in the same
    /// write, so the index never lists a decided request.
    pub fn update(&self) -> Update {
        let s = |v: &str| AttrValue::S(v.to_string());
        match self {
            RequestDecision::Approved { by, at } => Update {
                set: vec![
                    (APPROVED_BY, s(by)),
                    (
                        APPROVED_AT,
                        s(&crate::time::format_rfc3339(super::model::second(*at))),
                    ),
                ],
            },
            RequestDecision::Rejected { reason }
            | RequestDecision::Expired { reason }
            | RequestDecision::Moot { reason } => Update {
                // `open` stays: readers go by the decision, and no decider may remove
                // an entry from the index of unfinished work (which would hide it).
                set: vec![
                    (DECISION, s(self.status().as_str())),
                    (DECISION_REASON, s(reason)),
                ],
            },
        }
    }
}

impl Update {
    /// The update applied to a stored item (what the store does, for tests and readers).
    pub fn apply(&self, item: &mut Item) {
        for (k, v) in &self.set {
            item.insert((*k).to_string(), v.clone());
        }
    }
}

/// Replays beyond this are not looked for when rebuilding a request's task.
const MAX_GENERATION: u32 = 64;

/// The task whose approval request an `awaiting_approval` entry records: rebuilt from the
/// entry's rule, severity and finding, at the generation whose id is the entry's (a
/// replayed task's is not 0). `None` for an undo, or when no generation fits.
pub fn task_for(entry: &LedgerEntry) -> Option<Task> {
    if entry.is_undo() {
        return None;
    }
    let mut task = Task::new(&entry.rule_id, entry.severity, entry.finding.clone());
    (0..=MAX_GENERATION).find_map(|g| {
        task.generation = g;
        (EntryId::for_task(&task) == entry.id).then(|| task.clone())
    })
}

/// What the approvals queue and the ledger disagree on.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciliation<'a> {
    /// Waiting, unapproved, unexpired entries whose request is not on the queue: deleted
    /// by hand. They go back on the queue.
    pub missing: Vec<&'a LedgerEntry>,
    /// Waiting entries past the approval ttl (counted from the approval, once approved):
    /// they are marked expired.
    pub expired: Vec<&'a LedgerEntry>,
    /// Indices of queued requests with no waiting entry: made before the ledger (or by a
    /// router without one). Recording them is an executor's write, conditional on no
    /// entry existing at all.
    pub unrecorded: Vec<usize>,
}

/// Compares the `awaiting_approval` entries with the entry ids of the requests on the
/// approvals queue (undo requests left out by the caller), at `now`, with the policy's
/// approval `ttl`.
///
/// An approved entry is not missing: its request left the queue for the tasks queue, and
/// an executor will claim it.
pub fn reconcile<'a>(
    awaiting: &'a [LedgerEntry],
    queued: &[EntryId],
    now: SystemTime,
    ttl: Duration,
) -> Reconciliation<'a> {
    let on_queue: BTreeSet<&EntryId> = queued.iter().collect();
    let mut out = Reconciliation::default();
    for e in awaiting {
        if e.status != Status::AwaitingApproval || e.is_undo() {
            continue;
        }
        // An approval time is a decider's word: one before the request or in the future
        // (which would keep a request from ever expiring or being missed) is no approval.
        let approved = e
            .approved_at
            .filter(|a| *a >= e.times.decided_at && *a <= now);
        let since = approved.unwrap_or(e.times.decided_at);
        if since.checked_add(ttl).is_none_or(|end| end <= now) {
            out.expired.push(e);
        } else if approved.is_none() && !on_queue.contains(&e.id) {
            out.missing.push(e);
        }
    }
    let known: BTreeSet<&EntryId> = awaiting.iter().map(|e| &e.id).collect();
    out.unrecorded = queued
        .iter()
        .enumerate()
        .filter(|(_, id)| !known.contains(id))
        .map(|(i, _)| i)
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::model::tests::{finding, t};
    use crate::ledger::model::EntryAction;
    use crate::policy::{Fix, RenderedAction, Severity};

    const TTL: Duration = Duration::from_secs(3600);

    fn task(resource: &str) -> Task {
        let mut f = finding();
        f.resource_id = resource.into();
        Task::new("ssh", Severity::High, f)
    }

    fn awaiting(task: &Task, at: u64) -> LedgerEntry {
        LedgerEntry::for_task(
            task,
            RenderedAction::Fix(Fix::RevokePublicIngress { ports: None }),
            Status::AwaitingApproval,
            t(at),
        )
        .unwrap()
    }

    #[test]
    fn a_request_missing_from_the_queue_is_found_and_one_queued_is_not() {
        let (a, b) = (task("sg-a"), task("sg-b"));
        let entries = vec![awaiting(&a, 0), awaiting(&b, 0)];
        let r = reconcile(&entries, &[EntryId::for_task(&b)], t(60), TTL);
        assert_eq!(r.missing, vec![&entries[0]]);
        assert!(r.expired.is_empty());
        assert!(r.unrecorded.is_empty());
    }

    #[test]
    fn approved_decided_and_undo_entries_are_never_missing() {
        let mut approved = awaiting(&task("sg-a"), 0);
        approved.approved_at = Some(t(30));
        let mut rejected = awaiting(&task("sg-b"), 0);
        rejected.status = Status::Rejected;
        let mut undo = awaiting(&task("sg-c"), 0);
        undo.action = EntryAction::Undo(crate::ledger::UndoOf {
            entry: approved.id.clone(),
            plan: crate::ledger::UndoPlan::AuthorizeIngress {
                group_id: "sg-c".into(),
                permissions: vec![],
            },
            reason: "r".into(),
            until: t(99),
            force: false,
        });
        let entries = vec![approved, rejected, undo];
        assert_eq!(
            reconcile(&entries, &[], t(60), TTL),
            Reconciliation::default()
        );
    }

    #[test]
    fn an_approval_time_before_the_request_or_in_the_future_is_no_approval() {
        for when in [t(5), t(10_000_000)] {
            let mut e = awaiting(&task("sg-1"), 10);
            e.approved_at = Some(when);
            let r = reconcile(
                std::slice::from_ref(&e),
                &[],
                t(100),
                Duration::from_secs(3600),
            );
            assert_eq!(r.missing.len(), 1, "approved_at {when:?} hid the request");
        }
    }

    #[test]
    fn entries_past_the_ttl_expire_counting_from_the_approval() {
        let old = awaiting(&task("sg-a"), 0);
        let mut approved_late = awaiting(&task("sg-b"), 0);
        approved_late.approved_at = Some(t(3000));
        let entries = vec![old, approved_late];
        let r = reconcile(&entries, &[], t(3600), TTL);
        assert_eq!(r.expired, vec![&entries[0]]);
        assert!(r.missing.is_empty(), "expired, not put back");
        let r = reconcile(&entries, &[], t(6600), TTL);
        assert_eq!(r.expired.len(), 2);
    }

    #[test]
    fn queued_requests_without_an_entry_are_unrecorded() {
        let (a, b) = (task("sg-a"), task("sg-b"));
        let entries = vec![awaiting(&a, 0)];
        let queued = [EntryId::for_task(&b), EntryId::for_task(&a)];
        assert_eq!(reconcile(&entries, &queued, t(1), TTL).unrecorded, vec![0]);
    }

    #[test]
    fn a_replayed_tasks_request_is_rebuilt_at_its_generation() {
        let mut replayed = task("sg-a");
        replayed.generation = 3;
        let e = awaiting(&replayed, 0);
        let rebuilt = task_for(&e).unwrap();
        assert_eq!(rebuilt.generation, 3);
        assert_eq!(rebuilt.approval_id(), replayed.approval_id());
        let mut other = e.clone();
        other.id = EntryId::parse("le-00000000000000000000").unwrap();
        assert!(task_for(&other).is_none());
    }

    #[test]
    fn decisions_touch_only_the_approver_attributes_and_read_back() {
        let e = awaiting(&task("sg-a"), 0);
        let decisions = [
            RequestDecision::Approved {
                by: "arn:aws:iam::111122223333:user/alice".into(),
                at: t(5),
            },
            RequestDecision::Rejected {
                reason: "no".into(),
            },
            RequestDecision::Expired {
                reason: "late".into(),
            },
            RequestDecision::Moot {
                reason: "compliant".into(),
            },
        ];
        for d in decisions {
            let u = d.update();
            for name in u.set.iter().map(|(k, _)| *k) {
                assert!(APPROVER_ATTRIBUTES.contains(&name), "{name}");
            }
            let mut item = e.to_item(None);
            u.apply(&mut item);
            let read = LedgerEntry::from_item(&item).unwrap();
            assert_eq!(read.status, d.status());
            assert!(
                item.contains_key(crate::ledger::item::OPEN),
                "a decision never leaves the index: {d:?}"
            );
            match d {
                RequestDecision::Approved { by, at } => {
                    assert_eq!(read.approved_by.as_deref(), Some(by.as_str()));
                    assert_eq!(read.approved_at, Some(at));
                }
                RequestDecision::Rejected { reason }
                | RequestDecision::Expired { reason }
                | RequestDecision::Moot { reason } => {
                    assert_eq!(read.reason, Some(reason));
                    assert!(Status::AwaitingApproval.can_move(read.status));
                }
            }
        }
    }
}
