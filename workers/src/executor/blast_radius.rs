//! The executor's blast-radius guards around automatic fixes: the kill switch (an SSM
//! parameter, cached briefly), the error-rate circuit breaker and per-minute caps. A
//! stopped automatic fix is not lost: the executor turns it into an approval request.
//! Every trip and reset is logged and audited.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::aws::retry::AwsError;
use crate::aws::ssm::Parameters;
use redress::audit::{AuditDecision, AuditRecord};
use redress::guard::{kill_switch_on, Breaker, Limited, RateLimiter, SwitchCache, Transition};
use redress::policy::{Limits, Rule};

const WORKER: &str = "executor";

/// The kill switch: an SSM parameter and its cached value.
struct KillSwitch {
    parameter: String,
    parameters: Parameters,
    notes: Arc<Notes>,
    cache: tokio::sync::Mutex<SwitchCache>,
}

/// The guards of one executor process.
pub struct Guards {
    limiter: Mutex<RateLimiter>,
    breaker: Mutex<Breaker>,
    switch: Option<KillSwitch>,
    /// When each cap last had its trip audited: once a minute is enough.
    cap_audited: Mutex<HashMap<String, Instant>>,
    /// Trips and resets not yet handed to the settler.
    notes: Arc<Notes>,
}

/// Notes of guard trips and resets, handed to the settler with the next verdict.
type Notes = Mutex<Vec<AuditRecord>>;

fn audit(notes: &Notes, decision: AuditDecision, reason: &str) {
    match decision {
        AuditDecision::GuardTripped => tracing::warn!(reason, "guard tripped"),
        _ => tracing::info!(reason, "guard reset"),
    }
    lock(notes).push(AuditRecord::bare(WORKER, decision).reason(reason));
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Guards {
    /// Guards from the policy's `[limits]`; the kill switch is read with `ssm`.
    pub fn new(limits: &Limits, parameters: Parameters) -> Guards {
        let notes: Arc<Notes> = Arc::default();
        Guards {
            notes: notes.clone(),
            limiter: Mutex::new(RateLimiter::new(limits.max_fixes_per_minute)),
            breaker: Mutex::new(Breaker::new(limits.breaker)),
            switch: limits
                .kill_switch_parameter
                .clone()
                .map(|parameter| KillSwitch {
                    parameter,
                    parameters,
                    notes,
                    cache: tokio::sync::Mutex::new(SwitchCache::new(limits.kill_switch_cache)),
                }),
            cap_audited: Mutex::new(HashMap::new()),
        }
    }

    /// Why nothing may be changed now, if the kill switch is on. It stops approved fixes
    /// too: a person's approval does not outrank the switch that says stop.
    pub async fn kill_switch(&self) -> Option<String> {
        let switch = self.switch.as_ref()?;
        switch
            .on()
            .await
            .then(|| format!("kill switch {} is on: fixes are paused", switch.parameter))
    }

    /// Lets an automatic fix under `rule` run, or says why not (the fix then goes to a
    /// person). `take`: count it against the rate caps (a dry run only asks). Rate caps
    /// and the breaker apply to automatic fixes only; approved ones ask [`Self::kill_switch`].
    pub async fn admit(&self, rule: &Rule, take: bool) -> Result<(), String> {
        if let Some(why) = self.kill_switch().await {
            return Err(why);
        }
        let now = Instant::now();
        let (open, change) = lock(&self.breaker).check(now);
        if let Some(t) = change {
            audit(&self.notes, AuditDecision::GuardReset, &t.to_string());
        }
        if open {
            return Err("circuit breaker open: too many recent fixes failed".into());
        }
        let mut limiter = lock(&self.limiter);
        let limited = if take {
            limiter.try_acquire(&rule.id, rule.max_fixes_per_minute, now)
        } else {
            limiter.check(&rule.id, rule.max_fixes_per_minute, now)
        };
        drop(limiter);
        limited.map_err(|l| {
            self.audit_cap(&l, now);
            l.to_string()
        })
    }

    /// The trips and resets seen since the last call, for the settler to write.
    pub fn take_notes(&self) -> Vec<AuditRecord> {
        std::mem::take(&mut *lock(&self.notes))
    }

    /// Records how a fix ended (approved ones too): failures feed the breaker.
    pub fn record(&self, ok: bool) {
        let opened = lock(&self.breaker).record(ok, Instant::now());
        if let Some(t @ Transition::Opened { .. }) = opened {
            audit(&self.notes, AuditDecision::GuardTripped, &t.to_string());
        }
    }

    fn audit_cap(&self, limited: &Limited, now: Instant) {
        let key = match limited {
            Limited::Global { .. } => String::new(),
            Limited::Rule { rule, .. } => rule.clone(),
        };
        let mut audited = lock(&self.cap_audited);
        let recent = audited
            .get(&key)
            .is_some_and(|t| now.saturating_duration_since(*t) < Duration::from_secs(60));
        if !recent {
            audited.insert(key, now);
            audit(
                &self.notes,
                AuditDecision::GuardTripped,
                &format!("{limited}: further automatic fixes go to approval"),
            );
        }
    }
}

impl KillSwitch {
    /// The switch's value: cached for the configured time; a missing parameter is off;
    /// when it cannot be read, the last known value, or on if it was never read.
    async fn on(&self) -> bool {
        let mut cache = self.cache.lock().await;
        let now = Instant::now();
        if let Some(on) = cache.fresh(now) {
            return on;
        }
        let on = match self.read().await {
            Ok(value) => value.as_deref().is_some_and(kill_switch_on),
            Err(e) => {
                let fallback = cache.last_known().unwrap_or(true);
                tracing::warn!(parameter = %self.parameter, error = %e, on = fallback, "cannot read the kill switch; using the last known value (on if never read)");
                fallback
            }
        };
        if let Some(changed) = cache.update(on, now) {
            if changed {
                audit(&self.notes, AuditDecision::GuardTripped,
                    &format!(
                        "kill switch {} is on: automatic fixes go to approval, approved ones are held",
                        self.parameter
                    ),
                );
            } else {
                audit(
                    &self.notes,
                    AuditDecision::GuardReset,
                    &format!("kill switch {} is off: fixes resume", self.parameter),
                );
            }
        }
        on
    }

    async fn read(&self) -> Result<Option<String>, AwsError> {
        Ok(self.parameters.get(&self.parameter).await?.map(|p| p.value))
    }
}
