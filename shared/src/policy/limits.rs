//! The policy's blast-radius settings (`[limits]`), exemptions (`[[exception]]`) and
//! cross-account access (`[accounts]`): plain data plus pure lookups.

use std::time::{Duration, SystemTime};

/// The `[limits]` table: how much automatic remediation is allowed.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Automatic fixes per minute across all rules: for the whole fleet when the executor
    /// has a ledger table, else per executor process. `None`: no cap.
    pub max_fixes_per_minute: Option<u32>,
    /// The error-rate circuit breaker.
    pub breaker: BreakerSettings,
    /// SSM parameter whose value `on` pauses every automatic fix. `None`: no kill switch.
    pub kill_switch_parameter: Option<String>,
    /// How long a read of the kill switch is trusted before it is read again.
    pub kill_switch_cache: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_fixes_per_minute: None,
            breaker: BreakerSettings::default(),
            kill_switch_parameter: None,
            kill_switch_cache: Duration::from_secs(30),
        }
    }
}

/// When the circuit breaker opens and for how long (like Config's `ErrorPercentage`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerSettings {
    /// Share of finished fixes (0–1] that failed, at or above which the breaker opens.
    pub error_rate: f64,
    /// The sliding window the rate is measured over.
    pub window: Duration,
    /// Fewest finished fixes in the window before the rate counts (one early failure
    /// should not stop everything).
    pub min_fixes: u32,
    /// How long the breaker stays open; then it closes and counts afresh.
    pub cooldown: Duration,
}

impl BreakerSettings {
    /// Whether `failed` of `total` finished fixes open the breaker: at least
    /// `min_fixes` of them, and a failed share at or above `error_rate`. One rule for the
    /// per-process breaker and the fleet's (counted in the ledger).
    pub fn trips(&self, failed: u32, total: u32) -> bool {
        total >= self.min_fixes && f64::from(failed) >= self.error_rate * f64::from(total)
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            error_rate: 0.5,
            window: Duration::from_secs(10 * 60),
            min_fixes: 5,
            cooldown: Duration::from_secs(15 * 60),
        }
    }
}

/// One `[[exception]]`: findings redress must leave alone, until `expires`.
#[derive(Debug, Clone)]
pub struct Exception {
    /// The resource id it covers; `None` with `account` set: every resource there.
    pub resource_id: Option<String>,
    /// The account it covers; `None`: any account (with `resource_id` set).
    pub account: Option<String>,
    /// Globs over policy rule ids it covers; empty: every rule.
    pub rules: Vec<String>,
    pub(super) rule_matcher: globset::GlobSet,
    /// When it stops applying.
    pub expires: SystemTime,
    /// `expires` as written in the policy.
    pub expires_text: String,
    /// Why (for the audit record).
    pub reason: String,
    /// Line in the policy file.
    pub line: usize,
}

impl Exception {
    /// Whether it covers this finding under this rule at `now`.
    pub fn applies(
        &self,
        rule_id: &str,
        account: &str,
        resource_id: &str,
        now: SystemTime,
    ) -> bool {
        now < self.expires
            && self.resource_id.as_deref().is_none_or(|r| r == resource_id)
            && self.account.as_deref().is_none_or(|a| a == account)
            && (self.rules.is_empty() || self.rule_matcher.is_match(rule_id))
    }

    /// `exempt until 2027-03-31 (line 40): legacy bastion, SEC-123`.
    pub fn describe(&self) -> String {
        format!(
            "exempt until {} (policy line {}): {}",
            self.expires_text, self.line, self.reason
        )
    }
}

/// The `[accounts]` table: how the executor reaches other accounts and regions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    /// Role to assume in a finding's account, e.g.
    /// `arn:aws:iam::{account_id}:role/redress-member`. `None`: the executor acts only in
    /// its own account (other regions of it still work).
    pub role: Option<String>,
}

impl Accounts {
    /// The role ARN for an account, when a template is set.
    pub fn role_for(&self, account_id: &str) -> Option<String> {
        self.role
            .as_ref()
            .map(|t| t.replace("{account_id}", account_id))
    }
}
