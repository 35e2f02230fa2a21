//! redress's own Config custom rules, as pure functions from what Config hands a rule
//! (a configuration item, the rule's input parameters) to the evaluations it reports.
//! The AWS edge (invocations, `PutEvaluations`) lives in the workers crate.

pub mod invocation;
pub mod parameter_drift;
pub mod security_group;

#[cfg(test)]
mod recorded;

use std::collections::BTreeMap;

use serde::Serialize;

/// Resource type of the parameter-drift rule's evaluations. Config does not record SSM
/// parameters, but `PutEvaluations` accepts this type (it is in the list of types Config
/// answers an invalid one with).
pub const PARAMETER_TYPE: &str = "AWS::SSM::Parameter";

/// One of redress's Config custom rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// `redress-sg-admin-ports`: administrative and database ports open to the world.
    SgAdminPorts,
    /// `redress-sg-privileged-ports`: other privileged ports open to the world.
    SgPrivilegedPorts,
    /// `redress-parameter-drift`: parameters against their approved baselines.
    ParameterDrift,
}

impl RuleKind {
    /// Every rule.
    pub const ALL: [RuleKind; 3] = [
        RuleKind::SgAdminPorts,
        RuleKind::SgPrivilegedPorts,
        RuleKind::ParameterDrift,
    ];

    /// The rule's name, as `redress provision` and config.yaml create it.
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::SgAdminPorts => "redress-sg-admin-ports",
            RuleKind::SgPrivilegedPorts => "redress-sg-privileged-ports",
            RuleKind::ParameterDrift => "redress-parameter-drift",
        }
    }

    /// The evaluator of a Config rule named `name`: exactly one of the names above.
    /// Nothing else: the evaluator may read every app's parameters, so a rule someone
    /// else creates (say `redress-parameter-drift-probe`, with baselines of their own)
    /// must not get it to compare values for them.
    pub fn for_rule(name: &str) -> Option<RuleKind> {
        RuleKind::ALL.into_iter().find(|k| name == k.name())
    }

    /// The resource type the rule evaluates.
    pub fn resource_type(self) -> &'static str {
        match self {
            RuleKind::ParameterDrift => PARAMETER_TYPE,
            _ => security_group::RESOURCE_TYPE,
        }
    }

    /// Periodic (runs on a schedule and evaluates everything) rather than triggered by
    /// configuration changes.
    pub fn periodic(self) -> bool {
        self == RuleKind::ParameterDrift
    }

    /// The input parameters the rule takes, with their defaults (`None`: required).
    pub fn inputs(self) -> &'static [(&'static str, Option<&'static str>)] {
        match self {
            RuleKind::ParameterDrift => &[
                ("apps", None),
                ("currentPrefix", Some("/{app}/current/")),
                ("approvedPrefix", Some("/{app}/approved/")),
            ],
            _ => &[("ports", Some(""))],
        }
    }

    /// Reads the rule's input parameters. Unknown ones are refused (a misspelt key would
    /// silently fall back to a default).
    pub fn settings(self, given: &BTreeMap<String, String>) -> Result<Settings, String> {
        let known = self.inputs();
        if let Some(unknown) = given.keys().find(|k| known.iter().all(|(n, _)| n != k)) {
            let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "{}: unknown input parameter {unknown:?}; it takes {}",
                self.name(),
                names.join(", ")
            ));
        }
        let value = |key: &str| {
            given.get(key).map(String::as_str).or_else(|| {
                known
                    .iter()
                    .find(|(n, _)| *n == key)
                    .and_then(|(_, default)| *default)
            })
        };
        let error = |e: String| format!("{}: {e}", self.name());
        Ok(match self {
            RuleKind::SgAdminPorts => Settings::Ports(
                security_group::ports(value("ports"), &security_group::ADMIN_PORTS)
                    .map_err(error)?,
            ),
            RuleKind::SgPrivilegedPorts => Settings::Ports(
                security_group::ports(value("ports"), &security_group::PRIVILEGED_PORTS)
                    .map_err(error)?,
            ),
            RuleKind::ParameterDrift => {
                let current = value("currentPrefix").unwrap_or_default().to_string();
                let approved = value("approvedPrefix").unwrap_or_default().to_string();
                crate::parameter_path::check_pair(&approved, &current).map_err(error)?;
                Settings::Drift {
                    apps: parameter_drift::apps(value("apps")).map_err(error)?,
                    current_prefix: current,
                    approved_prefix: approved,
                }
            }
        })
    }
}

/// A rule's input parameters, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settings {
    /// The security-group rules: which ports open to the world break the rule.
    Ports(Vec<u16>),
    /// The parameter-drift rule.
    Drift {
        /// Applications to evaluate.
        apps: Vec<String>,
        /// Live values, e.g. `/{app}/current/`.
        current_prefix: String,
        /// Approved values, e.g. `/{app}/approved/`.
        approved_prefix: String,
    },
}

