//! Trust: an approval is bound to an identity AWS vouches for (SQS SenderId from real
//! IAM users of the local stack) and to the action the approver saw; the kill switch
//! holds approved fixes; automatic fixes stay inside their severity; secrets keep their
//! type; hostile text never reaches a terminal; replay cannot launder an approval.
//! `docs/threat-model.md` lists which test shows which guarantee.

use redress::message::Task;

use crate::approvals::{only, policy};
use crate::support::{
    policy_fixture, policy_fixtures, reason, sdk_config_as, text, EventBuilder, IamUser, World,
};

const SG: &str = "AWS::EC2::SecurityGroup";

fn with<'a>(records: &'a [serde_json::Value], decision: &str) -> Vec<&'a serde_json::Value> {
    records
        .iter()
        .filter(|r| r["decision"] == decision)
        .collect()
}

/// The executor's records of fixes that ran (or tried to): those with an outcome.
fn executions(records: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    records
        .iter()
        .filter(|r| r["worker"] == "executor" && r["outcome"].is_string())
        .collect()
}

/// The request with this id in `approvals list --json`.
fn request(w: &World, id: &str) -> serde_json::Value {
    let doc = w.approval_list();
    doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("request {id} not listed: {doc:#}"))
}

/// Sends a body to one of the world's queues as this IAM user (SQS stamps their id).
async fn send_as(w: &World, user: &IamUser, which: &str, body: &str) {
    let sqs = aws_sdk_sqs::Client::new(&sdk_config_as(&user.access_key).await);
    redress_workers::aws::sqs::Queue::resolve(&sqs, &w.queue_name(which))
        .await
        .unwrap()
        .send(body)
        .await
        .unwrap();
}

/// A world whose policy lets only alice approve, with one SSH-open group waiting.
async fn alice_world(test: &str, extra: &str) -> (World, IamUser, IamUser, String, String) {
    let w = World::new(test, &policy("")).await;
    let alice = w.iam_user("alice").await;
    let mallory = w.iam_user("mallory").await;
    w.set_policy(&format!("{extra}\n{}", only(&alice.arn)));
    let sg = w
        .security_group("ssh", &[(22, "0.0.0.0/0"), (443, "10.0.0.0/8")])
        .await;
    w.send_event(&EventBuilder::new("restricted-ssh", SG, &sg))
        .await;
    w.run_once(&[]);
    let ids = w.approval_ids();
    assert_eq!(ids.len(), 1);
    let id = ids[0].clone();
    (w, alice, mallory, sg, id)
}

