//! The coverage table: what a policy does about each AWS Config managed rule it names, with
//! the runbook catalog's facts beside it: whether redress could undo the change, and
//! whether an AWS source pairs the runbook with the rule.
//!
//! The README's "Coverage" section is [`render`] of `infra/policies/aws-managed.toml` and
//! the shipped catalog; `shared/tests/coverage.rs` fails when the two differ and says how
//! to regenerate the section.
//!
//! Pure: a policy and a catalog in, Markdown out.

use crate::catalog::{Catalog, Document, Pairing};
use crate::policy::{Action, Fix, Mode, Policy, Rule, Severity};

/// One line of the table: one policy rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The managed rules' names, as the rule's glob spells them.
    pub managed_rules: Vec<String>,
    /// The runbook, redress's own fix, or nothing (notify).
    pub fix: String,
    /// The rule's severity.
    pub severity: Severity,
    /// The rule's mode, explicit or from `[routing]`.
    pub mode: Mode,
    /// `yes`, `no`, `unknown` (a document outside the catalog) or `—` (nothing runs).
    pub undoable: String,
    /// Whether an AWS source runs this runbook for this rule, and how well it is evidenced.
    pub paired_by_aws: String,
    /// What the fix does, or why it was chosen over the catalog's documents.
    pub note: String,
}

