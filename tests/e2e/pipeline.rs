//! Events in, fixed resources out.

use redress::message::{ApprovalsMessage, Task};

use crate::support::{executions, policy_fixtures, EventBuilder, World, ACCOUNT, REGION};

const SG: &str = "AWS::EC2::SecurityGroup";

/// HIGH SSH (approval), MEDIUM FTP and drift (automatic), a LOW runbook, and a runbook
/// that always fails; parameters under `param_prefix`.
fn policy(param_prefix: &str) -> String {
    format!(
        "[routing]\nauto_max_severity = \"MEDIUM\"\n{}",
        policy_fixtures(
            &[
                "ssh-high",
                "ftp-medium",
                "param-drift",
                "sg-runbook",
                "always-fails"
            ],
            &[("prefix", param_prefix)],
        )
    )
}

fn world_policy(prefix: &str) -> String {
    policy(&format!("/{prefix}/"))
}

async fn world(test: &str) -> World {
    // The policy embeds the world's prefix, which is only known once it exists; the
    // parameter prefix uses the test name plus the process id instead.
    let p = format!("{test}-{}", std::process::id());
    World::new(test, &world_policy(&p)).await
}

fn param_prefix(test: &str) -> String {
    format!("/{test}-{}/", std::process::id())
}

#[tokio::test]
async fn findings_through_eventbridge_are_fixed_or_queued_for_approval() {
    let w = world("demo").await;
    let ssh = w
        .security_group("ssh", &[(22, "0.0.0.0/0"), (443, "10.0.0.0/8")])
        .await;
    let ftp = w
        .security_group(
            "ftp",
            &[(21, "0.0.0.0/0"), (21, "10.0.0.0/8"), (443, "0.0.0.0/0")],
        )
        .await;
    let rb = w
        .security_group(
            "rb",
            &[(22, "0.0.0.0/0"), (3389, "0.0.0.0/0"), (443, "10.0.0.0/8")],
        )
        .await;
    let pp = param_prefix("demo");
    let current = format!("{pp}current/db_pool_size");
    w.put_parameter(&format!("{pp}approved/db_pool_size"), "20")
        .await;
    w.put_parameter(&current, "200").await;

    // `redress emit` reports each evaluation to Config as its rule would; Config puts
    // the compliance-change event on the default bus, whose rule (this world's: the
    // Config rules carry its prefix) delivers it to the events queue.
    let findings = [
        ("restricted-ssh", ssh.as_str(), SG),
        ("restricted-common-ports", ftp.as_str(), SG),
        (
            "ssm-parameter-drift",
            current.as_str(),
            "AWS::SSM::Parameter",
        ),
        ("sg-public-admin-access", rb.as_str(), SG),
    ]
    .map(|(rule, id, ty)| (format!("{}-{rule}", w.prefix), id, ty));
    for (rule, _, ty) in &findings {
        w.config_rule(rule, ty).await;
    }
    let rules: Vec<&str> = findings.iter().map(|(r, _, _)| r.as_str()).collect();
    w.listen_to_default_bus(&rules).await;
    for (rule, id, ty) in findings {
        let out = w.redress(&[
            "emit",
            "--rule",
            &rule,
            "--resource",
            id,
            "--resource-type",
            ty,
        ]);
        assert!(
            out.status.success(),
            "emit: {}",
            crate::support::text(&out.stderr)
        );
    }
    let audit = w.run_once(&[]);

    // HIGH: still open, and its approval request is on the approvals queue.
    assert_eq!(
        w.ingress(&ssh).await,
        vec![(22, "0.0.0.0/0".into()), (443, "10.0.0.0/8".into())]
    );
    let approvals = w.drain("approvals").await;
    assert_eq!(approvals.len(), 1);
    let ApprovalsMessage::Request(request) = serde_json::from_str(&approvals[0].body).unwrap()
    else {
        panic!("expected an approval request: {}", approvals[0].body);
    };
    assert_eq!(request.task.rule_id, "sg-open-admin-ports");
    assert_eq!(request.task.finding.resource_id, ssh);
    assert!(request.id.starts_with("ap-"));

    // MEDIUM direct fix: only the world-open port-21 range went.
    assert_eq!(
        w.ingress(&ftp).await,
        vec![(21, "10.0.0.0/8".into()), (443, "0.0.0.0/0".into())]
    );
    // Drift restored.
    assert_eq!(w.parameter(&current).await, "20");
    // Runbook: world-open 22 and 3389 revoked by the automation, 443 from 10/8 kept.
    assert_eq!(w.ingress(&rb).await, vec![(443, "10.0.0.0/8".into())]);
    let run = executions(&audit)
        .into_iter()
        .find(|r| r["rule"] == "sg-runbook")
        .expect("runbook audit record");
    assert_eq!(run["outcome"], "succeeded");
    let exec_id = run["execution_id"].as_str().expect("execution id");
    let exec = w
        .clients
        .ssm
        .get_automation_execution()
        .automation_execution_id(exec_id)
        .send()
        .await
        .unwrap();
    let exec = exec.automation_execution().unwrap();
    assert_eq!(
        exec.automation_execution_status().unwrap().as_str(),
        "Success"
    );
    assert_eq!(exec.parameters().unwrap()["GroupId"], vec![rb.clone()]);

    // Audit: every decision recorded with the contract's fields.
    let requested: Vec<_> = audit
        .iter()
        .filter(|r| r["decision"] == "approval_requested")
        .collect();
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0]["severity"], "HIGH");
    let succeeded = executions(&audit)
        .iter()
        .filter(|r| r["outcome"] == "succeeded")
        .count();
    assert_eq!(succeeded, 3, "{audit:#?}");
    for r in &audit {
        for field in [
            "event_id",
            "rule",
            "resource_id",
            "resource_type",
            "account",
            "region",
            "severity",
            "decision",
        ] {
            assert!(!r[field].is_null(), "audit record lacks {field}: {r}");
        }
        assert_eq!(r["account"], ACCOUNT);
        assert_eq!(r["region"], REGION);
    }
}

