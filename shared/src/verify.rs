//! What Config says decides: before a fix (is the finding still true?) and after it
//! (did the fix close it?). Pure: the executor asks Config and brings the answer here.

use std::time::{Duration, SystemTime};

use crate::event::ComplianceType;
use crate::message::Finding;
use crate::policy::{Policy, Subject};

/// Config's current result for one (rule, resource), as the executor read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// The rule's latest evaluation of the resource.
    Result {
        /// `COMPLIANT`, `NON_COMPLIANT`, `NOT_APPLICABLE`, `INSUFFICIENT_DATA`.
        compliance: String,
        /// The rule's annotation, if any.
        annotation: Option<String>,
        /// The rule's ARN, when it was looked up (a policy rule pins ARNs for its name).
        arn: Option<String>,
    },
    /// The rule exists but has no evaluation of this resource.
    NoEvaluation,
    /// No rule of that name exists in the finding's account and region.
    NoRule,
    /// The rule exists, but its ARN is not one the policy rule trusts.
    UntrustedArn(String),
    /// The rule was not asked to evaluate the resource the way the fix would treat it
    /// (see [`parameter_scope`]): why.
    OutOfScope(String),
}

/// Whether redress's parameter rule, as configured in Config, covers a parameter finding
/// the way the policy's fix reads it: the rule's `apps` name the finding's application,
/// and its prefixes are the fix's. Anyone who may change a Config rule's input parameters
/// could otherwise widen what is fixed (an app nobody enrolled) or pair live values with
/// baselines of their own. Rules that are not redress's (`rule_name`) keep their own
/// scope: `Ok`.
pub fn parameter_scope(
    rule_name: &str,
    input_parameters: Option<&str>,
    (baseline, current): (&str, &str),
    resource_id: &str,
) -> Result<(), String> {
    use crate::evaluate::{invocation, RuleKind, Settings};
    if RuleKind::for_rule(rule_name) != Some(RuleKind::ParameterDrift) {
        return Ok(());
    }
    let given = invocation::parameters(input_parameters)?;
    let Settings::Drift {
        apps,
        current_prefix,
        approved_prefix,
    } = RuleKind::ParameterDrift.settings(&given)?
    else {
        return Err(format!("{rule_name} is not a parameter rule"));
    };
    if current_prefix != current || approved_prefix != baseline {
        return Err(format!(
            "Config rule {rule_name} evaluates {current_prefix} against {approved_prefix}, not the fix's {current} against {baseline}"
        ));
    }
    match crate::parameter_path::split(current, resource_id).and_then(|s| s.app) {
        Some(app) if !apps.iter().any(|a| a == app) => Err(format!(
            "Config rule {rule_name} evaluates the apps {}, not {app}",
            apps.join(", ")
        )),
        _ => Ok(()),
    }
}

/// What to do with a finding before changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeforeFix {
    /// Config agrees the resource is non-compliant: act.
    Act,
    /// Config says it is compliant: nothing to do (`already_compliant`).
    AlreadyCompliant(String),
    /// Config says the rule no longer applies (resource deleted or out of scope).
    NotApplicable(String),
    /// Config does not back the finding: refuse, with the reason.
    Refuse(String),
}

