//! `redress undo`: a fix put back through an approval, exactly as the ledger recorded
//! it, and then left alone until the exception ends; refused when the resource changed
//! since the fix; a dry run changes nothing.

use redress::ledger::{Actor, EntryId, LedgerEntry, Principal, Status, UndoException};
use redress::message::{Approval, ApprovalRequest, ApprovalsMessage};
use redress_workers::aws::ledger;
use serde_json::Value;

use crate::support::{audit, policy_fixtures, text, EventBuilder, IamUser, World, ACCOUNT, REGION};

const SG: &str = "AWS::EC2::SecurityGroup";
const PARAM: &str = "AWS::SSM::Parameter";

/// The policy: SSH and parameter drift fixed automatically; `approvers` listed.
fn policy(pp: &str, approvers: &[&str]) -> String {
    let list: Vec<String> = approvers.iter().map(|a| format!("{a:?}")).collect();
    format!(
        "[routing]\nauto_max_severity = \"MEDIUM\"\n[approvals]\napprovers = [{}]\n{}",
        list.join(", "),
        policy_fixtures(&["ssh-low", "param-drift"], &[("prefix", pp)])
    )
}

/// A world with a ledger and one approver, alice (undos are asked by the world's own
/// principal, and approved by her).
async fn world(test: &str, pp: &str) -> (World, IamUser) {
    let w = World::new(test, &policy(pp, &[])).await;
    let alice = w.iam_user("alice").await;
    w.set_policy(&policy(pp, &[&alice.arn]));
    w.use_ledger();
    (w, alice)
}

/// The ledger's entry about `resource` with this status.
async fn entry(w: &World, resource: &str, status: Status) -> LedgerEntry {
    let all = w.ledger_scan().await;
    all.iter()
        .find(|e| e.finding.resource_id == resource && e.status == status && !e.is_undo())
        .unwrap_or_else(|| panic!("no {status} entry for {resource}: {all:#?}"))
        .clone()
}

/// A group whose world-open SSH the pipeline revoked, and the revoke's ledger entry.
async fn revoked(w: &World) -> (String, LedgerEntry) {
    let sg = w
        .security_group("ssh", &[(22, "0.0.0.0/0"), (443, "10.0.0.0/8")])
        .await;
    w.send_event(&EventBuilder::new("restricted-ssh", SG, &sg))
        .await;
    w.run_once(&[]);
    let revoke = entry(w, &sg, Status::Succeeded).await;
    (sg, revoke)
}

/// `redress undo` with these arguments (global flags first).
fn undo(w: &World, global: &[&str], id: &str, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&str> = global.to_vec();
    args.extend([
        "undo",
        id,
        "--reason",
        "INC-42: the vendor needs it",
        "--until",
        "7d",
    ]);
    args.extend_from_slice(extra);
    w.redress(&args)
}

/// `approver` approves every waiting request, then the pipeline runs once; returns its
/// records.
fn approve_all_and_run(w: &World, approver: &IamUser) -> Vec<Value> {
    for id in w.approval_ids() {
        let out = w.redress_as(&approver.access_key, &["approvals", "approve", &id]);
        assert!(out.status.success(), "approve {id}: {}", text(&out.stderr));
    }
    w.run_once(&[])
}

