//! Blast-radius guards, as pure state machines over explicit time: per-minute caps on
//! automatic fixes, the error-rate circuit breaker, and the kill switch's cached value.
//! The executor owns one of each and does the I/O (reading the switch, auditing trips).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::policy::BreakerSettings;

/// Caps measure fixes started in the last minute.
const MINUTE: Duration = Duration::from_secs(60);

/// Which cap stopped a fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limited {
    /// `[limits] max_fixes_per_minute`.
    Global {
        /// The cap.
        limit: u32,
    },
    /// A rule's `max_fixes_per_minute`.
    Rule {
        /// The rule.
        rule: String,
        /// Its cap.
        limit: u32,
    },
}

impl fmt::Display for Limited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limited::Global { limit } => write!(
                f,
                "rate cap: {limit} automatic fixes in the last minute (all rules)"
            ),
            Limited::Rule { rule, limit } => write!(
                f,
                "rate cap: {limit} automatic fixes in the last minute under rule {rule}"
            ),
        }
    }
}

/// Sliding one-minute caps, global and per rule.
#[derive(Debug, Default)]
pub struct RateLimiter {
    global: Option<u32>,
    all: VecDeque<Instant>,
    by_rule: HashMap<String, VecDeque<Instant>>,
}

fn expire(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE)
    {
        times.pop_front();
    }
}

impl RateLimiter {
    /// A limiter with this global cap (`None`: no global cap).
    pub fn new(global: Option<u32>) -> Self {
        RateLimiter {
            global,
            ..Default::default()
        }
    }

    /// Takes one fix from both budgets, or says which one is spent (taking nothing).
    pub fn try_acquire(
        &mut self,
        rule: &str,
        rule_cap: Option<u32>,
        now: Instant,
    ) -> Result<(), Limited> {
        self.check(rule, rule_cap, now)?;
        self.by_rule
            .entry(rule.to_string())
            .or_default()
            .push_back(now);
        self.all.push_back(now);
        Ok(())
    }

    /// Gives back a fix taken at `at` under `rule` that did not run after all (another
    /// executor held the finding, or it was done already). Nothing taken then: nothing.
    pub fn give_back(&mut self, rule: &str, at: Instant) {
        fn forget(times: &mut VecDeque<Instant>, at: Instant) {
            if let Some(i) = times.iter().rposition(|t| *t == at) {
                times.remove(i);
            }
        }
        forget(&mut self.all, at);
        if let Some(mine) = self.by_rule.get_mut(rule) {
            forget(mine, at);
        }
    }

    /// Whether [`try_acquire`](Self::try_acquire) would succeed, taking nothing.
    pub fn check(
        &mut self,
        rule: &str,
        rule_cap: Option<u32>,
        now: Instant,
    ) -> Result<(), Limited> {
        expire(&mut self.all, now);
        if let Some(limit) = self.global {
            if self.all.len() >= limit as usize {
                return Err(Limited::Global { limit });
            }
        }
        let mine = self.by_rule.entry(rule.to_string()).or_default();
        expire(mine, now);
        if let Some(limit) = rule_cap {
            if mine.len() >= limit as usize {
                return Err(Limited::Rule {
                    rule: rule.to_string(),
                    limit,
                });
            }
        }
        Ok(())
    }
}

/// A change of the breaker's state, to log and audit.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Too many fixes failed: automatic fixes stop until `cooldown` has passed.
    Opened {
        /// Failed fixes in the window.
        failed: usize,
        /// Finished fixes in the window.
        total: usize,
        /// The configured threshold.
        threshold: f64,
        /// The window.
        window: Duration,
        /// How long it stays open.
        cooldown: Duration,
    },
    /// The cooldown passed: automatic fixes resume, counting afresh.
    Closed,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transition::Opened {
                failed,
                total,
                threshold,
                window,
                cooldown,
            } => write!(
                f,
                "circuit breaker opened: {failed} of {total} fixes failed in the last {} (threshold {:.0}%); automatic fixes go to approval for {}",
                humantime::format_duration(*window),
                threshold * 100.0,
                humantime::format_duration(*cooldown)
            ),
            Transition::Closed => {
                f.write_str("circuit breaker closed: automatic fixes resume")
            }
        }
    }
}

/// An error-rate circuit breaker over a sliding window of finished fixes.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    outcomes: VecDeque<(Instant, bool)>,
    open_until: Option<Instant>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Breaker {
            settings,
            outcomes: VecDeque::new(),
            open_until: None,
        }
    }

    /// Whether automatic fixes are stopped at `now`; closing after the cooldown is
    /// returned as a transition.
    pub fn check(&mut self, now: Instant) -> (bool, Option<Transition>) {
        match self.open_until {
            Some(until) if now < until => (true, None),
            Some(_) => {
                self.open_until = None;
                // Count afresh: the failures that opened it must not open it again.
                self.outcomes.clear();
                (false, Some(Transition::Closed))
            }
            None => (false, None),
        }
    }

    /// Records a finished fix; returns `Opened` when this one trips the breaker.
    pub fn record(&mut self, ok: bool, now: Instant) -> Option<Transition> {
        let window = self.settings.window;
        self.outcomes.push_back((now, ok));
        while self
            .outcomes
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) >= window)
        {
            self.outcomes.pop_front();
        }
        if self.open_until.is_some() {
            return None;
        }
        let total = u32::try_from(self.outcomes.len()).unwrap_or(u32::MAX);
        let failed =
            u32::try_from(self.outcomes.iter().filter(|(_, ok)| !ok).count()).unwrap_or(u32::MAX);
        if !self.settings.trips(failed, total) {
            return None;
        }
        // A cooldown too long to represent means "until restarted".
        self.open_until = Some(
            now.checked_add(self.settings.cooldown)
                .unwrap_or(now + Duration::from_secs(100 * 365 * 86_400)),
        );
        Some(Transition::Opened {
            failed: failed as usize,
            total: total as usize,
            threshold: self.settings.error_rate,
            window,
            cooldown: self.settings.cooldown,
        })
    }
}