/// Decides from Config's current result whether a finding may be acted on under the
/// policy rule `rule_id`: Config must hold it NON_COMPLIANT, and what Config holds (its
/// annotation, the rule's live ARN) must fall under that same policy rule. A message
/// names a rule and an annotation; only Config's word picks the rule, so a finding
/// cannot reach an automatic rule when what Config holds needs approval.
pub fn before_fix(policy: &Policy, f: &Finding, rule_id: &str, current: &Current) -> BeforeFix {
    let what = format!(
        "Config rule {} on {} {}",
        f.config_rule_name, f.resource_type, f.resource_id
    );
    match current {
        Current::Result {
            compliance,
            annotation,
            arn,
        } => match compliance.as_str() {
            ComplianceType::NON_COMPLIANT => {
                let subject = Subject {
                    config_rule_name: &f.config_rule_name,
                    resource_type: &f.resource_type,
                    config_rule_arn: arn.as_deref(),
                    annotation: annotation.as_deref(),
                };
                match policy.find(&subject) {
                    Some(r) if r.id == rule_id => BeforeFix::Act,
                    Some(r) => BeforeFix::Refuse(format!(
                        "what Config holds for {what} falls under policy rule {}, not {rule_id}; nothing was changed",
                        r.id
                    )),
                    None => BeforeFix::Refuse(format!(
                        "what Config holds for {what} matches no policy rule (annotation {:?}); nothing was changed",
                        annotation.as_deref().unwrap_or("")
                    )),
                }
            }
            ComplianceType::COMPLIANT => {
                BeforeFix::AlreadyCompliant(format!("Config reports COMPLIANT for {what}"))
            }
            ComplianceType::NOT_APPLICABLE => {
                BeforeFix::NotApplicable(format!("Config reports NOT_APPLICABLE for {what}"))
            }
            other => BeforeFix::Refuse(format!(
                "Config reports {other} for {what}, not NON_COMPLIANT; nothing was changed"
            )),
        },
        Current::NoEvaluation => BeforeFix::Refuse(format!(
            "Config has no evaluation of {what}: the finding is not Config's; nothing was changed"
        )),
        Current::NoRule => BeforeFix::Refuse(format!(
            "no such Config rule: {what} names a rule that does not exist in that account and region; nothing was changed"
        )),
        Current::UntrustedArn(arn) => BeforeFix::Refuse(format!(
            "the Config rule of {what} is {arn}, which the policy rule does not trust (config_rule_arn); nothing was changed"
        )),
        Current::OutOfScope(why) => {
            BeforeFix::Refuse(format!("{why}: {what} is out of its scope; nothing was changed"))
        }
    }
}

/// Where a fix's closure checks stand: when it was fixed, now, how many checks came
/// before this one, and the policy's `recheck_after` (`first`) and `verify_deadline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// When the fix finished.
    pub fixed_at: SystemTime,
    /// Now.
    pub now: SystemTime,
    /// Checks made before this one.
    pub checks: u32,
    /// The first wait; each later one doubles.
    pub first: Duration,
    /// How long after the fix Config may take.
    pub deadline: Duration,
}

impl Schedule {
    fn elapsed(&self) -> Duration {
        self.now.duration_since(self.fixed_at).unwrap_or_default()
    }

    fn past_deadline(&self) -> bool {
        self.elapsed() >= self.deadline
    }

    /// 1, 2, 4 ... times `first`, never past the deadline (so the last look is on it),
    /// in whole seconds (SQS delays are counted in seconds).
    fn next_wait(&self) -> Duration {
        let wait = self
            .first
            .saturating_mul(2_u32.saturating_pow(self.checks.min(16)));
        let left = self.deadline.saturating_sub(self.elapsed());
        Duration::from_secs(wait.min(left).as_secs().max(1))
    }
}

/// A closure check whose question Config did not answer (`why`): a transient failure
/// before the deadline looks again later; a permanent one, or any past the deadline,
/// goes to a person, since nobody can then confirm the fix.
pub fn unanswered(why: &str, transient: bool, at: &Schedule) -> AfterFix {
    if transient && !at.past_deadline() {
        return AfterFix::Recheck(at.next_wait());
    }
    AfterFix::StillNonCompliant(format!(
        "fixed, but Config could not be asked whether it agrees: {why}"
    ))
}

/// When a fix finished, for its closure check: the time the check claims, but never
/// later than when SQS says the check was sent (a forged time cannot postpone the
/// deadline), nor later than now.
pub fn fixed_at(
    claimed: Option<SystemTime>,
    sent: Option<SystemTime>,
    now: SystemTime,
) -> SystemTime {
    [claimed, sent, Some(now)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now)
}

/// What a closure check concludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFix {
    /// Config agrees the finding is closed.
    Verified(String),
    /// Not yet: look again after this long.
    Recheck(Duration),
    /// Past the deadline and Config still disagrees: the finding goes to a person.
    StillNonCompliant(String),
}

