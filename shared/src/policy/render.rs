//! Placeholder substitution in runbook parameters and roles.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Action, Runbook};

/// Placeholders a policy may use.
pub const PLACEHOLDERS: [&str; 5] = [
    "resource_id",
    "resource_type",
    "account_id",
    "region",
    "rule_name",
];

/// The facts of one finding that placeholders expand to. Values are validated
/// identifiers (see [`crate::validate`]), never free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts<'a> {
    /// `{resource_id}`.
    pub resource_id: &'a str,
    /// `{resource_type}`.
    pub resource_type: &'a str,
    /// `{account_id}`.
    pub account_id: &'a str,
    /// `{region}`.
    pub region: &'a str,
    /// `{rule_name}`: the Config rule name.
    pub rule_name: &'a str,
}

impl Facts<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        Some(match name {
            "resource_id" => self.resource_id,
            "resource_type" => self.resource_type,
            "account_id" => self.account_id,
            "region" => self.region,
            "rule_name" => self.rule_name,
            _ => return None,
        })
    }
}

/// Expands `{name}` placeholders. Errors name an unknown placeholder or an unclosed `{`.
pub fn render(template: &str, facts: &Facts<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in {template:?}"))?;
        let name = &after[..close];
        let value = facts.get(name).ok_or_else(|| {
            format!(
                "unknown placeholder {{{name}}} in {template:?}; known: {}",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
            )
        })?;
        out.push_str(value);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A runbook with every placeholder expanded: exactly what will be started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedRunbook {
    /// Document name.
    pub document: String,
    /// Parameters as passed to `StartAutomationExecution`.
    pub parameters: BTreeMap<String, Vec<String>>,
    /// `AutomationAssumeRole`, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<String>,
}

impl Runbook {
    /// Expands the placeholders for one finding.
    pub fn render(&self, facts: &Facts<'_>) -> Result<RenderedRunbook, String> {
        let mut parameters = BTreeMap::new();
        for (name, values) in &self.parameters {
            let rendered = values
                .iter()
                .map(|v| render(v, facts))
                .collect::<Result<Vec<_>, _>>()?;
            parameters.insert(name.clone(), rendered);
        }
        Ok(RenderedRunbook {
            document: self.document.clone(),
            parameters,
            assume_role: self
                .assume_role
                .as_deref()
                .map(|r| render(r, facts))
                .transpose()?,
        })
    }
}

impl Action {
    /// Checks that every placeholder in the action is known (used at load time).
    pub(super) fn check_placeholders(&self) -> Result<(), String> {
        if let Action::Runbook(r) = self {
            let probe = Facts {
                resource_id: "r",
                resource_type: "t",
                account_id: "a",
                region: "g",
                rule_name: "n",
            };
            r.render(&probe)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts<'static> {
        Facts {
            resource_id: "bucket-1",
            resource_type: "AWS::S3::Bucket",
            account_id: "111122223333",
            region: "eu-west-1",
            rule_name: "s3-enc",
        }
    }

    #[test]
    fn expands_every_placeholder() {
        let out = render(
            "{resource_id}|{resource_type}|{account_id}|{region}|{rule_name}",
            &facts(),
        )
        .unwrap();
        assert_eq!(
            out,
            "bucket-1|AWS::S3::Bucket|111122223333|eu-west-1|s3-enc"
        );
    }

    #[test]
    fn rejects_unknown_and_unclosed() {
        assert!(render("{bucket}", &facts())
            .unwrap_err()
            .contains("{bucket}"));
        assert!(render("x{resource_id", &facts())
            .unwrap_err()
            .contains("unclosed"));
        assert_eq!(render("plain", &facts()).unwrap(), "plain");
    }

    #[test]
    fn the_digest_changes_with_any_part_of_the_action() {
        let runbook = |bucket: &str, alg: &str, role: Option<&str>| {
            RenderedAction::Runbook(RenderedRunbook {
                document: "AWS-EnableS3BucketEncryption".into(),
                parameters: BTreeMap::from([
                    ("BucketName".to_string(), vec![bucket.to_string()]),
                    ("SSEAlgorithm".to_string(), vec![alg.to_string()]),
                ]),
                assume_role: role.map(str::to_string),
            })
        };
        let a = runbook("b", "AES256", None);
        assert_eq!(a.digest(), runbook("b", "AES256", None).digest());
        assert_eq!(a.digest().len(), 64);
        for other in [
            runbook("c", "AES256", None),
            runbook("b", "aws:kms", None),
            runbook("b", "AES256", Some("arn:aws:iam::1:role/x")),
            RenderedAction::Fix(super::super::Fix::RevokePublicIngress {
                ports: Some(vec![22]),
            }),
        ] {
            assert_ne!(a.digest(), other.digest());
        }
        let p22 = RenderedAction::Fix(super::super::Fix::RevokePublicIngress {
            ports: Some(vec![22]),
        });
        let p23 = RenderedAction::Fix(super::super::Fix::RevokePublicIngress {
            ports: Some(vec![22, 23]),
        });
        assert_ne!(p22.digest(), p23.digest());
    }

    #[test]
    fn renders_a_runbook() {
        let rb = Runbook {
            document: "AWS-EnableS3BucketEncryption".into(),
            parameters: BTreeMap::from([("BucketName".into(), vec!["{resource_id}".into()])]),
            assume_role: Some("arn:aws:iam::{account_id}:role/r".into()),
        };
        let r = rb.render(&facts()).unwrap();
        assert_eq!(r.parameters["BucketName"], vec!["bucket-1"]);
        assert_eq!(
            r.assume_role.as_deref(),
            Some("arn:aws:iam::111122223333:role/r")
        );
    }
}

/// An action with every placeholder expanded: what the executor will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RenderedAction {
    /// A direct API fix (fixes take no placeholders).
    Fix(super::Fix),
    /// A runbook with its rendered parameters.
    Runbook(RenderedRunbook),
}

impl RenderedAction {
    /// SHA-256 (hex) of the action's canonical JSON: what an approval is bound to. Any
    /// change of fix, document, parameter, port or role changes it.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        // Serialising plain data with BTreeMap parameters cannot fail and is canonical.
        let json = serde_json::to_string(self).expect("a rendered action serialises");
        Sha256::digest(json.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Label for audit records: the fix name or the runbook document.
    pub fn label(&self) -> String {
        match self {
            RenderedAction::Fix(f) => f.name().to_string(),
            RenderedAction::Runbook(r) => r.document.clone(),
        }
    }

    /// One line for people, e.g. `runbook AWS-EnableS3BucketEncryption BucketName=b`.
    pub fn describe(&self) -> String {
        match self {
            RenderedAction::Fix(f) => Action::Fix(f.clone()).describe(),
            RenderedAction::Runbook(r) => {
                let params: Vec<String> = r
                    .parameters
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.join(",")))
                    .collect();
                let role = r
                    .assume_role
                    .as_deref()
                    .map(|role| format!(" as {role}"))
                    .unwrap_or_default();
                format!("runbook {} {}{role}", r.document, params.join(" "))
            }
        }
    }
}

impl Action {
    /// Expands placeholders for one finding.
    pub fn render(&self, facts: &Facts<'_>) -> Result<RenderedAction, String> {
        Ok(match self {
            Action::Fix(f) => RenderedAction::Fix(f.clone()),
            Action::Runbook(r) => RenderedAction::Runbook(r.render(facts)?),
        })
    }
}
