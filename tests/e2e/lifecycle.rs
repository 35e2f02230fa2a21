//! Long work and shutdown: the visibility heartbeat keeps a long runbook from being
//! redelivered mid-run; SIGTERM hands back unstarted messages at once, lets work in
//! progress finish within the grace period, and exits 0.

use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::{AutomationExecutionFilter, AutomationExecutionFilterKey};
use redress::policy::Severity;

use crate::support::{
    audit, executions, logs, policy_fixtures, signal, text, wait_for, EventBuilder, World,
};

const BUCKET: &str = "AWS::S3::Bucket";

/// A rule whose runbook takes `seconds` and changes nothing. Each test here uses its own
/// duration, which tells its execution apart (see [`running_sleep`]).
fn sleep_policy(seconds: u32) -> String {
    policy_fixtures(&["slow"], &[("seconds", &seconds.to_string())])
}

/// A task for the slow rule on `resource` (each call is a distinct finding), which
/// Config holds.
async fn task(w: &World, resource: &str) -> String {
    let finding = w
        .config_holds(&EventBuilder::new("slow-rule", BUCKET, resource))
        .await;
    serde_json::to_string(&finding.task("slow", Severity::Low)).unwrap()
}

/// The id of the running `Redress-Test-Sleep` execution of `seconds`, or what runs.
async fn running_sleep(w: &World, seconds: u32) -> Result<String, String> {
    let filter = |key, value: &str| {
        AutomationExecutionFilter::builder()
            .key(key)
            .values(value)
            .build()
            .unwrap()
    };
    let list = w
        .clients
        .ssm
        .describe_automation_executions()
        .filters(filter(
            AutomationExecutionFilterKey::DocumentNamePrefix,
            "Redress-Test-Sleep",
        ))
        .filters(filter(
            AutomationExecutionFilterKey::ExecutionStatus,
            "InProgress",
        ))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let mut running = Vec::new();
    for meta in list.automation_execution_metadata_list() {
        let id = meta.automation_execution_id().unwrap_or_default();
        let exec = w
            .clients
            .ssm
            .get_automation_execution()
            .automation_execution_id(id)
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let params = exec
            .automation_execution()
            .and_then(|e| e.parameters())
            .cloned()
            .unwrap_or_default();
        if params.get("Seconds") == Some(&vec![seconds.to_string()]) {
            return Ok(id.to_string());
        }
        running.push(params);
    }
    Err(format!("running: {running:?}"))
}

/// The status of an automation execution.
async fn execution_status(w: &World, id: &str) -> String {
    let exec = w
        .clients
        .ssm
        .get_automation_execution()
        .automation_execution_id(id)
        .send()
        .await
        .unwrap();
    exec.automation_execution()
        .and_then(|e| e.automation_execution_status())
        .map(|s| s.as_str().to_string())
        .unwrap_or_default()
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

/// Waits until `n` messages of the tasks queue are in flight (and none visible).
async fn until_in_flight(w: &World, n: u64) {
    wait_for(
        Duration::from_secs(20),
        &format!("{n} tasks in flight"),
        || async {
            match w.depth("tasks").await {
                d if d == (0, n) => Ok(()),
                d => Err(d),
            }
        },
    )
    .await
}

#[tokio::test]
async fn the_heartbeat_keeps_a_long_runbook_from_being_redelivered() {
    // The runbook takes 7 s; the queue would hand the task out again after 3 s.
    let w = World::new("heartbeat", &sleep_policy(7)).await;
    w.set_visibility("tasks", 3).await;

    w.send("tasks", &task(&w, &format!("{}-on", w.prefix)).await)
        .await;
    // Two receive loops (concurrency 20), so a redelivered copy would be picked up.
    let records = w.run_once(&["--heartbeat", "1", "--concurrency", "20"]);
    let done = executions(&records);
    assert_eq!(done.len(), 1, "handled more than once: {records:#?}");
    assert_eq!(done[0]["outcome"], "succeeded");

    // Control: without the heartbeat the same task is redelivered mid-run (every 3 s);
    // each copy waits for the resource's lock and is then recognised as a duplicate.
    w.send("tasks", &task(&w, &format!("{}-off", w.prefix)).await)
        .await;
    let records = w.run_once(&["--heartbeat", "0", "--concurrency", "20"]);
    let done = executions(&records);
    assert!(done.len() >= 2, "not redelivered: {records:#?}");
    assert!(done
        .iter()
        .filter(|r| r["outcome"] != "succeeded")
        .all(|r| r["reason"].as_str().unwrap_or("").starts_with("duplicate")));
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
        w.send("tasks", &task(&w, &bucket).await).await;
    }
    let child = w
        .command_as("test", &["executor"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until_in_flight(&w, 3).await;
    // Work in progress: the runbook of the one holding the lock has started.
    let running = wait_for(Duration::from_secs(20), "the runbook to start", || async {
        running_sleep(&w, 3).await
    })
    .await;
    signal(&child, "TERM");
    let stopped = Instant::now();
    // The two unstarted ones are visible again while the runbook still runs.
    wait_for(
        Duration::from_secs(20),
        "the unstarted tasks to be handed back",
        || async {
            match w.depth("tasks").await {
                (2, 1) => Ok(()),
                d => Err(d),
            }
        },
    )
    .await;
    assert_eq!(
        execution_status(&w, &running).await,
        "InProgress",
        "handed back only after the runbook ended"
    );
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
    w.send("tasks", &task(&w, &format!("{}-b", w.prefix)).await)
        .await;
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
    assert!(
        logs(&out).iter().any(|l| l["level"] == "WARN"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("shutdown deadline passed"))),
        "{}",
        text(&out.stderr)
    );
    assert!(executions(&audit(&out)).is_empty());
    assert_eq!(
        w.depth("tasks").await,
        (1, 0),
        "message not made visible again"
    );
}