#[tokio::test]
async fn only_the_approver_aws_vouches_for_can_approve_and_forgery_changes_nothing() {
    let (w, alice, mallory, sg, id) = alice_world("trust-identity", "").await;
    assert!(alice
        .arn
        .starts_with("arn:aws:iam::123456789012:user/alice-"));
    assert!(alice.user_id.starts_with("AIDA"));

    // mallory may not approve: exit 2, and the request stays listed.
    let out = w.redress_as(&mallory.access_key, &["approvals", "approve", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not on the approvers list"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(w.approval_ids(), vec![id.clone()]);

    // alice approves; take her task off the queue to replay it as mallory would.
    let out = w.redress_as(&alice.access_key, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let sent = w.drain("tasks").await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].sender_id.as_deref(), Some(alice.user_id.as_str()));
    let alices = sent[0].body.clone();

    // mallory re-sends it with the identity fields changed to hers: refused.
    let mut forged: Task = serde_json::from_str(&alices).unwrap();
    let a = forged.approval.as_mut().unwrap();
    a.approved_by = mallory.arn.clone();
    a.approver_user_id = mallory.user_id.clone();
    send_as(
        &w,
        &mallory,
        "tasks",
        &serde_json::to_string(&forged).unwrap(),
    )
    .await;
    // ... and unchanged, claiming alice: refused too.
    send_as(&w, &mallory, "tasks", &alices).await;
    let records = w.run_once(&[]);
    assert!(executions(&records).is_empty(), "{records:#?}");
    assert_eq!(w.ingress(&sg).await.len(), 2, "nothing changed");
    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 2);
    for m in &dead {
        assert_eq!(m.attributes["redress.error_class"], "refused");
        let why = &m.attributes["redress.error"];
        assert!(
            why.contains(&mallory.user_id) && why.contains("not on the policy's approvers list"),
            "{why}"
        );
    }
    // The audit says why, and the request is back for a real decision.
    let refused = with(&records, "dead_lettered");
    assert_eq!(refused.len(), 2, "{records:#?}");
    assert!(refused
        .iter()
        .all(|r| reason(r).starts_with("approval refused")));
    assert!(refused.iter().all(|r| r.get("actor").is_none()));
    assert_eq!(w.approval_ids(), vec![id.clone()]);
    assert!(request(&w, &id)["request"]["returned"]["why"]
        .as_str()
        .unwrap()
        .contains("approval refused"));

    // alice herself cannot bend her approval either: each field that disagrees with
    // what AWS asserts, or with the request, is a refusal.
    let original: Task = serde_json::from_str(&alices).unwrap();
    type Bend = Box<dyn Fn(&mut redress::message::Approval)>;
    let bent: [(&str, Bend); 4] = [
        (
            "names",
            Box::new(|a| a.approved_by = "arn:aws:iam::123456789012:user/someone".into()),
        ),
        (
            "approver id",
            Box::new(|a| a.approver_user_id = "AIDAOTHER000000000001".into()),
        ),
        ("no action digest", Box::new(|a| a.action_digest = None)),
        (
            "does not belong",
            Box::new(|a| a.request_id = "ap-0000000000".into()),
        ),
    ];
    for (_, bend) in &bent {
        let mut t = original.clone();
        bend(t.approval.as_mut().unwrap());
        send_as(&w, &alice, "tasks", &serde_json::to_string(&t).unwrap()).await;
    }
    let records = w.run_once(&[]);
    assert!(executions(&records).is_empty(), "{records:#?}");
    assert_eq!(w.ingress(&sg).await.len(), 2, "nothing changed");
    let why: Vec<String> = w
        .drain("tasks-dlq")
        .await
        .iter()
        .map(|m| m.attributes["redress.error"].clone())
        .collect();
    assert_eq!(why.len(), bent.len(), "{why:?}");
    for (what, _) in &bent {
        assert!(why.iter().any(|y| y.contains(what)), "{what}: {why:?}");
    }

    // alice's own message, sent by alice: fixed, with the actor AWS verified.
    send_as(&w, &alice, "tasks", &alices).await;
    let records = w.run_once(&[]);
    let run = executions(&records);
    assert_eq!(run.len(), 1, "{records:#?}");
    assert_eq!(run[0]["outcome"], "succeeded");
    assert_eq!(run[0]["actor"], alice.arn.as_str());
    assert_eq!(run[0]["actor_id"], alice.user_id.as_str());
    assert_eq!(w.ingress(&sg).await, vec![(443, "10.0.0.0/8".to_string())]);
}

