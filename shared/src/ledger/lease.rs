//! Who may act on a finding now. An executor reads the finding's entry, asks
//! [`may_take`], and writes its intent on the condition [`Take::expect`] gives: the
//! condition re-asserts, atomically in the store, exactly what the decision read, so of
//! two executors deciding on the same reading only one write succeeds. A lease expires,
//! so a dead executor's work is taken over; its owner renews it while a long fix runs.
//!
//! An executor must not start a change on a lease about to lapse ([`Lease::valid_for`]):
//! the store can refuse a write, but not stop an API call already made. Executors' clocks
//! must agree to well within a lease's length.

use std::time::{Duration, SystemTime};

use super::model::{second, Lease, LedgerEntry};
use super::status::{InvalidTransition, Status};

/// How an executor may take a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// No entry yet: make it as an intent (`LedgerEntry::for_task(.., Status::Intent,
    /// ..)`), then [`take`] it.
    New,
    /// An approval request that was approved: the first executor to claim it acts.
    Claim,
    /// The executor's own intent: extend the lease (lapsed or not, nobody took it).
    Renew,
    /// An intent whose lease lapsed (its executor died or stalled): take it over,
    /// re-check the resource, and complete it.
    TakeOver {
        /// The lapsed lease, exactly as read (`None`: an intent with no lease).
        from: Option<Lease>,
    },
    /// A failure a redelivery tries again.
    Retry,
}

/// Why an executor may not take a finding now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// Another executor holds an unexpired lease.
    #[error("executor {} holds the finding until {}", .0.holder, crate::time::format_rfc3339(.0.expires_at))]
    Held(Lease),
    /// The finding was already dealt with (acted on once, or decided).
    #[error("the finding's ledger entry is already {0}")]
    Finished(Status),
}

/// What a conditional write must find in the store: the reading a decision was made on.
/// In DynamoDB terms (attribute names of [`super::item`]):
/// - `Absent`: `attribute_not_exists(id)`;
/// - `Entry`: `#status = :status` and either `attribute_not_exists(lease)` or
///   `lease.holder = :holder AND lease.expires_at = :expires_at`;
/// - `HeldBy`: `#status = :intent AND lease.holder = :me`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// No entry with this id.
    Absent,
    /// The entry is in `status` and holds exactly `lease`.
    Entry {
        /// Its status.
        status: Status,
        /// Its lease (`None`: none).
        lease: Option<Lease>,
    },
    /// The entry is an intent leased to this holder, whatever the lease's expiry.
    HeldBy(String),
}

impl Expect {
    /// Whether the condition holds for what the store has: what the store evaluates
    /// atomically with the write.
    pub fn holds(&self, stored: Option<&LedgerEntry>) -> bool {
        match (self, stored) {
            (Expect::Absent, None) => true,
            (Expect::Entry { status, lease }, Some(e)) => e.status == *status && e.lease == *lease,
            (Expect::HeldBy(me), Some(e)) => {
                e.status == Status::Intent && e.lease.as_ref().is_some_and(|l| l.holder == *me)
            }
            _ => false,
        }
    }
}

impl Take {
    /// The condition under which `me` writes this take.
    pub fn expect(&self, me: &str) -> Expect {
        match self {
            Take::New => Expect::Absent,
            Take::Claim => Expect::Entry {
                status: Status::AwaitingApproval,
                lease: None,
            },
            Take::Retry => Expect::Entry {
                status: Status::Failed,
                lease: None,
            },
            Take::TakeOver { from } => Expect::Entry {
                status: Status::Intent,
                lease: from.clone(),
            },
            Take::Renew => Expect::HeldBy(me.to_string()),
        }
    }
}

impl Lease {
    /// A lease for `holder` from `now` for `ttl`.
    pub fn new(holder: &str, now: SystemTime, ttl: Duration) -> Lease {
        Lease {
            holder: holder.to_string(),
            expires_at: second(now + ttl),
        }
    }

    /// Whether it has lapsed at `now` (at the expiry itself it has).
    pub fn lapsed(&self, now: SystemTime) -> bool {
        self.expires_at <= now
    }

    /// Whether it is still held `margin` from now: an executor starts a change only with
    /// enough lease left to finish the call.
    pub fn valid_for(&self, now: SystemTime, margin: Duration) -> bool {
        now.checked_add(margin)
            .is_some_and(|later| later < self.expires_at)
    }
}

