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
//!
//! The breaker's window is one item ([`BREAKER_KEY`]) with a count per minute and kind
//! of outcome: recording an outcome (`ADD`, returning the item) gives the whole window
//! without another read, and opening it is a conditional write (not open already), so
//! one executor opens it and audits the trip. Counter and breaker items carry a TTL and
//! none of the ledger's index attributes, so history and reports never see them.

use std::collections::BTreeMap;
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

/// The counter attribute of a cap's item (its `ADD`ed count).
pub const COUNT: &str = "n";

/// The item id of the fleet breaker: one item holding every recent minute's outcomes (an
/// attribute per minute and kind, see [`outcome_attribute`]) and until when the breaker
/// is open ([`OPEN_UNTIL`]). One item, so recording an outcome returns the whole window
/// in the same write.
pub const BREAKER_KEY: &str = "breaker#fleet";

/// The breaker item's attribute holding until when (epoch seconds) it is open.
pub const OPEN_UNTIL: &str = "open_until";

/// The breaker item's attribute counting one minute's succeeded (`ok_MINUTE`) or failed
/// (`failed_MINUTE`) fixes.
pub fn outcome_attribute(ok: bool, bucket: u64) -> String {
    if ok {
        format!("ok_{bucket}")
    } else {
        format!("failed_{bucket}")
    }
}

/// Reads an attribute name of [`outcome_attribute`]: (ok, minute).
fn parse_outcome_attribute(name: &str) -> Option<(bool, u64)> {
    let (kind, bucket) = name.split_once('_')?;
    let ok = match kind {
        "ok" => true,
        "failed" => false,
        _ => return None,
    };
    Some((ok, bucket.parse().ok()?))
}

/// One minute's finished fixes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Fixes that succeeded.
    pub ok: u32,
    /// Fixes that failed.
    pub failed: u32,
}

/// The fleet breaker's item, as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakerItem {
    /// Each minute's outcomes, by minute.
    pub minutes: BTreeMap<u64, Outcomes>,
    /// Until when (epoch seconds) the breaker is, or last was, open.
    pub open_until: Option<u64>,
}

impl BreakerItem {
    /// The item from its numeric attributes (name, value); other attributes are ignored.
    pub fn from_numbers<'a>(attributes: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        let mut item = BreakerItem::default();
        for (name, value) in attributes {
            if name == OPEN_UNTIL {
                item.open_until = Some(value);
            } else if let Some((ok, bucket)) = parse_outcome_attribute(name) {
                let count = u32::try_from(value).unwrap_or(u32::MAX);
                let minute = item.minutes.entry(bucket).or_default();
                if ok {
                    minute.ok = count;
                } else {
                    minute.failed = count;
                }
            }
        }
        item
    }

    /// Whether the breaker is open at `now`.
    pub fn is_open(&self, now: SystemTime) -> bool {
        self.open_until.is_some_and(|until| epoch(now) < until)
    }

    /// (failed, total) over the window ending at `now`. Minutes before the breaker last
    /// closed do not count: after its cooldown it counts afresh, as the per-process
    /// breaker does, so the failures that opened it do not open it again.
    pub fn tally(&self, window: Duration, now: SystemTime) -> (u32, u32) {
        let inside = window_buckets(window, now);
        let fresh = self.open_until.map_or(0, |until| until / BUCKET.as_secs());
        self.minutes
            .iter()
            .filter(|(b, _)| inside.contains(b) && **b >= fresh)
            .fold((0, 0), |(failed, total), (_, o)| {
                (
                    failed.saturating_add(o.failed),
                    total.saturating_add(o.ok).saturating_add(o.failed),
                )
            })
    }

    /// Attributes of minutes no window ending at or after `now` reads any more, to remove.
    pub fn stale(&self, window: Duration, now: SystemTime) -> Vec<String> {
        let first = *window_buckets(window, now).start();
        self.minutes
            .iter()
            .filter(|(b, _)| **b < first)
            .flat_map(|(b, o)| {
                [(true, o.ok), (false, o.failed)]
                    .into_iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(ok, _)| outcome_attribute(ok, *b))
            })
            .collect()
    }

    /// After an outcome was recorded: the trip, if the window's outcomes open the breaker
    /// and it is not open already.
    pub fn trip(&self, settings: &BreakerSettings, now: SystemTime) -> Option<Trip> {
        if self.is_open(now) {
            return None;
        }
        let (failed, total) = self.tally(settings.window, now);
        if !settings.trips(failed, total) {
            return None;
        }
        // A cooldown too long to represent means "until the item is reset by hand".
        let open_until = epoch(now).saturating_add(settings.cooldown.as_secs());
        Some(Trip {
            failed,
            total,
            open_until,
        })
    }
}

