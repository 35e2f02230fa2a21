//! Message formats across releases: a release reads what the previous one left on the
//! queues, so tasks and pending approvals survive an upgrade.
//!
//! `tests/fixtures/messages/v1/` holds messages as the previous release (format version
//! 1, commit 0d0ec13) wrote them; `v2/` as this one writes them ([`MESSAGE_VERSION`]).
//! Each kind is there in each version: a task, a task carrying an approval, approval
//! requests in their `{"kind":"request",...}` envelope (a direct fix and a runbook), and
//! a moot notice. Every fixture is parsed with today's types, its fields checked,
//! serialised again and parsed again, and comes out as the same JSON document: reading
//! and forwarding a message (a request put back, a task replayed) loses nothing.
//!
//! Version 1 lacks the approval's `action_digest` and `policy_version` and the request's
//! `policy_version` and `returned`; all are optional, so version 1 parses, with them
//! `None`. What happens next is the executor's, covered end to end by
//! `tests/e2e/approvals.rs` (`requests_and_approvals_of_the_previous_release_survive_an_upgrade`,
//! which sends these version-1 fixtures): an approval without a digest is refused ("the
//! approval carries no action digest (made by an older redress)") and its request put
//! back on the approvals queue for a fresh decision, while a request still waiting is
//! listed, approved and run as any other.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use redress::message::{ApprovalRequest, ApprovalsMessage, MootNotice, Task, MESSAGE_VERSION};
use redress::policy::{Fix, RenderedAction, Severity};
use serde::de::DeserializeOwned;
use serde::Serialize;

fn dir(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/messages")
        .join(format!("v{version}"))
}

fn read(version: u32, name: &str) -> String {
    let path = dir(version).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses `text` as `T`, serialises it, parses that again: both parses agree and the
/// serialised form is the fixture's JSON document, field for field.
fn round_trip<T>(what: &str, text: &str) -> T
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let parsed: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    let again = serde_json::to_string(&parsed).unwrap();
    let reparsed: T = serde_json::from_str(&again).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(reparsed, parsed, "{what}");
    let original: serde_json::Value = serde_json::from_str(text).unwrap();
    let written: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        written, original,
        "{what}: not the same document once written"
    );
    parsed
}

fn task(version: u32, name: &str) -> Task {
    round_trip(&format!("v{version}/{name}"), &read(version, name))
}

fn approvals(version: u32, name: &str) -> ApprovalsMessage {
    round_trip(&format!("v{version}/{name}"), &read(version, name))
}

fn request(version: u32, name: &str) -> ApprovalRequest {
    match approvals(version, name) {
        ApprovalsMessage::Request(r) => *r,
        other => panic!("v{version}/{name}: not a request: {other:?}"),
    }
}

fn moot(version: u32) -> MootNotice {
    match approvals(version, "approvals-moot.json") {
        ApprovalsMessage::Moot(n) => n,
        other => panic!("v{version}: not a moot notice: {other:?}"),
    }
}

/// Top-level keys of a fixture's JSON object (and of one nested object).
fn keys(text: &str, nested: Option<&str>) -> BTreeSet<String> {
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let v = nested.map_or(&v, |k| &v[k]);
    v.as_object().unwrap().keys().cloned().collect()
}

const FILES: [&str; 5] = [
    "task.json",
    "task-approved.json",
    "approvals-request.json",
    "approvals-request-runbook.json",
    "approvals-moot.json",
];

#[test]
fn every_version_has_every_kind_and_nothing_else() {
    assert_eq!(
        MESSAGE_VERSION, 3,
        "a new format version needs its fixtures in tests/fixtures/messages/v{MESSAGE_VERSION}, \
         and the previous release's stay"
    );
    for version in 1..=MESSAGE_VERSION {
        let mut found: Vec<String> = std::fs::read_dir(dir(version))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        found.sort();
        let mut expected: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
        expected.sort();
        assert_eq!(found, expected, "v{version}");
        for name in FILES {
            if name.starts_with("task") {
                task(version, name);
            } else {
                approvals(version, name);
            }
        }
    }
}