#[tokio::test]
async fn an_approved_undo_puts_back_exactly_the_permissions_and_the_value_and_then_holds() {
    let pp = format!("/undo-{}/", std::process::id());
    let (w, alice) = world("undo", &pp).await;
    let sg = w
        .security_group("ssh", &[(22, "0.0.0.0/0"), (443, "10.0.0.0/8")])
        .await;
    let current = format!("{pp}current/db_pool_size");
    w.put_parameter(&format!("{pp}approved/db_pool_size"), "20")
        .await;
    w.put_parameter(&current, "200").await;
    let events = [
        EventBuilder::new("restricted-ssh", SG, &sg),
        EventBuilder::new("ssm-parameter-drift", PARAM, &current),
    ];
    w.send_events(&events).await;
    w.run_once(&[]);
    assert_eq!(w.ingress(&sg).await, vec![(443, "10.0.0.0/8".into())]);
    assert_eq!(w.parameter(&current).await, "20");
    let revoke = entry(&w, &sg, Status::Succeeded).await;
    let restore = entry(&w, &current, Status::Succeeded).await;

    // A dry run prints the plan and sends nothing.
    let out = undo(&w, &["--dry-run"], revoke.id.as_str(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("authorize tcp 22 from 0.0.0.0/0 on {sg} again")),
        "{}",
        text(&out.stdout)
    );
    assert!(w.approval_ids().is_empty(), "a dry run asked for approval");

    // The undos wait for an approver: nothing changes before.
    for e in [&revoke, &restore] {
        let out = undo(&w, &[], e.id.as_str(), &[]);
        assert!(out.status.success(), "undo {}: {}", e.id, text(&out.stderr));
    }
    // The executor records each undo asked and makes its approval request.
    w.run_once(&[]);
    assert_eq!(w.approval_ids().len(), 2);
    let shown = w.redress(&["approvals", "list"]);
    assert!(
        text(&shown.stdout).contains("UNDO of"),
        "{}",
        text(&shown.stdout)
    );
    assert_eq!(w.ingress(&sg).await, vec![(443, "10.0.0.0/8".into())]);

    let records = approve_all_and_run(&w, &alice);
    let undone: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["outcome"] == "succeeded"
                && r["action"].as_str().is_some_and(|a| a.starts_with("undo "))
        })
        .collect();
    assert_eq!(undone.len(), 2, "{records:#?}");
    // Exactly the permissions revoked come back; the value and its type come back.
    assert_eq!(
        w.ingress(&sg).await,
        vec![(22, "0.0.0.0/0".into()), (443, "10.0.0.0/8".into())]
    );
    assert_eq!(w.parameter(&current).await, "200");
    assert_eq!(w.parameter_type(&current).await, "String");

    // The ledger: the fixes are undone; each undo is an entry of its own, with the
    // requester and the approver.
    let all = w.ledger_scan().await;
    for e in [&revoke, &restore] {
        let now = all.iter().find(|x| x.id == e.id).unwrap();
        assert_eq!(now.status, Status::Undone, "{now:#?}");
        let u = all
            .iter()
            .find(|x| x.action.undo().is_some_and(|u| u.entry == e.id))
            .unwrap_or_else(|| panic!("no undo entry for {}: {all:#?}", e.id));
        assert_eq!(u.status, Status::Succeeded, "{u:#?}");
        assert!(
            matches!(
                &u.actor,
                Some(Actor::Undo {
                    approver: Some(_),
                    ..
                })
            ),
            "{u:#?}"
        );
    }

    // The next evaluation does not fix them again: the exception holds.
    w.send_events(&events).await;
    let records = w.run_once(&[]);
    let exempt = records
        .iter()
        .filter(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|s| s.contains("exempt: undone"))
        })
        .count();
    assert_eq!(exempt, 2, "{records:#?}");
    assert_eq!(
        w.ingress(&sg).await,
        vec![(22, "0.0.0.0/0".into()), (443, "10.0.0.0/8".into())]
    );
    assert_eq!(w.parameter(&current).await, "200");
}