/// The fleet breaker opening: written on the condition that it is not open already, so
/// one executor opens it (and audits the trip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trip {
    /// Failed fixes in the window.
    pub failed: u32,
    /// Finished fixes in the window.
    pub total: u32,
    /// Until when (epoch seconds) it stays open.
    pub open_until: u64,
}

/// TTL of the breaker item after an outcome at `now`: kept while any window or
/// cooldown may still read it.
pub fn breaker_expires_at(settings: &BreakerSettings, now: SystemTime) -> u64 {
    epoch(now)
        .saturating_add(settings.window.as_secs())
        .saturating_add(settings.cooldown.as_secs())
        .saturating_add(KEEP.as_secs())
}

/// The minutes whose outcomes count for a breaker window ending at `now`: every minute
/// that overlaps it (whole minutes, so the window is at most one minute longer).
pub fn window_buckets(window: Duration, now: SystemTime) -> RangeInclusive<u64> {
    let last = bucket(now);
    let minutes = window.as_secs().div_ceil(BUCKET.as_secs()).max(1);
    last.saturating_sub(minutes - 1)..=last
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
        let item = BreakerItem::from_numbers([
            ("failed_990", 9),
            ("ok_995", 1),
            ("failed_995", 2),
            ("ok_1000", 1),
            ("failed_1000", 1),
            ("id", 7),
            ("ttl", 99),
        ]);
        assert_eq!(item.minutes.len(), 3);
        assert_eq!(item.open_until, None);
        assert_eq!(item.tally(ten, at(5)), (3, 5), "minute 990 is outside");
        assert_eq!(item.stale(ten, at(5)), vec!["failed_990".to_string()]);
        assert_eq!(outcome_attribute(true, 7), "ok_7");
        assert_eq!(outcome_attribute(false, 7), "failed_7");
    }

    #[test]
    fn the_fleet_breaker_trips_once_and_counts_afresh_after_its_cooldown() {
        let ten = Duration::from_secs(600);
        let s = BreakerSettings {
            error_rate: 0.5,
            window: ten,
            min_fixes: 5,
            cooldown: Duration::from_secs(120),
        };
        let mut item = BreakerItem::from_numbers([("ok_999", 2), ("failed_1000", 3)]);
        let trip = item.trip(&s, at(5)).expect("3 of 5 failed");
        assert_eq!(
            trip,
            Trip {
                failed: 3,
                total: 5,
                open_until: 60_125
            }
        );
        assert!(
            !s.trips(2, 5) && !s.trips(4, 4),
            "the process breaker's rule"
        );
        item.open_until = Some(trip.open_until);
        assert!(item.is_open(at(5)) && item.is_open(at(124)));
        assert_eq!(item.trip(&s, at(6)), None, "open already: no second trip");
        // After the cooldown the failures that opened it no longer count.
        assert!(!item.is_open(at(125)));
        assert_eq!(item.tally(ten, at(125)), (0, 0));
        assert_eq!(item.trip(&s, at(125)), None);
        assert_eq!(breaker_expires_at(&s, at(0)), 60_000 + 600 + 120 + 3600);
    }
}