/// Longest annotation Config accepts.
pub const MAX_ANNOTATION: usize = 256;

/// One evaluation, as `PutEvaluations` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    /// `AWS::EC2::SecurityGroup`, ...
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// `COMPLIANT`, `NON_COMPLIANT` or `NOT_APPLICABLE`.
    pub compliance: &'static str,
    /// Why, at most [`MAX_ANNOTATION`] characters.
    pub annotation: Option<String>,
}

impl Evaluation {
    /// A resource that left the rule's scope or no longer exists.
    pub fn not_applicable(resource_type: &str, resource_id: &str) -> Evaluation {
        Evaluation {
            resource_type: resource_type.to_string(),
            resource_id: resource_id.to_string(),
            compliance: "NOT_APPLICABLE",
            annotation: None,
        }
    }
}

/// A periodic run's evaluations, plus NOT_APPLICABLE for each resource Config holds a
/// result for (`previously`: type and id, other than NOT_APPLICABLE) that the run no
/// longer found: it was deleted, or left the rule's scope (an application removed from
/// `apps`). Without these, a deleted resource would stay NON_COMPLIANT in Config for ever.
pub fn with_gone(
    mut evaluations: Vec<Evaluation>,
    previously: &[(String, String)],
) -> Vec<Evaluation> {
    let seen: std::collections::BTreeSet<(String, String)> = evaluations
        .iter()
        .map(|e| (e.resource_type.clone(), e.resource_id.clone()))
        .collect();
    let gone: std::collections::BTreeSet<&(String, String)> =
        previously.iter().filter(|k| !seen.contains(*k)).collect();
    evaluations.extend(
        gone.into_iter()
            .map(|(t, id)| Evaluation::not_applicable(t, id)),
    );
    evaluations
}

/// `text`, cut to [`MAX_ANNOTATION`] characters (ending in `…` when cut).
pub fn annotation(text: &str) -> String {
    if text.chars().count() <= MAX_ANNOTATION {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_ANNOTATION - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_fit_what_config_accepts() {
        assert_eq!(annotation("short"), "short");
        let long = "x".repeat(300);
        let cut = annotation(&long);
        assert_eq!(cut.chars().count(), MAX_ANNOTATION);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn a_periodic_run_reports_what_it_no_longer_finds() {
        let found = vec![Evaluation {
            resource_type: PARAMETER_TYPE.into(),
            resource_id: "/payments/current/pool".into(),
            compliance: "COMPLIANT",
            annotation: None,
        }];
        let before = |id: &str| (PARAMETER_TYPE.to_string(), id.to_string());
        let out = with_gone(
            found,
            &[
                before("/payments/current/pool"),
                before("/payments/current/old"),
                before("/payments/current/old"),
            ],
        );
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|e| (e.resource_id.as_str(), e.compliance))
            .collect();
        assert_eq!(
            got,
            [
                ("/payments/current/pool", "COMPLIANT"),
                ("/payments/current/old", "NOT_APPLICABLE")
            ]
        );
    }

    #[test]
    fn rules_are_found_by_name_and_read_their_parameters() {
        assert_eq!(
            RuleKind::for_rule("redress-sg-admin-ports"),
            Some(RuleKind::SgAdminPorts)
        );
        assert_eq!(
            RuleKind::for_rule("redress-parameter-drift-conformance-pack-x1"),
            None
        );
        assert_eq!(RuleKind::for_rule("redress-sg-admin-portsX"), None);
        assert_eq!(RuleKind::for_rule("restricted-ssh"), None);

        let none = BTreeMap::new();
        assert_eq!(
            RuleKind::SgPrivilegedPorts.settings(&none).unwrap(),
            Settings::Ports(security_group::PRIVILEGED_PORTS.to_vec())
        );
        let given = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(
            RuleKind::SgAdminPorts
                .settings(&given("ports", "22, 2222"))
                .unwrap(),
            Settings::Ports(vec![22, 2222])
        );
        let err = RuleKind::SgAdminPorts
            .settings(&given("port", "22"))
            .unwrap_err();
        assert!(err.contains("unknown input parameter \"port\""), "{err}");
        // apps has no default.
        assert!(RuleKind::ParameterDrift.settings(&none).is_err());
        assert_eq!(
            RuleKind::ParameterDrift
                .settings(&given("apps", "payments,orders"))
                .unwrap(),
            Settings::Drift {
                apps: vec!["payments".into(), "orders".into()],
                current_prefix: "/{app}/current/".into(),
                approved_prefix: "/{app}/approved/".into(),
            }
        );
    }
}
