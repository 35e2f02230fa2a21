//! The declarative policy: which Config rules redress acts on, how severe each finding is,
//! and what the fix is. See `infra/policies/default.toml` for a commented example.
//!
//! A policy is loaded and validated once ([`Policy::from_toml`]); after that every lookup
//! is infallible and pure.

mod config;
mod limits;
mod load;
mod render;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use config::ConfigSettings;
pub use limits::{Accounts, BreakerSettings, Exception, Limits};
pub use load::{Checked, PolicyError, Problem};
pub use render::{Facts, RenderedAction, RenderedRunbook, PLACEHOLDERS};

/// How bad a finding is. Ordered: `LOW < MEDIUM < HIGH < CRITICAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Fixed automatically under the default routing.
    Low,
    /// Fixed automatically under the default routing.
    Medium,
    /// Needs approval under the default routing.
    High,
    /// Needs approval under the default routing.
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        })
    }
}

/// What happens to a matching finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Fix without asking.
    Auto,
    /// Queue for a person to approve, then fix.
    Approve,
    /// Record it; never fix.
    Notify,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Auto => "auto",
            Mode::Approve => "approve",
            Mode::Notify => "notify",
        })
    }
}

/// The `[routing]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    /// Findings at or below this severity are fixed automatically; above it they need
    /// approval. Rules with an explicit `mode` ignore it. Default `MEDIUM`.
    #[serde(default = "Routing::default_auto_max")]
    pub auto_max_severity: Severity,
}

impl Routing {
    fn default_auto_max() -> Severity {
        Severity::Medium
    }
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            auto_max_severity: Routing::default_auto_max(),
        }
    }
}

