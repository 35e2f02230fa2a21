//! The executor's IAM role grants exactly the API calls its code makes.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::root;

/// `service:Action` strings the code passes to `AwsError::from_sdk` in these files.
fn operations_in(dir: &Path) -> BTreeSet<String> {
    let mut ops = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let src = std::fs::read_to_string(&path).unwrap();
        for piece in src.split("from_sdk(\"").skip(1) {
            if let Some(op) = piece.split('"').next() {
                ops.insert(op.to_string());
            }
        }
    }
    ops
}

/// Actions listed (`- service:Action` lines) in one resource's block of a template.
fn actions_of(template: &str, resource: &str) -> BTreeSet<String> {
    let mut lines = template
        .lines()
        .skip_while(|l| l.trim_end() != format!("  {resource}:"));
    let mut actions = BTreeSet::new();
    lines.next().expect("resource in template");
    for line in lines {
        // The next top-level resource ends the block.
        if line.starts_with("  ") && !line.starts_with("   ") && !line.trim().is_empty() {
            break;
        }
        if let Some(item) = line.trim().strip_prefix("- ") {
            let item = item.trim().trim_matches('\'').trim_matches('"');
            if item.contains(':')
                && !item.contains(' ')
                && !item.starts_with("arn")
                && !item.contains('$')
            {
                actions.insert(item.to_string());
            }
        }
    }
    actions
}

/// What the executor's code calls: remediation calls found in its source, plus the queue
/// calls of the worker loop and the identity lookup at start-up.
fn executor_calls() -> BTreeSet<String> {
    let mut ops = operations_in(&root().join("workers/src/executor"));
    let executor =
        std::fs::read_to_string(root().join("workers/src/executor/automation.rs")).unwrap();
    if executor.contains("AutomationAssumeRole") {
        // Starting an automation that assumes a role passes that role to SSM.
        ops.insert("iam:PassRole".into());
    }
    for op in [
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
    ] {
        ops.insert(op.into());
    }
    // sts:GetCallerIdentity needs no permission and is never listed.
    ops
}

fn check(template: &str) -> Result<(), String> {
    let granted = actions_of(template, "ExecutorTaskRole");
    let needed = executor_calls();
    let missing: Vec<&String> = needed.difference(&granted).collect();
    let extra: Vec<&String> = granted.difference(&needed).collect();
    if missing.is_empty() && extra.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing from the template: {missing:?}; granted but never called: {extra:?}"
        ))
    }
}

#[test]
fn the_executor_role_grants_exactly_what_the_executor_calls() {
    let template =
        std::fs::read_to_string(root().join("infra/cloudformation/redress.yaml")).unwrap();
    let needed = executor_calls();
    assert!(
        needed.contains("ec2:RevokeSecurityGroupIngress")
            && needed.contains("ssm:StartAutomationExecution")
    );
    check(&template).unwrap();
}

/// The template with every `- action` line of the executor role's block removed.
fn without(template: &str, action: &str) -> String {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in template.lines() {
        if line.starts_with("  ") && !line.starts_with("   ") && !line.trim().is_empty() {
            in_block = line.trim_end() == "  ExecutorTaskRole:";
        }
        if !(in_block
            && line.trim().trim_start_matches("- ").trim_matches('\'') == action
            && line.trim().starts_with("- "))
        {
            out.push(line);
        }
    }
    out.join("\n")
}

#[test]
fn removing_any_action_from_the_template_fails_the_check() {
    let template =
        std::fs::read_to_string(root().join("infra/cloudformation/redress.yaml")).unwrap();
    for action in executor_calls() {
        let trimmed = without(&template, &action);
        assert_ne!(
            trimmed,
            template.trim_end_matches('\n'),
            "{action} is not listed in the executor role"
        );
        assert!(check(&trimmed).is_err(), "removing {action} went unnoticed");
    }
}
