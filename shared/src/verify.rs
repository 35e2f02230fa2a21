//! What Config says decides: before a fix (is the finding still true?) and after it
//! (did the fix close it?). Pure: the executor asks Config and brings the answer here.

use std::time::{Duration, SystemTime};

use crate::event::ComplianceType;

/// Config's current result for one (rule, resource), as the executor read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// The rule's latest evaluation of the resource.
    Result {
        /// `COMPLIANT`, `NON_COMPLIANT`, `NOT_APPLICABLE`, `INSUFFICIENT_DATA`.
        compliance: String,
        /// The rule's annotation, if any.
        annotation: Option<String>,
    },
    /// The rule exists but has no evaluation of this resource.
    NoEvaluation,
    /// No rule of that name exists in the finding's account and region.
    NoRule,
    /// The rule exists, but its ARN is not one the policy rule trusts.
    UntrustedArn(String),
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

/// Decides from Config's current result whether a finding may be acted on.
/// `what`: how to name the rule and resource in reasons.
pub fn before_fix(current: &Current, what: &str) -> BeforeFix {
    match current {
        Current::Result { compliance, .. } => match compliance.as_str() {
            ComplianceType::NON_COMPLIANT => BeforeFix::Act,
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
    }
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

/// Decides a closure check: `fixed_at` is when the fix finished, `checks` how many
/// checks came before this one, `first`/`deadline` the policy's `recheck_after` and
/// `verify_deadline`.
pub fn after_fix(
    current: &Current,
    fixed_at: SystemTime,
    now: SystemTime,
    checks: u32,
    first: Duration,
    deadline: Duration,
) -> AfterFix {
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
        } => match annotation {
            Some(a) => format!("Config still reports {compliance}: {a}"),
            None => format!("Config still reports {compliance}"),
        },
        Current::NoEvaluation => "Config has no evaluation of the resource".into(),
        Current::NoRule => "the Config rule no longer exists".into(),
        Current::UntrustedArn(arn) => format!("the Config rule is now {arn}, which is not trusted"),
    };
    let elapsed = now.duration_since(fixed_at).unwrap_or_default();
    if elapsed >= deadline {
        return AfterFix::StillNonCompliant(format!(
            "fixed, but {why} {} after the fix",
            humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
        ));
    }
    // 1, 2, 4 ... times `first`, never past the deadline (so the last look is on it).
    let wait = first.saturating_mul(2_u32.saturating_pow(checks.min(16)));
    // Whole seconds: SQS delays are counted in seconds.
    let wait = wait.min(deadline - elapsed).as_secs().max(1);
    AfterFix::Recheck(Duration::from_secs(wait))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(c: &str) -> Current {
        Current::Result {
            compliance: c.into(),
            annotation: Some("port 22 open".into()),
        }
    }

    #[test]
    fn only_non_compliant_is_acted_on() {
        assert_eq!(before_fix(&result("NON_COMPLIANT"), "x"), BeforeFix::Act);
        assert!(
            matches!(before_fix(&result("COMPLIANT"), "x"), BeforeFix::AlreadyCompliant(w) if w.contains("Config reports COMPLIANT"))
        );
        assert!(matches!(
            before_fix(&result("NOT_APPLICABLE"), "x"),
            BeforeFix::NotApplicable(_)
        ));
        assert!(matches!(
            before_fix(&result("INSUFFICIENT_DATA"), "x"),
            BeforeFix::Refuse(_)
        ));
        assert!(
            matches!(before_fix(&Current::NoEvaluation, "x"), BeforeFix::Refuse(w) if w.contains("no evaluation"))
        );
        assert!(
            matches!(before_fix(&Current::NoRule, "x"), BeforeFix::Refuse(w) if w.contains("no such Config rule"))
        );
        assert!(
            matches!(before_fix(&Current::UntrustedArn("arn".into()), "x"), BeforeFix::Refuse(w) if w.contains("does not trust"))
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
        let (first, deadline) = (Duration::from_secs(60), Duration::from_secs(900));
        let at = |s: u64| t0 + Duration::from_secs(s);
        let nc = result("NON_COMPLIANT");
        assert_eq!(
            after_fix(&nc, t0, at(60), 0, first, deadline),
            AfterFix::Recheck(Duration::from_secs(60))
        );
        assert_eq!(
            after_fix(&nc, t0, at(120), 1, first, deadline),
            AfterFix::Recheck(Duration::from_secs(120))
        );
        assert_eq!(
            after_fix(&nc, t0, at(480), 3, first, deadline),
            AfterFix::Recheck(Duration::from_secs(420))
        );
        let AfterFix::StillNonCompliant(why) = after_fix(&nc, t0, at(900), 4, first, deadline)
        else {
            panic!("past the deadline");
        };
        assert!(
            why.starts_with("fixed, but Config still reports NON_COMPLIANT: port 22 open"),
            "{why}"
        );
        assert!(matches!(
            after_fix(&Current::NoEvaluation, t0, at(901), 9, first, deadline),
            AfterFix::StillNonCompliant(_)
        ));
        assert!(matches!(
            after_fix(&result("COMPLIANT"), t0, at(5000), 9, first, deadline),
            AfterFix::Verified(_)
        ));
        assert!(matches!(
            after_fix(&result("NOT_APPLICABLE"), t0, at(1), 0, first, deadline),
            AfterFix::Verified(_)
        ));
        // A fix time in the future (clock skew) waits rather than concluding.
        assert!(matches!(
            after_fix(&nc, at(100), t0, 0, first, deadline),
            AfterFix::Recheck(_)
        ));
    }
}