/// Whether executor `me` may take the finding whose entry is `existing` at `now`.
pub fn may_take(existing: Option<&LedgerEntry>, me: &str, now: SystemTime) -> Result<Take, Busy> {
    let Some(e) = existing else {
        return Ok(Take::New);
    };
    match (e.status, &e.lease) {
        (Status::AwaitingApproval, _) => Ok(Take::Claim),
        (Status::Failed, _) => Ok(Take::Retry),
        (Status::Intent, Some(l)) if l.holder == me => Ok(Take::Renew),
        (Status::Intent, Some(l)) if !l.lapsed(now) => Err(Busy::Held(l.clone())),
        (Status::Intent, from) => Ok(Take::TakeOver { from: from.clone() }),
        (done, _) => Err(Busy::Finished(done)),
    }
}

/// Applies a take to the entry (a new one is made as an intent first): `me` holds it
/// for `ttl` from `now`.
pub fn take(
    entry: &mut LedgerEntry,
    me: &str,
    now: SystemTime,
    ttl: Duration,
) -> Result<(), InvalidTransition> {
    if entry.status != Status::Intent {
        entry.advance(Status::Intent, now)?;
    }
    entry.lease = Some(Lease::new(me, now, ttl));
    entry.times.updated_at = second(now);
    Ok(())
}

