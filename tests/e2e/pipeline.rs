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

/// `make run`'s demo runs in this account of its own: redress's Config rules evaluate
/// every resource of their account.
const DEMO_ACCOUNT: &str = "666677778888";
/// The Config rules the demo's findings name: redress's own, then the managed rules the
/// demo plays.
const DEMO_RULES: &[&str] = &[
    "redress-sg-admin-ports",
    "redress-sg-privileged-ports",
    "redress-parameter-drift",
    "s3-bucket-server-side-encryption-enabled",
    "ec2-imdsv2-check",
    "cloudtrail-enabled",
];

/// `make run` (infra/local/demo.sh) closes the loop: Config's evaluations of the broken
/// world reach redress, which fixes 21, the drift and the bucket at once and asks for
/// 22, the missing and the unauthorized parameter; approved by the policy's approver,
/// those are fixed too, every fix is verified by Config, and redress's three rules then
/// hold nothing NON_COMPLIANT in the account: the demo's resources COMPLIANT, the deleted
/// parameter NOT_APPLICABLE. The deleted parameter's value is kept in quarantine and
/// appears in nothing the demo prints or writes.
#[tokio::test]
async fn make_run_closes_the_loop() {
    use crate::support::{config_client, demo_findings, demo_run, root, text};
    use aws_sdk_config::types::ComplianceType;
    use aws_sdk_ssm::types::ParameterType;
    use redress::ledger::Status;

    let policy = std::fs::read_to_string(root().join("infra/policies/default.toml")).unwrap();
    let w = World::in_account("make-run", &policy, DEMO_ACCOUNT).await;
    w.listen_to_default_bus(DEMO_RULES).await;
    // As `make run` does: the workers record in a ledger (its table is the world's own).
    w.use_ledger();
    let out = demo_run(&w);
    let printed = format!("{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "demo.sh failed:\n{printed}");
    assert!(
        printed
            .contains("Closed: none of the demo's findings under redress's rules is NON_COMPLIANT"),
        "{printed}"
    );

    let world_file = w.dir.join("world.json");
    let world: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&world_file).unwrap()).unwrap();
    let id = |key: &str| world[key].as_str().unwrap().to_string();
    let findings = demo_findings(&w, &world_file);
    for f in &findings {
        assert!(
            DEMO_RULES.contains(&f.rule.as_str()),
            "{f:?}: no event would reach redress"
        );
    }

    // Config: each finding under redress's rules is closed, and nothing else is open.
    let config = config_client(DEMO_ACCOUNT, REGION).await;
    for f in findings
        .iter()
        .filter(|f| DEMO_RULES[..3].contains(&f.rule.as_str()))
    {
        let held = config
            .get_compliance_details_by_resource()
            .resource_type(&f.resource_type)
            .resource_id(&f.resource)
            .send()
            .await
            .unwrap();
        let now = held
            .evaluation_results()
            .iter()
            .find(|r| {
                r.evaluation_result_identifier()
                    .and_then(|i| i.evaluation_result_qualifier())
                    .and_then(|q| q.config_rule_name())
                    == Some(f.rule.as_str())
            })
            .and_then(|r| r.compliance_type().cloned());
        let wanted = if f.resource == id("unauthorized") {
            ComplianceType::NotApplicable
        } else {
            ComplianceType::Compliant
        };
        assert_eq!(now, Some(wanted), "{f:?}");
    }
    for rule in &DEMO_RULES[..3] {
        let open = config
            .get_compliance_details_by_config_rule()
            .config_rule_name(*rule)
            .compliance_types(ComplianceType::NonCompliant)
            .send()
            .await
            .unwrap();
        assert!(open.evaluation_results().is_empty(), "{rule}: {open:?}");
    }

    // The world: 21 and 22 closed to the world (443 is left alone), the parameters as
    // approved (the created one with its baseline's type), the unauthorized one gone.
    let group = id("group");
    assert_eq!(
        w.ingress(&group).await,
        vec![(21, "10.0.0.0/8".into()), (443, "0.0.0.0/0".into())]
    );
    for (name, value, kind) in [
        ("drifted", "20", ParameterType::String),
        ("missing", "USD,EUR,GBP", ParameterType::StringList),
    ] {
        let p = w
            .clients
            .ssm
            .get_parameter()
            .name(id(name))
            .send()
            .await
            .unwrap()
            .parameter
            .unwrap();
        assert_eq!(
            (p.value(), p.r#type()),
            (Some(value), Some(&kind)),
            "{name}"
        );
    }
    let gone = w
        .clients
        .ssm
        .get_parameter()
        .name(id("unauthorized"))
        .send()
        .await;
    assert!(
        gone.as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_parameter_not_found()),
        "{gone:?}"
    );
    let kept = w
        .clients
        .ssm
        .get_parameters_by_path()
        .path(format!("/redress/quarantine{}", id("unauthorized")))
        .recursive(true)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let [copy] = kept.parameters() else {
        panic!("one quarantine copy: {kept:?}");
    };
    assert_eq!(copy.r#type(), Some(&ParameterType::SecureString));
    let secret = copy.value().unwrap();
    assert!(!secret.is_empty());
    assert!(!printed.contains(secret), "the secret was printed");
    for file in std::fs::read_dir(&w.dir).unwrap() {
        let path = file.unwrap().path();
        let content = std::fs::read(&path).unwrap();
        assert!(
            !text(&content).contains(secret),
            "the secret is in {}",
            path.display()
        );
    }

    // The ledger's report over the demo run: one CSV row per entry, each as the table
    // holds it, and the JSON's counts as the entries' statuses say.
    let entries = w.ledger_scan().await;
    let fixed = entries
        .iter()
        .filter(|e| matches!(e.status, Status::Succeeded | Status::Verified))
        .count();
    assert_eq!(
        fixed, 6,
        "three automatic fixes and three approved: {entries:#?}"
    );
    let out = w.redress(&["report", "--since", "1d", "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), entries.len(), "{csv}");
    for e in &entries {
        let row = rows
            .iter()
            .find(|r| r[0] == e.id.as_str())
            .unwrap_or_else(|| panic!("no row for {}: {csv}", e.id));
        assert_eq!(row[3], e.status.as_str(), "{csv}");
        assert_eq!(row[4], e.rule_id, "{csv}");
    }
    let out = w.redress(&["report", "--since", "1d", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total = &doc["total"];
    assert_eq!(total["fixed"], fixed, "{doc:#}");
    let verified = entries
        .iter()
        .filter(|e| e.status == Status::Verified)
        .count();
    assert_eq!(total["time_to_remediate"]["samples"], verified, "{doc:#}");
    assert!(
        verified >= 3,
        "Config confirmed the demo's fixes: {entries:#?}"
    );
    let table = w.redress(&["report", "--since", "1d"]);
    assert!(table.status.success());
    assert!(
        text(&table.stdout).contains("total"),
        "{}",
        text(&table.stdout)
    );

    // Every fix verified by Config; the three that needed a person approved by the
    // approver the demo's policy names; nothing left waiting.
    let audit: Vec<serde_json::Value> = std::fs::read_to_string(w.dir.join("audit.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let has = |f: &crate::support::DemoFinding, decision: &str| {
        audit.iter().any(|r| {
            r["config_rule"] == f.rule.as_str()
                && r["resource_id"] == f.resource.as_str()
                && r["decision"] == decision
        })
    };
    let fixable = findings
        .iter()
        .filter(|f| f.rule.starts_with("redress-") || f.rule.starts_with("s3-"));
    for f in fixable {
        assert!(has(f, "verified"), "{f:?} not verified: {audit:#?}");
    }
    let approved: Vec<(&str, &str)> = audit
        .iter()
        .filter(|r| r["decision"] == "approved")
        .map(|r| {
            (
                r["resource_id"].as_str().unwrap(),
                r["actor"].as_str().unwrap(),
            )
        })
        .collect();
    let approver = id("approver");
    let mut approved_resources: Vec<&str> = approved.iter().map(|(r, _)| *r).collect();
    approved_resources.sort_unstable();
    let mut wanted = vec![id("group"), id("missing"), id("unauthorized")];
    wanted.sort_unstable();
    assert_eq!(approved_resources, wanted);
    assert!(
        approved.iter().all(|(_, actor)| *actor == approver),
        "{approved:?}"
    );
    assert!(w.approval_ids().is_empty(), "nothing left waiting");
}
