//! Crash recovery: what an executor does with an `intent` whose holder died between the
//! intent and its outcome ([`super::lease::Take::TakeOver`]). The crashed attempt may
//! have made its change, made none of it, or (when someone else changed the resource
//! meanwhile) seem to have made part of it; acting again blindly would do a change
//! twice, or record a change nobody made. So the taker re-checks the resource first and
//! [`decide`]s from the change the intent recorded and what is there now:
//!
//! - **A revoke** ([`Change::RevokeIngress`]) records exactly the permissions it was to
//!   revoke. None of them present now: the change was made ([`Recovery::Made`]): the
//!   entry is completed as `succeeded` with the recorded change, and nothing is revoked
//!   again. All present: nothing was made ([`Recovery::NotMade`]): a normal take. Some:
//!   [`Recovery::Partial`]: revoke what remains and record both parts
//!   ([`Recovery::merge`]), so an undo puts back all that redress revoked.
//! - **A runbook** ([`Change::Runbook`]) is started with the finding's client token, and
//!   SSM answers a second start with the same token with the first execution: starting
//!   it again resumes the crashed attempt's execution, or starts the one it never
//!   started ([`Recovery::Rerun`]). Its state cannot be read as a revoke's can.
//! - **A parameter fix** records no state in its intent (it reads both sides itself, at
//!   the change). Each one re-reads the parameter and its baseline before writing and
//!   writes nothing when they already agree, so running it again cannot change the
//!   parameter twice ([`Recovery::Rerun`]); what it cannot tell is whether the crashed
//!   attempt or someone else made the parameter right, so such a finding ends
//!   `skipped` (already compliant) without a before-state to undo.
//!
//! Pure: the executor reads the resource at the edge and writes what this decides.

use crate::ingress::Permission;

use super::atoms;
use super::model::{Change, Lease};

/// What to do with a crashed attempt's open intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The recorded change is in place: complete the entry with it; change nothing.
    Made(Change),
    /// None of the recorded change is in place: act as on a fresh take.
    NotMade,
    /// Part of the recorded change is in place: act on what remains; the outcome
    /// records the recorded change together with this attempt's ([`Recovery::merge`]).
    Partial {
        /// The change the crashed attempt recorded.
        recorded: Change,
        /// How many of its permissions are still present, of how many.
        left: (usize, usize),
    },
    /// The resource cannot tell, and the fix is safe to run again (see the module
    /// docs): run it.
    Rerun(&'static str),
}

/// Why running a runbook again is safe.
pub const RUNBOOK_RERUN: &str =
    "runbook started again with the finding's client token: SSM returns the crashed attempt's execution if it started one";
/// Why running a parameter fix (or an intent with no recorded change) again is safe.
pub const STATE_RERUN: &str =
    "the fix was run again: it re-reads the resource and changes nothing already right";

/// Decides from the change the intent recorded and, for a revoke, the group's ingress
/// read now (`None`: not read).
pub fn decide(recorded: Option<&Change>, ingress_now: Option<&[Permission]>) -> Recovery {
    match (recorded, ingress_now) {
        (Some(change @ Change::RevokeIngress { revoked, .. }), Some(now)) => {
            let wanted = atoms::atoms(revoked);
            let present = atoms::atoms(now);
            let left = wanted.iter().filter(|a| present.contains(a)).count();
            match left {
                0 => Recovery::Made(change.clone()),
                n if n == wanted.len() => Recovery::NotMade,
                n => Recovery::Partial {
                    recorded: change.clone(),
                    left: (n, wanted.len()),
                },
            }
        }
        (Some(Change::Runbook { .. }), _) => Recovery::Rerun(RUNBOOK_RERUN),
        _ => Recovery::Rerun(STATE_RERUN),
    }
}

impl Recovery {
    /// The entry's reason, naming the crashed holder (`from`: its lapsed lease).
    pub fn note(&self, from: Option<&Lease>) -> String {
        let who = from.map_or_else(
            || "an executor that left no lease".to_string(),
            |l| format!("executor {}", l.holder),
        );
        let head = format!("recovered after a crash: {who} wrote the intent and no outcome");
        match self {
            Recovery::Made(change) => format!(
                "{head}; completed (rolled forward): its change was found made ({}), so it was not made again",
                change.describe()
            ),
            Recovery::NotMade => {
                format!("{head}; none of its change was found made, so it was made now")
            }
            Recovery::Partial {
                left: (left, of), ..
            } => format!(
                "{head}; {left} of its {of} permissions were still present: the rest was found made, and what remained was made now"
            ),
            Recovery::Rerun(why) => format!("{head}; {why}"),
        }
    }

