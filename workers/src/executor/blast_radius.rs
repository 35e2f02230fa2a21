//! The executor's blast-radius guards around automatic fixes: the kill switch (an SSM
//! parameter, cached briefly), the error-rate circuit breaker and per-minute caps. A
//! stopped automatic fix is not lost: the executor turns it into an approval request.
//! Every trip and reset is logged and audited.
//!
//! Where the caps and the breaker are counted: with a ledger table, in it
//! ([`FleetCounters`]), so they hold for every executor together however many the
//! service runs; without one, in this process's memory. In the fleet, a take the ledger
//! cannot answer stops the fix (it goes to a person), and an outcome it cannot record is
//! counted by this process's breaker instead, so neither is lost to an outage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::aws::ledger_counters::FleetCounters;
use crate::aws::retry::AwsError;
use crate::aws::ssm::Parameters;
use redress::audit::{AuditDecision, AuditRecord};
use redress::guard::{kill_switch_on, Breaker, Limited, RateLimiter, SwitchCache, Transition};
use redress::ledger::limits::{self, Scope, Window};
use redress::policy::{BreakerSettings, Limits, Rule};

const WORKER: &str = "executor";

/// The kill switch: an SSM parameter and its cached value.
struct KillSwitch {
    parameter: String,
    parameters: Parameters,
    notes: Arc<Notes>,
    cache: tokio::sync::Mutex<SwitchCache>,
}

/// The caps and breaker counted in the ledger for the whole fleet.
struct Fleet {
    counters: FleetCounters,
    /// Until when this process last saw the fleet breaker open, to audit its closing.
    seen_open: Mutex<Option<u64>>,
}

/// The guards of one executor process.
pub struct Guards {
    limits: Limits,
    limiter: Mutex<RateLimiter>,
    /// Without a ledger, the breaker; with one, it counts only the outcomes the ledger
    /// could not record.
    breaker: Mutex<Breaker>,
    fleet: Option<Fleet>,
    switch: Option<KillSwitch>,
    /// When each cap last had its trip audited: once a minute is enough.
    cap_audited: Mutex<HashMap<String, Instant>>,
    /// Trips and resets not yet handed to the settler.
    notes: Arc<Notes>,
}

/// What [`Guards::admit`] took from the caps, to give back with [`Guards::give_back`]
/// when the fix does not run after all.
#[derive(Debug)]
#[must_use = "a take not given back counts against the caps"]
pub struct Taken(Took);