#[tokio::test]
async fn the_same_event_twice_starts_one_automation_execution() {
    let w = world("twice-runbook").await;
    let rb = w.security_group("rb", &[(22, "0.0.0.0/0")]).await;
    let body = w
        .config_holds(&EventBuilder::new("sg-public-admin-access", SG, &rb))
        .await
        .build();
    w.send("events", &body).await;
    w.send("events", &body).await;
    let audit = w.run_once(&[]);

    let runs = executions(&audit);
    assert_eq!(runs.len(), 2, "{audit:#?}");
    let ids: std::collections::BTreeSet<&str> = runs
        .iter()
        .filter_map(|r| r["execution_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 1, "one execution, same ClientToken: {runs:#?}");
    // Count the stand-in's executions that targeted this group: exactly one.
    let list = w
        .clients
        .ssm
        .describe_automation_executions()
        .send()
        .await
        .unwrap();
    let mut targeting = 0;
    for meta in list.automation_execution_metadata_list() {
        let id = meta.automation_execution_id().unwrap();
        let exec = w
            .clients
            .ssm
            .get_automation_execution()
            .automation_execution_id(id)
            .send()
            .await
            .unwrap();
        let params = exec
            .automation_execution()
            .unwrap()
            .parameters()
            .cloned()
            .unwrap_or_default();
        if params.get("GroupId") == Some(&vec![rb.clone()]) {
            targeting += 1;
        }
    }
    assert_eq!(targeting, 1);
    assert!(w.ingress(&rb).await.is_empty());
}

#[tokio::test]
async fn the_same_event_twice_fixes_once_then_is_recognised_as_a_duplicate() {
    let w = world("twice-direct").await;
    let ftp = w
        .security_group("ftp", &[(21, "0.0.0.0/0"), (21, "10.0.0.0/8")])
        .await;
    let body = w
        .config_holds(&EventBuilder::new("restricted-common-ports", SG, &ftp))
        .await
        .build();
    w.send("events", &body).await;
    w.send("events", &body).await;
    let audit = w.run_once(&[]);
    let mut ends: Vec<String> = executions(&audit)
        .iter()
        .map(|r| match r["outcome"].as_str() {
            Some(o) => o.to_string(),
            None => format!("{} {}", r["decision"], r["reason"]),
        })
        .collect();
    ends.sort();
    assert_eq!(ends.len(), 2, "{audit:#?}");
    assert!(
        ends[0].starts_with("\"skipped\" \"duplicate: this executor finished the same task"),
        "{ends:?}"
    );
    assert_eq!(ends[1], "succeeded");
    assert_eq!(w.ingress(&ftp).await, vec![(21, "10.0.0.0/8".into())]);
}

#[tokio::test]
async fn a_failing_runbook_ends_in_the_tasks_dlq_with_its_reason() {
    let w = world("failing-runbook").await;
    let sg = w.security_group("any", &[(22, "0.0.0.0/0")]).await;
    w.send_event(&EventBuilder::new("broken-runbook-rule", SG, &sg))
        .await;
    let audit = w.run_once(&[]);
    let failed: Vec<_> = executions(&audit)
        .into_iter()
        .filter(|r| r["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{audit:#?}");
    assert!(failed[0]["execution_id"].is_string());
    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["redress.error_class"], "permanent");
    assert!(
        dead[0].attributes["redress.error"].contains("ended Failed"),
        "{:?}",
        dead[0].attributes
    );
    assert_eq!(dead[0].attributes["redress.worker"], "executor");
    let task: Task = serde_json::from_str(&dead[0].body).unwrap();
    assert_eq!(task.rule_id, "always-fails");
}

#[tokio::test]
async fn a_task_without_approval_for_an_approval_rule_only_becomes_a_request() {
    let w = world("forged").await;
    let ssh = w.security_group("ssh", &[(22, "0.0.0.0/0")]).await;
    let task = EventBuilder::new("restricted-ssh", SG, &ssh)
        .task("sg-open-admin-ports", redress::policy::Severity::Low);
    w.send("tasks", &serde_json::to_string(&task).unwrap())
        .await;
    let out = w.redress(&["executor", "--once"]);
    assert!(out.status.success());
    assert_eq!(
        w.ingress(&ssh).await,
        vec![(22, "0.0.0.0/0".into())],
        "nothing revoked"
    );
    // It cannot run; it can only ask, as the events it stands for would have.
    let asked = crate::support::audit(&out);
    assert!(
        asked.iter().any(|r| r["decision"] == "approval_requested"
            && r["reason"].as_str().unwrap().contains("needs approval")),
        "{asked:#?}"
    );
    assert_eq!(w.approval_ids().len(), 1);
    assert!(w.drain("tasks-dlq").await.is_empty());
}

#[tokio::test]
async fn dry_run_decides_and_changes_nothing() {
    let w = world("dry-run").await;
    let ftp = w.security_group("ftp", &[(21, "0.0.0.0/0")]).await;
    let pp = param_prefix("dry-run");
    let current = format!("{pp}current/x");
    w.put_parameter(&format!("{pp}approved/x"), "1").await;
    w.put_parameter(&current, "2").await;
    w.send_events(&[
        EventBuilder::new("restricted-common-ports", SG, &ftp),
        EventBuilder::new("ssm-parameter-drift", "AWS::SSM::Parameter", &current),
    ])
    .await;
    let audit = w.run_once(&["--dry-run"]);
    let outcomes: Vec<&str> = executions(&audit)
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert_eq!(outcomes, vec!["dry_run", "dry_run"]);
    // Config was asked, and agreed: each fix is described, not refused.
    assert!(
        executions(&audit)
            .iter()
            .all(|r| r["reason"].as_str().unwrap_or("").starts_with("would run")),
        "{audit:#?}"
    );
    assert_eq!(w.ingress(&ftp).await, vec![(21, "0.0.0.0/0".into())]);
    assert_eq!(w.parameter(&current).await, "2");
}
