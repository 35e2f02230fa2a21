//! A bounded memory of tasks this process has finished, so a duplicate delivery (the
//! same task again, from SQS's at-least-once delivery or a duplicated event) is recorded
//! as a duplicate instead of being run again. Bounded in entries and age: it is a fast
//! path, not the guarantee; the state checks and SSM's ClientToken are.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the first copy of a task ended as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// `succeeded`, `already_compliant`, `failed`.
    pub outcome: String,
    /// When it finished (RFC 3339).
    pub at: String,
    /// Its SSM execution, if any.
    pub execution_id: Option<String>,
}

/// Entries by key, and keys oldest first.
type Entries = (HashMap<String, (Finished, Instant)>, VecDeque<String>);

/// Finished tasks by idempotency key, oldest evicted first.
#[derive(Debug)]
pub struct FinishedTasks {
    capacity: usize,
    ttl: Duration,
    inner: Mutex<Entries>,
}

impl FinishedTasks {
    /// Remembers at most `capacity` tasks for at most `ttl` each.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        FinishedTasks {
            capacity: capacity.max(1),
            ttl,
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// The first copy's outcome, if this key finished within the TTL.
    pub fn get(&self, key: &str, now: Instant) -> Option<Finished> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner
            .0
            .get(key)
            .filter(|(_, at)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(seen, _)| seen.clone())
    }

    /// Records a finished task, evicting the oldest entries beyond the capacity.
    pub fn insert(&self, key: &str, seen: Finished, now: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *inner;
        if map.insert(key.to_string(), (seen, now)).is_none() {
            order.push_back(key.to_string());
        }
        while order.len() > self.capacity {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// Entries held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(o: &str) -> Finished {
        Finished {
            outcome: o.into(),
            at: "t".into(),
            execution_id: None,
        }
    }

    #[test]
    fn remembers_within_ttl_and_capacity() {
        let t0 = Instant::now();
        let r = FinishedTasks::new(2, Duration::from_secs(60));
        r.insert("a", seen("succeeded"), t0);
        assert_eq!(r.get("a", t0).unwrap().outcome, "succeeded");
        assert_eq!(r.get("a", t0 + Duration::from_secs(60)), None, "expired");
        r.insert("b", seen("x"), t0);
        r.insert("c", seen("y"), t0);
        assert_eq!(r.len(), 2, "bounded");
        assert_eq!(r.get("a", t0), None, "oldest evicted");
        assert!(r.get("c", t0).is_some());
        r.insert("c", seen("z"), t0);
        assert_eq!(r.len(), 2);
        assert_eq!(r.get("c", t0).unwrap().outcome, "z");
    }
}