#[test]
fn version_1_fixtures_have_only_the_previous_release_fields() {
    // The field sets of 0d0ec13's `Task`, `Approval` and `ApprovalRequest`: a fixture with
    // a newer field would not be what the previous release left on the queues.
    let task_fields: BTreeSet<String> = [
        "version",
        "rule_id",
        "severity",
        "finding",
        "generation",
        "created_at",
        "approval",
        "dry_run",
    ]
    .map(String::from)
    .into();
    let approval_fields: BTreeSet<String> = [
        "request_id",
        "approved_by",
        "approver_user_id",
        "approved_at",
        "reason",
    ]
    .map(String::from)
    .into();
    let request_fields: BTreeSet<String> = [
        "kind",
        "version",
        "id",
        "task",
        "proposed_action",
        "preview",
        "requested_at",
        "expires_at",
    ]
    .map(String::from)
    .into();
    for name in ["task.json", "task-approved.json"] {
        let text = read(1, name);
        assert!(keys(&text, None).is_subset(&task_fields), "v1/{name}");
    }
    let approved = read(1, "task-approved.json");
    assert!(keys(&approved, Some("approval")).is_subset(&approval_fields));
    for name in ["approvals-request.json", "approvals-request-runbook.json"] {
        let text = read(1, name);
        assert!(keys(&text, None).is_subset(&request_fields), "v1/{name}");
        assert!(
            keys(&text, Some("task")).is_subset(&task_fields),
            "v1/{name}"
        );
    }
}

#[test]
fn a_version_1_task_reads_as_today() {
    let t = task(1, "task.json");
    assert_eq!(t.version, 1);
    assert_eq!(t.rule_id, "sg-open-privileged-ports");
    assert_eq!(t.severity, Severity::Medium);
    assert_eq!(t.finding.resource_id, "sg-0b2c3d4e5f6071829");
    assert_eq!(t.finding.resource_type, "AWS::EC2::SecurityGroup");
    assert_eq!(t.finding.compliance, "NON_COMPLIANT");
    assert_eq!(t.finding.annotation, None);
    assert_eq!(
        t.finding.evaluation_time.as_deref(),
        Some("2026-11-02T09:20:11.402Z")
    );
    assert!(t.finding.validate().is_ok());
    assert_eq!((t.generation, t.dry_run), (0, false));
    assert_eq!(t.approval, None);
}

#[test]
fn a_version_1_request_and_its_approval_read_without_the_new_fields() {
    let r = request(1, "approvals-request.json");
    assert_eq!(r.version, 1);
    assert_eq!(r.id, r.task.approval_id(), "the id is the finding's");
    assert_eq!(r.task.version, 1);
    assert_eq!(r.task.severity, Severity::High);
    assert_eq!(
        r.proposed_action,
        RenderedAction::Fix(Fix::RevokePublicIngress {
            ports: Some(vec![22, 3389])
        })
    );
    assert_eq!(r.preview, vec!["revoke tcp 22 from 0.0.0.0/0"]);
    assert!(redress::time::parse_rfc3339(&r.requested_at).is_some());
    assert!(redress::time::parse_rfc3339(&r.expires_at).is_some());
    assert_eq!(r.policy_version, None);
    assert_eq!(r.returned, None);

    let t = task(1, "task-approved.json");
    let a = t.approval.clone().expect("an approval");
    assert_eq!(a.request_id, r.id);
    assert_eq!(a.request_id, t.approval_id());
    assert!(a.approved_by.starts_with("arn:aws:sts::"));
    assert!(a.approver_user_id.starts_with("AROA"));
    assert_eq!(a.reason.as_deref(), Some("CHG-4211, bastion retired"));
    // No digest: the executor refuses it and puts the request back (see the module doc).
    assert_eq!(a.action_digest, None);
    assert_eq!(a.policy_version, None);
    let mut unapproved = t;
    unapproved.approval = None;
    assert_eq!(unapproved, r.task, "the approved task is the request's");

    let rb = request(1, "approvals-request-runbook.json");
    assert_eq!(rb.id, rb.task.approval_id());
    let RenderedAction::Runbook(run) = &rb.proposed_action else {
        panic!("a runbook: {:?}", rb.proposed_action);
    };
    assert_eq!(run.document, "AWS-EnableS3BucketEncryption");
    assert_eq!(run.parameters["BucketName"], vec!["payments-exports-eu"]);
    assert_eq!(
        run.assume_role.as_deref(),
        Some("arn:aws:iam::444455556666:role/redress-remediation")
    );
    assert!(rb.preview.is_empty());
    assert_eq!((rb.policy_version, rb.returned), (None, None));
}

