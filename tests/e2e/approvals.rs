//! Approvers review and act on queued high-severity remediations.

use redress::message::{ApprovalRequest, ApprovalsMessage, Finding, Task, MESSAGE_VERSION};
use redress::policy::{Fix, RenderedAction, Severity};

use crate::support::{event, executions, text, World, ACCOUNT};

const SG: &str = "AWS::EC2::SecurityGroup";

pub fn policy(extra: &str) -> String {
    format!(
        r#"{extra}
[[rule]]
id = "sg-open-admin-ports"
config_rule = "*restricted-ssh*"
resource_types = ["AWS::EC2::SecurityGroup"]
severity = "HIGH"
action = {{ fix = "revoke_public_ingress", ports = [22, 3389] }}
"#
    )
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
    w.send("events", &event("restricted-ssh", SG, &sg, "NON_COMPLIANT"))
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
    w.send("events", &event("restricted-ssh", SG, &sg, "NON_COMPLIANT"))
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
    let approved = crate::support::audit(&out);
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
    let audit = crate::support::audit(&out);
    assert_eq!(audit[0]["decision"], "rejected");
    assert_eq!(audit[0]["reason"], "planned bastion");
    assert_eq!(
        audit[0]["actor"],
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
    let audit = w.run_once(&[]);
    assert_eq!(
        executions(&audit).len(),
        1,
        "one execution only: {audit:#?}"
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
    let audit = w.run_once(&[]);
    let run = executions(&audit);
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
    w.send("events", &event("restricted-ssh", SG, &sg, "COMPLIANT"))
        .await;
    w.run_once(&[]);
    let doc = list(&w);
    assert_eq!(doc["requests"][0]["id"], id.as_str());
    assert_eq!(doc["requests"][0]["status"], "moot");
    let out = w.redress(&["approvals", "prune"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("removed 1 moot request"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        w.drain("approvals").await.is_empty(),
        "request and notice both gone"
    );
}

#[tokio::test]
async fn expired_requests_are_removed_with_an_audit_record_and_nothing_is_fixed() {
    let w = World::new("expiry", &policy("[approvals]\nttl = \"3s\"\n")).await;
    let sg = w.security_group("ssh", &[(22, "0.0.0.0/0")]).await;
    w.send("events", &event("restricted-ssh", SG, &sg, "NON_COMPLIANT"))
        .await;
    let audit = w.run_once(&[]);
    let requested = audit
        .iter()
        .find(|r| r["decision"] == "approval_requested")
        .unwrap();
    let id = requested["reason"]
        .as_str()
        .unwrap()
        .trim_start_matches("approval id ")
        .to_string();
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let out = w.redress(&["approvals", "list", "--log-format", "json"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("1 expired and removed"),
        "{}",
        text(&out.stdout)
    );
    let audit = crate::support::audit(&out);
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["decision"], "expired");
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
        let mut finding = Finding::from_event(
            &redress::event::parse_message(&event(
                "restricted-ssh",
                SG,
                &format!("sg-{:017x}", i + 1),
                "NON_COMPLIANT",
            ))
            .unwrap(),
        );
        finding.evaluation_time = Some(format!("2026-11-02T09:13:{:02}.{i:03}Z", i % 60));
        let task = Task::new("sg-open-admin-ports", Severity::High, finding);
        let request = ApprovalRequest {
            version: MESSAGE_VERSION,
            id: task.approval_id(),
            task,
            proposed_action: RenderedAction::Fix(Fix::RevokePublicIngress {
                ports: Some(vec![22]),
            }),
            preview: vec![],
            requested_at: redress::time::now_rfc3339(),
            expires_at: redress::time::rfc3339_after(std::time::Duration::from_secs(3600)),
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
