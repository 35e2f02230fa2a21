//! Where a ledger entry stands, and the moves between statuses. One table
//! ([`Status::can_move`]) decides every move, and [`Status::allowed_from`] derives from
//! it the statuses a conditional write must find, so the store and the model cannot
//! disagree.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The status of a ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// An approval request is waiting for a person (a fix, or an undo).
    AwaitingApproval,
    /// An executor holds the lease and is about to change, or is changing, the resource.
    /// Left open by a crash until the lease lapses and another executor completes it.
    Intent,
    /// The change was made.
    Succeeded,
    /// The change failed or could not be made; a redelivery may try again.
    Failed,
    /// Config confirmed the fix (COMPLIANT or NOT_APPLICABLE).
    Verified,
    /// The fix ran but Config still reported NON_COMPLIANT at the deadline.
    StillNonCompliant,
    /// A later undo put the state back.
    Undone,
    /// Nothing was changed: already compliant, moot, refused by Config's current word,
    /// and the like (see the entry's `reason`).
    Skipped,
    /// Nothing was changed: the resource carries the exemption tag, or an exception
    /// covers it.
    Exempt,
    /// A person rejected the approval request.
    Rejected,
    /// The approval request expired unacted.
    Expired,
}

/// Every status, for tables and tests.
pub const ALL: [Status; 11] = [
    Status::AwaitingApproval,
    Status::Intent,
    Status::Succeeded,
    Status::Failed,
    Status::Verified,
    Status::StillNonCompliant,
    Status::Undone,
    Status::Skipped,
    Status::Exempt,
    Status::Rejected,
    Status::Expired,
];

/// A move the status table does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a ledger entry cannot go from {} to {to}", .from.map_or("nothing", Status::as_str))]
pub struct InvalidTransition {
    /// Where the entry was (`None`: no entry yet).
    pub from: Option<Status>,
    /// Where it was asked to go.
    pub to: Status,
}

impl Status {
    /// The status as stored, e.g. `still_non_compliant`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::AwaitingApproval => "awaiting_approval",
            Status::Intent => "intent",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Verified => "verified",
            Status::StillNonCompliant => "still_non_compliant",
            Status::Undone => "undone",
            Status::Skipped => "skipped",
            Status::Exempt => "exempt",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
        }
    }

    /// Whether an entry may be created in this status: a request, an intent, or a
    /// decision to change nothing. Outcomes only ever follow an intent.
    pub fn is_initial(self) -> bool {
        matches!(
            self,
            Status::AwaitingApproval | Status::Intent | Status::Skipped | Status::Exempt
        )
    }

    /// Whether work on the entry is unfinished (it sits in the `open` index).
    pub fn is_open(self) -> bool {
        matches!(self, Status::AwaitingApproval | Status::Intent)
    }

    /// Whether the resource was changed and the change still stands: what an undo can
    /// put back.
    pub fn is_undoable(self) -> bool {
        matches!(
            self,
            Status::Succeeded | Status::Verified | Status::StillNonCompliant
        )
    }

    /// Whether the status table allows `self → to`.
    pub fn can_move(self, to: Status) -> bool {
        use Status::*;
        match (self, to) {
            // A request is approved (claimed by an executor), rejected, expires, or goes
            // moot when the resource complies meanwhile.
            (AwaitingApproval, Intent | Rejected | Expired | Skipped) => true,
            // The executor re-checks before changing anything, so an intent can still end
            // without a change.
            (Intent, Succeeded | Failed | Skipped | Exempt) => true,
            // A redelivered task retries a failure; a permanent one is dead-lettered and
            // replayed under a new generation, hence a new entry.
            (Failed, Intent) => true,
            // Verification happens once, at the closure check.
            (Succeeded, Verified | StillNonCompliant) => true,
            (Succeeded | Verified | StillNonCompliant, Undone) => true,
            _ => false,
        }
    }

    /// Checks `from → to`, where `from` is `None` for a new entry.
    pub fn check(from: Option<Status>, to: Status) -> Result<(), InvalidTransition> {
        let ok = match from {
            None => to.is_initial(),
            Some(from) => from.can_move(to),
        };
        ok.then_some(()).ok_or(InvalidTransition { from, to })
    }

    /// The statuses an entry must be in for a move to `to` (the condition of the write
    /// that makes it).
    pub fn allowed_from(to: Status) -> Vec<Status> {
        ALL.into_iter().filter(|from| from.can_move(to)).collect()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Status::*;
    use super::*;

    #[test]
    fn intent_ends_in_an_outcome_and_only_there() {
        for to in [Succeeded, Failed, Skipped, Exempt] {
            assert_eq!(Status::check(Some(Intent), to), Ok(()), "{to}");
        }
        for to in [
            Verified,
            StillNonCompliant,
            Undone,
            Rejected,
            AwaitingApproval,
        ] {
            assert_eq!(
                Status::check(Some(Intent), to),
                Err(InvalidTransition {
                    from: Some(Intent),
                    to
                }),
                "{to}"
            );
        }
    }

    #[test]
    fn outcomes_follow_an_intent_never_a_fresh_entry() {
        for to in ALL {
            assert_eq!(Status::check(None, to).is_ok(), to.is_initial(), "{to}");
        }
        let err = Status::check(None, Succeeded).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a ledger entry cannot go from nothing to succeeded"
        );
    }

    #[test]
    fn only_a_standing_change_is_verified_or_undone() {
        assert!(Succeeded.can_move(Verified));
        assert!(Succeeded.can_move(StillNonCompliant));
        assert!(!StillNonCompliant.can_move(Verified), "verified once");
        assert!(!Failed.can_move(Undone), "a failure changed nothing known");
        assert!(!Undone.can_move(Undone), "undone once");
        for s in ALL {
            assert_eq!(s.can_move(Undone), s.is_undoable(), "{s}");
        }
        // Terminal statuses go nowhere.
        for s in [Undone, Skipped, Exempt, Rejected, Expired] {
            assert!(Status::allowed_from(s).iter().all(|f| *f != s));
            assert!(ALL.iter().all(|to| !s.can_move(*to)), "{s}");
        }
    }

    #[test]
    fn allowed_from_is_the_table() {
        assert_eq!(Status::allowed_from(Intent), vec![AwaitingApproval, Failed]);
        assert_eq!(
            Status::allowed_from(Undone),
            vec![Succeeded, Verified, StillNonCompliant]
        );
        assert_eq!(Status::allowed_from(AwaitingApproval), vec![]);
    }

    #[test]
    fn stored_names_are_snake_case() {
        for s in ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), s);
        }
    }
}