#[tokio::test]
async fn an_undo_after_someone_changed_the_resource_is_refused_with_the_reason() {
    let pp = format!("/undo-changed-{}/", std::process::id());
    let (w, alice) = world("undo-changed", &pp).await;
    let (sg, revoke) = revoked(&w).await;

    // Asked, approved, and then someone changes the group before the executor runs it.
    let out = undo(&w, &[], revoke.id.as_str(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    w.run_once(&[]);
    let id = w.approval_ids().pop().unwrap();
    let out = w.redress_as(&alice.access_key, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    w.clients
        .ec2
        .authorize_security_group_ingress()
        .group_id(&sg)
        .ip_protocol("tcp")
        .from_port(8080)
        .to_port(8080)
        .cidr_ip("10.0.0.0/8")
        .send()
        .await
        .unwrap();
    let out = w.redress(&["run", "--once"]);
    let records = audit(&out);
    let refused = records
        .iter()
        .find(|r| r["decision"] == "dead_lettered")
        .unwrap_or_else(|| panic!("not refused: {records:#?}"));
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.contains("changed since the fix") && reason.contains("tcp 8080 from 10.0.0.0/8"),
        "{reason}"
    );
    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 1);
    assert!(dead[0].attributes["redress.error"].contains("changed since the fix"));
    let mut now = w.ingress(&sg).await;
    now.sort();
    assert_eq!(
        now,
        vec![(443, "10.0.0.0/8".into()), (8080, "10.0.0.0/8".into())]
    );

    // Asked again now: refused at once, with what differs; --force asks anyway.
    let out = undo(&w, &[], revoke.id.as_str(), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("the resource changed since the fix (added since: tcp 8080 from 10.0.0.0/8)")
            && err.contains("--force"),
        "{err}"
    );
    assert!(w.approval_ids().is_empty());
    let out = undo(&w, &[], revoke.id.as_str(), &["--force"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    w.run_once(&[]);
    approve_all_and_run(&w, &alice);
    let mut now = w.ingress(&sg).await;
    now.sort();
    assert_eq!(
        now,
        vec![
            (22, "0.0.0.0/0".into()),
            (443, "10.0.0.0/8".into()),
            (8080, "10.0.0.0/8".into())
        ],
        "a forced undo puts back the revoked permission and keeps the later change"
    );
}

/// The task an approval of `request` by `who` hands to the executor, made by hand.
fn approved(request: &ApprovalRequest, who: &IamUser) -> String {
    let mut task = request.task.clone();
    task.approval = Some(Approval {
        request_id: request.id.clone(),
        approved_by: who.arn.clone(),
        approver_user_id: who.user_id.clone(),
        approved_at: redress::time::now_rfc3339(),
        reason: None,
        action_digest: Some(request.digest()),
        policy_version: request.policy_version.clone(),
    });
    serde_json::to_string(&task).unwrap()
}

/// The one request on the approvals queue, taken off it.
async fn take_request(w: &World) -> (ApprovalRequest, String) {
    let on = w.drain("approvals").await;
    assert_eq!(on.len(), 1);
    let ApprovalsMessage::Request(r) = serde_json::from_str(&on[0].body).unwrap() else {
        panic!("not a request: {}", on[0].body)
    };
    (*r, on[0].body.clone())
}

/// The reason the one dead-lettered task was refused with.
async fn refused(w: &World) -> String {
    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 1, "one refused task");
    dead[0].attributes["redress.error"].clone()
}

#[tokio::test]
async fn an_undo_is_refused_unasked_in_someone_elses_name_self_approved_or_with_no_approvers_listed(
) {
    let pp = format!("/undo-forged-{}/", std::process::id());
    let (w, alice) = world("undo-forged", &pp).await;
    let (sg, revoke) = revoked(&w).await;
    let closed = vec![(443, "10.0.0.0/8".to_string())];
    let out = undo(&w, &[], revoke.id.as_str(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    w.run_once(&[]);
    let (request, _) = take_request(&w).await;

    // Asking again (the undo's task sent once more, unapproved) only asks again.
    w.send("tasks", &serde_json::to_string(&request.task).unwrap())
        .await;
    w.run_once(&[]);
    let (again, _) = take_request(&w).await;
    assert_eq!(again.id, request.id);
    assert_eq!(w.ingress(&sg).await, closed);

    // Asked in someone else's name: SQS says who sent it.
    let mallory = w.iam_user("mallory").await;
    w.send_as(
        &mallory,
        "tasks",
        &serde_json::to_string(&request.task).unwrap(),
    )
    .await;
    w.run_once(&[]);
    let why = refused(&w).await;
    assert!(
        why.contains(&format!("SQS says it was sent by {}", mallory.user_id)),
        "{why}"
    );

    // An approver who writes her own undo naming someone else as its requester, and
    // approves it: the executor knows of no such undo asked.
    let mut forged = request.clone();
    let u = forged.task.undo.as_mut().unwrap();
    u.requested_by = Principal {
        arn: "arn:aws:iam::123456789012:user/bob".into(),
        user_id: "AIDABOB0000000000000".into(),
    };
    u.requested_at = redress::time::format_rfc3339(
        std::time::SystemTime::now() + std::time::Duration::from_secs(1),
    );
    forged.id = forged.task.approval_id();
    w.send_as(&alice, "tasks", &approved(&forged, &alice)).await;
    w.run_once(&[]);
    let why = refused(&w).await;
    assert!(
        why.contains("was asked through this executor's ledger"),
        "{why}"
    );
    assert_eq!(w.ingress(&sg).await, closed);

    // Alice asks and approves her own undo: the command refuses, and so does the executor
    // when she hands it the task herself.
    let out = w.redress_as(
        &alice.access_key,
        &[
            "undo",
            revoke.id.as_str(),
            "--reason",
            "mine",
            "--until",
            "7d",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    w.run_once(&[]);
    let ids = w.approval_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let out = w.redress_as(&alice.access_key, &["approvals", "approve", &ids[0]]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("another approver must approve it"),
        "{}",
        text(&out.stderr)
    );
    let (own, _) = take_request(&w).await;
    w.send_as(&alice, "tasks", &approved(&own, &alice)).await;
    w.run_once(&[]);
    let why = refused(&w).await;
    assert!(
        why.contains("approved by the person who asked for it"),
        "{why}"
    );
    assert_eq!(w.ingress(&sg).await, closed);

    // With no approvers listed, an approval from anyone the queue admits is not enough.
    w.set_policy(&policy(&pp, &[]));
    w.send_as(&mallory, "tasks", &approved(&request, &mallory))
        .await;
    w.run_once(&[]);
    let why = refused(&w).await;
    assert!(
        why.contains("needs the policy's [approvals] approvers list"),
        "{why}"
    );
    assert_eq!(w.ingress(&sg).await, closed);
    assert_eq!(
        entry(&w, &sg, Status::Succeeded).await.id,
        revoke.id,
        "the fix still stands, not undone"
    );
}

#[tokio::test]
async fn an_exception_no_carried_out_undo_stands_behind_does_not_stop_a_fix() {
    let pp = format!("/undo-planted-{}/", std::process::id());
    let (w, _alice) = world("undo-planted", &pp).await;
    let table = w.use_ledger();
    let sg = w
        .security_group("ssh", &[(22, "0.0.0.0/0"), (443, "10.0.0.0/8")])
        .await;
    // An exception for the finding whose undo entry does not exist (left by a crash
    // before the change, or written by someone who may write the table).
    let planted = UndoException {
        rule_id: "ssh".into(),
        account: ACCOUNT.into(),
        region: REGION.into(),
        resource_type: SG.into(),
        resource_id: sg.clone(),
        until: std::time::SystemTime::now() + std::time::Duration::from_secs(86_400),
        reason: "planted".into(),
        undone: EntryId::parse("le-00000000000000000000").unwrap(),
        undo: EntryId::parse("le-11111111111111111111").unwrap(),
        requested_by: Principal {
            arn: "arn:aws:iam::123456789012:user/nobody".into(),
            user_id: "AIDANOBODY".into(),
        },
    };
    let item = planted
        .to_item()
        .iter()
        .map(|(k, v)| (k.clone(), ledger::to_sdk(v)))
        .collect();
    w.clients
        .dynamodb
        .put_item()
        .table_name(table.name())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    // And a bare item under another finding's exception key (an update without its
    // condition creates one): unreadable, so it stops nothing either.
    let bare = w.security_group("bare", &[(22, "0.0.0.0/0")]).await;
    let key = redress::ledger::undo::exception_key("ssh", ACCOUNT, REGION, &bare);
    w.clients
        .dynamodb
        .put_item()
        .table_name(table.name())
        .item("id", aws_sdk_dynamodb::types::AttributeValue::S(key))
        .item(
            "decision",
            aws_sdk_dynamodb::types::AttributeValue::S("rejected".into()),
        )
        .send()
        .await
        .unwrap();
    w.send_events(&[
        EventBuilder::new("restricted-ssh", SG, &sg),
        EventBuilder::new("restricted-ssh", SG, &bare),
    ])
    .await;
    let records = w.run_once(&[]);
    assert_eq!(
        records
            .iter()
            .filter(|r| r["outcome"] == "succeeded")
            .count(),
        2,
        "a fix was skipped: {records:#?}"
    );
    assert_eq!(w.ingress(&sg).await, vec![(443, "10.0.0.0/8".into())]);
    assert!(w.ingress(&bare).await.is_empty());
}