#[derive(Debug)]
enum Took {
    /// Nothing (a check, or no caps).
    Nothing,
    /// This process's limiter, at this instant.
    Process { rule: String, at: Instant },
    /// These counters of the ledger.
    Fleet(Vec<String>),
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

/// Why an automatic fix does not run when the ledger cannot answer for the fleet's limits.
fn unreachable(e: &AwsError) -> String {
    format!("the fleet's rate caps and breaker cannot be read in the ledger ({e}): not fixing automatically")
}

const BREAKER_OPEN: &str = "circuit breaker open: too many recent fixes failed";

impl Guards {
    /// Guards from the policy's `[limits]`, counted in this process; the kill switch is
    /// read with `parameters`.
    pub fn new(limits: &Limits, parameters: Parameters) -> Guards {
        let notes: Arc<Notes> = Arc::default();
        Guards {
            limits: limits.clone(),
            notes: notes.clone(),
            limiter: Mutex::new(RateLimiter::new(limits.max_fixes_per_minute)),
            breaker: Mutex::new(Breaker::new(limits.breaker)),
            fleet: None,
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

    /// The same guards with the caps and the breaker counted in the ledger's table, for
    /// every executor together.
    pub fn counted_in(mut self, counters: FleetCounters) -> Guards {
        self.fleet = Some(Fleet {
            counters,
            seen_open: Mutex::new(None),
        });
        self
    }

    /// Which limits are in force and where they are counted, for the start-up log.
    pub fn in_force(&self) -> String {
        let caps = match self.limits.max_fixes_per_minute {
            Some(n) => format!("{n} automatic fixes a minute (all rules), rules' own caps"),
            None => "rules' own caps on automatic fixes a minute".into(),
        };
        match &self.fleet {
            Some(f) => format!(
                "{caps} and the circuit breaker hold for the whole fleet: counted in ledger table {}",
                f.counters.table()
            ),
            None => format!(
                "{caps} and the circuit breaker hold per executor process (no ledger table): N executors may make N times the fixes"
            ),
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
    /// person). `take`: count it against the rate caps (a dry run only asks); what was
    /// taken is returned, to give back if the fix does not run after all. Rate caps and
    /// the breaker apply to automatic fixes only; approved ones ask [`Self::kill_switch`].
    pub async fn admit(&self, rule: &Rule, take: bool) -> Result<Taken, String> {
        if let Some(why) = self.kill_switch().await {
            return Err(why);
        }
        let now = Instant::now();
        let (open, change) = lock(&self.breaker).check(now);
        if let Some(t) = change {
            audit(&self.notes, AuditDecision::GuardReset, &t.to_string());
        }
        if open {
            return Err(BREAKER_OPEN.into());
        }
        if let Some(fleet) = &self.fleet {
            return self.admit_fleet(fleet, rule, take, now).await;
        }
        let mut limiter = lock(&self.limiter);
        let limited = if take {
            limiter.try_acquire(&rule.id, rule.max_fixes_per_minute, now)
        } else {
            limiter.check(&rule.id, rule.max_fixes_per_minute, now)
        };
        drop(limiter);
        match limited {
            Ok(()) if take => Ok(Taken(Took::Process {
                rule: rule.id.clone(),
                at: now,
            })),
            Ok(()) => Ok(Taken(Took::Nothing)),
            Err(l) => Err(self.audit_cap(&l, "", now)),
        }
    }

    /// [`admit`](Self::admit) against the fleet's counters: the breaker's item and each
    /// capped scope's previous minute are read together; then the rule's budget is taken
    /// and the global one, the rule's given back if the global refuses.
    async fn admit_fleet(
        &self,
        fleet: &Fleet,
        rule: &Rule,
        take: bool,
        now: Instant,
    ) -> Result<Taken, String> {
        let at = SystemTime::now();
        let scopes: Vec<(Scope<'_>, u32)> = [
            rule.max_fixes_per_minute
                .map(|l| (Scope::Rule(&rule.id), l)),
            self.limits.max_fixes_per_minute.map(|l| (Scope::Global, l)),
        ]
        .into_iter()
        .flatten()
        .collect();
        let bucket = limits::bucket(at);
        let windows = futures::future::try_join_all(scopes.iter().map(|(scope, _)| async {
            let previous = fleet
                .counters
                .count(&limits::counter_key(*scope, bucket.saturating_sub(1)))
                .await?;
            // A take reads the current minute in its condition; a check reads it here.
            let current = if take {
                0
            } else {
                fleet
                    .counters
                    .count(&limits::counter_key(*scope, bucket))
                    .await?
            };
            Ok::<_, AwsError>(Window { previous, current })
        }));
        let (breaker, windows) = tokio::join!(fleet.counters.breaker(), windows);
        let (breaker, windows) = match (breaker, windows) {
            (Ok(b), Ok(w)) => (b, w),
            (Err(e), _) | (_, Err(e)) => return Err(unreachable(&e)),
        };
        self.note_fleet_breaker(fleet, breaker.open_until, at);
        if breaker.is_open(at) {
            return Err(format!("{BREAKER_OPEN} (across the fleet)"));
        }
        let mut taken = Vec::new();
        for ((scope, limit), window) in scopes.iter().zip(windows) {
            let refused = if take {
                match limits::plan_take(*scope, *limit, window.previous, at) {
                    Ok(plan) => match fleet.counters.take(&plan).await {
                        Ok(true) => {
                            taken.push(plan.key);
                            None
                        }
                        Ok(false) => Some(scope.limited(*limit)),
                        Err(e) => {
                            self.give_back(Taken(Took::Fleet(taken))).await;
                            return Err(unreachable(&e));
                        }
                    },
                    Err(limited) => Some(limited),
                }
            } else {
                limits::check(*scope, *limit, window, at).err()
            };
            if let Some(limited) = refused {
                self.give_back(Taken(Took::Fleet(taken))).await;
                return Err(self.audit_cap(&limited, " across the fleet", now));
            }
        }
        Ok(Taken(Took::Fleet(taken)))
    }

    /// Audits the fleet breaker's closing once this process has seen it open and then
    /// closed (its opening is audited by the executor that opened it).
    fn note_fleet_breaker(&self, fleet: &Fleet, open_until: Option<u64>, at: SystemTime) {
        let now = redress::ledger::item::epoch(at);
        let mut seen = lock(&fleet.seen_open);
        match open_until {
            Some(until) if now < until => *seen = Some(until),
            _ => {
                if seen.take().is_some() {
                    audit(
                        &self.notes,
                        AuditDecision::GuardReset,
                        &format!("{} (across the fleet)", Transition::Closed),
                    );
                }
            }
        }
    }

    /// Gives back what [`admit`](Self::admit) took, when the fix did not run after all
    /// (another executor held the finding, or it was done already), so duplicates do
    /// not spend the caps. A give-back the ledger refuses only leaves the cap stricter.
    pub async fn give_back(&self, taken: Taken) {
        match taken.0 {
            Took::Nothing => {}
            Took::Process { rule, at } => lock(&self.limiter).give_back(&rule, at),
            Took::Fleet(keys) => {
                let Some(fleet) = &self.fleet else { return };
                for key in keys {
                    if let Err(e) = fleet.counters.give_back(&key).await {
                        tracing::warn!(counter = %key, error = %e, "cannot give a rate-cap take back; the cap is stricter until the minute ends");
                    }
                }
            }
        }
    }

    /// The trips and resets seen since the last call, for the settler to write.
    pub fn take_notes(&self) -> Vec<AuditRecord> {
        std::mem::take(&mut *lock(&self.notes))
    }

    /// Records how a fix ended (approved ones too): failures feed the breaker, the
    /// fleet's when there is a ledger (this process's if the ledger cannot record it).
    pub async fn record(&self, ok: bool) {
        if let Some(fleet) = &self.fleet {
            match self.record_fleet(fleet, ok).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, ok, "cannot record the fix's outcome in the ledger; this process's breaker counts it")
                }
            }
        }
        let opened = lock(&self.breaker).record(ok, Instant::now());
        if let Some(t @ Transition::Opened { .. }) = opened {
            audit(&self.notes, AuditDecision::GuardTripped, &t.to_string());
        }
    }

    /// Counts the outcome in the ledger; opens the fleet breaker when the window's
    /// outcomes trip it (one executor opens it and audits the trip).
    async fn record_fleet(&self, fleet: &Fleet, ok: bool) -> Result<(), AwsError> {
        let settings: &BreakerSettings = &self.limits.breaker;
        let now = SystemTime::now();
        let expires = limits::breaker_expires_at(settings, now);
        let item = fleet.counters.record(ok, now, expires).await?;
        if let Some(trip) = item.trip(settings, now) {
            if fleet.counters.open(&trip, now).await? {
                let t = Transition::Opened {
                    failed: trip.failed as usize,
                    total: trip.total as usize,
                    threshold: settings.error_rate,
                    window: settings.window,
                    cooldown: settings.cooldown,
                };
                audit(
                    &self.notes,
                    AuditDecision::GuardTripped,
                    &format!("{t} (across the fleet)"),
                );
                *lock(&fleet.seen_open) = Some(trip.open_until);
            }
        }
        let stale = item.stale(settings.window, now);
        if let Err(e) = fleet.counters.forget(&stale).await {
            tracing::debug!(error = %e, "old breaker minutes not removed; the next outcome tries again");
        }
        Ok(())
    }

    /// Audits a cap's trip (once a minute per cap) and returns the reason for the fix.
    fn audit_cap(&self, limited: &Limited, scope: &str, now: Instant) -> String {
        let key = match limited {
            Limited::Global { .. } => String::new(),
            Limited::Rule { rule, .. } => rule.clone(),
        };
        let why = format!("{limited}{scope}");
        let mut audited = lock(&self.cap_audited);
        let recent = audited
            .get(&key)
            .is_some_and(|t| now.saturating_duration_since(*t) < Duration::from_secs(60));
        if !recent {
            audited.insert(key, now);
            audit(
                &self.notes,
                AuditDecision::GuardTripped,
                &format!("{why}: further automatic fixes go to approval"),
            );
        }
        why
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

#[cfg(test)]
mod tests {
    //! The guards' fleet path through real DynamoDB clients answered by
    //! `aws-smithy-mocks`: a ledger that cannot answer stops the fix, a counter whose
    //! condition fails is the fleet's cap, and a rule's take is given back when the global
    //! cap refuses.

    use super::*;
    use crate::aws::ledger::LedgerTable;
    use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
    use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
    use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
    use aws_sdk_dynamodb::Client;
    use aws_smithy_mocks::{mock, mock_client, Rule as Mock, RuleMode};
    use redress::policy::Policy;

    fn policy() -> Policy {
        Policy::from_toml(
            "[limits]\nmax_fixes_per_minute = 5\n[[rule]]\nid = \"ssh\"\nconfig_rule = \"*ssh*\"\nseverity = \"LOW\"\nmax_fixes_per_minute = 2\naction = { fix = \"revoke_public_ingress\", ports = [22] }\n",
            "test",
        )
        .unwrap()
    }

    async fn guards(policy: &Policy, mocks: &[&Mock]) -> Guards {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        let table = LedgerTable::new(
            mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, mocks),
            "redress-ledger",
        );
        Guards::new(
            &policy.limits,
            Parameters::new(aws_sdk_ssm::Client::new(&config)),
        )
        .counted_in(FleetCounters::new(&table))
    }

    fn nothing_read() -> Mock {
        mock!(Client::get_item).then_output(|| GetItemOutput::builder().build())
    }

    fn key_is(r: &aws_sdk_dynamodb::operation::update_item::UpdateItemInput, prefix: &str) -> bool {
        r.key()
            .and_then(|k| k.get("id"))
            .and_then(|v| v.as_s().ok())
            .is_some_and(|id| id.starts_with(prefix))
    }

    #[tokio::test]
    async fn a_ledger_that_cannot_answer_stops_the_fix() {
        let p = policy();
        let down = mock!(Client::get_item).then_error(|| {
            GetItemError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not allowed")
                    .build(),
            )
        });
        let g = guards(&p, &[&down]).await;
        let why = g.admit(&p.rules[0], true).await.unwrap_err();
        assert!(
            why.contains("cannot be read in the ledger")
                && why.contains("not fixing automatically"),
            "{why}"
        );
        assert!(g
            .in_force()
            .contains("whole fleet: counted in ledger table redress-ledger"));
    }

    #[tokio::test]
    async fn the_global_cap_refusing_gives_the_rule_s_take_back() {
        let p = policy();
        let read = nothing_read();
        let rule_taken = mock!(Client::update_item)
            .match_requests(|r| {
                key_is(r, "rate#rule#ssh#")
                    && r.update_expression() == Some("ADD #n :one SET #ttl = :ttl")
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let global_spent = mock!(Client::update_item)
            .match_requests(|r| key_is(r, "rate#all#"))
            .then_error(|| {
                UpdateItemError::ConditionalCheckFailedException(
                    ConditionalCheckFailedException::builder().build(),
                )
            });
        let given_back = mock!(Client::update_item)
            .match_requests(|r| {
                key_is(r, "rate#rule#ssh#") && r.update_expression() == Some("ADD #n :minus")
            })
            .then_output(|| UpdateItemOutput::builder().build());
        let g = guards(&p, &[&read, &rule_taken, &global_spent, &given_back]).await;
        let why = g.admit(&p.rules[0], true).await.unwrap_err();
        assert_eq!(
            why,
            "rate cap: 5 automatic fixes in the last minute (all rules) across the fleet"
        );
        assert_eq!(
            (
                rule_taken.num_calls(),
                global_spent.num_calls(),
                given_back.num_calls()
            ),
            (1, 1, 1)
        );
        let notes = g.take_notes();
        assert_eq!(notes.len(), 1, "the trip is audited once");
        assert_eq!(notes[0].decision, AuditDecision::GuardTripped);
    }

    #[tokio::test]
    async fn a_take_given_back_undoes_each_counter() {
        let p = policy();
        let read = nothing_read();
        let taken = mock!(Client::update_item)
            .match_requests(|r| r.update_expression() == Some("ADD #n :one SET #ttl = :ttl"))
            .then_output(|| UpdateItemOutput::builder().build());
        let given_back = mock!(Client::update_item)
            .match_requests(|r| r.update_expression() == Some("ADD #n :minus"))
            .then_output(|| UpdateItemOutput::builder().build());
        let g = guards(&p, &[&read, &taken, &given_back]).await;
        let t = g.admit(&p.rules[0], true).await.unwrap();
        assert_eq!(
            taken.num_calls(),
            2,
            "the rule's counter and the global one"
        );
        g.give_back(t).await;
        assert_eq!(given_back.num_calls(), 2);
    }
}