    /// The change to record when a partial recovery's attempt reports `now`: the
    /// recorded ingress before, and every permission either attempt revoked. Anything
    /// else is `now` as it is.
    pub fn merge(&self, now: Option<Change>) -> Option<Change> {
        let Recovery::Partial {
            recorded:
                Change::RevokeIngress {
                    group_id,
                    before,
                    revoked,
                },
            ..
        } = self
        else {
            return now;
        };
        let mut all = atoms::atoms(revoked);
        if let Some(Change::RevokeIngress { revoked: more, .. }) = &now {
            all.extend(atoms::atoms(more));
        }
        Some(Change::RevokeIngress {
            group_id: group_id.clone(),
            before: before.clone(),
            revoked: atoms::permissions(&all),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::model::tests::t;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn perm(port: i32, cidr: &str) -> Permission {
        Permission {
            protocol: "tcp".into(),
            from_port: Some(port),
            to_port: Some(port),
            ipv4: vec![cidr.into()],
            ipv6: vec![],
        }
    }

    const OFFICE: &str = "10.0.0.0/8";
    const WORLD: &str = "0.0.0.0/0";

    /// A revoke of SSH and RDP from the world, the office's HTTPS kept.
    fn revoke() -> Change {
        Change::RevokeIngress {
            group_id: "sg-1".into(),
            before: vec![perm(22, WORLD), perm(3389, WORLD), perm(443, OFFICE)],
            revoked: vec![perm(22, WORLD), perm(3389, WORLD)],
        }
    }

    #[test]
    fn a_revoke_found_made_is_completed_and_not_made_again() {
        let now = [perm(443, OFFICE)];
        assert_eq!(
            decide(Some(&revoke()), Some(&now)),
            Recovery::Made(revoke())
        );
        // Someone adding other ingress since does not make it unmade.
        let now = [perm(443, OFFICE), perm(8080, OFFICE)];
        assert_eq!(
            decide(Some(&revoke()), Some(&now)),
            Recovery::Made(revoke())
        );
    }

    #[test]
    fn a_revoke_found_unmade_is_made() {
        let now = [perm(22, WORLD), perm(3389, WORLD), perm(443, OFFICE)];
        assert_eq!(decide(Some(&revoke()), Some(&now)), Recovery::NotMade);
        // However EC2 groups the sources into permissions.
        let grouped = [Permission {
            ipv4: vec![WORLD.into(), "192.0.2.0/24".into()],
            ..perm(22, WORLD)
        }];
        let only_ssh = Change::RevokeIngress {
            group_id: "sg-1".into(),
            before: grouped.to_vec(),
            revoked: vec![perm(22, WORLD)],
        };
        assert_eq!(decide(Some(&only_ssh), Some(&grouped)), Recovery::NotMade);
    }

    #[test]
    fn a_revoke_found_partly_made_makes_the_rest_and_records_both() {
        let now = [perm(3389, WORLD), perm(443, OFFICE)];
        let r = decide(Some(&revoke()), Some(&now));
        assert_eq!(
            r,
            Recovery::Partial {
                recorded: revoke(),
                left: (1, 2)
            }
        );
        // This attempt revoked RDP (and a world-open port added since).
        let this = Change::RevokeIngress {
            group_id: "sg-1".into(),
            before: vec![perm(3389, WORLD), perm(25, WORLD), perm(443, OFFICE)],
            revoked: vec![perm(3389, WORLD), perm(25, WORLD)],
        };
        let Some(Change::RevokeIngress {
            before, revoked, ..
        }) = r.merge(Some(this))
        else {
            panic!("a revoke")
        };
        assert_eq!(
            before,
            match revoke() {
                Change::RevokeIngress { before, .. } => before,
                _ => unreachable!(),
            }
        );
        assert_eq!(
            atoms::atoms(&revoked),
            atoms::atoms(&[perm(22, WORLD), perm(3389, WORLD), perm(25, WORLD)])
        );
        // Other recoveries record this attempt's change as it is.
        assert_eq!(Recovery::NotMade.merge(None), None);
    }

    #[test]
    fn runbooks_and_parameter_fixes_are_run_again() {
        let runbook = Change::Runbook {
            document: "AWS-DisablePublicAccessForSecurityGroup".into(),
            inputs: BTreeMap::new(),
            before: None,
            after: None,
        };
        assert_eq!(decide(Some(&runbook), None), Recovery::Rerun(RUNBOOK_RERUN));
        assert_eq!(decide(None, None), Recovery::Rerun(STATE_RERUN));
        // A revoke whose group could not be read is not taken as made.
        assert_eq!(decide(Some(&revoke()), None), Recovery::Rerun(STATE_RERUN));
    }

    #[test]
    fn the_reason_names_the_crashed_holder_and_what_was_done() {
        let lease = Lease::new("executor-7", t(0), Duration::from_secs(5));
        let made = Recovery::Made(revoke()).note(Some(&lease));
        assert!(
            made.starts_with("recovered after a crash: executor executor-7 wrote the intent")
                && made.contains("completed (rolled forward)")
                && made.contains("not made again"),
            "{made}"
        );
        let rerun = Recovery::Rerun(RUNBOOK_RERUN).note(None);
        assert!(
            rerun.contains("no lease") && rerun.contains("client token"),
            "{rerun}"
        );
    }
}
