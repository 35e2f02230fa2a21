//! Approvers review and act on queued high-severity remediations.

use std::time::Duration;

use redress::message::{ApprovalRequest, ApprovalsMessage, Task, MESSAGE_VERSION};
use redress::policy::{Fix, RenderedAction, Severity};

use crate::support::{
    audit, executions, policy_fixture, root, text, wait_for, EventBuilder, IamUser, World, ACCOUNT,
    REGION,
};

const SG: &str = "AWS::EC2::SecurityGroup";

pub fn policy(extra: &str) -> String {
    format!("{extra}\n{}", policy_fixture("ssh-high"))
}

/// The policy with one approver, by IAM user ARN.
pub fn only(approver_arn: &str) -> String {
    policy(&format!("[approvals]\napprovers = [\"{approver_arn}\"]\n"))
}

fn list(w: &World) -> serde_json::Value {
    w.approval_list()
}

fn only_id(w: &World) -> String {
    let doc = list(w);
    let requests = doc["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{doc:#}");
    requests[0]["id"].as_str().unwrap().to_string()
}

/// A world with one SSH-open group whose finding waits for approval.
async fn pending(test: &str, policy_text: &str) -> (World, String, String) {
    let w = World::new(test, policy_text).await;
    let sg = w
        .security_group("ssh", &[(22, "0.0.0.0/0"), (443, "10.0.0.0/8")])
        .await;
    w.send_event(&EventBuilder::new("restricted-ssh", SG, &sg))
        .await;
    w.run_once(&[]);
    let id = only_id(&w);
    (w, sg, id)
}

