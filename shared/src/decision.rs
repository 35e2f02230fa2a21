//! The routing decision: what to do with one event under one policy. Pure.

use serde::{Deserialize, Serialize};

use crate::event::{ComplianceEvent, ComplianceType};
use crate::policy::{Mode, Policy, Severity};

/// Why an event needs no action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The resource complies: nothing to fix.
    Compliant,
    /// The rule does not apply to the resource.
    NotApplicable,
    /// Config could not evaluate the resource.
    InsufficientData,
    /// A compliance value redress does not know; never acted on.
    UnknownCompliance,
    /// No policy rule covers the Config rule and resource type.
    NoPolicy,
    /// The matching rule is `mode = "notify"`.
    NotifyOnly,
    /// A policy `[[exception]]` covers the resource (see the audit reason).
    Exempt,
}

impl SkipReason {
    /// The reason as written in audit records.
    pub fn as_str(&self) -> &'static str {
        match self {
            SkipReason::Compliant => "compliant",
            SkipReason::NotApplicable => "not_applicable",
            SkipReason::InsufficientData => "insufficient_data",
            SkipReason::UnknownCompliance => "unknown_compliance",
            SkipReason::NoPolicy => "no_policy",
            SkipReason::NotifyOnly => "notify_only",
            SkipReason::Exempt => "exempt",
        }
    }
}

/// What the router does with an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send a task to the executor now.
    Remediate {
        /// Matching policy rule.
        rule_id: String,
        /// Its severity.
        severity: Severity,
    },
    /// Queue an approval request.
    RequestApproval {
        /// Matching policy rule.
        rule_id: String,
        /// Its severity.
        severity: Severity,
    },
    /// Nothing to do, with the reason.
    Skip {
        /// Why.
        reason: SkipReason,
        /// The matching rule, when one matched.
        rule_id: Option<String>,
        /// Its severity, when one matched.
        severity: Option<Severity>,
    },
}

impl Decision {
    /// The matched rule id, if any.
    pub fn rule_id(&self) -> Option<&str> {
        match self {
            Decision::Remediate { rule_id, .. } | Decision::RequestApproval { rule_id, .. } => {
                Some(rule_id)
            }
            Decision::Skip { rule_id, .. } => rule_id.as_deref(),
        }
    }

    /// The matched rule's severity, if any.
    pub fn severity(&self) -> Option<Severity> {
        match self {
            Decision::Remediate { severity, .. } | Decision::RequestApproval { severity, .. } => {
                Some(*severity)
            }
            Decision::Skip { severity, .. } => *severity,
        }
    }
}

/// Decides what to do with an event, now. Only `NON_COMPLIANT` events can lead to a fix.
pub fn decide(event: &ComplianceEvent, policy: &Policy) -> Decision {
    decide_at(event, policy, std::time::SystemTime::now())
}

