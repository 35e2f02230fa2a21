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
    assert!(text(&out.stdout).contains("OK, 5 rules"));
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
