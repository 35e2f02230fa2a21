//! The closure check's conclusion in the ledger: a fix Config confirmed moves its entry
//! from `succeeded` to `verified` (stamping `verified_at`, from which `redress report`
//! takes the time to remediate); one Config still disagrees with at the deadline moves to
//! `still_non_compliant`. The entry is the original task's ([`EntryId::for_task`]): a
//! closure check carries the task's rule, finding and generation unchanged.
//!
//! The write is conditional on the entry as read (status and lease, [`Expect::Entry`]),
//! so an undo or another check that got there first wins and this one only logs. Nothing
//! here changes the check's verdict: the fix is made and Config's word is audited either
//! way, so a ledger that cannot be written is logged and the message settles.

use std::time::{Duration, SystemTime};

use redress::ledger::{EntryId, Expect, LedgerEntry, Status};

use super::Executor;
use crate::aws::ledger::LedgerError;

/// How long the write rides out transient errors: short, as the check's message waits
/// for it.
const PATIENCE: Duration = Duration::from_secs(10);

impl Executor {
    /// Records Config's conclusion on the fix of entry `id`: `to` is
    /// [`Status::Verified`] or [`Status::StillNonCompliant`], `why` Config's word, `now`
    /// the time of the check (the verified time). Without a ledger, nothing.
    pub(super) async fn record_closure(
        &self,
        id: &EntryId,
        to: Status,
        why: &str,
        now: SystemTime,
    ) {
        let Some(table) = self.ledger.table() else {
            return;
        };
        let stored = match table.get(id).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(entry = %id, error = %e, to = %to, "cannot read the fix's ledger entry; Config's conclusion is audited but not recorded in the ledger");
                return;
            }
        };
        let (entry, expect) = match concluded(stored, to, why, now) {
            Ok(next) => next,
            Err(skip) => {
                tracing::warn!(entry = %id, to = %to, "Config's conclusion not recorded in the ledger: {skip}");
                return;
            }
        };
        match table
            .write_patiently(&entry, &expect, self.ledger.retention(), PATIENCE)
            .await
        {
            Ok(()) => {}
            Err(e @ LedgerError::HeldByAnother) => {
                tracing::warn!(entry = %id, to = %to, error = %e, "Config's conclusion not recorded in the ledger: the entry changed since it was read")
            }
            Err(e) => {
                tracing::error!(entry = %id, to = %to, error = %e, "Config's conclusion not recorded in the ledger")
            }
        }
    }
}

/// The entry as the closure check leaves it, and the condition of its write: the entry
/// exactly as read. `Err`: why nothing is written (no entry, or one the status table
/// does not let move to `to`, e.g. undone meanwhile or concluded by an earlier check).
fn concluded(
    stored: Option<LedgerEntry>,
    to: Status,
    why: &str,
    now: SystemTime,
) -> Result<(LedgerEntry, Expect), String> {
    let mut entry = stored.ok_or_else(|| {
        "the fix has no ledger entry (made without a ledger, or its outcome was not recorded)"
            .to_string()
    })?;
    let expect = Expect::Entry {
        status: entry.status,
        lease: entry.lease.clone(),
    };
    entry.advance(to, now).map_err(|e| e.to_string())?;
    // The fix's own detail stays; Config's word follows it.
    entry.reason = Some(match entry.reason.take() {
        Some(fix) => format!("{fix}; {why}"),
        None => why.to_string(),
    });
    Ok((entry, expect))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redress::ledger::Actor;
    use redress::message::Task;
    use redress::policy::{Fix, RenderedAction, Severity};

    fn at(secs: u64) -> SystemTime {
        redress::time::parse_rfc3339("2026-05-01T10:00:00Z").unwrap() + Duration::from_secs(secs)
    }

    /// A fix of the finding evaluated at `at(0)`, succeeded at `at(60)`.
    fn fixed() -> LedgerEntry {
        let task = Task::new(
            "ssh",
            Severity::Low,
            crate::test_support::ssh_finding("2026-05-01T10:00:00Z"),
        );
        let action = RenderedAction::Fix(Fix::RevokePublicIngress {
            ports: Some(vec![22]),
        });
        let mut e = LedgerEntry::for_task(&task, action, Status::Intent, at(10)).unwrap();
        e.actor = Some(Actor::Automatic);
        e.reason = Some("revoked tcp 22 from 0.0.0.0/0".into());
        e.advance(Status::Succeeded, at(60)).unwrap();
        e
    }

    #[test]
    fn a_confirmed_fix_is_verified_with_its_time_on_the_condition_it_was_read() {
        let (e, expect) = concluded(
            Some(fixed()),
            Status::Verified,
            "Config reports COMPLIANT",
            at(600),
        )
        .unwrap();
        assert_eq!(e.status, Status::Verified);
        assert_eq!(e.times.verified_at, Some(at(600)));
        assert_eq!(e.times.fixed_at, Some(at(60)), "the fix's time stays");
        assert_eq!(e.time_to_remediate(), Some(Duration::from_secs(600)));
        assert_eq!(
            e.reason.as_deref(),
            Some("revoked tcp 22 from 0.0.0.0/0; Config reports COMPLIANT")
        );
        assert_eq!(
            expect,
            Expect::Entry {
                status: Status::Succeeded,
                lease: None
            }
        );
    }

    #[test]
    fn a_fix_config_disagrees_with_is_still_non_compliant_without_a_verified_time() {
        let (e, _) = concluded(
            Some(fixed()),
            Status::StillNonCompliant,
            "fixed, but Config still reports NON_COMPLIANT",
            at(900),
        )
        .unwrap();
        assert_eq!(e.status, Status::StillNonCompliant);
        assert_eq!(e.times.verified_at, None);
        assert_eq!(e.times.updated_at, at(900));
        assert_eq!(e.time_to_remediate(), None);
    }

    #[test]
    fn nothing_is_written_without_a_finished_fix_to_conclude() {
        let missing = concluded(None, Status::Verified, "ok", at(600)).unwrap_err();
        assert!(missing.contains("no ledger entry"), "{missing}");
        // Concluded once already (a duplicate check), or undone meanwhile.
        let (verified, _) = concluded(Some(fixed()), Status::Verified, "ok", at(600)).unwrap();
        let again = concluded(Some(verified), Status::Verified, "ok", at(700)).unwrap_err();
        assert_eq!(again, "a ledger entry cannot go from verified to verified");
        let mut undone = fixed();
        undone.advance(Status::Undone, at(300)).unwrap();
        assert!(concluded(Some(undone), Status::StillNonCompliant, "no", at(900)).is_err());
    }
}
