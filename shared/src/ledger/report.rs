//! `redress report`: counts, time to remediate, and the evidence export, computed from
//! ledger entries. Every entry is counted once, in the column of its status now, so the
//! columns add up to the entries read.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::model::{Actor, LedgerEntry};
use super::status::Status;
use super::undo::{exceptions_in_force, UndoException};
use crate::policy::Policy;
use crate::time::format_rfc3339;

/// What rows a report groups by (`--by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// The policy rule.
    Rule,
    /// The finding's account.
    Account,
    /// The rule's severity.
    Severity,
}

impl GroupBy {
    /// The row an entry belongs to, with a sort key that puts severities in order.
    fn key(self, e: &LedgerEntry) -> (u8, String) {
        match self {
            GroupBy::Rule => (0, e.rule_id.clone()),
            GroupBy::Account => (0, e.finding.account_id.clone()),
            GroupBy::Severity => (e.severity as u8, e.severity.to_string()),
        }
    }
}

/// Entries by what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Fixes made (succeeded, verified, or since undone).
    pub fixed: u32,
    /// Fixes Config still disagreed with at the deadline.
    pub still_non_compliant: u32,
    /// Fixes and undos that failed.
    pub failed: u32,
    /// Intents not yet completed (running, or left by a crash).
    pub in_progress: u32,
    /// Requests waiting for approval.
    pub waiting: u32,
    /// Age of the oldest waiting request, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_waiting_secs: Option<u64>,
    /// Left alone by an exemption tag or exception.
    pub exempt: u32,
    /// Not acted on for another reason (already compliant, moot, refused).
    pub skipped: u32,
    /// Requests rejected or expired.
    pub not_approved: u32,
    /// Undos carried out.
    pub undone: u32,
}

impl Counts {
    fn add(&mut self, e: &LedgerEntry, now: SystemTime) {
        let column = match (e.is_undo(), e.status) {
            (false, Status::Succeeded | Status::Verified | Status::Undone) => &mut self.fixed,
            // An undo is never verified or undone itself; whatever follows its success
            // still counts it as carried out.
            (true, Status::Succeeded | Status::Verified | Status::Undone) => &mut self.undone,
            (_, Status::StillNonCompliant) => &mut self.still_non_compliant,
            (_, Status::Failed) => &mut self.failed,
            (_, Status::Intent) => &mut self.in_progress,
            (_, Status::AwaitingApproval) => {
                let age = now
                    .duration_since(e.times.decided_at)
                    .unwrap_or_default()
                    .as_secs();
                self.oldest_waiting_secs = self.oldest_waiting_secs.max(Some(age));
                &mut self.waiting
            }
            (_, Status::Exempt) => &mut self.exempt,
            (_, Status::Skipped) => &mut self.skipped,
            (_, Status::Rejected | Status::Expired) => &mut self.not_approved,
        };
        *column += 1;
    }
}

/// Time from Config's evaluation to its confirmation of the fix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TimeToRemediate {
    /// Verified fixes with a known evaluation time.
    pub samples: usize,
    /// Median, in seconds.
    pub median_secs: Option<u64>,
    /// 90th percentile, in seconds.
    pub p90_secs: Option<u64>,
}

impl TimeToRemediate {
    fn of(times: &[Duration]) -> TimeToRemediate {
        let secs = |p| percentile(times, p).map(|d| d.as_secs());
        TimeToRemediate {
            samples: times.len(),
            median_secs: secs(50),
            p90_secs: secs(90),
        }
    }
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// The rule id, account or severity.
    pub key: String,
    /// What became of its entries.
    #[serde(flatten)]
    pub counts: Counts,
    /// Its time to remediate.
    pub time_to_remediate: TimeToRemediate,
}

/// A report over some entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// How rows are grouped.
    pub by: GroupBy,
    /// Entries decided at or after this time (RFC 3339); `None`: all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// When the report was made.
    pub at: String,
    /// One row per rule, account or severity, in order.
    pub groups: Vec<Group>,
    /// Every entry together.
    pub total: Group,
    /// Undo exceptions still in force, soonest to end first.
    pub exceptions: Vec<UndoException>,
}

