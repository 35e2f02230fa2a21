//! Fault tests: workers killed with SIGKILL over and over, a proxy injecting faults into
//! the AWS calls, and every event delivered twice to two workers at once. After each,
//! every event is accounted for from the state of the world, the queues and the audit
//! records, and no resource was remediated twice.
//!
//! They are slow (minutes, bound by the emulator), so they are `#[ignore]`d in the plain
//! test run and run by `make chaos` (which `.ci/run` calls).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redress::approval::Status;

use crate::support::{
    event, executions, policy_fixtures, root, signal, text, wait_until, wait_until_blocking,
    EventBuilder, World,
};

const SG: &str = "AWS::EC2::SecurityGroup";

/// After a fix the executor sends itself a closure check, delayed until it asks Config
/// whether the fix holds. Nobody answers for Config here, so the checks are kept out of
/// these tests' minutes: they wait 15 minutes (the longest delay SQS allows) and never
/// come back while a test runs.
const LATE_CLOSURE: &str = "[config]\nrecheck_after = \"15m\"\n";

/// Automatic SSH (LOW) and RDP needing approval (HIGH).
fn policy() -> String {
    format!(
        "{LATE_CLOSURE}{}",
        policy_fixtures(&["ssh-low", "rdp-high"], &[])
    )
}

