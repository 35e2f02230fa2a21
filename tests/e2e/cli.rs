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
        err.contains("bad.toml:8: error: duplicate rule id `a` (first defined at line 2)"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:10: error: unknown key `sevrity`"),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:11: error: ") && err.contains("SEVERE"),
        "{err}"
    );
    assert!(err.contains("bad.toml has 3 errors"), "{err}");
}

#[test]
fn the_default_policy_is_valid() {
    let out = redress(&["policy", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // One runbook that runs (AWS-EnableS3BucketEncryption; the IMDSv2 rule only
    // notifies); of the six fixes, all but deleting a parameter can be undone.
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("default.toml: OK, 7 rules: 1 runbook, 5 of 6 fixes undoable\n"),
        "{stdout}"
    );
    assert_eq!(text(&out.stderr), "", "no warnings");
}

/// One policy per kind of runbook catalog error (tests/fixtures/policies/catalog-*.toml):
/// each exits 2 and names the line of the part of the action at fault.
#[test]
fn policy_check_names_the_line_of_each_kind_of_runbook_catalog_error() {
    let cases = [
        (
            "catalog-misspelt-document.toml",
            14,
            "runbook AWS-EnableS3BucketEncrytion is not a document AWS publishes; did you mean AWS-EnableS3BucketEncryption?",
        ),
        (
            "catalog-missing-parameter.toml",
            14,
            "requires parameter BucketName",
        ),
        (
            "catalog-unknown-parameter.toml",
            22,
            "has no parameter MFADelete",
        ),
        ("catalog-wrong-type.toml", 14, "\"fourteen\" is not a whole number"),
        (
            "catalog-not-allowed.toml",
            14,
            "must be one of Enabled, Suspended; \"On\" is not",
        ),
        (
            "catalog-pattern.toml",
            14,
            "\"4\" does not match the document's pattern",
        ),
        (
            "catalog-placeholder.toml",
            14,
            "the placeholder {resource_id} cannot fill it",
        ),
        (
            "catalog-missing-assume-role.toml",
            14,
            "requires AutomationAssumeRole",
        ),
    ];
    let dir = root().join("tests/fixtures/policies");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("catalog-") && n != "catalog-outside.toml")
        .collect();
    on_disk.sort();
    let mut named: Vec<String> = cases.iter().map(|(f, _, _)| f.to_string()).collect();
    named.sort();
    assert_eq!(
        on_disk, named,
        "every catalog-*.toml fixture has a case here"
    );

    for (file, line, says) in cases {
        let path = format!("tests/fixtures/policies/{file}");
        let out = redress(&["policy", "check", &path]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert_eq!(text(&out.stdout), "", "{file}: nothing printed as OK");
        let at = format!("{path}:{line}: error: rule `");
        assert!(
            err.lines().any(|l| l.starts_with(&at) && l.contains(says)),
            "{file}: no `{at}…{says}` in\n{err}"
        );
        assert!(
            err.ends_with(&format!("error: policy {path} has 1 error\n")),
            "{file}: {err}"
        );
    }
}

/// A runbook outside the catalog cannot be checked: a warning with its line, and the
/// policy passes.
#[test]
fn policy_check_warns_about_a_runbook_outside_the_catalog_and_passes() {
    let path = "tests/fixtures/policies/catalog-outside.toml";
    let out = redress(&["policy", "check", path]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        err,
        format!(
            "{path}:14: warning: rule `custom`: runbook Acme-RotateEverything is not in redress's runbook catalog: its parameters cannot be checked\n"
        )
    );
    assert!(
        text(&out.stdout).contains(&format!(
            "{path}: OK, 2 rules: 0 runbooks, 1 of 2 fixes undoable, 1 outside the runbook catalog\n"
        )),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn runbooks_list_shows_every_catalog_document() {
    let catalog: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("infra/runbooks/catalog.json")).unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = catalog["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(names.len() >= 47, "{}", names.len());

    let out = redress(&["runbooks", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("NAME") && header.contains("CONFIRMED"),
        "{header}"
    );
    let rows: Vec<&str> = lines
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(rows, names);
    assert!(
        stdout.contains(&format!("{} documents (", names.len())),
        "{stdout}"
    );

    let out = redress(&["runbooks", "list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<&str> = doc["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, names);
}

#[test]
fn runbooks_show_prints_a_document_and_suggests_the_name_meant() {
    let out = redress(&[
        "runbooks",
        "show",
        "AWSConfigRemediation-EnforceEC2InstanceIMDSv2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for says in [
        "pattern ^([1-5]?\\d|6[0-4])$",
        "resource id: InstanceId",
        "assume role: AutomationAssumeRole is required",
        "ec2:ModifyInstanceMetadataOptions",
        "ec2-imdsv2-check",
        "undo: ",
        "sources:",
    ] {
        assert!(stdout.contains(says), "no {says:?} in\n{stdout}");
    }
    // Parameter rows: name, type, required, default, what it accepts.
    let row = |name: &str| -> Vec<&str> {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")));
        line.unwrap_or_default().split_whitespace().collect()
    };
    assert_eq!(
        row("AutomationAssumeRole"),
        [
            "AutomationAssumeRole",
            "AWS::IAM::Role::Arn",
            "yes",
            "-",
            "-"
        ]
    );
    assert_eq!(
        row("InstanceId"),
        ["InstanceId", "AWS::EC2::Instance::Id", "yes", "-", "-"]
    );
    assert_eq!(
        row("HttpPutResponseHopLimit")[1..4],
        ["Integer", "no", "\"0\""]
    );

    let out = redress(&["runbooks", "show", "--json", "AWS-EnableS3BucketEncryption"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["name"], "AWS-EnableS3BucketEncryption");
    assert_eq!(doc["resource_id_parameter"]["name"], "BucketName");

    // The name the default policy once used: AWS has no such document.
    let out = redress(&["runbooks", "show", "AWS-EnforceEC2InstanceIMDSv2"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
    let err = text(&out.stderr);
    assert!(
        err.contains("did you mean AWSConfigRemediation-EnforceEC2InstanceIMDSv2?"),
        "{err}"
    );
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
        // Not even a warning from the runbook catalog.
        assert_eq!(text(&out.stderr), "", "{}", path.display());
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
