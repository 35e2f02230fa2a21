//! The command line: exit codes and messages that need no AWS.

use std::process::Command;

use crate::support::{root, text};

fn redress(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(args)
        .current_dir(root())
        .env_remove("REDRESS_POLICY")
        .output()
        .unwrap()
}

#[test]
fn policy_check_names_the_line_of_every_problem() {
    let dir = std::env::temp_dir().join(format!("redress-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        r#"[[rule]]
id = "a"
config_rule = "x"
severity = "LOW"
action = { fix = "revoke_public_ingress" }

[[rule]]
id = "a"
config_rule = "y"
sevrity = "LOW"
severity = "SEVERE"
action = { fix = "revoke_public_ingress" }
"#,
    )
    .unwrap();
    let out = redress(&["policy", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("bad.toml:8: duplicate rule id `a` (first defined at line 2)"),
        "{err}"
    );
    assert!(err.contains("bad.toml:10: unknown key `sevrity`"), "{err}");
    assert!(
        err.contains("bad.toml:11: ") && err.contains("SEVERE"),
        "{err}"
    );
}

#[test]
fn the_default_policy_is_valid() {
    let out = redress(&["policy", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("OK, 7 rules"));
}

#[test]
fn explain_prints_the_decision_without_aws() {
    let out = redress(&[
        "policy",
        "explain",
        "--json",
        "tests/fixtures/events/sg-ssh-open-noncompliant.json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["decision"], "approval_requested");
    assert_eq!(doc["rule"], "sg-open-admin-ports");
    assert_eq!(doc["severity"], "HIGH");
    let out = redress(&[
        "policy",
        "explain",
        "tests/fixtures/events/bad/resource-id-injection.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("detail.resourceId"));
}

#[test]
fn unknown_arguments_are_usage_errors() {
    let out = redress(&["run", "--frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = redress(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("policy"));
}

#[test]
fn every_policy_pack_is_valid() {
    let mut packs = 0;
    for entry in std::fs::read_dir(root().join("infra/policies")).unwrap() {
        let path = entry.unwrap().path();
        let out = redress(&["policy", "check", path.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            path.display(),
            text(&out.stderr)
        );
        packs += 1;
    }
    assert!(packs >= 3, "default, soc2, hipaa");
}

#[test]
fn explain_gives_the_expected_decision_for_every_fixture_under_the_default_pack() {
    let expected = [
        (
            "first-evaluation-no-old-result.json",
            "remediate",
            Some("sg-open-privileged-ports"),
        ),
        ("imdsv1-instance.json", "skipped", Some("ec2-imdsv2")),
        (
            "securityhub-suffixed-rule.json",
            "remediate",
            Some("s3-encryption"),
        ),
        (
            "sg-ssh-back-to-compliant.json",
            "skipped",
            Some("sg-open-admin-ports"),
        ),
        (
            "sg-ssh-open-noncompliant.json",
            "approval_requested",
            Some("sg-open-admin-ports"),
        ),
        (
            "sns-wrapped-compliance-change.json",
            "approval_requested",
            Some("sg-open-admin-ports"),
        ),
        ("ssm-parameter-drift.json", "remediate", Some("param-drift")),
    ];
    let fixtures = std::fs::read_dir(root().join("tests/fixtures/events"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_file())
        .count();
    assert_eq!(
        fixtures,
        expected.len(),
        "a fixture has no expected decision here"
    );
    for (file, decision, rule) in expected {
        let path = format!("tests/fixtures/events/{file}");
        let out = redress(&["policy", "explain", "--json", &path]);
        assert_eq!(out.status.code(), Some(0), "{file}: {}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["decision"], decision, "{file}");
        assert_eq!(doc["rule"].as_str(), rule, "{file}");
    }
}
