//! Audit records: one JSON object per decision and per outcome, on the `audit` log
//! target. The worker's logging setup writes them to stderr verbatim, one per line,
//! whatever the log format, so they can be collected and parsed as JSON lines.

use serde::Serialize;

use crate::message::Finding;
use crate::policy::Severity;

/// Log target of audit records.
pub const TARGET: &str = "audit";

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    /// Fixed (or attempted) automatically or after approval.
    Remediate,
    /// Queued for a person.
    ApprovalRequested,
    /// Nothing to do; see `reason`.
    Skipped,
    /// A person approved.
    Approved,
    /// A person rejected.
    Rejected,
    /// An approval request expired.
    Expired,
    /// An operator replayed a dead letter.
    Replayed,
    /// An operator purged a dead letter.
    Purged,
    /// The message could not be used and went to a dead-letter queue; see `reason`.
    DeadLettered,
    /// A blast-radius guard stopped automatic fixes (breaker opened, kill switch on, rate
    /// cap reached); see `reason`.
    GuardTripped,
    /// A guard let automatic fixes run again (breaker closed, kill switch off).
    GuardReset,
    /// Skipped because the resource carries the policy's exemption tag
    /// (`[exemptions] tag`); kept apart from other skips so auditors can find every
    /// owner-driven opt-out.
    ExemptByTag,
    /// Config confirmed a fix: it reports the rule COMPLIANT for the resource.
    Verified,
    /// A fix ran, but Config still reported NON_COMPLIANT at the deadline; the finding
    /// went to a person.
    StillNonCompliant,
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The fix ran and the resource now complies.
    Succeeded,
    /// The fix ran and failed, or could not run.
    Failed,
    /// Nothing needed changing.
    AlreadyCompliant,
    /// Dry run: decided, changed nothing.
    DryRun,
}

impl Outcome {
    /// The outcome as written in audit records.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::AlreadyCompliant => "already_compliant",
            Outcome::DryRun => "dry_run",
        }
    }
}

/// One audit record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// Always `audit`, so the line is recognisable among logs.
    pub target: &'static str,
    /// When it was written.
    pub timestamp: String,
    /// Which worker wrote it (`router`, `executor`, ...).
    pub worker: &'static str,
    /// Event id, when known.
    pub event_id: Option<String>,
    /// Policy rule id, when one matched.
    pub rule: Option<String>,
    /// Config rule name, when known.
    pub config_rule: Option<String>,
    /// Resource id, when known.
    pub resource_id: Option<String>,
    /// Resource type, when known.
    pub resource_type: Option<String>,
    /// Account, when known.
    pub account: Option<String>,
    /// Region, when known.
    pub region: Option<String>,
    /// Severity, when a rule matched.
    pub severity: Option<Severity>,
    /// The decision.
    pub decision: AuditDecision,
    /// Why (skip reason, error text), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Fix name or runbook, for executions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Execution outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// SSM Automation execution id, where one exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// Who acted, where a person did: the principal AWS verified (SQS SenderId, STS),
    /// as an ARN where the policy named it so, else its unique id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The actor's unique id as AWS asserted it (`AIDA…`, `AROA…:SESSION`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor_id: Option<String>,
    /// The Config rule's ARN, when the finding carried one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_rule_arn: Option<String>,
    /// `awaiting_verification` on a fix that succeeded and waits for Config to agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<&'static str>,
    /// On `verified`: seconds from Config's evaluation of the finding to the moment
    /// Config was seen to agree with the fix (time to remediate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_to_remediate_secs: Option<u64>,
    /// Set when the worker runs in dry-run mode.
    pub dry_run: bool,
}

/// The `verification` value of a fix waiting for Config.
pub const AWAITING_VERIFICATION: &str = "awaiting_verification";

impl AuditRecord {
    /// A record about a finding.
    pub fn for_finding(
        worker: &'static str,
        finding: &Finding,
        rule: Option<&str>,
        severity: Option<Severity>,
        decision: AuditDecision,
    ) -> AuditRecord {
        AuditRecord {
            event_id: Some(finding.event_id.clone()),
            rule: rule.map(str::to_string),
            config_rule: Some(finding.config_rule_name.clone()),
            resource_id: Some(finding.resource_id.clone()),
            resource_type: Some(finding.resource_type.clone()),
            account: Some(finding.account_id.clone()),
            region: Some(finding.region.clone()),
            config_rule_arn: finding.config_rule_arn.clone(),
            severity,
            ..AuditRecord::bare(worker, decision)
        }
    }

    /// A record with no finding (e.g. an unparseable message).
    pub fn bare(worker: &'static str, decision: AuditDecision) -> AuditRecord {
        AuditRecord {
            target: TARGET,
            timestamp: crate::time::now_rfc3339(),
            worker,
            event_id: None,
            rule: None,
            config_rule: None,
            resource_id: None,
            resource_type: None,
            account: None,
            region: None,
            severity: None,
            decision,
            reason: None,
            action: None,
            outcome: None,
            execution_id: None,
            actor: None,
            actor_id: None,
            config_rule_arn: None,
            verification: None,
            time_to_remediate_secs: None,
            dry_run: false,
        }
    }

    /// Sets `reason`.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Writes the record on the `audit` target.
    pub fn emit(&self) {
        match serde_json::to_string(self) {
            Ok(json) => tracing::info!(target: "audit", "{json}"),
            // Serialising plain strings and enums cannot fail; if it ever does, say so
            // rather than drop the record silently.
            Err(e) => tracing::error!(error = %e, "audit record could not be serialised"),
        }
    }
}