/// Reads a kill-switch value. `off`, `false`, `0`, `no` and empty (any case, trimmed)
/// mean off; anything else means on, so a typo stops fixes rather than letting them run.
pub fn kill_switch_on(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "" | "off" | "false" | "0" | "no"
    )
}

/// The kill switch's last known value and when it was read.
#[derive(Debug)]
pub struct SwitchCache {
    ttl: Duration,
    last: Option<(bool, Instant)>,
}

impl SwitchCache {
    /// Trusts a read for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        SwitchCache { ttl, last: None }
    }

    /// The value, if read less than `ttl` ago.
    pub fn fresh(&self, now: Instant) -> Option<bool> {
        self.last
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(on, _)| on)
    }

    /// The value last read, however old.
    pub fn last_known(&self) -> Option<bool> {
        self.last.map(|(on, _)| on)
    }

    /// Stores a read; returns the new value when it differs from the previous one (the
    /// first read counts as a change only when the switch is on).
    pub fn update(&mut self, on: bool, now: Instant) -> Option<bool> {
        let before = self.last.map(|(v, _)| v).unwrap_or(false);
        self.last = Some((on, now));
        (before != on).then_some(on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn caps_are_per_minute_global_and_per_rule() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(Some(3));
        assert!(r.try_acquire("a", Some(2), t0).is_ok());
        assert!(r.try_acquire("a", Some(2), t0).is_ok());
        assert_eq!(
            r.try_acquire("a", Some(2), t0),
            Err(Limited::Rule {
                rule: "a".into(),
                limit: 2
            })
        );
        assert!(r.try_acquire("b", None, t0 + secs(1)).is_ok());
        assert_eq!(
            r.try_acquire("b", None, t0 + secs(2)),
            Err(Limited::Global { limit: 3 })
        );
        // A refused fix takes nothing: a minute after the first two, room again.
        assert!(r.try_acquire("a", Some(2), t0 + secs(60)).is_ok());
        assert!(r.try_acquire("a", Some(2), t0 + secs(60)).is_ok());
        assert!(r.try_acquire("c", None, t0 + secs(60)).is_err());
        assert!(RateLimiter::new(None).try_acquire("x", None, t0).is_ok());
    }

    #[test]
    fn a_fix_given_back_leaves_room_for_another() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(Some(2));
        r.try_acquire("a", Some(1), t0).unwrap();
        assert!(r.check("a", Some(1), t0).is_err());
        r.give_back("a", t0);
        r.try_acquire("a", Some(1), t0 + secs(1)).unwrap();
        r.try_acquire("b", None, t0 + secs(1)).unwrap();
        // Giving back what was never taken takes nothing more away.
        r.give_back("b", t0 + secs(30));
        assert_eq!(
            r.check("c", None, t0 + secs(2)),
            Err(Limited::Global { limit: 2 })
        );
    }

    fn settings() -> BreakerSettings {
        BreakerSettings {
            error_rate: 0.5,
            window: secs(60),
            min_fixes: 4,
            cooldown: secs(300),
        }
    }

    #[test]
    fn breaker_opens_at_the_error_rate_once_enough_fixes_ended() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        assert_eq!(b.record(false, t0), None, "one failure is not a rate");
        assert_eq!(b.record(false, t0), None);
        assert_eq!(b.record(true, t0), None);
        let opened = b.record(true, t0 + secs(1));
        assert!(
            matches!(
                opened,
                Some(Transition::Opened {
                    failed: 2,
                    total: 4,
                    ..
                })
            ),
            "{opened:?}"
        );
        assert!(opened.unwrap().to_string().contains("2 of 4 fixes failed"));
        assert_eq!(b.check(t0 + secs(2)), (true, None));
        assert_eq!(b.record(false, t0 + secs(3)), None, "already open");
        assert_eq!(b.check(t0 + secs(301)), (false, Some(Transition::Closed)));
        assert_eq!(b.check(t0 + secs(302)), (false, None));
        // Counting afresh after closing.
        assert_eq!(b.record(false, t0 + secs(303)), None);
    }

    #[test]
    fn breaker_forgets_failures_outside_the_window() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings());
        b.record(false, t0);
        b.record(false, t0);
        b.record(false, t0);
        assert_eq!(b.record(true, t0 + secs(61)), None, "old failures expired");
        assert_eq!(b.check(t0 + secs(61)), (false, None));
    }

    #[test]
    fn kill_switch_values_fail_safe() {
        for off in ["off", "OFF", " false ", "0", "no", ""] {
            assert!(!kill_switch_on(off), "{off:?}");
        }
        for on in ["on", "true", "1", "paused", "of", "yes"] {
            assert!(kill_switch_on(on), "{on:?}");
        }
    }

    #[test]
    fn switch_cache_expires_and_reports_changes() {
        let t0 = Instant::now();
        let mut c = SwitchCache::new(secs(30));
        assert_eq!(c.fresh(t0), None);
        assert_eq!(c.update(false, t0), None, "first read, off: no change");
        assert_eq!(c.fresh(t0 + secs(29)), Some(false));
        assert_eq!(c.fresh(t0 + secs(30)), None);
        assert_eq!(c.update(true, t0 + secs(30)), Some(true));
        assert_eq!(c.update(true, t0 + secs(60)), None);
        assert_eq!(c.last_known(), Some(true));
        assert_eq!(c.update(false, t0 + secs(90)), Some(false));
    }
}