/// [`decide`] at a given time (exceptions expire).
pub fn decide_at(event: &ComplianceEvent, policy: &Policy, now: std::time::SystemTime) -> Decision {
    let d = &event.detail;
    let rule = policy.find(&event.subject());
    let skip = |reason| Decision::Skip {
        reason,
        rule_id: rule.map(|r| r.id.clone()),
        severity: rule.map(|r| r.severity),
    };
    match event.compliance().as_str() {
        ComplianceType::NON_COMPLIANT => {}
        ComplianceType::COMPLIANT => return skip(SkipReason::Compliant),
        ComplianceType::NOT_APPLICABLE => return skip(SkipReason::NotApplicable),
        ComplianceType::INSUFFICIENT_DATA => return skip(SkipReason::InsufficientData),
        _ => return skip(SkipReason::UnknownCompliance),
    }
    let Some(rule) = rule else {
        return skip(SkipReason::NoPolicy);
    };
    if policy
        .exception_for(&rule.id, &d.aws_account_id, &d.resource_id, now)
        .is_some()
    {
        return skip(SkipReason::Exempt);
    }
    let (rule_id, severity) = (rule.id.clone(), rule.severity);
    match policy.mode_of(rule) {
        Mode::Auto => Decision::Remediate { rule_id, severity },
        Mode::Approve => Decision::RequestApproval { rule_id, severity },
        Mode::Notify => skip(SkipReason::NotifyOnly),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_message;

    const POLICY: &str = r#"
[routing]
auto_max_severity = "MEDIUM"
[[rule]]
id = "ssh"
config_rule = "*restricted-ssh*"
resource_types = ["AWS::EC2::SecurityGroup"]
severity = "HIGH"
action = { fix = "revoke_public_ingress", ports = [22] }
[[rule]]
id = "common-ports"
config_rule = "restricted-common-ports"
severity = "MEDIUM"
action = { fix = "revoke_public_ingress" }
[[rule]]
id = "imds"
config_rule = "ec2-imdsv2-check"
severity = "LOW"
mode = "notify"
action = { runbook = "AWS-EnforceEC2InstanceIMDSv2", parameters = { InstanceId = ["{resource_id}"] } }
"#;

    fn event(name: &str) -> ComplianceEvent {
        let path = format!(
            "{}/../tests/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        parse_message(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn policy() -> Policy {
        Policy::from_toml(POLICY, "p").unwrap()
    }

    #[test]
    fn high_severity_needs_approval() {
        let d = decide(&event("sg-ssh-open-noncompliant.json"), &policy());
        assert_eq!(
            d,
            Decision::RequestApproval {
                rule_id: "ssh".into(),
                severity: Severity::High
            }
        );
    }

    #[test]
    fn medium_is_automatic() {
        let d = decide(&event("first-evaluation-no-old-result.json"), &policy());
        assert!(matches!(d, Decision::Remediate { ref rule_id, .. } if rule_id == "common-ports"));
    }

    #[test]
    fn compliant_never_fixes() {
        let d = decide(&event("sg-ssh-back-to-compliant.json"), &policy());
        assert_eq!(d.rule_id(), Some("ssh"));
        assert!(matches!(
            d,
            Decision::Skip {
                reason: SkipReason::Compliant,
                ..
            }
        ));
    }

    #[test]
    fn notify_and_no_policy_skip() {
        let d = decide(&event("imdsv1-instance.json"), &policy());
        assert!(matches!(
            d,
            Decision::Skip {
                reason: SkipReason::NotifyOnly,
                ..
            }
        ));
        let d = decide(&event("ssm-parameter-drift.json"), &policy());
        assert_eq!(
            d,
            Decision::Skip {
                reason: SkipReason::NoPolicy,
                rule_id: None,
                severity: None
            }
        );
    }

    #[test]
    fn security_hub_suffix_matches_glob() {
        let p = Policy::from_toml(
            "[[rule]]\nid=\"s3\"\nconfig_rule=\"*s3-bucket-server-side-encryption-enabled*\"\nseverity=\"MEDIUM\"\naction={runbook=\"AWS-EnableS3BucketEncryption\"}\n",
            "p",
        )
        .unwrap();
        let d = decide(&event("securityhub-suffixed-rule.json"), &p);
        assert_eq!(d.rule_id(), Some("s3"));
    }

    #[test]
    fn unknown_compliance_is_never_fixed() {
        let mut e = event("sg-ssh-open-noncompliant.json");
        e.detail.new_evaluation_result.compliance_type = ComplianceType("SOMETHING_NEW".into());
        let d = decide(&e, &policy());
        assert!(matches!(
            d,
            Decision::Skip {
                reason: SkipReason::UnknownCompliance,
                ..
            }
        ));
    }

    fn with_exception(exception: &str) -> Policy {
        Policy::from_toml(&format!("{POLICY}\n[[exception]]\n{exception}"), "p").unwrap()
    }

    fn at(rfc3339: &str) -> std::time::SystemTime {
        crate::time::parse_rfc3339(rfc3339).unwrap()
    }

    #[test]
    fn an_exception_applies_until_it_expires() {
        let e = event("first-evaluation-no-old-result.json");
        let p = with_exception(&format!(
            "resource_id = \"{}\"\nexpires = \"2027-03-31\"\nreason = \"legacy, SEC-1\"\n",
            e.detail.resource_id
        ));
        let before = decide_at(&e, &p, at("2027-03-30T23:59:59Z"));
        assert!(
            matches!(before, Decision::Skip { reason: SkipReason::Exempt, ref rule_id, .. } if rule_id.as_deref() == Some("common-ports")),
            "{before:?}"
        );
        let after = decide_at(&e, &p, at("2027-03-31T00:00:00Z"));
        assert!(matches!(after, Decision::Remediate { .. }), "{after:?}");
    }

    #[test]
    fn an_exception_is_scoped_by_account_and_rule_globs() {
        let e = event("first-evaluation-no-old-result.json");
        let now = at("2026-12-01T00:00:00Z");
        let account = e.detail.aws_account_id.clone();
        let whole_account = with_exception(&format!(
            "account = \"{account}\"\nexpires = \"2027-01-01T00:00:00Z\"\nreason = \"migration\"\n"
        ));
        assert!(matches!(
            decide_at(&e, &whole_account, now),
            Decision::Skip {
                reason: SkipReason::Exempt,
                ..
            }
        ));
        let other_account = with_exception(
            "account = \"999999999999\"\nexpires = \"2027-01-01\"\nreason = \"x\"\n",
        );
        assert!(matches!(
            decide_at(&e, &other_account, now),
            Decision::Remediate { .. }
        ));
        let other_rule = with_exception(&format!(
            "account = \"{account}\"\nrules = [\"ssh*\"]\nexpires = \"2027-01-01\"\nreason = \"x\"\n"
        ));
        assert!(matches!(
            decide_at(&e, &other_rule, now),
            Decision::Remediate { .. }
        ));
        let this_rule = with_exception(&format!(
            "account = \"{account}\"\nrules = [\"common-*\"]\nexpires = \"2027-01-01\"\nreason = \"x\"\n"
        ));
        assert!(matches!(
            decide_at(&e, &this_rule, now),
            Decision::Skip {
                reason: SkipReason::Exempt,
                ..
            }
        ));
    }

    #[test]
    fn an_exception_never_turns_a_compliant_event_into_anything_else() {
        let e = event("sg-ssh-back-to-compliant.json");
        let p = with_exception(&format!(
            "resource_id = \"{}\"\nexpires = \"2099-01-01\"\nreason = \"x\"\n",
            e.detail.resource_id
        ));
        assert!(matches!(
            decide(&e, &p),
            Decision::Skip {
                reason: SkipReason::Compliant,
                ..
            }
        ));
    }
}
