//! `redress-parameter-drift`: for each application `APP`, parameters live under
//! `/APP/current/` and their approved values under `/APP/approved/`. One evaluation per
//! current parameter name: the same value and type as its baseline is COMPLIANT; another
//! is `drifted`; a baseline with no current parameter is `missing` (reported under the
//! current name it should have); a current parameter with no baseline is `unauthorized`;
//! a name evaluated before that neither side holds any more is NOT_APPLICABLE. The
//! annotation is only ever one of those words: values are never written anywhere.

use std::collections::{BTreeMap, BTreeSet};

use super::Evaluation;

/// A parameter as the evaluator sees it: what decides drift. The value is compared,
/// never copied into an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    /// The value (decrypted for a SecureString, compared only).
    pub value: String,
    /// `String`, `StringList` or `SecureString`.
    pub kind: String,
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
            let ok = !a.is_empty()
                && a.len() <= 128
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            ok.then(|| a.to_string())
                .ok_or_else(|| format!("apps: {a:?} is not an application name"))
        })
        .collect()
}

/// `prefix` with `{app}` replaced, e.g. `/{app}/current/` → `/payments/current/`.
pub fn prefix_for(prefix: &str, app: &str) -> String {
    prefix.replace("{app}", app)
}

/// Evaluates one application. `current` and `approved` map the part of each name after
/// its prefix (`db_pool_size`) to the parameter; `previously` holds current names Config
/// has results for, so names that are gone are reported NOT_APPLICABLE.
pub fn evaluate(
    current_prefix: &str,
    current: &BTreeMap<String, Parameter>,
    approved: &BTreeMap<String, Parameter>,
    previously: &BTreeSet<String>,
    resource_type: &str,
) -> Vec<Evaluation> {
    let names: BTreeSet<&String> = current.keys().chain(approved.keys()).collect();
    let evaluation = |name: String, compliance: &'static str, note: Option<&str>| Evaluation {
        resource_type: resource_type.to_string(),
        resource_id: name,
        compliance,
        annotation: note.map(str::to_string),
    };
    let mut out: Vec<Evaluation> = names
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
        .collect();
    for gone in previously {
        let held = gone
            .strip_prefix(current_prefix)
            .is_some_and(|s| names.contains(&s.to_string()));
        if gone.starts_with(current_prefix) && !held {
            out.push(evaluation(gone.clone(), "NOT_APPLICABLE", None));
        }
    }
    out
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
        let out = evaluate(
            "/payments/current/",
            &current,
            &approved,
            &BTreeSet::new(),
            TYPE,
        );
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
        let text = format!("{out:?}");
        for secret in ["s3cret-new", "900", "eu-west-1"] {
            assert!(!text.contains(secret), "a value leaked: {text}");
        }
    }

    #[test]
    fn names_gone_from_both_sides_are_not_applicable() {
        let previously: BTreeSet<String> = [
            "/payments/current/old".to_string(),
            "/payments/current/pool".to_string(),
            "/orders/current/x".to_string(),
        ]
        .into();
        let both = map(&[("pool", p("1", "String"))]);
        let out = evaluate("/payments/current/", &both, &both, &previously, TYPE);
        let gone: Vec<&str> = out
            .iter()
            .filter(|e| e.compliance == "NOT_APPLICABLE")
            .map(|e| e.resource_id.as_str())
            .collect();
        assert_eq!(gone, ["/payments/current/old"]);
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
            prefix_for("/{app}/approved/", "orders"),
            "/orders/approved/"
        );
    }
}