/// A policy `[[exception]]` still in force: the other kind of exemption a report lists
/// beside the undo exceptions the ledger holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyException {
    /// Globs over policy rule ids it covers; empty: every rule.
    pub rules: Vec<String>,
    /// The account it covers; `None`: any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The resource it covers; `None`: every resource of the account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// When it stops applying (RFC 3339).
    pub until: String,
    /// Why, as the policy says.
    pub reason: String,
    /// Its line in the policy file.
    pub line: usize,
}

/// The policy's exceptions that still apply at `now`, soonest to end first.
pub fn policy_exceptions_in_force(policy: &Policy, now: SystemTime) -> Vec<PolicyException> {
    let mut live: Vec<_> = policy
        .exceptions
        .iter()
        .filter(|x| now < x.expires)
        .collect();
    live.sort_by_key(|x| (x.expires, x.line));
    live.into_iter()
        .map(|x| PolicyException {
            rules: x.rules.clone(),
            account: x.account.clone(),
            resource_id: x.resource_id.clone(),
            until: format_rfc3339(x.expires),
            reason: x.reason.clone(),
            line: x.line,
        })
        .collect()
}

/// The `pct`th percentile (0–100) of `values` by the nearest-rank method: the smallest
/// value with at least `pct`% of the values at or below it, always one of the values
/// (a reported time was really seen). `None` for no values.
pub fn percentile(values: &[Duration], pct: u8) -> Option<Duration> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    // Integer arithmetic: ceil(pct/100 · n) exactly, at least rank 1.
    let rank = (usize::from(pct.min(100)) * n).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

fn group(key: String, entries: &[&LedgerEntry], now: SystemTime) -> Group {
    let mut counts = Counts::default();
    for e in entries {
        counts.add(e, now);
    }
    let times: Vec<Duration> = entries
        .iter()
        .filter_map(|e| e.time_to_remediate())
        .collect();
    Group {
        key,
        counts,
        time_to_remediate: TimeToRemediate::of(&times),
    }
}

/// The report over `entries` decided at or after `since`, grouped `by`, as of `now`.
pub fn report(
    entries: &[LedgerEntry],
    by: GroupBy,
    since: Option<SystemTime>,
    now: SystemTime,
) -> Report {
    let chosen: Vec<&LedgerEntry> = entries
        .iter()
        .filter(|e| since.is_none_or(|s| e.times.decided_at >= s))
        .collect();
    let mut rows: BTreeMap<(u8, String), Vec<&LedgerEntry>> = BTreeMap::new();
    for e in &chosen {
        rows.entry(by.key(e)).or_default().push(e);
    }
    Report {
        by,
        since: since.map(format_rfc3339),
        at: format_rfc3339(now),
        groups: rows
            .into_iter()
            .map(|((_, key), es)| group(key, &es, now))
            .collect(),
        total: group("total".into(), &chosen, now),
        // Exceptions are in force now whenever their undo was decided.
        exceptions: exceptions_in_force(entries, now),
    }
}

/// The evidence export's columns: one row per entry, each an action taken, proposed
/// or not taken, with everything an auditor asks (who, when, what, before and after).
pub const CSV_COLUMNS: [&str; 33] = [
    "entry_id",
    "kind",
    "undoes",
    "status",
    "rule_id",
    "severity",
    "config_rule",
    "config_rule_arn",
    "account",
    "region",
    "resource_type",
    "resource_id",
    "event_id",
    "evaluated_at",
    "decided_at",
    "approved_at",
    "fixed_at",
    "verified_at",
    "updated_at",
    "time_to_remediate_secs",
    "action",
    "actor",
    "actor_id",
    "approval_request",
    "requested_by",
    "undo_reason",
    "change",
    "before",
    "after",
    "reason",
    "execution_id",
    "exception_until",
    "policy_version",
];