#[tokio::test]
async fn approve_records_the_sts_identity_and_the_executor_fixes_it() {
    let w = World::new("approve", &policy("")).await;
    let alice = w.iam_user("alice").await;
    w.set_policy(&only(&alice.arn));
    let sg = w
        .security_group("ssh", &[(22, "0.0.0.0/0"), (443, "10.0.0.0/8")])
        .await;
    w.send_event(&EventBuilder::new("restricted-ssh", SG, &sg))
        .await;
    let requested = w.run_once(&[]);
    assert_eq!(
        w.ingress(&sg).await.len(),
        2,
        "nothing fixed before approval"
    );

    let doc = list(&w);
    let req = &doc["requests"][0];
    let id = req["id"].as_str().unwrap().to_string();
    assert_eq!(req["status"], "pending");
    assert_eq!(
        req["request"]["proposed_action"]["fix"]["fix"],
        "revoke_public_ingress"
    );
    assert_eq!(req["request"]["preview"][0], "revoke tcp 22 from 0.0.0.0/0");

    let out = w.redress_as(
        &alice.access_key,
        &[
            "approvals",
            "approve",
            &id,
            "--reason",
            "ticket 42",
            "--log-format",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let approved = audit(&out);
    let executed = w.run_once(&[]);
    assert_eq!(w.ingress(&sg).await, vec![(443, "10.0.0.0/8".into())]);

    assert!(requested
        .iter()
        .any(|r| r["decision"] == "approval_requested"));
    assert_eq!(approved.len(), 1);
    assert_eq!(approved[0]["decision"], "approved");
    assert_eq!(approved[0]["actor"], alice.arn.as_str());
    assert_eq!(approved[0]["reason"], "ticket 42");
    let run = executions(&executed);
    assert_eq!(run.len(), 1);
    assert_eq!(run[0]["outcome"], "succeeded");
    assert_eq!(run[0]["actor"], alice.arn.as_str());
    assert_eq!(run[0]["actor_id"], alice.user_id.as_str());
    assert!(list(&w)["requests"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn reject_leaves_the_resource_and_records_the_reason() {
    let (w, sg, id) = pending("reject", &policy("")).await;
    let out = w.redress(&["approvals", "reject", &id]);
    assert_eq!(out.status.code(), Some(2), "--reason is required");
    let out = w.redress(&[
        "approvals",
        "reject",
        &id,
        "--reason",
        "planned bastion",
        "--log-format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = audit(&out);
    assert_eq!(records[0]["decision"], "rejected");
    assert_eq!(records[0]["reason"], "planned bastion");
    assert_eq!(
        records[0]["actor"],
        format!("arn:aws:sts::{ACCOUNT}:user/test").as_str()
    );
    assert!(list(&w)["requests"].as_array().unwrap().is_empty());
    w.run_once(&[]);
    assert_eq!(w.ingress(&sg).await.len(), 2, "resource untouched");
    assert!(w.drain("tasks").await.is_empty());
}

#[tokio::test]
async fn a_second_approval_of_the_same_id_is_refused_and_runs_nothing() {
    let (w, sg, id) = pending("approve-twice", &policy("")).await;
    let first = w.redress(&["approvals", "approve", &id]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = w.redress_as("bob", &["approvals", "approve", &id]);
    assert_eq!(second.status.code(), Some(2));
    assert!(
        text(&second.stderr).contains("already approved"),
        "{}",
        text(&second.stderr)
    );
    let records = w.run_once(&[]);
    assert_eq!(
        executions(&records).len(),
        1,
        "one execution only: {records:#?}"
    );
    assert_eq!(w.ingress(&sg).await.len(), 1);
}

#[tokio::test]
async fn fixed_by_hand_before_approval_ends_already_compliant() {
    let (w, sg, id) = pending("fixed-by-hand", &policy("")).await;
    w.clients
        .ec2
        .revoke_security_group_ingress()
        .group_id(&sg)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(
                    aws_sdk_ec2::types::IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(w.redress(&["approvals", "approve", &id]).status.success());
    let records = w.run_once(&[]);
    let run = executions(&records);
    assert_eq!(run.len(), 1);
    assert_eq!(run[0]["outcome"], "already_compliant");
}

#[tokio::test]
async fn dry_run_approval_changes_nothing() {
    let (w, sg, id) = pending("approve-dry-run", &policy("")).await;
    let out = w.redress(&["approvals", "approve", &id, "--dry-run"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("revoke tcp 22 from 0.0.0.0/0"));
    assert_eq!(only_id(&w), id, "still pending");
    assert!(w.drain("tasks").await.is_empty());
    assert_eq!(w.ingress(&sg).await.len(), 2);
}

#[tokio::test]
async fn a_compliant_event_makes_the_request_moot_and_prune_removes_it() {
    let (w, sg, id) = pending("moot", &policy("")).await;
    // Config re-evaluated the group: COMPLIANT now.
    w.send_event(&EventBuilder::new("restricted-ssh", SG, &sg).compliance("COMPLIANT"))
        .await;
    w.run_once(&[]);
    let doc = list(&w);
    assert_eq!(doc["requests"][0]["id"], id.as_str());
    assert_eq!(doc["requests"][0]["status"], "moot");
    let out = w.redress(&["approvals", "prune", "--log-format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let removed = audit(&out);
    assert_eq!(removed.len(), 1, "{removed:#?}");
    assert_eq!(removed[0]["decision"], "skipped");
    assert_eq!(removed[0]["resource_id"], sg.as_str());
    assert!(list(&w)["requests"].as_array().unwrap().is_empty());
    assert!(
        w.drain("approvals").await.is_empty(),
        "request and notice both gone"
    );
}

#[tokio::test]
async fn expired_requests_are_removed_with_an_audit_record_and_nothing_is_fixed() {
    let w = World::new("expiry", &policy("[approvals]\nttl = \"3s\"\n")).await;
    let sg = w.security_group("ssh", &[(22, "0.0.0.0/0")]).await;
    w.send_event(&EventBuilder::new("restricted-ssh", SG, &sg))
        .await;
    let records = w.run_once(&[]);
    let requested = records
        .iter()
        .find(|r| r["decision"] == "approval_requested")
        .unwrap();
    let id = requested["reason"]
        .as_str()
        .unwrap()
        .trim_start_matches("approval id ")
        .to_string();
    // Listed as pending until its TTL passes; the first listing after that removes it,
    // with an audit record.
    let out = wait_for(Duration::from_secs(30), "the request to expire", || async {
        let out = w.redress(&["approvals", "list", "--json", "--log-format", "json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if doc["expired_removed"] == 1 {
            assert!(doc["requests"].as_array().unwrap().is_empty(), "{doc:#}");
            Ok(out)
        } else {
            assert_eq!(doc["requests"][0]["id"], id.as_str(), "{doc:#}");
            assert_eq!(doc["requests"][0]["status"], "pending", "{doc:#}");
            Err(doc)
        }
    })
    .await;
    let expired = audit(&out);
    assert_eq!(expired.len(), 1, "{expired:#?}");
    assert_eq!(expired[0]["decision"], "expired");
    let out = w.redress(&["approvals", "approve", &id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(w.drain("approvals").await.is_empty());
    assert_eq!(w.ingress(&sg).await.len(), 1, "nothing fixed");
}

#[tokio::test]
async fn list_shows_150_requests_exactly_once_and_hides_none_afterwards() {
    let w = World::new("list-150", &policy("")).await;
    let approvals = w.queue("approvals").await;
    let mut sent = std::collections::BTreeSet::new();
    for i in 0..150 {
        let task = EventBuilder::new("restricted-ssh", SG, &format!("sg-{:017x}", i + 1))
            .recorded_at(&format!("2026-11-02T09:13:{:02}.{i:03}Z", i % 60))
            .task("sg-open-admin-ports", Severity::High);
        let request = ApprovalRequest {
            version: MESSAGE_VERSION,
            id: task.approval_id(),
            task,
            proposed_action: RenderedAction::Fix(Fix::RevokePublicIngress {
                ports: Some(vec![22]),
            }),
            preview: vec![],
            requested_at: redress::time::now_rfc3339(),
            expires_at: redress::time::rfc3339_after(Duration::from_secs(3600)),
            policy_version: None,
            returned: None,
        };
        sent.insert(request.id.clone());
        approvals
            .send(&serde_json::to_string(&ApprovalsMessage::Request(Box::new(request))).unwrap())
            .await
            .unwrap();
    }
    assert_eq!(sent.len(), 150);
    let doc = list(&w);
    let ids: Vec<String> = doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 150, "each exactly once");
    assert_eq!(
        ids.iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        sent
    );
    // Immediately afterwards another reader receives every one of them.
    let again = w.drain("approvals").await;
    assert_eq!(again.len(), 150, "nothing left invisible");
}

#[tokio::test]
async fn two_approvers_at_once_exactly_one_takes_effect() {
    let (w, _sg, id) = pending("approve-race", &policy("")).await;
    let spawn = |who: &str| {
        w.command_as(who, &["approvals", "approve", &id])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("alice"), spawn("bob"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = vec![a.status.code(), b.status.code()];
    codes.sort();
    assert_eq!(
        codes,
        vec![Some(0), Some(2)],
        "alice: {} bob: {}",
        text(&a.stderr),
        text(&b.stderr)
    );
    let loser = if a.status.code() == Some(2) { &a } else { &b };
    assert!(
        text(&loser.stderr).contains("no pending approval request"),
        "{}",
        text(&loser.stderr)
    );
    assert_eq!(
        w.drain("tasks").await.len(),
        1,
        "one task handed to the executor"
    );
}

/// A message as the previous release (format version 1) wrote it, from
/// `tests/fixtures/messages/v1/`, retargeted: the fixture's group, account and region
/// become `sg` in this world, its approver `approver`, its request id the retargeted
/// finding's, its request and approval times now and its expiry an hour from now.
/// Nothing else changes.
fn previous_release(name: &str, sg: &str, approver: &IamUser) -> String {
    let path = root().join("tests/fixtures/messages/v1").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let (task, id, times) = if v["kind"] == "request" {
        (
            &v["task"],
            &v["id"],
            Some((&v["requested_at"], &v["expires_at"])),
        )
    } else {
        (&v, &v["approval"]["request_id"], None)
    };
    let f = &task["finding"];
    let field = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let mut text = text
        .replace(&field(&f["resource_id"]), sg)
        .replace(&field(&f["account_id"]), ACCOUNT)
        .replace(&field(&f["region"]), REGION);
    if let Some(approval) = v.get("approval") {
        text = text
            .replace(&field(&approval["approved_by"]), &approver.arn)
            .replace(&field(&approval["approver_user_id"]), &approver.user_id)
            .replace(
                &field(&approval["approved_at"]),
                &redress::time::now_rfc3339(),
            );
    }
    if let Some((requested, expires)) = times {
        text = text
            .replace(&field(requested), &redress::time::now_rfc3339())
            .replace(
                &field(expires),
                &redress::time::rfc3339_after(Duration::from_secs(3600)),
            );
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let retargeted: Task = serde_json::from_value(if v["kind"] == "request" {
        v["task"].clone()
    } else {
        v
    })
    .unwrap();
    text.replace(&field(id), &retargeted.approval_id())
}

/// Messages the previous release left on the queues survive the upgrade: its waiting
/// request is listed and approved as any other, and its approval, which carries no
/// digest of the action shown, is refused and its request put back for a fresh decision.
#[tokio::test]
async fn requests_and_approvals_of_the_previous_release_survive_an_upgrade() {
    let w = World::new("upgrade", &policy("")).await;
    let alice = w.iam_user("alice").await;
    w.set_policy(&only(&alice.arn));
    let rules = [(22, "0.0.0.0/0"), (443, "10.0.0.0/8")];
    let waiting = w.security_group("waiting", &rules).await;
    let approved = w.security_group("approved", &rules).await;
    let request = previous_release("approvals-request.json", &waiting, &alice);
    let task = previous_release("task-approved.json", &approved, &alice);
    // Config still holds both findings.
    for body in [&request, &task] {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        let t = if v["kind"] == "request" {
            &v["task"]
        } else {
            &v
        };
        let f: redress::message::Finding = serde_json::from_value(t["finding"].clone()).unwrap();
        w.config_holds(&EventBuilder::new(
            &f.config_rule_name,
            &f.resource_type,
            &f.resource_id,
        ))
        .await;
    }
    w.send("approvals", &request).await;
    w.send_as(&alice, "tasks", &task).await;

    let doc = list(&w);
    let requests = doc["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{doc:#}");
    assert_eq!(requests[0]["status"], "pending");
    assert_eq!(requests[0]["request"]["version"], 1);
    assert_eq!(
        requests[0]["request"]["task"]["finding"]["resource_id"],
        waiting.as_str()
    );
    let id = requests[0]["id"].as_str().unwrap().to_string();
    let out = w.redress_as(&alice.access_key, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = w.run_once(&[]);

    // The waiting request, approved now, ran.
    assert_eq!(w.ingress(&waiting).await, vec![(443, "10.0.0.0/8".into())]);
    let fixed: Vec<&str> = executions(&records)
        .iter()
        .filter(|r| r["outcome"] == "succeeded")
        .map(|r| r["resource_id"].as_str().unwrap())
        .collect();
    assert_eq!(fixed, vec![waiting.as_str()], "{records:#?}");
    // The old approval did not: refused, and its request is back in today's format.
    assert_eq!(w.ingress(&approved).await.len(), 2, "nothing changed");
    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["redress.error_class"], "refused");
    assert!(
        dead[0].attributes["redress.error"].contains("no action digest"),
        "{:?}",
        dead[0].attributes
    );
    let doc = list(&w);
    let requests = doc["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{doc:#}");
    let back = &requests[0];
    assert_eq!(
        back["request"]["task"]["finding"]["resource_id"],
        approved.as_str()
    );
    assert_eq!(back["request"]["version"], MESSAGE_VERSION);
    assert!(
        back["request"]["returned"]["why"]
            .as_str()
            .unwrap()
            .contains("no action digest"),
        "{back:#}"
    );
    // Approved again, it runs.
    let id = back["id"].as_str().unwrap().to_string();
    let out = w.redress_as(&alice.access_key, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = w.run_once(&[]);
    assert_eq!(w.ingress(&approved).await, vec![(443, "10.0.0.0/8".into())]);
    let run: Vec<_> = executions(&records)
        .into_iter()
        .filter(|r| r["outcome"].is_string())
        .collect();
    assert_eq!(run.len(), 1, "{records:#?}");
    assert_eq!(run[0]["outcome"], "succeeded");
    assert_eq!(run[0]["actor"], alice.arn.as_str());
}
