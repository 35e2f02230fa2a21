//! Operators see why messages failed and replay them safely.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use redress::message::Task;
use redress::policy::Severity;

use crate::support::{
    audit, endpoint, executions, logs, policy_fixtures, root, text, wait_until, EventBuilder,
    World, ACCOUNT, REGION,
};

/// The S3 encryption runbook and drift over the whole parameter store.
fn policy() -> String {
    policy_fixtures(&["s3-encryption", "param-drift"], &[("prefix", "/")])
}

fn list(w: &World, queue: &str) -> serde_json::Value {
    let out = w.redress(&["dlq", "list", queue, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn task_body(rule: &str, resource: &str) -> String {
    let task = EventBuilder::new("ssm-parameter-drift", "AWS::SSM::Parameter", resource)
        .task(rule, Severity::Medium);
    serde_json::to_string(&task).unwrap()
}

/// Creates an S3 bucket on the local stack (the fix for the failing runbook's cause).
fn create_bucket(name: &str) {
    let script = format!(
        "import boto3; boto3.client('s3', region_name='{REGION}', endpoint_url='{}', \
         aws_access_key_id='test', aws_secret_access_key='test').create_bucket(Bucket='{name}')",
        endpoint()
    );
    let status = Command::new(root().join(".venv/bin/python"))
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn a_failed_runbook_is_listed_then_replayed_after_the_cause_is_fixed() {
    let w = World::new("dlq-runbook", &policy()).await;
    let bucket = format!("{}-bucket", w.prefix);
    w.send_event(&EventBuilder::new(
        "s3-bucket-server-side-encryption-enabled",
        "AWS::S3::Bucket",
        &bucket,
    ))
    .await;
    let first = w.run_once(&[]);
    assert_eq!(executions(&first)[0]["outcome"], "failed");

    let doc = list(&w, "tasks");
    let rows = doc["messages"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let s = &rows[0]["summary"];
    assert_eq!(s["error_class"], "permanent");
    assert_eq!(s["rule"], "s3-encryption");
    assert_eq!(s["resource"], bucket.as_str());
    assert!(s["error"].as_str().unwrap().contains("ended Failed"), "{s}");
    assert_eq!(doc["by_error_class"]["permanent"], 1);
    // The table shows the same message.
    let table = w.redress(&["dlq", "list", "tasks"]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    assert!(
        text(&table.stdout).contains(&bucket),
        "{}",
        text(&table.stdout)
    );

    create_bucket(&bucket);
    let out = w.redress(&["dlq", "replay", "tasks", "--log-format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replayed = audit(&out);
    assert_eq!(replayed.len(), 1, "{replayed:#?}");
    assert_eq!(replayed[0]["decision"], "replayed");
    assert_eq!(
        replayed[0]["actor"],
        format!("arn:aws:sts::{ACCOUNT}:user/test").as_str()
    );

    let second = w.run_once(&[]);
    let run = executions(&second);
    assert_eq!(run.len(), 1);
    assert_eq!(run[0]["outcome"], "succeeded", "{run:#?}");
    assert_ne!(
        run[0]["execution_id"],
        executions(&first)[0]["execution_id"],
        "a new execution"
    );
    assert!(w.drain("tasks-dlq").await.is_empty());
}

#[tokio::test]
async fn replay_selects_by_rule_and_dry_run_moves_nothing() {
    let w = World::new("dlq-filter", &policy()).await;
    let bodies = vec![
        task_body("param-drift", "/current/a"),
        task_body("param-drift", "/current/b"),
        task_body("s3-encryption", "/current/c"),
    ];
    w.send_many(
        "tasks-dlq",
        &bodies,
        &[
            ("redress.error_class", "permanent"),
            ("redress.error", "boom"),
        ],
    )
    .await;

    let dry = w.redress(&["dlq", "replay", "tasks", "--rule", "param-*", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let out = text(&dry.stdout);
    assert_eq!(
        out.matches("would replay ").count(),
        3,
        "2 lines + summary: {out}"
    );
    assert!(out.contains("would replay 2,"), "{out}");
    assert!(w.drain("tasks").await.is_empty(), "dry run moved nothing");
    assert_eq!(list(&w, "tasks")["messages"].as_array().unwrap().len(), 3);

    let real = w.redress(&[
        "dlq",
        "replay",
        "tasks",
        "--rule",
        "param-*",
        "--resource",
        "/current/b",
    ]);
    assert!(real.status.success(), "{}", text(&real.stderr));
    let moved = w.drain("tasks").await;
    assert_eq!(moved.len(), 1);
    let task: Task = serde_json::from_str(&moved[0].body).unwrap();
    assert_eq!(
        (task.rule_id.as_str(), task.finding.resource_id.as_str()),
        ("param-drift", "/current/b")
    );
    assert_eq!(
        task.generation, 1,
        "a replayed task gets a fresh idempotency token"
    );
    assert_eq!(moved[0].attributes["redress.replay_count"], "1");
    assert_eq!(list(&w, "tasks")["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn five_hundred_dead_letters_replay_exactly_once_and_a_killed_replay_loses_none() {
    let w = World::new("dlq-500", &policy()).await;
    let bodies: Vec<String> = (0..500)
        .map(|i| format!("{{\"dead-letter\":{i}}}"))
        .collect();
    let expected: BTreeSet<String> = bodies.iter().cloned().collect();

    // A clean run: every body moved once, with progress shown.
    w.send_many("events-dlq", &bodies, &[]).await;
    let out = w.redress(&["dlq", "replay", "events", "--log-format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replayed = audit(&out)
        .iter()
        .filter(|r| r["decision"] == "replayed")
        .count();
    assert_eq!(replayed, 500);
    // Progress on the way (a log record with the count so far), not only at the end.
    let progress: Vec<u64> = logs(&out)
        .iter()
        .filter_map(|l| l["fields"]["replayed"].as_u64())
        .collect();
    assert!(
        progress.iter().any(|n| (1..500).contains(n)),
        "progress: {progress:?}: {}",
        text(&out.stderr)
    );
    let moved: Vec<String> = w
        .drain("events")
        .await
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(moved.len(), 500, "exactly once each");
    assert_eq!(moved.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(w.drain("events-dlq").await.is_empty());

    // Killed mid-way, then run again: nothing lost (a message may be duplicated).
    w.send_many("events-dlq", &bodies, &[]).await;
    let mut child = w
        .command_as("test", &["dlq", "replay", "events"])
        .env("REDRESS_DLQ_VISIBILITY", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed as soon as its first messages reach the source queue.
    wait_until(
        Duration::from_secs(30),
        "the replay to move its first message",
        || async { w.depth("events").await.0 > 0 },
    )
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // It really was mid-way: some moved, some not yet.
    let (left, held) = w.depth("events-dlq").await;
    let (moved_so_far, _) = w.depth("events").await;
    assert!(
        left + held > 0 && moved_so_far > 0,
        "kill was not mid-way: {left}+{held} left, {moved_so_far} moved"
    );
    eprintln!(
        "killed mid-way: {moved_so_far} moved, {} still in the DLQ",
        left + held
    );
    // What it had read and not moved becomes visible again (after 3 s).
    wait_until(
        Duration::from_secs(30),
        "the killed replay's messages to be visible again",
        || async { w.depth("events-dlq").await.1 == 0 },
    )
    .await;
    let again = w.redress(&["dlq", "replay", "events"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for m in w.drain("events").await {
        *counts.entry(m.body).or_default() += 1;
    }
    assert_eq!(
        counts.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "none lost"
    );
    assert!(w.drain("events-dlq").await.is_empty());
}

#[tokio::test]
async fn a_message_past_the_replay_limit_needs_force() {
    let w = World::new("dlq-limit", &policy()).await;
    w.send_many(
        "tasks-dlq",
        &[task_body("param-drift", "/current/x")],
        &[
            ("redress.error_class", "permanent"),
            ("redress.error", "boom"),
            ("redress.replay_count", "3"),
        ],
    )
    .await;
    let out = w.redress(&["dlq", "replay", "tasks"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("replayed 0, skipped 1 over the replay limit"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).contains("replayed 3 times already"));
    assert!(w.drain("tasks").await.is_empty());
    let out = w.redress(&["dlq", "replay", "tasks", "--force"]);
    assert!(out.status.success());
    let moved = w.drain("tasks").await;
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].attributes["redress.replay_count"], "4");
}

#[tokio::test]
async fn every_bad_fixture_is_listed_with_a_readable_reason_and_purge_needs_yes() {
    let w = World::new("dlq-bad", &policy()).await;
    for entry in std::fs::read_dir(root().join("tests/fixtures/events/bad")).unwrap() {
        w.send(
            "events",
            &std::fs::read_to_string(entry.unwrap().path()).unwrap(),
        )
        .await;
    }
    w.run_once(&[]);
    let doc = list(&w, "events");
    let rows = doc["messages"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for r in rows {
        let error = r["summary"]["error"].as_str().unwrap();
        assert!(
            error.starts_with("invalid event: ") && error.len() > 20,
            "{error}"
        );
    }
    let resources: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["summary"]["resource"].as_str())
        .collect();
    assert!(
        resources.contains(&"sg-1; rm -rf /"),
        "parsed from a malformed body: {resources:?}"
    );
    assert_eq!(doc["by_error_class"]["invalid_input"], 6);

    let refused = w.redress(&["dlq", "purge", "events"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("without --yes"));
    let out = w.redress(&["dlq", "purge", "events", "--yes", "--log-format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        audit(&out)
            .iter()
            .filter(|r| r["decision"] == "purged")
            .count(),
        6
    );
    assert!(w.drain("events-dlq").await.is_empty());
}