/// Decides a closure check from Config's current result.
pub fn after_fix(current: &Current, at: &Schedule) -> AfterFix {
    let why = match current {
        Current::Result { compliance, .. } if compliance == ComplianceType::COMPLIANT => {
            return AfterFix::Verified("Config reports COMPLIANT".into());
        }
        Current::Result { compliance, .. } if compliance == ComplianceType::NOT_APPLICABLE => {
            return AfterFix::Verified(
                "Config reports NOT_APPLICABLE (the resource is gone or out of the rule's scope)"
                    .into(),
            );
        }
        Current::Result {
            compliance,
            annotation,
            ..
        } => match annotation {
            Some(a) => format!("Config still reports {compliance}: {a}"),
            None => format!("Config still reports {compliance}"),
        },
        Current::NoEvaluation => "Config has no evaluation of the resource".into(),
        Current::NoRule => "the Config rule no longer exists".into(),
        Current::UntrustedArn(arn) => format!("the Config rule is now {arn}, which is not trusted"),
        Current::OutOfScope(why) => format!("the resource is out of the rule's scope ({why})"),
    };
    if at.past_deadline() {
        return AfterFix::StillNonCompliant(format!(
            "fixed, but {why} {} after the fix",
            humantime::format_duration(Duration::from_secs(at.elapsed().as_secs()))
        ));
    }
    AfterFix::Recheck(at.next_wait())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_finding_must_be_in_the_scope_redress_s_rule_was_given() {
        let fix = ("/{app}/approved/", "/{app}/current/");
        let scope =
            |name: &str, input: Option<&str>, id: &str| parameter_scope(name, input, fix, id);
        let payments = Some(r#"{"apps":"payments,orders"}"#);
        assert_eq!(
            scope("redress-parameter-drift", payments, "/orders/current/x"),
            Ok(())
        );
        // An app the rule was not given.
        let err = scope("redress-parameter-drift", payments, "/billing/current/x").unwrap_err();
        assert!(err.contains("not billing"), "{err}");
        // Baselines somewhere else than the fix's.
        let elsewhere = Some(r#"{"apps":"payments","approvedPrefix":"/sandbox/{app}/approved/"}"#);
        let err = scope("redress-parameter-drift", elsewhere, "/payments/current/x").unwrap_err();
        assert!(err.contains("/sandbox/{app}/approved/"), "{err}");
        // Unreadable input parameters are not a scope.
        assert!(scope("redress-parameter-drift", Some("{"), "/payments/current/x").is_err());
        // Somebody else's rule has its own scope.
        assert_eq!(
            scope("acme-ssm-parameter-drift", None, "/x/current/y"),
            Ok(())
        );
        let refused = before_fix(
            &Policy::from_toml(POLICY, "p").unwrap(),
            &finding("redress-parameter-drift"),
            "param-drift",
            &Current::OutOfScope("Config rule r evaluates the apps a, not b".into()),
        );
        assert!(
            matches!(refused, BeforeFix::Refuse(ref w) if w.contains("out of its scope")),
            "{refused:?}"
        );
    }

    /// A schedule with the default first wait (1 minute) and deadline (15 minutes).
    fn sched(fixed_at: SystemTime, now: SystemTime, checks: u32) -> Schedule {
        Schedule {
            fixed_at,
            now,
            checks,
            first: Duration::from_secs(60),
            deadline: Duration::from_secs(900),
        }
    }

    fn result(c: &str) -> Current {
        Current::Result {
            compliance: c.into(),
            annotation: Some("port 22 open".into()),
            arn: None,
        }
    }

    const POLICY: &str = r#"
[[rule]]
id = "param-missing"
config_rule = "redress-parameter-drift"
annotation = "missing*"
severity = "HIGH"
action = { fix = "revoke_public_ingress" }

[[rule]]
id = "param-drift"
config_rule = "redress-parameter-drift"
severity = "MEDIUM"
action = { fix = "revoke_public_ingress" }

[[rule]]
id = "ssh"
config_rule = "restricted-ssh"
severity = "LOW"
action = { fix = "revoke_public_ingress" }
"#;

    fn finding(rule: &str) -> Finding {
        Finding {
            event_id: "e".into(),
            config_rule_name: rule.into(),
            config_rule_arn: None,
            resource_id: "sg-1".into(),
            resource_type: "AWS::EC2::SecurityGroup".into(),
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            compliance: "NON_COMPLIANT".into(),
            annotation: None,
            evaluation_time: None,
        }
    }

    #[test]
    fn only_non_compliant_is_acted_on() {
        let p = Policy::from_toml(POLICY, "p").unwrap();
        let f = finding("restricted-ssh");
        let check = |c: &Current| before_fix(&p, &f, "ssh", c);
        assert_eq!(check(&result("NON_COMPLIANT")), BeforeFix::Act);
        assert!(
            matches!(check(&result("COMPLIANT")), BeforeFix::AlreadyCompliant(w) if w.contains("Config reports COMPLIANT"))
        );
        assert!(matches!(
            check(&result("NOT_APPLICABLE")),
            BeforeFix::NotApplicable(_)
        ));
        assert!(matches!(
            check(&result("INSUFFICIENT_DATA")),
            BeforeFix::Refuse(_)
        ));
        assert!(
            matches!(check(&Current::NoEvaluation), BeforeFix::Refuse(w) if w.contains("no evaluation"))
        );
        assert!(
            matches!(check(&Current::NoRule), BeforeFix::Refuse(w) if w.contains("no such Config rule"))
        );
        assert!(
            matches!(check(&Current::UntrustedArn("arn".into())), BeforeFix::Refuse(w) if w.contains("does not trust"))
        );
    }

    #[test]
    fn configs_annotation_not_the_messages_picks_the_policy_rule() {
        let p = Policy::from_toml(POLICY, "p").unwrap();
        // The message says "drifted" (automatic); Config holds "missing" (approval).
        let mut f = finding("redress-parameter-drift");
        f.annotation = Some("drifted".into());
        let holds = |a: &str| Current::Result {
            compliance: "NON_COMPLIANT".into(),
            annotation: Some(a.into()),
            arn: None,
        };
        let BeforeFix::Refuse(why) = before_fix(&p, &f, "param-drift", &holds("missing")) else {
            panic!("a finding Config says needs approval must not run automatically");
        };
        assert!(why.contains("param-missing"), "{why}");
        assert_eq!(
            before_fix(&p, &f, "param-drift", &holds("drifted")),
            BeforeFix::Act
        );
        assert_eq!(
            before_fix(&p, &f, "param-missing", &holds("missing")),
            BeforeFix::Act
        );
    }

    #[test]
    fn an_unanswered_check_waits_while_it_may_and_then_asks_a_person() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(
            unanswered("Throttling", true, &sched(t0, at(60), 0)),
            AfterFix::Recheck(Duration::from_secs(60))
        );
        assert!(
            matches!(unanswered("Throttling", true, &sched(t0, at(900), 3)), AfterFix::StillNonCompliant(w) if w.contains("could not be asked"))
        );
        assert!(
            matches!(unanswered("AccessDenied", false, &sched(t0, at(60), 0)), AfterFix::StillNonCompliant(w) if w.contains("AccessDenied"))
        );
    }

    #[test]
    fn a_claimed_fix_time_never_postpones_the_deadline() {
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(fixed_at(Some(t(500)), Some(t(100)), t(1000)), t(100));
        assert_eq!(fixed_at(Some(t(50)), Some(t(100)), t(1000)), t(50));
        assert_eq!(fixed_at(None, Some(t(100)), t(1000)), t(100));
        assert_eq!(fixed_at(Some(t(5000)), None, t(1000)), t(1000));
    }

    #[test]
    fn closure_rechecks_with_growing_waits_until_the_deadline() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let nc = result("NON_COMPLIANT");
        assert_eq!(
            after_fix(&nc, &sched(t0, at(60), 0)),
            AfterFix::Recheck(Duration::from_secs(60))
        );
        assert_eq!(
            after_fix(&nc, &sched(t0, at(120), 1)),
            AfterFix::Recheck(Duration::from_secs(120))
        );
        assert_eq!(
            after_fix(&nc, &sched(t0, at(480), 3)),
            AfterFix::Recheck(Duration::from_secs(420))
        );
        let AfterFix::StillNonCompliant(why) = after_fix(&nc, &sched(t0, at(900), 4)) else {
            panic!("past the deadline");
        };
        assert!(
            why.starts_with("fixed, but Config still reports NON_COMPLIANT: port 22 open"),
            "{why}"
        );
        assert!(matches!(
            after_fix(&Current::NoEvaluation, &sched(t0, at(901), 9)),
            AfterFix::StillNonCompliant(_)
        ));
        assert!(matches!(
            after_fix(&result("COMPLIANT"), &sched(t0, at(5000), 9)),
            AfterFix::Verified(_)
        ));
        assert!(matches!(
            after_fix(&result("NOT_APPLICABLE"), &sched(t0, at(1), 0)),
            AfterFix::Verified(_)
        ));
        // A fix time in the future (clock skew) waits rather than concluding.
        assert!(matches!(
            after_fix(&nc, &sched(at(100), t0, 0)),
            AfterFix::Recheck(_)
        ));
    }
}
