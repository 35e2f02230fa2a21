//! Limits for the fleet (issue 16, acceptance 3): two executor processes on one tasks
//! queue with one ledger and `max_fixes_per_minute = 5` make at most five fixes between
//! them, the rest become approval requests, and a finding delivered twice is acted on
//! once. The state of the world decides: the groups EC2 still shows open, the approvals
//! queue, the ledger and both executors' audit.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redress::policy::Severity;
use serde_json::Value;

use crate::support::{policy_fixture, reason, signal, text, wait_until, EventBuilder, World};

const SG: &str = "AWS::EC2::SecurityGroup";
/// The fleet's cap.
const CAP: usize = 5;
/// Distinct findings, more than twice the cap: two processes counting alone would fix more.
const FINDINGS: usize = 12;

/// JSON log lines (audit and others) a process wrote to `log`.
fn lines(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn audit(log: &Path) -> Vec<Value> {
    lines(log)
        .into_iter()
        .filter(|v| v["target"] == "audit")
        .collect()
}

/// `redress executor` as a long-running worker with the world's ledger, one message at a
/// time (so both processes take turns at the queue), its stderr in `log`.
fn executor(w: &World, table: &str, log: &Path) -> Child {
    w.command(&["executor", "--concurrency", "1"])
        .env("REDRESS_LEDGER_TABLE", table)
        // A held duplicate is tried again when the winner's lease lapses: soon.
        .env("REDRESS_LEDGER_LEASE", "8s")
        .stdout(Stdio::null())
        .stderr(Stdio::from(File::create(log).unwrap()))
        .spawn()
        .expect("start an executor")
}

/// Waits, if need be, for a minute with at least 30 seconds left: the cap is counted per
/// calendar minute (and the previous one, weighted), and the run must fit in one.
async fn early_in_a_minute() {
    let s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if s > 30 {
        tokio::time::sleep(Duration::from_secs(61 - s)).await;
    }
}

/// The groups whose world-open SSH is gone.
async fn revoked(w: &World, groups: &[String]) -> BTreeSet<String> {
    let mut gone = BTreeSet::new();
    for g in groups {
        if w.ingress(g).await.is_empty() {
            gone.insert(g.clone());
        }
    }
    gone
}

#[tokio::test]
async fn two_executors_with_one_ledger_make_at_most_the_cap_s_fixes_and_a_duplicate_once() {
    let policy = format!(
        "[routing]\nauto_max_severity = \"MEDIUM\"\n[config]\nverify = false\n[limits]\nmax_fixes_per_minute = {CAP}\n{}",
        policy_fixture("ssh-low")
    );
    let w = World::new("fleet", &policy).await;
    let table = format!("{}-ledger", w.prefix);
    let out = w
        .command(&["provision"])
        .env("REDRESS_LEDGER_TABLE", &table)
        .output()
        .unwrap();
    assert!(out.status.success(), "provision: {}", text(&out.stderr));

    let mut groups = Vec::new();
    for i in 0..FINDINGS {
        groups.push(
            w.security_group(&format!("g{i}"), &[(22, "0.0.0.0/0")])
                .await,
        );
    }
    let task = |sg: &str| {
        let t = EventBuilder::new("restricted-ssh", SG, sg).task("ssh", Severity::Low);
        serde_json::to_string(&t).unwrap()
    };
    // The duplicated finding first, twice; the second copy once the first is taken, while
    // the process that took it (one message at a time) is busy with it, so that most runs
    // deliver the copies to different processes.
    // One body sent twice: the same finding (a later evaluation would be a new one).
    let dup = groups[0].clone();
    let dup_body = task(&dup);
    let mut bodies = vec![dup_body.clone()];
    bodies.extend(groups[1..].iter().map(|g| task(g)));

    let logs = [w.dir.join("executor-a.log"), w.dir.join("executor-b.log")];
    let mut children: Vec<Child> = logs.iter().map(|l| executor(&w, &table, l)).collect();
    for log in &logs {
        wait_until(
            Duration::from_secs(60),
            "both executors to start",
            || async {
                lines(log)
                    .iter()
                    .any(|l| l["fields"]["message"] == "blast-radius limits in force")
            },
        )
        .await;
    }
    early_in_a_minute().await;
    w.send("tasks", &dup_body).await;
    wait_until(
        Duration::from_secs(30),
        "an executor to take the first copy",
        || async { w.depth("tasks").await != (1, 0) },
    )
    .await;
    w.send_many("tasks", &bodies, &[]).await;

    // Settled: every task handled (a held duplicate comes back after the lease), and each
    // group is fixed or waiting for a person.
    wait_until(
        Duration::from_secs(90),
        "the executors to settle",
        || async {
            let (visible, _) = w.depth("approvals").await;
            w.depth("tasks").await == (0, 0)
                && revoked(&w, &groups).await.len() + visible as usize >= FINDINGS
        },
    )
    .await;
    let revoked = revoked(&w, &groups).await;
    for child in &mut children {
        signal(child, "TERM");
        assert!(child.wait().unwrap().success(), "an executor failed");
    }
    let start_up: Vec<String> = logs
        .iter()
        .flat_map(|l| lines(l))
        .filter(|l| l["fields"]["message"] == "blast-radius limits in force")
        .map(|l| {
            l["fields"]["limits"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(start_up.len(), 2, "{start_up:?}");
    assert!(
        start_up.iter().all(|s| s.contains("whole fleet")),
        "{start_up:?}"
    );

    // EC2: at most the cap's fixes between the two processes.
    assert!(
        (1..=CAP).contains(&revoked.len()),
        "{} groups revoked: {revoked:?}",
        revoked.len()
    );
    // The rest are approval requests, one per finding, none for a group that was fixed.
    let requests: BTreeSet<String> = w.approval_list()["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["request"]["task"]["finding"]["resource_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let open: BTreeSet<String> = groups
        .iter()
        .filter(|g| !revoked.contains(*g))
        .cloned()
        .collect();
    assert_eq!(
        requests, open,
        "approval requests are for the unfixed groups"
    );

    // Both processes' audit: one change per group fixed, the duplicate's other copy a
    // skip; some process was stopped by the fleet's cap having fixed fewer than the cap
    // itself (counting alone, it would have fixed on: the counting is the fleet's).
    let records: Vec<Vec<Value>> = logs.iter().map(|l| audit(l)).collect();
    let mut changes: BTreeMap<String, usize> = BTreeMap::new();
    for r in records.iter().flatten() {
        if r["outcome"] == "succeeded" {
            *changes
                .entry(r["resource_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    assert_eq!(
        changes.keys().cloned().collect::<BTreeSet<_>>(),
        revoked,
        "{changes:?}"
    );
    assert!(changes.values().all(|n| *n == 1), "{changes:?}");
    let stopped_short = records.iter().any(|mine| {
        let fixed = mine.iter().filter(|r| r["outcome"] == "succeeded").count();
        let capped = mine.iter().any(|r| {
            r["decision"] == "approval_requested"
                && reason(r).contains("rate cap")
                && reason(r).contains("across the fleet")
        });
        fixed < CAP && capped
    });
    assert!(
        stopped_short,
        "no executor was stopped by the fleet's cap before reaching it alone: {records:#?}"
    );

    let history = |args: &[&str]| -> Vec<Value> {
        let out = w
            .command(args)
            .env("REDRESS_LEDGER_TABLE", &table)
            .output()
            .unwrap();
        assert!(out.status.success(), "history: {}", text(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["entries"].as_array().unwrap().clone()
    };
    // The duplicate: acted on once, its other copy skipped as done already (by the ledger:
    // its lease, or its entry when the copy was diverted by the spent cap; or by the
    // process that had just fixed it), and one entry in the ledger.
    let dup_records: Vec<&Value> = records
        .iter()
        .flatten()
        .filter(|r| r["resource_id"] == dup.as_str() && r["worker"] == "executor")
        .collect();
    let dup_entries = history(&["history", "--resource", &dup, "--json"]);
    if revoked.contains(&dup) {
        assert_eq!(
            changes.get(&dup),
            Some(&1),
            "{dup_records:#?}\nledger: {dup_entries:#?}"
        );
        assert!(
            dup_records.iter().any(|r| r["decision"] == "skipped"
                && (reason(r).starts_with("duplicate: ") || reason(r).contains(" is already "))),
            "{dup_records:#?}\nledger: {dup_entries:#?}"
        );
    }
    let done = |e: &Value| ["succeeded", "verified"].contains(&e["status"].as_str().unwrap());
    let of_dup: Vec<Value> = dup_entries.into_iter().filter(done).collect();
    assert_eq!(
        of_dup.len(),
        usize::from(revoked.contains(&dup)),
        "{of_dup:#?}"
    );
    let fixed_in_ledger: BTreeSet<String> = history(&["history", "--since", "1h", "--json"])
        .iter()
        .filter(|e| done(e))
        .map(|e| e["finding"]["resource_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(fixed_in_ledger, revoked, "the ledger's changes are EC2's");
    let by_process: Vec<(usize, usize)> = records
        .iter()
        .map(|mine| {
            let count = |d: &str, o: &str| {
                mine.iter()
                    .filter(|r| r["decision"] == d || r["outcome"] == o)
                    .count()
            };
            (count("-", "succeeded"), count("approval_requested", "-"))
        })
        .collect();
    let dup_path: Vec<String> = dup_records
        .iter()
        .map(|r| format!("{} {}", r["decision"], reason(r)))
        .collect();
    println!(
        "fleet: {} fixed, {} approval requests; (fixed, diverted) per process: {by_process:?}; the duplicate: {dup_path:#?}",
        revoked.len(),
        requests.len()
    );
}