/// Whether `me` may write the outcome of its intent, and on what condition. The lease
/// need not be unexpired: if nobody took it over, the work is still `me`'s.
pub fn may_complete(entry: &LedgerEntry, me: &str) -> Result<Expect, Busy> {
    match (entry.status, &entry.lease) {
        (Status::Intent, Some(l)) if l.holder == me => Ok(Expect::HeldBy(me.to_string())),
        (Status::Intent, Some(l)) => Err(Busy::Held(l.clone())),
        (status, _) => Err(Busy::Finished(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::model::tests::{finding, t};
    use crate::ledger::model::{EntryAction, EntryId};
    use crate::message::Task;
    use crate::policy::{Fix, RenderedAction, Severity};

    const TTL: Duration = Duration::from_secs(60);

    fn entry(status: Status) -> LedgerEntry {
        let task = Task::new("ssh", Severity::High, finding());
        LedgerEntry::new(
            EntryId::for_task(&task),
            "ssh",
            Severity::High,
            finding(),
            EntryAction::Remediate(RenderedAction::Fix(Fix::RevokePublicIngress {
                ports: None,
            })),
            status,
            t(0),
        )
        .unwrap()
    }

    fn held(holder: &str, at: u64) -> LedgerEntry {
        let mut e = entry(Status::Intent);
        take(&mut e, holder, t(at), TTL).unwrap();
        e
    }

    #[test]
    fn nobody_holds_a_new_finding() {
        assert_eq!(may_take(None, "a", t(0)), Ok(Take::New));
        assert!(Take::New.expect("a").holds(None));
        assert!(!Take::New.expect("a").holds(Some(&held("b", 0))));
    }

    #[test]
    fn a_live_lease_keeps_others_out_and_its_holder_renews() {
        let e = held("a", 0);
        assert_eq!(
            may_take(Some(&e), "b", t(59)),
            Err(Busy::Held(Lease::new("a", t(0), TTL)))
        );
        assert_eq!(may_take(Some(&e), "a", t(30)), Ok(Take::Renew));
        assert!(Take::Renew.expect("a").holds(Some(&e)));
        assert!(!Take::Renew.expect("b").holds(Some(&e)));
        let msg = may_take(Some(&e), "b", t(1)).unwrap_err().to_string();
        assert!(
            msg.starts_with("executor a holds the finding until"),
            "{msg}"
        );
    }

    #[test]
    fn a_lapsed_lease_is_taken_over_only_as_read() {
        let e = held("a", 0);
        let take_over = may_take(Some(&e), "b", t(60)).unwrap();
        assert_eq!(
            take_over,
            Take::TakeOver {
                from: Some(Lease::new("a", t(0), TTL))
            }
        );
        assert!(take_over.expect("b").holds(Some(&e)));
        // If "a" renewed after "b" read, "b"'s write must fail.
        let renewed = held("a", 61);
        assert!(!take_over.expect("b").holds(Some(&renewed)));
        // The lapsed holder itself may still renew, as nobody took it.
        assert_eq!(may_take(Some(&e), "a", t(600)), Ok(Take::Renew));
    }

    #[test]
    fn approvals_are_claimed_failures_retried_and_outcomes_final() {
        let waiting = entry(Status::AwaitingApproval);
        assert_eq!(may_take(Some(&waiting), "a", t(0)), Ok(Take::Claim));
        assert!(Take::Claim.expect("a").holds(Some(&waiting)));
        let mut failed = held("a", 0);
        failed.advance(Status::Failed, t(5)).unwrap();
        assert_eq!(failed.lease, None, "an outcome releases the lease");
        assert_eq!(may_take(Some(&failed), "b", t(6)), Ok(Take::Retry));
        for done in [Status::Succeeded, Status::Skipped] {
            let mut e = held("a", 0);
            e.advance(done, t(5)).unwrap();
            assert_eq!(may_take(Some(&e), "a", t(6)), Err(Busy::Finished(done)));
        }
        let mut e = entry(Status::AwaitingApproval);
        take(&mut e, "b", t(3), TTL).unwrap();
        assert_eq!(e.status, Status::Intent);
        assert_eq!(e.lease, Some(Lease::new("b", t(3), TTL)));
    }

    #[test]
    fn only_the_holder_completes() {
        let e = held("a", 0);
        assert_eq!(may_complete(&e, "a"), Ok(Expect::HeldBy("a".into())));
        assert!(matches!(may_complete(&e, "b"), Err(Busy::Held(_))));
        let mut done = e.clone();
        done.advance(Status::Succeeded, t(1)).unwrap();
        assert_eq!(
            may_complete(&done, "a"),
            Err(Busy::Finished(Status::Succeeded))
        );
        assert!(!Expect::HeldBy("a".into()).holds(Some(&done)));
    }

    #[test]
    fn a_change_starts_only_with_lease_to_spare() {
        let l = Lease::new("a", t(0), TTL);
        assert!(l.valid_for(t(0), Duration::from_secs(30)));
        assert!(!l.valid_for(t(30), Duration::from_secs(30)));
        assert!(!l.valid_for(t(61), Duration::ZERO));
    }

    mod exclusion {
        use super::*;
        use proptest::prelude::*;

        const HOLDERS: [&str; 2] = ["a", "b"];

        #[derive(Debug, Clone)]
        enum Op {
            Read(usize),
            Take(usize),
            Complete(usize, bool),
            Wait(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0..2usize).prop_map(Op::Read),
                (0..2usize).prop_map(Op::Take),
                (0..2usize, any::<bool>()).prop_map(|(h, ok)| Op::Complete(h, ok)),
                (0..120u64).prop_map(Op::Wait),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Two executors reading, taking (on stale readings too), completing and
            /// waiting in any order: never do both hold an unexpired lease, a holder's
            /// belief always matches the store, and the finding is fixed at most once.
            #[test]
            fn two_holders_never_both_hold_a_live_lease(
                waiting in any::<bool>(),
                ops in proptest::collection::vec(op(), 1..60),
            ) {
                let mut now = 0u64;
                let mut store = waiting.then(|| entry(Status::AwaitingApproval));
                let mut seen: [Option<Option<LedgerEntry>>; 2] = [None, None];
                let mut believed: [Option<SystemTime>; 2] = [None, None];
                let mut fixed = 0;
                for op in ops {
                    match op {
                        Op::Wait(d) => now += d,
                        Op::Read(h) => seen[h] = Some(store.clone()),
                        Op::Take(h) => {
                            let Some(reading) = &seen[h] else { continue };
                            let Ok(how) = may_take(reading.as_ref(), HOLDERS[h], t(now)) else {
                                continue;
                            };
                            if !how.expect(HOLDERS[h]).holds(store.as_ref()) {
                                continue;
                            }
                            let mut e = store.clone().unwrap_or_else(|| entry(Status::Intent));
                            take(&mut e, HOLDERS[h], t(now), TTL).unwrap();
                            let other = believed[1 - h];
                            prop_assert!(
                                other.is_none_or(|until| until <= t(now)),
                                "{} took at {now} while {} held until {other:?}",
                                HOLDERS[h], HOLDERS[1 - h]
                            );
                            believed[h] = e.lease.as_ref().map(|l| l.expires_at);
                            store = Some(e);
                        }
                        Op::Complete(h, ok) => {
                            // A holder acts only on a lease it believes live.
                            let Some(until) = believed[h].take() else { continue };
                            if until <= t(now) {
                                continue;
                            }
                            let cond = Expect::HeldBy(HOLDERS[h].to_string());
                            prop_assert!(cond.holds(store.as_ref()), "a live lease was lost");
                            let e = store.as_mut().unwrap();
                            let to = if ok { Status::Succeeded } else { Status::Failed };
                            e.advance(to, t(now)).unwrap();
                            fixed += usize::from(ok);
                        }
                    }
                }
                prop_assert!(fixed <= 1, "fixed {fixed} times");
            }
        }
    }
}