#[test]
fn a_moot_notice_reads_the_same_in_both_versions() {
    let n = moot(1);
    assert_eq!(n.rule_id, "sg-open-admin-ports");
    assert_eq!(n.resource_id, "sg-0a1b2c3d4e5f60718");
    assert_eq!(
        (n.account_id.as_str(), n.region.as_str()),
        ("111122223333", "eu-west-1")
    );
    assert!(redress::time::parse_rfc3339(&n.seen_at).is_some());
    assert_eq!(moot(2), n);
}

#[test]
fn version_2_approvals_are_bound_to_the_action_shown() {
    assert_eq!(task(2, "task.json").version, 2);
    let r = request(2, "approvals-request.json");
    assert_eq!(r.version, 2);
    assert_eq!(r.id, r.task.approval_id());
    let policy = r.policy_version.clone().expect("a policy version");
    assert_eq!(policy.len(), 16);
    assert!(policy.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(r.returned, None);

    let t = task(2, "task-approved.json");
    let a = t.approval.clone().expect("an approval");
    assert_eq!(a.request_id, r.id);
    assert_eq!(
        a.action_digest.as_deref(),
        Some(r.proposed_action.digest().as_str()),
        "the digest of the action the request showed"
    );
    assert_eq!(a.policy_version.as_deref(), Some(policy.as_str()));
    let mut unapproved = t;
    unapproved.approval = None;
    assert_eq!(unapproved, r.task);

    let held = request(2, "approvals-request-runbook.json");
    let back = held.returned.expect("a returned note");
    assert!(back.why.starts_with("held: kill switch"));
    assert_eq!(back.approved_by, a.approved_by.clone().into());
    assert!(redress::time::parse_rfc3339(&back.at).is_some());
    assert!(back.approved_at.is_some());
}

#[test]
fn a_version_1_message_and_its_version_2_form_differ_only_in_the_new_fields() {
    // Same finding, same ids: an upgrade changes no identity (idempotency tokens, request
    // ids), only the version number and the optional fields.
    for name in ["task.json", "task-approved.json"] {
        let (mut old, new) = (task(1, name), task(2, name));
        assert_eq!(old.client_token(), new.client_token(), "{name}");
        old.version = 2;
        if let (Some(o), Some(n)) = (old.approval.as_mut(), new.approval.as_ref()) {
            o.action_digest = n.action_digest.clone();
            o.policy_version = n.policy_version.clone();
        }
        assert_eq!(old, new, "{name}");
    }
    for name in ["approvals-request.json", "approvals-request-runbook.json"] {
        let (mut old, new) = (request(1, name), request(2, name));
        assert_eq!(old.id, new.id, "{name}");
        old.version = 2;
        old.task.version = 2;
        old.policy_version = new.policy_version.clone();
        old.returned = new.returned.clone();
        assert_eq!(old, new, "{name}");
    }
}

#[test]
fn a_version_2_message_and_its_version_3_form_differ_only_in_the_new_fields() {
    // Version 3 added the finding's Config rule ARN, the closure check and the moot
    // notice's Config rule; none of them changes an identity.
    for name in ["task.json", "task-approved.json"] {
        let (mut old, new) = (task(2, name), task(3, name));
        assert_eq!(new.version, MESSAGE_VERSION);
        assert_eq!(old.client_token(), new.client_token(), "{name}");
        assert_eq!(old.approval_id(), new.approval_id(), "{name}");
        assert!(new.finding.validate().is_ok(), "{name}");
        old.version = MESSAGE_VERSION;
        old.finding.config_rule_arn = new.finding.config_rule_arn.clone();
        assert_eq!(old, new, "{name}");
    }
    let (old, new) = (moot(2), moot(3));
    assert_eq!(old.config_rule_name, None);
    assert_eq!(new.config_rule_name.as_deref(), Some("restricted-ssh"));
    assert!(new.config_rule_arn.is_some());
}

#[test]
fn a_closure_check_round_trips_and_older_tasks_have_none() {
    let mut t = task(3, "task.json");
    assert_eq!(t.closure, None);
    t.closure = Some(redress::message::Closure {
        fixed_at: "2026-12-01T06:00:00Z".into(),
        execution_id: None,
        actor: None,
        checks: 2,
    });
    let body = serde_json::to_string(&t).unwrap();
    assert!(body.contains("\"closure\""));
    let back: Task = serde_json::from_str(&body).unwrap();
    assert_eq!(back, t);
}
