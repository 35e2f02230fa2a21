//! Limits that hold for the whole fleet: the per-minute caps and the breaker's window,
//! counted in the ledger table instead of in each executor's memory. Pure: this decides
//! which counter to bump and on what condition; the store does it atomically
//! (`ADD n :one` on the condition `attribute_not_exists(n) OR n < :below`).
//!
//! Counters are per calendar minute. Fixed minutes alone would let a cap's worth through
//! at the end of one minute and again at the start of the next; so a bucket's room is the
//! cap less the previous minute's count weighted by how much of it still lies in the last
//! 60 seconds (the sliding-window estimate). Within any calendar minute the cap holds
//! exactly; across a boundary it holds up to rounding. Executors' clocks must agree to
//! well within a minute.

use std::ops::RangeInclusive;
use std::time::{Duration, SystemTime};

use super::item::epoch;
use crate::guard::Limited;
use crate::policy::BreakerSettings;

/// Length of one counter bucket.
pub const BUCKET: Duration = Duration::from_secs(60);
/// How long counters are kept after their minute (TTL), longer than any breaker window
/// worth reading.
pub const KEEP: Duration = Duration::from_secs(3600);

/// The minute `t` falls in (minutes since the epoch).
pub fn bucket(t: SystemTime) -> u64 {
    epoch(t) / BUCKET.as_secs()
}

/// Which cap a counter counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// `[limits] max_fixes_per_minute`: every rule.
    Global,
    /// A rule's `max_fixes_per_minute`.
    Rule(&'a str),
}

impl Scope<'_> {
    /// The verdict when this scope's cap is spent, as the per-process limiter gives it.
    pub fn limited(&self, limit: u32) -> Limited {
        match self {
            Scope::Global => Limited::Global { limit },
            Scope::Rule(rule) => Limited::Rule {
                rule: rule.to_string(),
                limit,
            },
        }
    }
}

/// The item id of a fix counter: `rate#all#MINUTE` or `rate#rule#RULE#MINUTE`.
pub fn counter_key(scope: Scope<'_>, bucket: u64) -> String {
    match scope {
        Scope::Global => format!("rate#all#{bucket}"),
        Scope::Rule(rule) => format!("rate#rule#{rule}#{bucket}"),
    }
}

/// How many fixes the current minute may still start in all: `limit` less the previous
/// minute's `previous` weighted by the share of it inside the last 60 seconds (rounded
/// up, so the estimate never lets more through).
pub fn room(limit: u32, previous: u32, now: SystemTime) -> u32 {
    let width = BUCKET.as_secs();
    let overlap = width - epoch(now) % width;
    let carried = (u64::from(previous) * overlap).div_ceil(width);
    u64::from(limit)
        .saturating_sub(carried)
        .try_into()
        .expect("at most limit")
}

/// The counts of a scope's previous and current minute, as read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// The previous minute's count.
    pub previous: u32,
    /// The current minute's count.
    pub current: u32,
}

/// Whether one more fix fits the window (a check that takes nothing).
pub fn check(scope: Scope<'_>, limit: u32, window: Window, now: SystemTime) -> Result<(), Limited> {
    if window.current < room(limit, window.previous, now) {
        Ok(())
    } else {
        Err(scope.limited(limit))
    }
}

/// A conditional increment: add one to `key` if it is below `below` (or absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakePlan {
    /// The counter's item id.
    pub key: String,
    /// The count must be below this for the increment to happen.
    pub below: u32,
    /// TTL of the counter item (epoch seconds).
    pub expires_at: u64,
}

/// Plans taking one fix from a scope's budget, given the previous minute's count; a
/// budget already spent is refused without a write. If the store then refuses the
/// condition, the cap is reached: [`Scope::limited`]. An executor takes the rule's
/// budget first and the global one second, and gives the rule's back (add minus one)
/// when the global refuses; a lost give-back only makes the cap stricter.
pub fn plan_take(
    scope: Scope<'_>,
    limit: u32,
    previous: u32,
    now: SystemTime,
) -> Result<TakePlan, Limited> {
    let below = room(limit, previous, now);
    if below == 0 {
        return Err(scope.limited(limit));
    }
    let b = bucket(now);
    Ok(TakePlan {
        key: counter_key(scope, b),
        below,
        expires_at: (b + 1) * BUCKET.as_secs() + KEEP.as_secs(),
    })
}

/// The item id of a minute's fix outcomes for the fleet breaker (counters `ok` and
/// `failed`).
pub fn outcome_key(bucket: u64) -> String {
    format!("breaker#{bucket}")
}

/// The item id holding until when the fleet breaker is open (`open_until`).
pub const BREAKER_STATE_KEY: &str = "breaker#state";