/// `redress run --once` (through `endpoint`, the stack's unless given) until the events
/// and tasks queues are empty with nothing in flight: a draining run does not wait for
/// what it handed back to wait out a retry's back-off, but the next run does (to it,
/// those messages are in flight). Each run's stderr is appended to `log`.
async fn drain(w: &World, endpoint: Option<&str>, log: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(600);
    for run in 1.. {
        let mut cmd = w.command_as("test", &["run", "--once", "--concurrency", "20"]);
        if let Some(e) = endpoint {
            cmd.env("AWS_ENDPOINT_URL", e);
        }
        let out = cmd
            .stderr(Stdio::from(
                File::options().create(true).append(true).open(log).unwrap(),
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "drain run {run} failed: {}",
            text(&out.stdout)
        );
        if w.depth("events").await == (0, 0) && w.depth("tasks").await == (0, 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still not drained after {run} runs: events {:?}, tasks {:?}",
            w.depth("events").await,
            w.depth("tasks").await
        );
    }
}

/// What was sent, to check every event's end against.
struct Load {
    /// Groups with SSH open, one automatic finding each.
    fixable: Vec<String>,
    /// Event ids of findings that need approval.
    approval: usize,
    /// Event ids of COMPLIANT findings (skipped).
    compliant: BTreeSet<String>,
    /// Bodies that are not valid events (each distinct).
    bad: BTreeSet<String>,
}

impl Load {
    fn total(&self) -> usize {
        self.fixable.len() + self.approval + self.compliant.len() + self.bad.len()
    }
}

fn event_id(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// Sends `fixable + approval + compliant + bad` events to the events queue, interleaved.
async fn load(w: &World, fixable: usize, approval: usize, compliant: usize, bad: usize) -> Load {
    let mut l = Load {
        fixable: Vec::new(),
        approval,
        compliant: BTreeSet::new(),
        bad: BTreeSet::new(),
    };
    let mut findings = Vec::new();
    for i in 0..fixable {
        let sg = w
            .security_group(&format!("f{i}"), &[(22, "0.0.0.0/0")])
            .await;
        findings.push(EventBuilder::new("restricted-ssh", SG, &sg));
        l.fixable.push(sg);
    }
    // Config holds the findings to fix; the others are never asked about.
    let mut bodies: Vec<String> = w
        .config_holds_all(&findings)
        .await
        .iter()
        .map(EventBuilder::build)
        .collect();
    for i in 0..approval {
        let sg = format!("sg-{:017x}", 0xa000_0000u64 + i as u64);
        bodies.push(event("restricted-rdp", SG, &sg, "NON_COMPLIANT"));
    }
    for i in 0..compliant {
        let sg = format!("sg-{:017x}", 0xc000_0000u64 + i as u64);
        let body = event("restricted-ssh", SG, &sg, "COMPLIANT");
        l.compliant.insert(event_id(&body));
        bodies.push(body);
    }
    let fixtures: Vec<String> = std::fs::read_dir(root().join("tests/fixtures/events/bad"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    for i in 0..bad {
        // Trailing spaces keep each copy distinct without changing why it is bad.
        let body = format!("{}{}", fixtures[i % fixtures.len()], " ".repeat(i + 1));
        l.bad.insert(body.clone());
        bodies.push(body);
    }
    // Interleave the kinds (a fixed shuffle) so every stretch of the queue is mixed.
    let n = bodies.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|i| (i * 7919) % n);
    let bodies: Vec<String> = order.into_iter().map(|i| bodies[i].clone()).collect();
    w.send_many("events", &bodies, &[]).await;
    assert_eq!(l.total(), n);
    l
}

/// Accounts for every event; returns the figures for the report.
async fn account(
    w: &World,
    l: &Load,
    records: &[serde_json::Value],
) -> BTreeMap<&'static str, usize> {
    // Remediated: the state says so, whatever the audit trail of a killed run missed.
    let mut remediated = 0;
    for sg in &l.fixable {
        let open = w.ingress(sg).await.contains(&(22, "0.0.0.0/0".into()));
        assert!(!open, "{sg} still has SSH open to the world");
        remediated += 1;
    }
    // Nothing remediated twice.
    let mut succeeded: BTreeMap<&str, usize> = BTreeMap::new();
    for r in executions(records) {
        if r["outcome"] == "succeeded" {
            *succeeded
                .entry(r["resource_id"].as_str().unwrap())
                .or_default() += 1;
        }
    }
    let twice: Vec<_> = succeeded.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "remediated more than once: {twice:?}");
    // Skipped, with a record each.
    let skipped: BTreeSet<String> = records
        .iter()
        .filter(|r| r["decision"] == "skipped" && r["worker"] == "router")
        .filter_map(|r| r["event_id"].as_str().map(str::to_string))
        .filter(|id| l.compliant.contains(id))
        .collect();
    assert_eq!(
        skipped, l.compliant,
        "compliant events without a skip record"
    );
    // Waiting for approval: one request per finding (a duplicate send shares its id).
    let listed = w.approval_list();
    let waiting: BTreeSet<&str> = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == serde_json::to_value(Status::Pending).unwrap())
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(waiting.len(), l.approval, "{listed:#}");
    // Dead-lettered with a reason: each bad body, none lost (copies count once).
    let dead = w.drain("events-dlq").await;
    let dead_bodies: BTreeSet<String> = dead.iter().map(|m| m.body.clone()).collect();
    assert_eq!(dead_bodies, l.bad, "bad events missing from the events DLQ");
    assert!(dead.iter().all(
        |m| m.attributes.get("redress.error_class").map(String::as_str) == Some("invalid_input")
    ));
    assert!(w.drain("tasks-dlq").await.is_empty(), "a task failed");
    assert_eq!(w.depth("events").await, (0, 0));
    assert_eq!(w.depth("tasks").await, (0, 0));
    let figures = BTreeMap::from([
        ("remediated", remediated),
        ("skipped", skipped.len()),
        ("waiting for approval", waiting.len()),
        ("dead-lettered", dead_bodies.len()),
        ("dead-letter copies", dead.len()),
        ("succeeded records", succeeded.values().sum()),
    ]);
    assert_eq!(
        remediated + skipped.len() + waiting.len() + dead_bodies.len(),
        l.total()
    );
    figures
}

/// The audit records in a log file (none while it does not exist yet).
fn records_in(path: &std::path::Path) -> Vec<serde_json::Value> {
    let mut s = String::new();
    match File::open(path) {
        Ok(mut f) => f.read_to_string(&mut s).unwrap(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("{}: {e}", path.display()),
    };
    // A killed process may leave a torn last line: skip what does not parse.
    s.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "audit")
        .collect()
}