/// The `[approvals]` table.
#[derive(Debug, Clone)]
pub struct Approvals {
    /// How long a request stays actionable before it expires (`ttl = "7d"`). Default 7
    /// days, like SSM Automation's approve step.
    pub ttl: std::time::Duration,
    /// Who may approve: IAM user or role ARNs, unique ids (`AIDA…`, `AROA…`), or
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION-GLOB`. Checked against identities
    /// AWS asserts (see [`crate::approver`]). Empty: anyone IAM lets send to the tasks
    /// queue (the executor warns at start-up).
    pub approvers: Vec<crate::approver::ApproverSpec>,
}

impl Approvals {
    /// Default TTL: 7 days.
    pub const DEFAULT_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

    /// Whether the caller STS describes may approve (the CLI's early check; the
    /// executor verifies the task's SenderId itself).
    pub fn admits_caller(&self, user_id: &str, arn: &str) -> bool {
        self.approvers.is_empty() || self.approvers.iter().any(|a| a.admits_caller(user_id, arn))
    }
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals {
            ttl: Approvals::DEFAULT_TTL,
            approvers: Vec::new(),
        }
    }
}

/// The `[ledger]` table: which DynamoDB table records changes (`--ledger-table` and
/// `REDRESS_LEDGER_TABLE` override it; absent: `redress-ledger` if it exists).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerSettings {
    /// The table's name.
    pub table: Option<String>,
}

/// The `[notifications]` table: the SNS topic people are told on (`--notify-topic` and
/// `REDRESS_NOTIFY_TOPIC` override it); off unless set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifications {
    /// The topic's name or ARN.
    pub topic: Option<String>,
}

/// The `[exemptions]` table: resource owners' opt-out by tag, off unless named.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions {
    /// Tag key that exempts a resource when its value is `true` (e.g. `redress:exempt`).
    /// Reserve it for the security team with the SCP in `infra/scp/`: whoever can set it
    /// can switch redress off for a resource.
    pub tag: Option<String>,
}

/// A fix redress performs with direct API calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fix", rename_all = "snake_case")]
pub enum Fix {
    /// Revoke the security group's ingress permissions open to `0.0.0.0/0` or `::/0`
    /// whose port range covers any of `ports` (absent: any port).
    RevokePublicIngress {
        /// Ports whose world-open exposure is revoked; absent means every port.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ports: Option<Vec<u16>>,
    },
    /// Set the parameter (under `current_prefix`) to the value of the same name under
    /// `baseline_prefix` (a parameter that drifted).
    RestoreParameterBaseline {
        /// Where approved values live, e.g. `/payments/approved/` or `/{app}/approved/`.
        baseline_prefix: String,
        /// Where live values live, e.g. `/payments/current/` or `/{app}/current/`.
        current_prefix: String,
    },
    /// Create the parameter (under `current_prefix`) from the same name under
    /// `baseline_prefix`, with the baseline's type and key (a missing parameter).
    CreateParameterFromBaseline {
        /// Where approved values live.
        baseline_prefix: String,
        /// Where live values live.
        current_prefix: String,
    },
    /// Delete the parameter (under `current_prefix`) that has no baseline (an
    /// unauthorized one), after copying it under [`QUARANTINE_PREFIX`], since
    /// `DeleteParameter` erases every version. Always approved by a person.
    DeleteUnauthorizedParameter {
        /// Where approved values live: a parameter with a baseline is never deleted.
        baseline_prefix: String,
        /// Where live values live.
        current_prefix: String,
    },
}

/// Where `delete_unauthorized_parameter` keeps its copies.
pub const QUARANTINE_PREFIX: &str = "/redress/quarantine/";

impl Fix {
    /// The fix's name as written in the policy.
    pub fn name(&self) -> &'static str {
        match self {
            Fix::RevokePublicIngress { .. } => "revoke_public_ingress",
            Fix::RestoreParameterBaseline { .. } => "restore_parameter_baseline",
            Fix::CreateParameterFromBaseline { .. } => "create_parameter_from_baseline",
            Fix::DeleteUnauthorizedParameter { .. } => "delete_unauthorized_parameter",
        }
    }

    /// The (baseline, current) prefixes of a parameter fix.
    pub fn parameter_prefixes(&self) -> Option<(&str, &str)> {
        match self {
            Fix::RevokePublicIngress { .. } => None,
            Fix::RestoreParameterBaseline {
                baseline_prefix,
                current_prefix,
            }
            | Fix::CreateParameterFromBaseline {
                baseline_prefix,
                current_prefix,
            }
            | Fix::DeleteUnauthorizedParameter {
                baseline_prefix,
                current_prefix,
            } => Some((baseline_prefix, current_prefix)),
        }
    }
}

/// An SSM Automation runbook and its (unrendered) parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runbook {
    /// Document name, e.g. `AWS-EnableS3BucketEncryption`.
    pub document: String,
    /// Parameters; values may hold placeholders such as `{resource_id}`.
    pub parameters: BTreeMap<String, Vec<String>>,
    /// Role the automation assumes (`AutomationAssumeRole`); may hold placeholders.
    pub assume_role: Option<String>,
}

/// What a rule does to a non-compliant resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A direct API fix.
    Fix(Fix),
    /// An SSM Automation runbook.
    Runbook(Runbook),
}

impl Action {
    /// Short human description, e.g. `fix revoke_public_ingress ports [22]`.
    pub fn describe(&self) -> String {
        match self {
            Action::Fix(Fix::RevokePublicIngress { ports: Some(p) }) => {
                format!("fix revoke_public_ingress ports {p:?}")
            }
            Action::Fix(Fix::RevokePublicIngress { ports: None }) => {
                "fix revoke_public_ingress (any port)".into()
            }
            Action::Fix(f @ Fix::DeleteUnauthorizedParameter { .. }) => {
                format!(
                    "fix {} (a copy is kept under {QUARANTINE_PREFIX})",
                    f.name()
                )
            }
            Action::Fix(f) => {
                let (baseline, _) = f.parameter_prefixes().unwrap_or_default();
                format!("fix {} from {baseline}", f.name())
            }
            Action::Runbook(r) => format!("runbook {}", r.document),
        }
    }

    /// Label used in audit records: the fix name or the runbook document.
    pub fn label(&self) -> String {
        match self {
            Action::Fix(f) => f.name().to_string(),
            Action::Runbook(r) => r.document.clone(),
        }
    }
}

/// One `[[rule]]`.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique id; tasks and approvals refer to rules by it.
    pub id: String,
    /// Glob over `configRuleName`.
    pub config_rule: String,
    matcher: globset::GlobMatcher,
    /// Glob over the Config rule's ARN (`config_rule_arn`): pins which rules are
    /// trusted (an organization's or a conformance pack's), not just their names.
    pub config_rule_arn: Option<String>,
    arn_matcher: Option<globset::GlobMatcher>,
    /// Glob over the evaluation's annotation (`annotation`), for rules whose outcomes
    /// differ only there (drifted, missing, unauthorized).
    pub annotation: Option<String>,
    annotation_matcher: Option<globset::GlobMatcher>,
    /// Resource types the rule covers; `None` means any.
    pub resource_types: Option<Vec<String>>,
    /// Severity of a finding under this rule.
    pub severity: Severity,
    /// Explicit mode; `None` means decided by `[routing]`.
    pub mode: Option<Mode>,
    /// The fix.
    pub action: Action,
    /// Automatic fixes per minute under this rule (per executor process); `None`: only
    /// the global cap applies.
    pub max_fixes_per_minute: Option<u32>,
    /// Line of the rule in its file, for messages.
    pub line: usize,
}

/// What a rule is matched against: the evaluation's rule, resource type, rule ARN and
/// annotation.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `configRuleName`.
    pub config_rule_name: &'a str,
    /// The resource's type.
    pub resource_type: &'a str,
    /// `configRuleARN`, when the evaluation carries one.
    pub config_rule_arn: Option<&'a str>,
    /// The rule's annotation, when it gave one.
    pub annotation: Option<&'a str>,
}

impl<'a> Subject<'a> {
    /// A rule name and resource type, without ARN or annotation.
    pub fn of(config_rule_name: &'a str, resource_type: &'a str) -> Subject<'a> {
        Subject {
            config_rule_name,
            resource_type,
            config_rule_arn: None,
            annotation: None,
        }
    }
}

impl Rule {
    /// Whether this rule covers the evaluation. A rule that pins `config_rule_arn` or
    /// `annotation` does not cover an evaluation without one.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let pinned = |m: &Option<globset::GlobMatcher>, value: Option<&str>| {
            m.as_ref()
                .is_none_or(|m| value.is_some_and(|v| m.is_match(v)))
        };
        self.matcher.is_match(s.config_rule_name)
            && self
                .resource_types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == s.resource_type))
            && pinned(&self.arn_matcher, s.config_rule_arn)
            && pinned(&self.annotation_matcher, s.annotation)
    }

    /// Whether the rule's `config_rule` glob matches this Config rule name.
    pub fn names(&self, config_rule_name: &str) -> bool {
        self.matcher.is_match(config_rule_name)
    }

    /// Whether a Config rule of this name and ARN can produce findings this rule covers
    /// (for `redress sweep`, which lists rules before it reads their results).
    pub fn covers_config_rule(&self, name: &str, arn: Option<&str>) -> bool {
        self.matcher.is_match(name)
            && self
                .arn_matcher
                .as_ref()
                .is_none_or(|m| arn.is_some_and(|a| m.is_match(a)))
    }

    /// Whether the rule trusts a Config rule with this ARN: yes unless it pins one the
    /// ARN does not match.
    pub fn trusts_arn(&self, arn: &str) -> bool {
        self.arn_matcher.as_ref().is_none_or(|m| m.is_match(arn))
    }
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The `[routing]` table.
    pub routing: Routing,
    /// The `[approvals]` table.
    pub approvals: Approvals,
    /// Rules in file order.
    pub rules: Vec<Rule>,
    /// The `[limits]` table.
    pub limits: Limits,
    /// The `[[exception]]` tables, in file order.
    pub exceptions: Vec<Exception>,
    /// The `[accounts]` table.
    pub accounts: Accounts,
    /// The `[exemptions]` table.
    pub exemptions: Exemptions,
    /// The `[config]` table.
    pub config: ConfigSettings,
    /// The `[ledger]` table.
    pub ledger: LedgerSettings,
    /// The `[notifications]` table.
    pub notifications: Notifications,
    /// Digest of the policy text (16 hex digits), carried by approval requests and
    /// approvals so a decision names the policy it was made under.
    pub version: String,
}

impl Policy {
    /// The first rule, in file order, that covers this evaluation.
    pub fn find(&self, subject: &Subject<'_>) -> Option<&Rule> {
        self.rules.iter().find(|r| r.matches(subject))
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The first exception that covers this finding under `rule_id` at `now`.
    pub fn exception_for(
        &self,
        rule_id: &str,
        account: &str,
        resource_id: &str,
        now: std::time::SystemTime,
    ) -> Option<&Exception> {
        self.exceptions
            .iter()
            .find(|e| e.applies(rule_id, account, resource_id, now))
    }

    /// Why an automatic `revoke_public_ingress` under `rule` must not remove `revoking`
    /// on its own, if it must not: one of those permissions also exposes a port that
    /// another revoke rule of higher severity, or one that needs approval, guards (a
    /// world-open 0-65535 covers 22). Removing it would close that port without the
    /// approval its rule demands, so the finding goes to a person instead.
    pub fn exceeds_severity(
        &self,
        rule: &Rule,
        revoking: &[crate::ingress::Permission],
    ) -> Option<String> {
        const SG: &str = "AWS::EC2::SecurityGroup";
        let auto = self.mode_of(rule) == Mode::Auto;
        for other in &self.rules {
            let Action::Fix(Fix::RevokePublicIngress { ports }) = &other.action else {
                continue;
            };
            let outranks =
                other.severity > rule.severity || (auto && self.mode_of(other) != Mode::Auto);
            let same_type = other
                .resource_types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == SG));
            // A notify-only rule outranks an automatic one too: its port is not to be
            // closed by redress at all.
            if other.id == rule.id || !outranks || !same_type {
                continue;
            }
            for p in revoking {
                let port = match ports {
                    Some(ports) => match p.first_covered(ports) {
                        Some(port) => format!("port {port}"),
                        None => continue,
                    },
                    None => "every port".to_string(),
                };
                return Some(format!(
                    "{} also exposes {port}, which rule {} ({}, {}) guards: removing it automatically would close that port without the approval it needs",
                    p.describe(),
                    other.id,
                    other.severity,
                    self.mode_of(other)
                ));
            }
        }
        None
    }

    /// The rule's mode, falling back to `[routing]` by severity.
    pub fn mode_of(&self, rule: &Rule) -> Mode {
        rule.mode
            .unwrap_or(if rule.severity <= self.routing.auto_max_severity {
                Mode::Auto
            } else {
                Mode::Approve
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::Permission;

    const POLICY: &str = r#"
[[rule]]
id = "sg-open-admin-ports"
config_rule = "*restricted-ssh*"
resource_types = ["AWS::EC2::SecurityGroup"]
severity = "HIGH"
action = { fix = "revoke_public_ingress", ports = [22, 3389] }

[[rule]]
id = "sg-open-db-ports"
config_rule = "*restricted-common-ports*"
resource_types = ["AWS::EC2::SecurityGroup"]
severity = "MEDIUM"
action = { fix = "revoke_public_ingress", ports = [21, 3306] }
"#;

    fn world_open(from: i32, to: i32) -> Permission {
        Permission {
            protocol: "tcp".into(),
            from_port: Some(from),
            to_port: Some(to),
            ipv4: vec!["0.0.0.0/0".into()],
            ipv6: vec![],
        }
    }

    #[test]
    fn an_automatic_revoke_stays_inside_its_severity() {
        let p = Policy::from_toml(POLICY, "p").unwrap();
        let medium = p.rule("sg-open-db-ports").unwrap();
        let high = p.rule("sg-open-admin-ports").unwrap();
        // 0-65535 covers 22, which the HIGH rule puts under approval.
        let why = p.exceeds_severity(medium, &[world_open(0, 65535)]).unwrap();
        assert!(
            why.contains("port 22") && why.contains("sg-open-admin-ports"),
            "{why}"
        );
        let all = Permission {
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            ..world_open(0, 0)
        };
        assert!(p.exceeds_severity(medium, &[all]).is_some());
        // Exactly its own ports: nothing higher is touched.
        assert_eq!(p.exceeds_severity(medium, &[world_open(3306, 3306)]), None);
        assert_eq!(p.exceeds_severity(medium, &[world_open(20, 21)]), None);
        // The HIGH rule is outranked by nobody.
        assert_eq!(p.exceeds_severity(high, &[world_open(0, 65535)]), None);
    }

    #[test]
    fn approval_and_notify_rules_outrank_an_automatic_one_of_any_severity() {
        for mode in ["approve", "notify"] {
            let src = format!(
                "{POLICY}\n[[rule]]\nid = \"telnet\"\nconfig_rule = \"*telnet*\"\nseverity = \"LOW\"\nmode = \"{mode}\"\naction = {{ fix = \"revoke_public_ingress\", ports = [23] }}\n"
            );
            let p = Policy::from_toml(&src, "p").unwrap();
            let medium = p.rule("sg-open-db-ports").unwrap();
            let why = p.exceeds_severity(medium, &[world_open(23, 25)]).unwrap();
            assert!(
                why.contains("port 23") && why.contains("telnet"),
                "{mode}: {why}"
            );
        }
    }
}