/// One entry's row, in [`CSV_COLUMNS`] order.
pub fn csv_row(e: &LedgerEntry) -> Vec<String> {
    let time = |t: Option<SystemTime>| t.map(format_rfc3339).unwrap_or_default();
    let text = |s: Option<&str>| s.unwrap_or_default().to_string();
    let undo = e.action.undo();
    let (approver, approved_at, requested_by) = match &e.actor {
        Some(Actor::Approved {
            approver,
            approved_at,
        }) => (Some(approver), Some(*approved_at), None),
        Some(Actor::Undo {
            requested_by,
            approver,
        }) => (approver.as_ref(), None, Some(requested_by)),
        _ => (None, None, None),
    };
    let f = &e.finding;
    vec![
        e.id.to_string(),
        if undo.is_some() { "undo" } else { "fix" }.into(),
        text(undo.map(|u| u.entry.as_str())),
        e.status.to_string(),
        e.rule_id.clone(),
        e.severity.to_string(),
        f.config_rule_name.clone(),
        text(f.config_rule_arn.as_deref()),
        f.account_id.clone(),
        f.region.clone(),
        f.resource_type.clone(),
        f.resource_id.clone(),
        f.event_id.clone(),
        text(f.evaluation_time.as_deref()),
        format_rfc3339(e.times.decided_at),
        time(approved_at),
        time(e.times.fixed_at),
        time(e.times.verified_at),
        format_rfc3339(e.times.updated_at),
        e.time_to_remediate()
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default(),
        e.action.describe(),
        e.actor.as_ref().map(Actor::label).unwrap_or_default(),
        text(approver.map(|p| p.user_id.as_str())),
        text(e.approval_request.as_deref()),
        text(requested_by.map(|p| p.arn.as_str())),
        text(undo.map(|u| u.reason.as_str())),
        e.change.as_ref().map(|c| c.describe()).unwrap_or_default(),
        e.change
            .as_ref()
            .map(|c| c.before_summary())
            .unwrap_or_default(),
        e.change
            .as_ref()
            .map(|c| c.after_summary())
            .unwrap_or_default(),
        text(e.reason.as_deref()),
        text(e.execution_id.as_deref()),
        time(undo.map(|u| u.until)),
        text(e.policy_version.as_deref()),
    ]
}