#[tokio::test]
#[ignore = "slow fault test: make chaos"]
async fn killing_the_worker_repeatedly_loses_nothing_and_fixes_nothing_twice() {
    let w = World::new("kill9", &policy()).await;
    // Work a killed worker held comes back after 4 s instead of the default minutes.
    w.set_visibility("events", 4).await;
    w.set_visibility("tasks", 4).await;
    let l = load(&w, 300, 100, 50, 50).await;
    let log = w.dir.join("kill9.log");
    let started = Instant::now();
    // Each worker is killed at a point set by its progress, not by a clock: at start-up
    // (0), or once it has written that many more audit records (mid-batch, mid-forward,
    // mid-delete...). What a killed worker held comes back after the 4 s visibility.
    let kill_after = [0usize, 1, 3, 8, 20, 0, 2, 5, 13, 30];
    let mut kills = 0;
    for (i, n) in kill_after.into_iter().enumerate() {
        let before = records_in(&log).len();
        let mut child = w
            .command_as("test", &["run", "--concurrency", "20", "--heartbeat", "1"])
            .stderr(Stdio::from(
                File::options()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        wait_until(
            Duration::from_secs(120),
            &format!("worker {i} to write {n} audit records"),
            || async { records_in(&log).len() >= before + n },
        )
        .await;
        signal(&child, "KILL");
        child.wait().unwrap();
        kills += 1;
    }
    // The killed runs handed tasks to the executor in memory (a heartbeat of 1 s holds
    // an event within its 4 s visibility), none through the tasks queue.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("one hop: tasks go to the executor in memory"),
        "the killed runs did not hand tasks over in memory"
    );
    assert!(
        !text.contains("not in memory"),
        "a killed run fell back to the tasks queue"
    );
    drain(&w, None, &log).await;
    let records = records_in(&log);
    let figures = account(&w, &l, &records).await;
    println!(
        "kill -9 test: {} events, {kills} kills, {:.0?} in all: {figures:?}",
        l.total(),
        started.elapsed()
    );
}

#[tokio::test]
#[ignore = "slow fault test: make chaos"]
async fn a_fault_injecting_proxy_loses_nothing() {
    let w = World::new("faults", &policy()).await;
    // A receive whose answer is lost leaves its messages invisible for the visibility
    // timeout (15 minutes on the tasks queue): shorten it so the run drains in seconds.
    w.set_visibility("events", 5).await;
    w.set_visibility("tasks", 5).await;
    let l = load(&w, 120, 40, 20, 20).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let mut proxy = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("infra/local/faults.py"))
        .args([
            "--port",
            &port.to_string(),
            "--upstream",
            crate::support::endpoint(),
        ])
        .args(["--rate", "0.08", "--seed", "7", "--exit-with-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proxy_url = format!("http://127.0.0.1:{port}");
    wait_until_blocking(Duration::from_secs(10), "the fault proxy to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let log = w.dir.join("faults.log");
    drain(&w, Some(&proxy_url), &log).await;
    let stats = crate::support::http_get_json(&proxy_url, "/_faults/stats");
    drop(proxy.stdin.take());
    let _ = proxy.wait();
    let records = records_in(&log);
    let figures = account(&w, &l, &records).await;
    let rate = stats["fault_rate_observed"].as_f64().unwrap();
    assert!(rate >= 0.05, "only {rate} of calls were faulted: {stats}");
    println!(
        "fault proxy test: {} events, {} AWS calls, faults {} ({:.1}%): {figures:?}",
        l.total(),
        stats["requests"],
        stats["faults"],
        rate * 100.0
    );
}

#[tokio::test]
#[ignore = "slow fault test: make chaos"]
async fn every_event_twice_to_two_workers_at_once_is_remediated_once() {
    let prefix = format!("/chaos-twice-{}/", std::process::id());
    let policy = format!(
        "{LATE_CLOSURE}{}",
        policy_fixtures(
            &["ssh-low", "rdp-high", "sg-runbook", "param-drift"],
            &[("prefix", &prefix)],
        )
    );
    let w = World::new("twice", &policy).await;
    let (mut direct, mut runbook, mut params, mut findings) = (vec![], vec![], vec![], vec![]);
    for i in 0..40 {
        let a = w
            .security_group(&format!("d{i}"), &[(22, "0.0.0.0/0")])
            .await;
        findings.push(EventBuilder::new("restricted-ssh", SG, &a));
        direct.push(a);
        let b = w
            .security_group(&format!("r{i}"), &[(22, "0.0.0.0/0")])
            .await;
        findings.push(EventBuilder::new("sg-public-admin-access", SG, &b));
        runbook.push(b);
        let name = format!("{prefix}current/p{i}");
        w.put_parameter(&format!("{prefix}approved/p{i}"), "20")
            .await;
        w.put_parameter(&name, "200").await;
        findings.push(EventBuilder::new(
            "ssm-parameter-drift",
            "AWS::SSM::Parameter",
            &name,
        ));
        params.push(name);
    }
    let bodies: Vec<String> = w
        .config_holds_all(&findings)
        .await
        .iter()
        .map(EventBuilder::build)
        .collect();
    // Every event twice, the copies side by side.
    let doubled: Vec<String> = bodies.iter().flat_map(|b| [b.clone(), b.clone()]).collect();
    w.send_many("events", &doubled, &[]).await;
    // Logs go to files: a pipe left unread while waiting for the other worker would fill
    // and stall its writer.
    let logs: Vec<_> = (0..2)
        .map(|i| w.dir.join(format!("worker{i}.log")))
        .collect();
    let workers: Vec<_> = logs
        .iter()
        .map(|log| {
            w.command_as("test", &["run", "--once", "--concurrency", "20"])
                .stdout(Stdio::null())
                .stderr(Stdio::from(File::create(log).unwrap()))
                .spawn()
                .unwrap()
        })
        .collect();
    let mut records = Vec::new();
    for (mut child, log) in workers.into_iter().zip(&logs) {
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "{}",
            std::fs::read_to_string(log).unwrap()
        );
        records.extend(records_in(log));
    }
    let runs = executions(&records);
    let ends = |id: &str| -> Vec<&serde_json::Value> {
        runs.iter()
            .copied()
            .filter(|r| r["resource_id"] == id)
            .collect()
    };
    let mut duplicates = 0;
    for sg in &direct {
        let e = ends(sg);
        assert_eq!(
            e.iter().filter(|r| r["outcome"] == "succeeded").count(),
            1,
            "{sg}: {e:#?}"
        );
        duplicates += e.len() - 1;
        assert!(!w.ingress(sg).await.contains(&(22, "0.0.0.0/0".into())));
    }
    for sg in &runbook {
        let e = ends(sg);
        let ids: BTreeSet<&str> = e
            .iter()
            .filter_map(|r| r["execution_id"].as_str())
            .collect();
        assert_eq!(
            ids.len(),
            1,
            "{sg}: one automation execution expected: {e:#?}"
        );
        duplicates += e.len() - 1;
        assert!(!w.ingress(sg).await.contains(&(22, "0.0.0.0/0".into())));
    }
    for p in &params {
        let e = ends(p);
        assert_eq!(
            e.iter().filter(|r| r["outcome"] == "succeeded").count(),
            1,
            "{p}: {e:#?}"
        );
        duplicates += e.len() - 1;
        assert_eq!(w.parameter(p).await, "20");
    }
    assert!(w.drain("tasks-dlq").await.is_empty());
    assert!(w.drain("events-dlq").await.is_empty());
    println!(
        "two workers, every event twice: {} findings, {} deliveries, {} executor records, {duplicates} recognised as duplicates or already fixed",
        bodies.len(),
        doubled.len(),
        runs.len()
    );
}