#[tokio::test]
async fn the_kill_switch_holds_an_approved_fix_until_it_is_approved_again() {
    let switch = format!("/trust-kill-{}/switch", std::process::id());
    let limits =
        format!("[limits]\nkill_switch_parameter = \"{switch}\"\nkill_switch_cache = \"1s\"\n");
    let (w, alice, _, sg, id) = alice_world("trust-kill", &limits).await;
    w.put_parameter(&switch, "on").await;

    let out = w.redress_as(&alice.access_key, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = w.run_once(&[]);
    assert!(executions(&records).is_empty(), "{records:#?}");
    assert_eq!(w.ingress(&sg).await.len(), 2, "the group stays open");
    let held = request(&w, &id);
    let returned = &held["request"]["returned"];
    assert!(
        returned["why"]
            .as_str()
            .unwrap()
            .starts_with("held: kill switch"),
        "{held:#}"
    );
    assert_eq!(returned["approved_by"], alice.arn.as_str());
    assert!(returned["approved_at"].is_string());
    let shown = w.redress(&["approvals", "show", &id]);
    assert!(
        text(&shown.stdout).contains("held: kill switch"),
        "{}",
        text(&shown.stdout)
    );

    // Switched off, one re-approval runs it.
    w.put_parameter(&switch, "off").await;
    let out = w.redress_as(&alice.access_key, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = w.run_once(&[]);
    let run = executions(&records);
    assert_eq!(run.len(), 1, "{records:#?}");
    assert_eq!(run[0]["outcome"], "succeeded");
    assert_eq!(run[0]["actor"], alice.arn.as_str());
    assert_eq!(w.ingress(&sg).await.len(), 1);
    assert!(w.approval_ids().is_empty());
}

#[tokio::test]
async fn a_policy_edit_after_approval_sends_the_request_back_with_the_new_action() {
    let (w, alice, _, sg, id) = alice_world("trust-digest", "").await;
    let out = w.redress_as(&alice.access_key, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The policy now closes 443 as well: not what alice saw.
    let edited = only(&alice.arn).replace("ports = [22, 3389]", "ports = [22, 443, 3389]");
    assert_ne!(edited, only(&alice.arn));
    w.set_policy(&edited);
    let records = w.run_once(&[]);
    assert!(executions(&records).is_empty(), "{records:#?}");
    assert_eq!(w.ingress(&sg).await.len(), 2, "nothing changed");
    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].attributes["redress.error"].contains("is not the one the policy now renders"),
        "{:?}",
        dead[0].attributes
    );
    let back = request(&w, &id);
    assert_eq!(
        back["request"]["proposed_action"]["fix"]["ports"],
        serde_json::json!([22, 443, 3389])
    );
    // A fresh approval of the new action runs it.
    let out = w.redress_as(&alice.access_key, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run = w.run_once(&[]);
    assert_eq!(executions(&run)[0]["outcome"], "succeeded", "{run:#?}");
}

#[tokio::test]
async fn a_world_open_range_under_the_medium_rule_goes_to_approval() {
    let medium = policy_fixture("ftp-medium");
    let w = World::new("trust-severity", &format!("{}{medium}", policy(""))).await;
    let wide = crate::support::security_group_range(&w, "wide", 0, 65535).await;
    let narrow = crate::support::security_group_range(&w, "narrow", 21, 21).await;
    for sg in [&wide, &narrow] {
        w.send_event(&EventBuilder::new("restricted-common-ports", SG, sg))
            .await;
    }
    let records = w.run_once(&[]);
    let fixed: Vec<&str> = executions(&records)
        .iter()
        .filter(|r| r["outcome"] == "succeeded")
        .map(|r| r["resource_id"].as_str().unwrap())
        .collect();
    assert_eq!(fixed, vec![narrow.as_str()], "{records:#?}");
    assert_eq!(
        w.ingress(&wide).await.len(),
        1,
        "0-65535 still open: SSH needs approval"
    );
    let asked = with(&records, "approval_requested");
    assert_eq!(asked.len(), 1, "{records:#?}");
    assert_eq!(asked[0]["resource_id"], wide.as_str());
    assert!(
        reason(asked[0]).contains("also exposes port 22")
            && reason(asked[0]).contains("sg-open-admin-ports"),
        "{}",
        reason(asked[0])
    );
}

#[tokio::test]
async fn a_secure_string_baseline_is_never_written_into_a_string() {
    let p = std::process::id();
    let drift = policy_fixtures(&["param-drift"], &[("prefix", &format!("/tt{p}/"))]);
    let w = World::new("trust-secret", &drift).await;
    let secret = "s3cret-do-not-print";
    w.clients
        .ssm
        .put_parameter()
        .name(format!("/tt{p}/approved/db"))
        .value(secret)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let current = format!("/tt{p}/current/db");
    w.put_parameter(&current, "drifted").await;
    w.send_event(&EventBuilder::new(
        "ssm-parameter-drift",
        "AWS::SSM::Parameter",
        &current,
    ))
    .await;
    let out = w.redress(&["run", "--once"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains(secret) && !text(&out.stdout).contains(secret));

    assert_eq!(
        w.parameter(&current).await,
        "drifted",
        "the value is not written"
    );
    assert_eq!(w.parameter_type(&current).await, "String");
    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["redress.error_class"], "refused");
    assert!(dead[0].attributes["redress.error"].contains("SecureString"));
    assert!(!dead[0].attributes["redress.error"].contains(secret));
}

/// Bytes a terminal would act on: C0 controls but newline, DEL, C1 controls (UTF-8
/// C2 80-9F), and the bidi overrides and isolates (E2 80 AA-AE, E2 81 A6-A9).
fn control_bytes(out: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(out);
    s.chars()
        .filter(|&c| {
            (c.is_control() && c != '\n')
                || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
        })
        .map(|c| format!("U+{:04X}", c as u32))
        .collect()
}

#[tokio::test]
async fn hostile_text_never_reaches_the_terminal() {
    let hostile =
        "ok \u{1b}]52;c;Y3VybCBldmlsIHwgc2g=\u{7} \u{1b}[2K \u{1b}[31mred\u{9b}0m \u{202e}gpj.exe";
    let w = World::new("trust-text", &policy("")).await;
    let sg = w.security_group("ssh", &[(22, "0.0.0.0/0")]).await;
    let finding = EventBuilder::new("restricted-ssh", SG, &sg).annotation(hostile);
    w.send("events", &finding.build()).await;
    // And an event so bad it is dead-lettered, its resource id carrying the same text.
    let bad = EventBuilder::new("restricted-ssh", SG, hostile).annotation(hostile);
    w.send("events", &bad.build()).await;
    w.run_once(&[]);
    let id = w.approval_ids()[0].clone();

    let doc = w.approval_list();
    assert_eq!(
        doc["requests"][0]["request"]["task"]["finding"]["annotation"], hostile,
        "--json keeps the data"
    );
    // Anyone who can write to the approvals queue can also put hostile text in the
    // fields a list shows.
    // (Its id must be its task's, or the board leaves it out.)
    let mut forged: redress::message::ApprovalRequest =
        serde_json::from_value(doc["requests"][0]["request"].clone()).unwrap();
    forged.task.finding.resource_id = hostile.into();
    forged.task.rule_id = hostile.into();
    forged.id = forged.task.approval_id();
    let message = redress::message::ApprovalsMessage::Request(Box::new(forged));
    w.send("approvals", &serde_json::to_string(&message).unwrap())
        .await;
    for (args, shows_it) in [
        (vec!["approvals", "list"], true),
        (vec!["approvals", "show", &id], true),
        (vec!["dlq", "list", "events"], true),
    ] {
        let out = w.redress(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let printed = text(&out.stdout);
        assert!(
            !shows_it || printed.contains("ok "),
            "{args:?}: the field is shown: {printed}"
        );
        assert_eq!(
            control_bytes(&out.stdout),
            Vec::<String>::new(),
            "{args:?}: {printed:?}"
        );
    }
}

#[tokio::test]
async fn replay_sends_to_the_dlqs_own_source_and_an_approval_becomes_a_new_request() {
    let (w, alice, _, sg, id) = alice_world("trust-replay", "").await;
    let out = w.redress_as(&alice.access_key, &["approvals", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let approved = w.drain("tasks").await.remove(0).body;
    assert!(w.approval_ids().is_empty());
    // In the tasks DLQ, claiming (in its own attributes) to come from the events queue.
    let events_queue = w.queue_name("events");
    w.send_many(
        "tasks-dlq",
        &[approved],
        &[
            ("redress.source_queue", events_queue.as_str()),
            ("redress.error_class", "exhausted"),
            ("redress.error", "test"),
        ],
    )
    .await;
    let out = w.redress(&["dlq", "replay", "tasks"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        w.drain("events").await.is_empty(),
        "nothing sent where the message said"
    );
    let replayed = w.drain("tasks").await;
    assert_eq!(replayed.len(), 1, "sent to the DLQ's own source queue");
    let task: Task = serde_json::from_str(&replayed[0].body).unwrap();
    assert_eq!(task.approval, None, "the approval is not replayed");
    // The executor turns it into a new request instead of fixing it.
    w.send("tasks", &replayed[0].body).await;
    let records = w.run_once(&[]);
    assert!(executions(&records).is_empty(), "{records:#?}");
    assert_eq!(w.ingress(&sg).await.len(), 2);
    let ids = w.approval_ids();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], id, "a new request");
}

#[tokio::test]
async fn the_exemption_tag_is_ignored_unless_the_policy_names_it() {
    let w = World::new("trust-tag", &policy("")).await;
    w.set_policy(&policy_fixture("ssh-low"));
    let sg = w.security_group("tagged", &[(22, "0.0.0.0/0")]).await;
    w.tag(&sg, "redress:exempt", "true").await;
    w.send_event(&EventBuilder::new("restricted-ssh", SG, &sg))
        .await;
    let records = w.run_once(&[]);
    assert!(with(&records, "exempt_by_tag").is_empty(), "{records:#?}");
    assert!(
        w.ingress(&sg).await.is_empty(),
        "fixed: the tag means nothing until the policy names it"
    );
}

#[tokio::test]
async fn a_native_redrive_of_the_tasks_dlq_is_refused() {
    let w = World::new("trust-redrive", &policy("")).await;
    let out = w.redress(&["dlq", "redrive", "tasks"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("dlq replay tasks"),
        "{}",
        text(&out.stderr)
    );
}