/// The evidence export: a header and one row per entry, in decision order.
pub fn to_csv(entries: &[LedgerEntry]) -> String {
    let mut sorted: Vec<&LedgerEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| (a.times.decided_at, &a.id).cmp(&(b.times.decided_at, &b.id)));
    let mut out = super::csv::record(&CSV_COLUMNS);
    for e in sorted {
        out.push_str(&super::csv::record(&csv_row(e)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::model::tests::{finding, revoke_entry, t};
    use crate::ledger::model::{EntryAction, EntryId, Principal};
    use crate::ledger::undo::{undo_entry, UndoPlan, UndoRequest};
    use crate::message::Task;
    use crate::policy::{Fix, RenderedAction, Severity};

    fn secs(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|s| Duration::from_secs(*s)).collect()
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v = secs(&[50, 10, 40, 20, 30]);
        assert_eq!(percentile(&v, 50), Some(Duration::from_secs(30)));
        assert_eq!(percentile(&v, 90), Some(Duration::from_secs(50)));
        assert_eq!(percentile(&v, 20), Some(Duration::from_secs(10)));
        assert_eq!(percentile(&v, 0), Some(Duration::from_secs(10)));
        assert_eq!(percentile(&v, 100), Some(Duration::from_secs(50)));
        assert_eq!(
            percentile(&secs(&[1, 2, 3, 4]), 50),
            Some(Duration::from_secs(2))
        );
        assert_eq!(percentile(&[], 50), None);
    }

    /// An entry of `rule`/`severity` that ended in `status`, decided at t(`at`).
    fn entry(n: u32, rule: &str, severity: Severity, status: Status, at: u64) -> LedgerEntry {
        let mut task = Task::new(rule, severity, finding());
        task.generation = n;
        let mut e = LedgerEntry::new(
            EntryId::for_task(&task),
            rule,
            severity,
            finding(),
            EntryAction::Remediate(RenderedAction::Fix(Fix::RevokePublicIngress {
                ports: None,
            })),
            Status::Intent,
            t(at),
        )
        .unwrap();
        e.actor = Some(Actor::Automatic);
        e.status = status;
        e
    }

    #[test]
    fn every_entry_counts_once_in_its_status_column() {
        let mut verified = revoke_entry();
        verified.advance(Status::Verified, t(600)).unwrap();
        let mut slow = entry(1, "ssh", Severity::High, Status::Verified, 10);
        slow.times.verified_at = Some(t(1200));
        let waiting = entry(2, "db", Severity::Medium, Status::AwaitingApproval, 100);
        let older = entry(3, "db", Severity::Medium, Status::AwaitingApproval, 40);
        let plan = UndoPlan::DeleteParameter { name: "/x".into() };
        let request = UndoRequest {
            reason: "needed".into(),
            until: t(100_000),
            force: false,
            requested_by: Principal {
                arn: "arn:aws:iam::111122223333:user/alice".into(),
                user_id: "AIDA1".into(),
            },
        };
        let mut undo = undo_entry(&verified, plan, &request, t(700)).unwrap();
        undo.status = Status::Succeeded;
        let entries = vec![
            verified,
            slow,
            waiting,
            older,
            undo,
            entry(4, "db", Severity::Medium, Status::Failed, 5),
            entry(5, "db", Severity::Medium, Status::Exempt, 5),
            entry(6, "db", Severity::Medium, Status::Skipped, 5),
            entry(7, "db", Severity::Medium, Status::Intent, 5),
            entry(8, "ssh", Severity::High, Status::Rejected, 5),
            entry(9, "ssh", Severity::Low, Status::StillNonCompliant, 5),
        ];
        let r = report(&entries, GroupBy::Rule, None, t(1000));
        let total = &r.total.counts;
        assert_eq!(
            *total,
            Counts {
                fixed: 2,
                still_non_compliant: 1,
                failed: 1,
                in_progress: 1,
                waiting: 2,
                oldest_waiting_secs: Some(960),
                exempt: 1,
                skipped: 1,
                not_approved: 1,
                undone: 1,
            }
        );
        assert_eq!(
            r.groups.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(),
            ["db", "ssh"]
        );
        assert_eq!(r.groups[0].counts.waiting, 2);
        assert_eq!(r.groups[1].counts.fixed, 2);
        assert_eq!(
            r.total.time_to_remediate,
            TimeToRemediate {
                samples: 2,
                median_secs: Some(600),
                p90_secs: Some(1200),
            }
        );
        assert_eq!(r.exceptions.len(), 1);

        let by_severity = report(&entries, GroupBy::Severity, None, t(1000));
        assert_eq!(
            by_severity
                .groups
                .iter()
                .map(|g| g.key.as_str())
                .collect::<Vec<_>>(),
            ["LOW", "MEDIUM", "HIGH"],
            "severities in order, not alphabetical"
        );
        let recent = report(&entries, GroupBy::Account, Some(t(50)), t(1000));
        assert_eq!(
            recent.total.counts.waiting, 1,
            "the request of t(40) is older"
        );
        assert_eq!(recent.groups[0].key, "111122223333");
        let json = serde_json::to_value(&recent).unwrap();
        assert_eq!(json["total"]["waiting"], 1);
        assert_eq!(json["by"], "account");
    }

    #[test]
    fn the_evidence_export_has_one_full_row_per_entry() {
        let mut fix = revoke_entry();
        fix.actor = Some(Actor::Approved {
            approver: Principal {
                arn: "arn:aws:iam::111122223333:user/bob".into(),
                user_id: "AIDABOB".into(),
            },
            approved_at: t(5),
        });
        fix.approval_request = Some("ap-0123456789".into());
        fix.reason = Some("=cmd, \"quoted\"\nline".into());
        let csv = to_csv(&[fix.clone()]);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        let row = csv_row(&fix);
        assert_eq!(row.len(), CSV_COLUMNS.len());
        let col = |name: &str| row[CSV_COLUMNS.iter().position(|c| *c == name).unwrap()].as_str();
        assert_eq!(col("entry_id"), fix.id.as_str());
        assert_eq!(col("kind"), "fix");
        assert_eq!(col("status"), "succeeded");
        assert_eq!(col("actor"), "arn:aws:iam::111122223333:user/bob");
        assert_eq!(col("actor_id"), "AIDABOB");
        assert_eq!(col("approved_at"), format_rfc3339(t(5)));
        assert_eq!(col("fixed_at"), format_rfc3339(t(60)));
        assert_eq!(col("updated_at"), format_rfc3339(t(60)));
        assert_eq!(col("verified_at"), "");
        assert_eq!(
            col("before"),
            "tcp 22 from 0.0.0.0/0; tcp 443 from 10.0.0.0/8"
        );
        assert_eq!(col("after"), "tcp 443 from 10.0.0.0/8");
        assert_eq!(col("action"), "fix revoke_public_ingress ports [22]");
        assert_eq!(
            col("config_rule_arn"),
            fix.finding.config_rule_arn.as_deref().unwrap()
        );
        // The reason is quoted (comma, quote, newline) and cannot run as a formula.
        assert!(csv.contains(",\"'=cmd, \"\"quoted\"\"\nline\","), "{csv}");
        assert!(csv.ends_with("\r\n"));
    }

    #[test]
    fn policy_exceptions_in_force_are_the_unexpired_ones_soonest_first() {
        let policy = Policy::from_toml(
            r#"
[[rule]]
id = "ssh"
config_rule = "restricted-ssh"
severity = "LOW"
action = { fix = "revoke_public_ingress" }

[[exception]]
resource_id = "sg-0bastion"
expires = "2099-01-01"
reason = "bastion, SEC-42"

[[exception]]
account = "111122223333"
rules = ["ssh"]
expires = "2098-06-30"
reason = "lab account"

[[exception]]
resource_id = "sg-0gone"
expires = "2020-01-01"
reason = "over"
"#,
            "p",
        )
        .unwrap();
        let live = policy_exceptions_in_force(&policy, t(0));
        assert_eq!(
            live.iter().map(|x| x.reason.as_str()).collect::<Vec<_>>(),
            ["lab account", "bastion, SEC-42"]
        );
        assert_eq!(live[0].until, "2098-06-30T00:00:00Z");
        assert_eq!(live[0].rules, ["ssh"]);
        assert_eq!(live[0].account.as_deref(), Some("111122223333"));
        assert_eq!(live[1].resource_id.as_deref(), Some("sg-0bastion"));
        let json = serde_json::to_value(&live[1]).unwrap();
        assert!(json.get("account").is_none(), "{json}");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The nearest-rank percentile is one of the values, has at least pct% of
            /// the values at or below it and fewer strictly below, and grows with pct.
            #[test]
            fn percentile_is_a_value_with_its_share_below(
                raw in proptest::collection::vec(0u64..10_000, 1..200),
                p in 0u8..=100,
                q in 0u8..=100,
            ) {
                let values = secs(&raw);
                let n = values.len();
                let v = percentile(&values, p).unwrap();
                prop_assert!(values.contains(&v));
                let at_or_below = values.iter().filter(|x| **x <= v).count();
                let below = values.iter().filter(|x| **x < v).count();
                prop_assert!(at_or_below * 100 >= usize::from(p) * n);
                prop_assert!(below * 100 < usize::from(p.max(1)) * n);
                let (lo, hi) = (p.min(q), p.max(q));
                prop_assert!(percentile(&values, lo) <= percentile(&values, hi));
                prop_assert_eq!(percentile(&values, 100), values.iter().max().copied());
                prop_assert_eq!(percentile(&values, 0), values.iter().min().copied());
            }
        }
    }
}
