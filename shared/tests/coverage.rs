//! The AWS-managed pack (`infra/policies/aws-managed.toml`) against the runbook catalog,
//! the packs that reuse its mappings, and the README's coverage table.
//!
//! - The README's "Coverage" section is exactly [`coverage::render`] of the pack; with
//!   `REDRESS_UPDATE_COVERAGE=1` the test rewrites it instead of failing.
//! - The pack covers at least 30 managed rules, at least 20 of them with a fix.
//! - Every runbook a shipped pack runs is in the catalog and passes
//!   [`Catalog::check_runbook`] without an error; the pack's own pass without a warning,
//!   fill the document's resource-id parameter from the finding and pass redress's role.
//! - `soc2.toml` and `hipaa.toml` map each managed rule as the pack does (action,
//!   severity, mode).

use std::path::{Path, PathBuf};

use redress::catalog::{Catalog, ProblemKind, Severity as ProblemSeverity, ASSUME_ROLE_PARAMETER};
use redress::coverage;
use redress::policy::{Action, Mode, Policy, Rule};

const BEGIN: &str = "<!-- coverage:begin -->";
const END: &str = "<!-- coverage:end -->";
const ROLE: &str = "arn:aws:iam::{account_id}:role/redress-automation";
/// The placeholder names a notify-only rule gives where AWS ships no safe document.
const NOTIFY_ONLY_PREFIX: &str = "Redress-NotifyOnly-";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn pack(name: &str) -> Policy {
    let path = root().join("infra/policies").join(format!("{name}.toml"));
    Policy::from_file(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn remediates(policy: &Policy, rule: &Rule) -> bool {
    policy.mode_of(rule) != Mode::Notify
}

#[test]
fn the_readme_coverage_section_is_generated_from_the_pack() {
    let table = coverage::render(&pack("aws-managed"), Catalog::shipped());
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let (Some(begin), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md has no {BEGIN} ... {END} section");
    };
    let start = begin + BEGIN.len();
    let wanted = format!("\n{table}");
    if readme[start..end] == wanted {
        return;
    }
    if std::env::var_os("REDRESS_UPDATE_COVERAGE").is_some_and(|v| v == "1") {
        let updated = format!("{}{wanted}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "README.md's coverage table differs from infra/policies/aws-managed.toml and the \
         runbook catalog; regenerate it with:\n  \
         REDRESS_UPDATE_COVERAGE=1 cargo test --workspace --test coverage\n\
         expected:\n{table}"
    );
}

#[test]
fn the_pack_covers_thirty_managed_rules_and_fixes_twenty() {
    let policy = pack("aws-managed");
    let managed: usize = policy
        .rules
        .iter()
        .map(|r| coverage::managed_rule_names(&r.config_rule).len())
        .sum();
    let fixing = policy
        .rules
        .iter()
        .filter(|r| remediates(&policy, r))
        .count();
    assert!(policy.rules.len() >= 30, "{} rules", policy.rules.len());
    assert!(managed >= 30, "{managed} managed rules");
    assert!(fixing >= 20, "{fixing} rules remediate");
    // Every rule says its mode: [routing] changes nothing in this pack.
    for r in &policy.rules {
        assert!(
            r.mode.is_some(),
            "rule {} (line {}) has no mode",
            r.id,
            r.line
        );
    }
}

#[test]
fn every_runbook_the_packs_run_is_in_the_catalog_and_checks_without_an_error() {
    let catalog = Catalog::shipped();
    let mut checked = 0;
    for name in ["aws-managed", "soc2", "hipaa", "default"] {
        let policy = pack(name);
        for rule in &policy.rules {
            let Action::Runbook(runbook) = &rule.action else {
                continue;
            };
            let at = format!("{name}.toml:{} rule {}", rule.line, rule.id);
            let problems = catalog.check_runbook(runbook);
            if runbook.document.starts_with(NOTIFY_ONLY_PREFIX) {
                // Never runs: only allowed on a notify rule, and plainly not AWS's.
                assert!(
                    !remediates(&policy, rule),
                    "{at}: a placeholder that would run"
                );
                assert!(catalog.get(&runbook.document).is_none(), "{at}");
                assert!(
                    problems
                        .iter()
                        .all(|p| p.kind == ProblemKind::UnknownDocument
                            && p.severity == ProblemSeverity::Warning),
                    "{at}: {problems:#?}"
                );
                continue;
            }
            assert!(
                catalog.get(&runbook.document).is_some(),
                "{at}: {} is not in the catalog",
                runbook.document
            );
            let errors: Vec<_> = problems
                .iter()
                .filter(|p| p.severity == ProblemSeverity::Error)
                .collect();
            assert!(errors.is_empty(), "{at}: {errors:#?}");
            if name == "aws-managed" {
                assert!(problems.is_empty(), "{at}: {problems:#?}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "checked {checked} runbook actions");
}

#[test]
fn the_packs_runbooks_take_the_finding_and_redress_role() {
    let policy = pack("aws-managed");
    for rule in policy.rules.iter().filter(|r| remediates(&policy, r)) {
        let Action::Runbook(runbook) = &rule.action else {
            continue;
        };
        let at = format!("aws-managed.toml:{} rule {}", rule.line, rule.id);
        let doc = Catalog::shipped().get(&runbook.document).expect(&at);
        if let Some(id) = &doc.resource_id_parameter {
            let values = runbook.parameters.get(&id.name);
            // The one account-level document: the finding's resource is the account.
            let placeholder = if id.name == "AccountId" {
                "{account_id}"
            } else {
                "{resource_id}"
            };
            assert_eq!(
                values.map(Vec::as_slice),
                Some(&[placeholder.to_string()][..]),
                "{at}: {} must take {placeholder}",
                id.name
            );
        }
        if doc
            .parameters
            .iter()
            .any(|p| p.name == ASSUME_ROLE_PARAMETER)
        {
            assert_eq!(runbook.assume_role.as_deref(), Some(ROLE), "{at}");
        }
    }
}

/// The aws-managed rule the first match in file order gives for this managed rule name.
fn mapping<'a>(policy: &'a Policy, managed: &str) -> Option<&'a Rule> {
    policy.rules.iter().find(|r| r.names(managed))
}

#[test]
fn each_managed_rule_of_the_pack_is_matched_by_its_own_rule() {
    let policy = pack("aws-managed");
    for rule in &policy.rules {
        for name in coverage::managed_rule_names(&rule.config_rule) {
            for deployed in [
                name.clone(),
                format!("{name}-conformance-pack-ab12cd34e"),
                format!("securityhub-{name}-7fh2ka"),
            ] {
                let first = mapping(&policy, &deployed).map(|r| r.id.as_str());
                assert_eq!(first, Some(rule.id.as_str()), "{deployed} is shadowed");
            }
        }
    }
}

#[test]
fn soc2_and_hipaa_map_each_managed_rule_as_the_pack_does() {
    let managed = pack("aws-managed");
    let mut compared = 0;
    for name in ["soc2", "hipaa"] {
        let policy = pack(name);
        for rule in &policy.rules {
            let names = coverage::managed_rule_names(&rule.config_rule);
            assert!(!names.is_empty(), "{name}.toml rule {}", rule.id);
            for managed_name in names {
                let at = format!("{name}.toml rule {} ({managed_name})", rule.id);
                let Some(same) = mapping(&managed, &managed_name) else {
                    panic!("{at}: aws-managed.toml has no mapping for it");
                };
                assert_eq!(
                    rule.action, same.action,
                    "{at}: action differs from rule {}",
                    same.id
                );
                assert_eq!(rule.severity, same.severity, "{at}: severity differs");
                assert_eq!(
                    policy.mode_of(rule),
                    managed.mode_of(same),
                    "{at}: mode differs"
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 16, "compared {compared} mappings");
}