/// The minutes whose outcomes count for a breaker window ending at `now`: every minute
/// that overlaps it (whole minutes, so the window is at most one minute longer).
pub fn window_buckets(window: Duration, now: SystemTime) -> RangeInclusive<u64> {
    let last = bucket(now);
    let minutes = window.as_secs().div_ceil(BUCKET.as_secs()).max(1);
    last.saturating_sub(minutes - 1)..=last
}

/// One minute's finished fixes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Fixes that succeeded.
    pub ok: u32,
    /// Fixes that failed.
    pub failed: u32,
}

/// (failed, total) over the window, from the minutes read (others count as none).
pub fn tally(minutes: &[(u64, Outcomes)], window: Duration, now: SystemTime) -> (u32, u32) {
    let inside = window_buckets(window, now);
    minutes
        .iter()
        .filter(|(b, _)| inside.contains(b))
        .fold((0, 0), |(failed, total), (_, o)| {
            (failed + o.failed, total + o.ok + o.failed)
        })
}

/// Whether the fleet's outcomes open the breaker: as many finished fixes as
/// `min_fixes`, and a failed share at or above `error_rate` (the per-process breaker's
/// rule, over the fleet's window).
pub fn trips(settings: &BreakerSettings, failed: u32, total: u32) -> bool {
    settings.trips(failed, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// `s` seconds into minute 1000.
    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(60_000 + s)
    }

    #[test]
    fn a_bucket_is_a_calendar_minute() {
        assert_eq!(bucket(at(0)), 1000);
        assert_eq!(bucket(at(59)), 1000);
        assert_eq!(bucket(at(60)), 1001);
        assert_eq!(counter_key(Scope::Global, 1000), "rate#all#1000");
        assert_eq!(counter_key(Scope::Rule("ssh"), 7), "rate#rule#ssh#7");
    }

    #[test]
    fn the_previous_minute_counts_by_how_much_of_it_is_recent() {
        // At the start of a minute the whole previous minute is recent.
        assert_eq!(room(5, 5, at(0)), 0);
        assert_eq!(room(5, 2, at(0)), 3);
        // Half-way, half of it (rounded up).
        assert_eq!(room(5, 5, at(30)), 2);
        assert_eq!(room(5, 3, at(30)), 3);
        // At the end, almost none.
        assert_eq!(room(5, 5, at(59)), 4);
        assert_eq!(room(5, 0, at(10)), 5);
        assert_eq!(room(2, 100, at(0)), 0, "never below zero");
    }

    #[test]
    fn a_fix_is_allowed_while_the_window_has_room() {
        let w = |previous, current| Window { previous, current };
        assert_eq!(check(Scope::Global, 5, w(0, 4), at(1)), Ok(()));
        assert_eq!(
            check(Scope::Global, 5, w(0, 5), at(1)),
            Err(Limited::Global { limit: 5 })
        );
        assert_eq!(
            check(Scope::Rule("ssh"), 2, w(2, 0), at(0)),
            Err(Limited::Rule {
                rule: "ssh".into(),
                limit: 2
            })
        );
        assert_eq!(check(Scope::Rule("ssh"), 2, w(2, 0), at(59)), Ok(()));
    }

    #[test]
    fn a_take_is_a_conditional_increment_of_this_minute() {
        let plan = plan_take(Scope::Global, 5, 2, at(30)).unwrap();
        assert_eq!(
            plan,
            TakePlan {
                key: "rate#all#1000".into(),
                below: 4,
                expires_at: 60_060 + 3600,
            }
        );
        assert_eq!(
            plan_take(Scope::Rule("r"), 1, 1, at(0)),
            Err(Limited::Rule {
                rule: "r".into(),
                limit: 1
            })
        );
    }

    #[test]
    fn the_fleet_breaker_counts_the_window_s_minutes() {
        let ten = Duration::from_secs(600);
        assert_eq!(window_buckets(ten, at(5)), 991..=1000);
        assert_eq!(window_buckets(Duration::from_secs(1), at(5)), 1000..=1000);
        let o = |ok, failed| Outcomes { ok, failed };
        let minutes = [(990, o(0, 9)), (995, o(1, 2)), (1000, o(1, 1))];
        assert_eq!(tally(&minutes, ten, at(5)), (3, 5), "minute 990 is outside");
        let s = BreakerSettings {
            error_rate: 0.5,
            window: ten,
            min_fixes: 5,
            cooldown: ten,
        };
        assert!(trips(&s, 3, 5));
        assert!(!trips(&s, 2, 5));
        assert!(!trips(&s, 4, 4), "too few fixes to be a rate");
    }
}