/// The managed rule names a `config_rule` glob stands for: each alternative of a
/// `{a,b}` glob, without the `*` that let it match conformance-pack and Security Hub copies.
/// `{*restricted-ssh*,*restricted-admin-ports*}` → `restricted-ssh`, `restricted-admin-ports`.
pub fn managed_rule_names(glob: &str) -> Vec<String> {
    let inner = glob
        .strip_prefix('{')
        .and_then(|g| g.strip_suffix('}'))
        .unwrap_or(glob);
    inner
        .split(',')
        .map(|alt| alt.trim().trim_matches('*').to_string())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The table's rows, in the policy's order.
pub fn rows(policy: &Policy, catalog: &Catalog) -> Vec<Row> {
    policy
        .rules
        .iter()
        .map(|rule| row(policy, catalog, rule))
        .collect()
}

fn row(policy: &Policy, catalog: &Catalog, rule: &Rule) -> Row {
    let names = managed_rule_names(&rule.config_rule);
    let mode = policy.mode_of(rule);
    // Documents the catalog pairs with any of the rule's managed rules.
    let paired: Vec<&str> = catalog
        .documents()
        .filter(|d| pairs_with(d, &names))
        .map(|d| d.name.as_str())
        .collect();
    let (fix, undoable, paired_by_aws, note) = match (&rule.action, mode) {
        (_, Mode::Notify) => (
            "none (notify)".to_string(),
            "—".to_string(),
            "—".to_string(),
            if paired.is_empty() {
                "no AWS-owned document in the catalog fixes it safely".to_string()
            } else {
                format!("not run: {} (see the policy)", code_list(&paired))
            },
        ),
        (Action::Fix(f), _) => (
            format!("redress `{}`{}", f.name(), fix_ports(f)),
            yes_no(fix_undoable(f)),
            "— (redress's own fix)".to_string(),
            if paired.is_empty() {
                "redress's own fix".to_string()
            } else {
                format!(
                    "narrow: only world-open ranges of these ports go; preferred to {}, which \
                     revoke other ports or miss ranges",
                    code_list(&paired)
                )
            },
        ),
        (Action::Runbook(r), _) => match catalog.get(&r.document) {
            Some(doc) => (
                format!("`{}`", r.document),
                yes_no(doc.undo.is_some()),
                pairing(doc, &names),
                match &doc.undo_note {
                    Some(why) if doc.undo.is_none() => format!("{} {why}", doc.description),
                    _ => doc.description.clone(),
                },
            ),
            None => (
                format!("`{}`", r.document),
                "unknown".to_string(),
                "unknown".to_string(),
                "outside redress's runbook catalog".to_string(),
            ),
        },
    };
    Row {
        managed_rules: names,
        fix,
        severity: rule.severity,
        mode,
        undoable,
        paired_by_aws,
        note,
    }
}

/// Whether the document's catalog entry pairs it with one of these managed rules.
fn pairs_with(doc: &Document, names: &[String]) -> bool {
    doc.config_rules
        .iter()
        .any(|p| names.contains(&p.rule_name))
}

/// The catalog's evidence that AWS runs this document for one of these rules.
fn pairing(doc: &Document, names: &[String]) -> String {
    let Some(p) = doc
        .config_rules
        .iter()
        .find(|p| names.contains(&p.rule_name))
    else {
        return "no (no source pairs them)".to_string();
    };
    match p.pairing {
        Pairing::AwsTemplate if p.confirmed => "yes (AWS template or solution)".to_string(),
        Pairing::AwsTemplate => "no (AWS template, unconfirmed)".to_string(),
        Pairing::AwsSolutionDerived => "no (AWS solution runs a derived copy)".to_string(),
        Pairing::ThirdPartyExample => "no (third-party example)".to_string(),
        Pairing::Unconfirmed => "no (same resource only)".to_string(),
    }
}

/// Whether redress could put a direct fix's change back.
fn fix_undoable(fix: &Fix) -> bool {
    match fix {
        // The revoked permissions are known, and can be authorized again.
        Fix::RevokePublicIngress { .. } => true,
        // Parameter Store keeps the earlier version; a created parameter can be deleted.
        Fix::RestoreParameterBaseline { .. } | Fix::CreateParameterFromBaseline { .. } => true,
        // Deleting erases every version: only the quarantine copy, put back by hand.
        Fix::DeleteUnauthorizedParameter { .. } => false,
    }
}

fn fix_ports(fix: &Fix) -> String {
    match fix {
        Fix::RevokePublicIngress { ports: Some(p) } => {
            let p: Vec<String> = p.iter().map(u16::to_string).collect();
            format!(", ports {}", p.join(", "))
        }
        _ => String::new(),
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn code_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A table cell: one line, no column breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A policy's coverage in numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Rules.
    pub rules: usize,
    /// Rules fixed automatically.
    pub auto: usize,
    /// Rules fixed after approval.
    pub approve: usize,
    /// Rules that only notify.
    pub notify: usize,
    /// Distinct AWS-owned runbooks that can run (not notify-only, not test documents).
    pub runbooks: usize,
    /// Fixes (rules that are not notify-only) redress could undo.
    pub undoable: usize,
}

impl Counts {
    /// Rules that fix something.
    pub fn fixes(&self) -> usize {
        self.rules - self.notify
    }
}

/// Counts a policy's rules, runbooks and undoable fixes, as the table shows them.
pub fn counts(policy: &Policy, catalog: &Catalog) -> Counts {
    counted(policy, catalog, &rows(policy, catalog))
}

fn counted(policy: &Policy, catalog: &Catalog, rows: &[Row]) -> Counts {
    let count = |m: Mode| rows.iter().filter(|r| r.mode == m).count();
    let runbooks: std::collections::BTreeSet<&str> = policy
        .rules
        .iter()
        .filter(|r| policy.mode_of(r) != Mode::Notify)
        .filter_map(|r| match &r.action {
            Action::Runbook(rb) => catalog.get(&rb.document),
            Action::Fix(_) => None,
        })
        .filter(|d| !d.test_only)
        .map(|d| d.name.as_str())
        .collect();
    Counts {
        rules: rows.len(),
        auto: count(Mode::Auto),
        approve: count(Mode::Approve),
        notify: count(Mode::Notify),
        runbooks: runbooks.len(),
        undoable: rows.iter().filter(|r| r.undoable == "yes").count(),
    }
}

/// The coverage table as Markdown: a one-line summary, then one row per policy rule.
pub fn render(policy: &Policy, catalog: &Catalog) -> String {
    let rows = rows(policy, catalog);
    let c = counted(policy, catalog, &rows);
    let mut out = format!(
        "{} rules: {} fixed automatically, {} after approval, {} notify only. AWS-owned \
         runbooks used: {}. Fixes redress could undo: {} of {}.\n\n",
        c.rules,
        c.auto,
        c.approve,
        c.notify,
        c.runbooks,
        c.undoable,
        c.fixes(),
    );
    out.push_str(
        "| managed rule | fix | severity | mode | undoable | paired by AWS | note |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in &rows {
        let names: Vec<String> = r.managed_rules.iter().map(|n| format!("`{n}`")).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&names.join(", ")),
            cell(&r.fix),
            r.severity,
            r.mode,
            cell(&r.undoable),
            cell(&r.paired_by_aws),
            cell(&r.note),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &str) -> Policy {
        Policy::from_toml(rules, "<test>").expect("valid policy")
    }

    #[test]
    fn managed_rule_names_come_from_the_glob() {
        assert_eq!(
            managed_rule_names("*restricted-ssh*"),
            vec!["restricted-ssh"]
        );
        assert_eq!(
            managed_rule_names("{*root-account-mfa-enabled*, *root-account-hardware-mfa-enabled*}"),
            vec![
                "root-account-mfa-enabled",
                "root-account-hardware-mfa-enabled"
            ]
        );
        assert_eq!(
            managed_rule_names("redress-parameter-drift"),
            vec!["redress-parameter-drift"]
        );
    }

    #[test]
    fn a_runbook_row_carries_the_catalogs_facts() {
        let p = policy(
            r#"
[[rule]]
id = "s3"
config_rule = "*s3-bucket-server-side-encryption-enabled*"
severity = "MEDIUM"
action = { runbook = "AWS-EnableS3BucketEncryption", parameters = { BucketName = ["{resource_id}"] } }

[[rule]]
id = "vol"
config_rule = "*ec2-volume-inuse-check*"
severity = "LOW"
mode = "approve"
action = { runbook = "AWSConfigRemediation-DeleteUnusedEBSVolume", parameters = { VolumeId = ["{resource_id}"] }, assume_role = "arn:aws:iam::{account_id}:role/r" }
"#,
        );
        let rows = rows(&p, Catalog::shipped());
        assert_eq!(rows[0].fix, "`AWS-EnableS3BucketEncryption`");
        assert_eq!(rows[0].mode, Mode::Auto); // from [routing]
        assert_eq!(rows[0].undoable, "yes");
        assert_eq!(rows[0].paired_by_aws, "yes (AWS template or solution)");
        assert_eq!(rows[1].undoable, "no");
        assert_eq!(rows[1].paired_by_aws, "no (same resource only)");
        // Not undoable: the catalog's reason follows the description.
        assert!(
            rows[1].note.contains("cannot come back"),
            "{}",
            rows[1].note
        );
    }

    #[test]
    fn a_fix_row_says_which_documents_it_is_preferred_to() {
        let p = policy(
            r#"
[[rule]]
id = "ssh"
config_rule = "*restricted-ssh*"
severity = "HIGH"
action = { fix = "revoke_public_ingress", ports = [22] }
"#,
        );
        let [row] = &rows(&p, Catalog::shipped())[..] else {
            panic!()
        };
        assert_eq!(row.fix, "redress `revoke_public_ingress`, ports 22");
        assert_eq!(row.mode, Mode::Approve);
        assert_eq!(row.undoable, "yes");
        for doc in [
            "AWS-DisableIncomingSSHOnPort22",
            "AWS-DisablePublicAccessForSecurityGroup",
            "AWSConfigRemediation-RemoveUnrestrictedSourceIngressRules",
        ] {
            assert!(row.note.contains(doc), "{doc} missing from {}", row.note);
        }
    }

    #[test]
    fn a_notify_row_runs_nothing_and_names_the_unused_pairing() {
        let p = policy(
            r#"
[[rule]]
id = "keys"
config_rule = "*access-keys-rotated*"
severity = "MEDIUM"
mode = "notify"
action = { runbook = "Redress-NotifyOnly-AccessKeyRotation" }

[[rule]]
id = "rds"
config_rule = "*rds-storage-encrypted*"
severity = "HIGH"
mode = "notify"
action = { runbook = "Redress-NotifyOnly-RdsEncryption" }
"#,
        );
        let rows = rows(&p, Catalog::shipped());
        assert_eq!(rows[0].fix, "none (notify)");
        assert_eq!(rows[0].undoable, "—");
        assert!(rows[0]
            .note
            .contains("AWSConfigRemediation-RevokeUnusedIAMUserCredentials"));
        assert!(rows[1].note.starts_with("no AWS-owned document"));
    }

    #[test]
    fn the_table_has_a_summary_and_one_line_per_rule() {
        let p = policy(
            r#"
[[rule]]
id = "ssh"
config_rule = "*restricted-ssh*"
severity = "HIGH"
action = { fix = "revoke_public_ingress", ports = [22] }

[[rule]]
id = "s3"
config_rule = "*s3-bucket-server-side-encryption-enabled*"
severity = "MEDIUM"
action = { runbook = "AWS-EnableS3BucketEncryption", parameters = { BucketName = ["{resource_id}"] } }

[[rule]]
id = "team"
config_rule = "*my-rule*"
severity = "LOW"
action = { runbook = "Team-FixIt", parameters = { X = ["1"] } }
"#,
        );
        let table = render(&p, Catalog::shipped());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "3 rules: 2 fixed automatically, 1 after approval, 0 notify only. AWS-owned \
             runbooks used: 1. Fixes redress could undo: 2 of 3."
        );
        assert_eq!(lines.len(), 2 + 2 + 3, "{table}");
        let ssh = "| `restricted-ssh` | redress `revoke_public_ingress`, ports 22 | HIGH | \
                   approve | yes | — (redress's own fix) | narrow: ";
        assert!(lines[4].starts_with(ssh), "{}", lines[4]);
        // A document outside the catalog: nothing is known about it.
        assert!(lines[6].contains("| unknown | unknown |"), "{}", lines[6]);
    }

    #[test]
    fn a_cell_stays_one_cell() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
