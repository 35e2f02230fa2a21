//! Long work and shutdown: the visibility heartbeat keeps a long runbook from being
//! redelivered mid-run; SIGTERM hands back unstarted messages at once, lets work in
//! progress finish within the grace period, and exits 0.

use std::process::Stdio;
use std::time::{Duration, Instant};

use redress::event::parse_message;
use redress::message::{Finding, Task};
use redress::policy::Severity;

use crate::support::{audit, event, executions, signal, text, World};

const BUCKET: &str = "AWS::S3::Bucket";

/// A rule whose runbook takes `seconds` and changes nothing.
fn sleep_policy(seconds: u32) -> String {
    format!(
        r#"
[[rule]]
id = "slow"
config_rule = "slow-rule"
severity = "LOW"
action = {{ runbook = "Redress-Test-Sleep", parameters = {{ Seconds = ["{seconds}"] }} }}
"#
    )
}

/// A task for the slow rule on `resource` (each call is a distinct finding).
fn task(resource: &str) -> String {
    let e = parse_message(&event("slow-rule", BUCKET, resource, "NON_COMPLIANT")).unwrap();
    serde_json::to_string(&Task::new("slow", Severity::Low, Finding::from_event(&e))).unwrap()
}

/// Waits for the worker to exit; it must exit 0.
async fn exits_0(child: std::process::Child) -> std::process::Output {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        text(&out.stderr)
    );
    out
}

/// Waits until `n` messages of the tasks queue are in flight.
async fn until_in_flight(w: &World, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.depth("tasks").await != (0, n) {
        assert!(
            Instant::now() < deadline,
            "never {n} in flight: {:?}",
            w.depth("tasks").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_heartbeat_keeps_a_long_runbook_from_being_redelivered() {
    // The runbook takes 7 s; the queue would hand the task out again after 3 s.
    let w = World::new("heartbeat", &sleep_policy(7)).await;
    w.set_visibility("tasks", 3).await;

    w.send("tasks", &task(&format!("{}-on", w.prefix))).await;
    // Two receive loops (concurrency 20), so a redelivered copy would be picked up.
    let records = w.run_once(&["--heartbeat", "1", "--concurrency", "20"]);
    let done = executions(&records);
    assert_eq!(done.len(), 1, "handled more than once: {records:#?}");
    assert_eq!(done[0]["outcome"], "succeeded");

    // Control: without the heartbeat the same task is redelivered mid-run; the copy
    // waits for the resource's lock and is then recognised as a duplicate.
    w.send("tasks", &task(&format!("{}-off", w.prefix))).await;
    let records = w.run_once(&["--heartbeat", "0", "--concurrency", "20"]);
    let done = executions(&records);
    assert_eq!(done.len(), 2, "{records:#?}");
    assert!(done
        .iter()
        .any(|r| r["reason"].as_str().unwrap_or("").starts_with("duplicate")));
    assert_eq!(
        done.iter().filter(|r| r["outcome"] == "succeeded").count(),
        1
    );
}

#[tokio::test]
async fn sigterm_finishes_work_in_progress_hands_back_the_rest_and_exits_0() {
    let w = World::new("sigterm", &sleep_policy(3)).await;
    // Three findings on one resource: one runs, two wait for its lock.
    let bucket = format!("{}-b", w.prefix);
    for _ in 0..3 {
        w.send("tasks", &task(&bucket)).await;
    }
    let child = w
        .command_as("test", &["executor"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until_in_flight(&w, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&child, "TERM");
    let stopped = Instant::now();
    // The two unstarted ones are visible again at once, long before the runbook ends.
    let deadline = Instant::now() + Duration::from_millis(1500);
    while w.depth("tasks").await != (2, 1) {
        assert!(
            Instant::now() < deadline,
            "unstarted tasks not handed back: {:?}",
            w.depth("tasks").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = exits_0(child).await;
    assert!(stopped.elapsed() < Duration::from_secs(10));
    let records = audit(&out);
    let done = executions(&records);
    assert_eq!(done.len(), 1, "{done:#?}");
    assert_eq!(done[0]["outcome"], "succeeded");
    assert_eq!(w.depth("tasks").await, (2, 0));
}

#[tokio::test]
async fn work_still_running_at_the_deadline_is_abandoned_and_its_message_returns() {
    let w = World::new("deadline", &sleep_policy(60)).await;
    w.send("tasks", &task(&format!("{}-b", w.prefix))).await;
    let child = w
        .command_as("test", &["executor", "--shutdown-grace", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until_in_flight(&w, 1).await;
    signal(&child, "TERM");
    let stopped = Instant::now();
    let out = exits_0(child).await;
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "took {:?}",
        stopped.elapsed()
    );
    assert!(text(&out.stderr).contains("shutdown deadline passed"));
    assert!(executions(&audit(&out)).is_empty());
    assert_eq!(
        w.depth("tasks").await,
        (1, 0),
        "message not made visible again"
    );
}
