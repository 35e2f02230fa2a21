//! The `[config]` table: how redress treats AWS Config as the source of truth.

use std::time::Duration;

/// The `[config]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSettings {
    /// Ask Config for the finding's current result before any change (default on). Off
    /// only for setups whose findings do not come from Config; the executor warns.
    pub verify: bool,
    /// How long after a fix Config may keep reporting NON_COMPLIANT before the finding
    /// goes to a person (`verify_deadline = "15m"`).
    pub verify_deadline: Duration,
    /// When to look at Config first after a fix, and the first interval between looks
    /// (doubling, up to the deadline): `recheck_after = "1m"`.
    pub recheck_after: Duration,
    /// Accounts `redress sweep` reads (through `[accounts] role`); empty: the executor's
    /// own account.
    pub accounts: Vec<String>,
    /// Regions `redress sweep` reads; empty: the configured region.
    pub regions: Vec<String>,
    /// A Config aggregator (in the executor's account and region) that `redress sweep`
    /// reads instead of visiting each account and region.
    pub aggregator: Option<String>,
}

impl ConfigSettings {
    /// Default deadline for Config to confirm a fix: 15 minutes.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(15 * 60);
    /// Default first look after a fix: one minute (custom rules usually answer a
    /// re-evaluation within seconds; managed rules within a minute or two).
    pub const DEFAULT_RECHECK: Duration = Duration::from_secs(60);
}

impl Default for ConfigSettings {
    fn default() -> Self {
        ConfigSettings {
            verify: true,
            verify_deadline: ConfigSettings::DEFAULT_DEADLINE,
            recheck_after: ConfigSettings::DEFAULT_RECHECK,
            accounts: Vec::new(),
            regions: Vec::new(),
            aggregator: None,
        }
    }
}
