//! `redress-parameter-drift`: for each application `APP`, parameters live under
//! `/APP/current/` and their approved values under `/APP/approved/`. One evaluation per
//! current parameter name: the same value and type as its baseline is COMPLIANT; another
//! is `drifted`; a baseline with no current parameter is `missing` (reported under the
//! current name it should have); a current parameter with no baseline is `unauthorized`.
//! (Names evaluated before that neither side holds any more are reported NOT_APPLICABLE
//! by [`super::with_gone`], as for every periodic rule.) The annotation is only ever one of those words: values are never written anywhere.

use std::collections::{BTreeMap, BTreeSet};

use super::Evaluation;

/// A parameter as the evaluator sees it: what decides drift. The value is compared,
/// never copied into an evaluation.
#[derive(Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The value (decrypted for a SecureString, compared only).
    pub value: String,
    /// `String`, `StringList` or `SecureString`.
    pub kind: String,
}

/// Never the value: a debug print or a log line must not carry a secret.
impl std::fmt::Debug for Parameter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parameter")
            .field("value", &"<redacted>")
            .field("kind", &self.kind)
            .finish()
    }
}

/// The annotation of a parameter whose value or type differs from its baseline.
pub const DRIFTED: &str = "drifted";
/// The annotation of a baseline without its current parameter.
pub const MISSING: &str = "missing";
/// The annotation of a current parameter without a baseline.
pub const UNAUTHORIZED: &str = "unauthorized";

/// The rule's `apps` input parameter (`"payments,orders"`): names usable in a parameter
/// path (letters, digits, `.`, `_`, `-`).
pub fn apps(parameter: Option<&str>) -> Result<Vec<String>, String> {
    let text = parameter.map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err("apps: name at least one application, e.g. \"payments,orders\"".into());
    }
    text.split(',')
        .map(|a| {
            let a = a.trim();
            crate::parameter_path::is_app_name(a)
                .then(|| a.to_string())
                .ok_or_else(|| format!("apps: {a:?} is not an application name"))
        })
        .collect()
}

/// Evaluates one application. `current` and `approved` map the part of each name after
/// its prefix (`db_pool_size`) to the parameter.
pub fn evaluate(
    current_prefix: &str,
    current: &BTreeMap<String, Parameter>,
    approved: &BTreeMap<String, Parameter>,
    resource_type: &str,
) -> Vec<Evaluation> {
    let names: BTreeSet<&String> = current.keys().chain(approved.keys()).collect();
    let evaluation = |name: String, compliance: &'static str, note: Option<&str>| Evaluation {
        resource_type: resource_type.to_string(),
        resource_id: name,
        compliance,
        annotation: note.map(str::to_string),
    };
    names
        .iter()
        .map(|suffix| {
            let name = format!("{current_prefix}{suffix}");
            match (current.get(*suffix), approved.get(*suffix)) {
                (Some(c), Some(a)) if c == a => evaluation(name, "COMPLIANT", None),
                (Some(_), Some(_)) => evaluation(name, "NON_COMPLIANT", Some(DRIFTED)),
                (None, Some(_)) => evaluation(name, "NON_COMPLIANT", Some(MISSING)),
                (Some(_), None) => evaluation(name, "NON_COMPLIANT", Some(UNAUTHORIZED)),
                (None, None) => unreachable!("a name comes from one side"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TYPE: &str = "AWS::SSM::Parameter";

    fn p(value: &str, kind: &str) -> Parameter {
        Parameter {
            value: value.into(),
            kind: kind.into(),
        }
    }

    fn map(items: &[(&str, Parameter)]) -> BTreeMap<String, Parameter> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn each_outcome_and_never_a_value() {
        let current = map(&[
            ("pool", p("20", "String")),
            ("timeout", p("900", "String")),
            ("debug", p("true", "String")),
            ("key", p("s3cret-new", "SecureString")),
        ]);
        let approved = map(&[
            ("pool", p("20", "String")),
            ("timeout", p("30", "String")),
            ("region", p("eu-west-1", "String")),
            ("key", p("s3cret-new", "String")),
        ]);
        let out = evaluate("/payments/current/", &current, &approved, TYPE);
        let got: Vec<(&str, &str, Option<&str>)> = out
            .iter()
            .map(|e| {
                (
                    e.resource_id.as_str(),
                    e.compliance,
                    e.annotation.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/payments/current/debug",
                    "NON_COMPLIANT",
                    Some(UNAUTHORIZED)
                ),
                // Same value, another type (a secret stored in the clear): drift.
                ("/payments/current/key", "NON_COMPLIANT", Some(DRIFTED)),
                ("/payments/current/pool", "COMPLIANT", None),
                ("/payments/current/region", "NON_COMPLIANT", Some(MISSING)),
                ("/payments/current/timeout", "NON_COMPLIANT", Some(DRIFTED)),
            ]
        );
        let text = format!("{out:?} {current:?} {approved:?}");
        for secret in ["s3cret-new", "900", "eu-west-1"] {
            assert!(!text.contains(secret), "a value leaked: {text}");
        }
    }

    #[test]
    fn apps_and_prefixes() {
        assert_eq!(
            apps(Some(" payments, orders ")).unwrap(),
            ["payments", "orders"]
        );
        assert!(apps(None).is_err());
        assert!(apps(Some("pay/ments")).is_err());
        assert_eq!(
            crate::parameter_path::for_app("/{app}/approved/", "orders"),
            "/orders/approved/"
        );
    }
}
