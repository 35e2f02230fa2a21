//! Approval requests in the ledger: a request the pipeline makes is recorded as
//! `awaiting_approval` (by the executor), one someone deletes from the queue by hand is
//! reported by `approvals list` and put back by `redress sweep`, and decisions are
//! recorded on the entry. Each test has its own ledger table and Config rule (the sweep
//! reads only the world's rule).

use redress::ledger::{EntryId, LedgerEntry, Status};
use redress::message::Task;
use redress_workers::aws::ledger::{Index, LedgerTable};
use serde_json::Value;

use crate::approvals::policy;
use crate::support::{audit, text, EventBuilder, World};

const SG: &str = "AWS::EC2::SecurityGroup";

/// A world with a ledger and one SSH-open group whose finding (under the world's own
/// Config rule) waits for approval: the world, its ledger, the group, the request id,
/// the event's message as sent.
async fn pending(test: &str) -> (World, LedgerTable, String, String, String) {
    let w = World::new(test, &policy("")).await;
    let table = w.use_ledger();
    let sg = w
        .security_group("ssh", &[(22, "0.0.0.0/0"), (443, "10.0.0.0/8")])
        .await;
    let event = EventBuilder::new(&format!("{}-restricted-ssh", w.prefix), SG, &sg);
    let event = w.config_holds(&event).await;
    let body = event.build();
    w.send("events", &body).await;
    let records = w.run_once(&[]);
    assert!(
        records
            .iter()
            .any(|r| r["decision"] == "approval_requested" && r["worker"] == "executor"),
        "the executor makes the request: {records:#?}"
    );
    let ids = w.approval_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    (w, table, sg, ids[0].clone(), body)
}

/// The world's only ledger entry.
async fn only_entry(w: &World) -> LedgerEntry {
    let entries = w.ledger_scan().await;
    assert_eq!(entries.len(), 1, "{entries:#?}");
    entries[0].clone()
}

/// `redress sweep` over the world's Config rule only, as JSON.
fn sweep(w: &World) -> Value {
    let out = w.redress(&["sweep", "--rule", &format!("{}-*", w.prefix), "--json"]);
    assert!(out.status.success(), "sweep: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_request_deleted_by_hand_is_reported_put_back_and_then_fixed() {
    let (w, table, sg, id, _) = pending("ledger-approvals-put-back").await;
    let task: Task =
        serde_json::from_value(w.approval_list()["requests"][0]["request"]["task"].clone())
            .unwrap();
    let entry = only_entry(&w).await;
    assert_eq!(
        entry.id,
        EntryId::for_task(&task),
        "the id the approval claims"
    );
    assert_eq!(entry.status, Status::AwaitingApproval);
    assert_eq!(entry.approval_request.as_deref(), Some(id.as_str()));
    assert!(
        entry.change.is_none() && entry.actor.is_none(),
        "{entry:#?}"
    );

    // Nothing is missing while the request is on the queue.
    assert_eq!(
        w.approval_list()["missing_from_queue"],
        serde_json::json!([])
    );

    // Someone deletes it from the queue by hand.
    assert_eq!(w.drain("approvals").await.len(), 1);
    let doc = w.approval_list();
    assert!(doc["requests"].as_array().unwrap().is_empty(), "{doc:#}");
    let missing = doc["missing_from_queue"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{doc:#}");
    assert_eq!(missing[0]["request"], id.as_str());
    assert_eq!(missing[0]["entry"], entry.id.as_str());
    let out = w.redress(&["approvals", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("1 request recorded in the ledger is missing from the queue")
            && listing.contains(&id)
            && listing.contains("redress sweep"),
        "{listing}"
    );

    // The sweep puts it back (audited), once.
    let out = w.redress(&[
        "sweep",
        "--rule",
        &format!("{}-*", w.prefix),
        "--json",
        "--log-format",
        "json",
    ]);
    assert!(out.status.success(), "sweep: {}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["ledger"]["put_back"][0]["request"],
        id.as_str(),
        "{summary:#}"
    );
    assert_eq!(
        summary["already_pending"], 1,
        "the finding itself is not asked again: {summary:#}"
    );
    assert!(audit(&out)
        .iter()
        .any(|r| r["decision"] == "approval_requested"
            && r["reason"].as_str().unwrap_or("").contains("put back")));
    assert_eq!(w.approval_ids(), vec![id.clone()]);
    assert_eq!(
        w.approval_list()["missing_from_queue"],
        serde_json::json!([])
    );
    let again = sweep(&w);
    assert!(
        again["ledger"]["put_back"].as_array().unwrap().is_empty(),
        "{again:#}"
    );
    assert_eq!(w.approval_ids(), vec![id.clone()], "not put back twice");

    // Approved: the decision is on the entry, and the executor's claim fixes it.
    let out = w.redress(&["approvals", "approve", &id, "--reason", "ticket 7"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let approved = only_entry(&w).await;
    assert_eq!(approved.status, Status::AwaitingApproval);
    assert!(
        approved.approved_by.is_some() && approved.approved_at.is_some(),
        "{approved:#?}"
    );
    // On its way to the executor, the request is not taken for one deleted by hand.
    assert_eq!(
        w.approval_list()["missing_from_queue"],
        serde_json::json!([])
    );
    w.run_once(&[]);
    assert_eq!(w.ingress(&sg).await, vec![(443, "10.0.0.0/8".into())]);
    let done = only_entry(&w).await;
    assert!(
        matches!(done.status, Status::Succeeded | Status::Verified),
        "{done:#?}"
    );
    assert!(done.change.is_some(), "{done:#?}");
    let open = table
        .query(Index::Open, Status::AwaitingApproval.as_str(), None)
        .await
        .unwrap();
    assert!(open.is_empty(), "{open:#?}");
}

#[tokio::test]
async fn a_rejected_request_is_recorded_and_never_put_back() {
    let (w, table, sg, id, body) = pending("ledger-approvals-reject").await;
    let out = w.redress(&["approvals", "reject", &id, "--reason", "planned bastion"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let entry = only_entry(&w).await;
    assert_eq!(entry.status, Status::Rejected);
    assert!(
        entry
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("planned bastion"),
        "{entry:#?}"
    );
    let open = table
        .query(Index::Open, Status::AwaitingApproval.as_str(), None)
        .await
        .unwrap();
    // It stays in the index (no decider may take an entry out of it), but reads as
    // decided.
    assert!(
        open.iter().all(|e| e.status == Status::Rejected),
        "a decided request reads as decided: {open:#?}"
    );

    // The sweep's reconciliation does not put it back (its Config reads are left out:
    // the rule glob matches nothing).
    let out = w.redress(&["sweep", "--rule", &format!("{}-none", w.prefix), "--json"]);
    assert!(out.status.success(), "sweep: {}", text(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        summary["ledger"]["put_back"].as_array().unwrap().is_empty(),
        "{summary:#}"
    );
    assert_eq!(
        w.approval_list()["missing_from_queue"],
        serde_json::json!([])
    );
    assert!(w.approval_ids().is_empty());
    // The same evaluation delivered again is not asked about again: a person said no.
    w.send("events", &body).await;
    let records = w.run_once(&[]);
    assert!(
        records.iter().any(|r| r["decision"] == "skipped"
            && r["reason"]
                .as_str()
                .unwrap_or("")
                .contains("already rejected")),
        "{records:#?}"
    );
    assert!(w.approval_ids().is_empty());
    assert_eq!(w.ingress(&sg).await.len(), 2, "resource untouched");
    assert_eq!(only_entry(&w).await.status, Status::Rejected);
}
