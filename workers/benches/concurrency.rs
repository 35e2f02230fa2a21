//! Executor throughput as concurrency grows, with a fixed latency on every AWS call and
//! the whole safety path on.
//!
//! The local emulator serves only tens of calls per second, so this bench runs the real
//! `redress executor --once` binary against an in-process HTTP stand-in
//! (`concurrency/stand_in.rs`) that answers after a fixed delay: 50 ms for the
//! remediation call (RevokeSecurityGroupIngress), 10 ms for everything else (SQS, reads,
//! Config, DynamoDB reads and writes). What it shows is whether redress overlaps that
//! waiting: throughput against the bound that concurrency and those latencies allow.
//!
//! The safety path is the executor's default, all of it on: Config verifies each finding
//! before the fix (the stand-in's Config says NON_COMPLIANT until the group is revoked,
//! COMPLIANT after), each fix sends a closure check (a delayed message on the tasks
//! queue, left delayed at the end: `--once` does not wait for it), and the ledger records
//! each fix's intent and outcome, with the finding's lease and the fleet's breaker, in a
//! table the stand-in holds. For the ledger the stand-in implements just the DynamoDB
//! calls and expressions the ledger uses (`concurrency/dynamodb.rs`), conditions
//! included, rather than routing to the emulator, which would add its own latency and
//! cap the rate far below the bound. After each run the bench checks every group was
//! revoked, every fix verified, its ledger entry `succeeded`, its closure check left
//! delayed, and nothing dead-lettered.
//!
//! Every call is counted by action, so the table can say where the calls per event come
//! from. A call the stand-in does not implement fails the bench by name (an executor
//! that starts calling something new must be taught here, or its latency would be
//! missing from the figures and the bound).

#[path = "concurrency/dynamodb.rs"]
mod dynamodb;
#[path = "concurrency/stand_in.rs"]
mod stand_in;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use redress::ledger::Status;
use stand_in::{latency, StandIn, ACCOUNT, CONFIG_RULE, LEDGER_TABLE, TASKS_QUEUE};

/// The executor's policy: one automatic fix, every safety setting at its default.
fn policy() -> String {
    format!(
        "[[rule]]\nid = \"sg-open\"\nconfig_rule = \"{CONFIG_RULE}\"\nseverity = \"MEDIUM\"\n\
         action = {{ fix = \"revoke_public_ingress\", ports = [22] }}\n"
    )
}

/// Concurrency and events per run.
const RUNS: [(u32, usize); 3] = [(1, 100), (8, 400), (64, 2000)];
/// The share of the bound the issue asks for.
const TARGET_SHARE: f64 = 0.9;

fn task(i: usize) -> String {
    serde_json::json!({
        "version": 1, "rule_id": "sg-open", "severity": "MEDIUM", "created_at": "2026-11-27T00:00:00Z",
        "finding": {
            "event_id": format!("e{i}"), "config_rule_name": CONFIG_RULE,
            "resource_id": format!("sg-{i:017x}"), "resource_type": "AWS::EC2::SecurityGroup",
            "account_id": ACCOUNT, "region": "us-east-1", "compliance": "NON_COMPLIANT",
        },
    })
    .to_string()
}

/// Whether a message waits for `call` while it holds a handling slot. Off the slot
/// (workers/src/worker.rs): receives run ahead of the slots; settling (the closure
/// check's SendMessageBatch, then DeleteMessageBatch) follows the slot's release; Config
/// re-evaluations are batched in the background; the rest is start-up.
fn holds_slot(call: &str) -> bool {
    !(call.starts_with("sqs:")
        || matches!(
            call,
            "sts:GetCallerIdentity"
                | "dynamodb:DescribeTable"
                | "config:StartConfigRulesEvaluation"
        ))
}

struct Run {
    concurrency: u32,
    events: usize,
    wall: Duration,
    startup: Duration,
    /// First receive to last delete: the run without start-up and the final drained checks.
    busy: Duration,
    calls: BTreeMap<String, u64>,
    /// Closure checks left delayed on the tasks queue.
    delayed: usize,
    /// By `service:Action`, how late the stand-in's answers were in all.
    late: BTreeMap<String, Duration>,
    /// User + system CPU of the executor process, if /proc could tell.
    cpu: Option<Duration>,
    /// User + system CPU of this process (the stand-in), if /proc could tell.
    stand_in_cpu: Option<Duration>,
}

impl Run {
    fn per_event(&self, n: u64) -> f64 {
        n as f64 / self.events as f64
    }

    /// SQS calls per event.
    fn sqs_per_event(&self) -> f64 {
        let sqs = self
            .calls
            .iter()
            .filter(|(call, _)| call.starts_with("sqs:"))
            .map(|(_, n)| n)
            .sum();
        self.per_event(sqs)
    }

    /// Events per second while busy.
    fn rate(&self) -> f64 {
        self.events as f64 / self.busy.as_secs_f64()
    }

    /// The calls a message waits for in sequence while it holds its slot: per event,
    /// with the stand-in's latency.
    fn held(&self) -> Vec<(&str, f64, Duration)> {
        self.calls
            .iter()
            .filter(|(call, _)| holds_slot(call))
            .map(|(call, n)| (call.as_str(), self.per_event(*n), latency(call)))
            .collect()
    }

    /// Milliseconds a message holds its slot.
    fn held_ms(&self) -> f64 {
        self.held()
            .iter()
            .map(|(_, n, l)| n * l.as_secs_f64() * 1000.0)
            .sum()
    }

    /// The most events per second `concurrency` slots allow.
    fn bound(&self) -> f64 {
        f64::from(self.concurrency) * 1000.0 / self.held_ms()
    }

    /// Milliseconds per message the stand-in answered the slot-holding calls late.
    fn late_ms(&self) -> f64 {
        let late: Duration = self
            .late
            .iter()
            .filter(|(call, _)| holds_slot(call))
            .map(|(_, d)| *d)
            .sum();
        late.as_secs_f64() * 1000.0 / self.events as f64
    }
}

/// CPU time (user + system) of this process and of its waited-for children, from
/// /proc/self/stat (utime + stime, cutime + cstime, in clock ticks of 1/100 s on Linux):
/// the difference around one run is the stand-in's and the executor's CPU, since the
/// executor is the only child and it has been reaped.
fn cpu() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime, stime, cutime and cstime are fields 14 to 17 of the whole line: 11 to 14
    // after ")".
    let ticks = |i: usize, j: usize| -> Option<Duration> {
        let t = fields.get(i)?.parse::<u64>().ok()? + fields.get(j)?.parse::<u64>().ok()?;
        Some(Duration::from_millis(t * 10))
    };
    Some((ticks(11, 12)?, ticks(13, 14)?))
}

async fn run(concurrency: u32, events: usize, dir: &std::path::Path) -> Run {
    let policy = dir.join("policy.toml");
    let log = dir.join(format!("executor-{concurrency}.log"));
    let aws = StandIn::start((0..events).map(task)).await;
    let cpu_before = cpu();
    let start = Instant::now();
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_redress"))
        .args([
            "executor",
            "--once",
            "--concurrency",
            &concurrency.to_string(),
        ])
        .env("AWS_ENDPOINT_URL", &aws.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("REDRESS_POLICY", &policy)
        .env("REDRESS_EVENTS_QUEUE", "bench-events")
        .env("REDRESS_TASKS_QUEUE", TASKS_QUEUE)
        .env("REDRESS_LEDGER_TABLE", LEDGER_TABLE)
        .env_remove("REDRESS_NOTIFY_TOPIC")
        .env_remove("REDRESS_DRY_RUN")
        .env("REDRESS_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .await
        .unwrap();
    let wall = start.elapsed();
    let (stand_in_cpu, cpu) = match (cpu_before, cpu()) {
        (Some((own, child)), Some((own2, child2))) => (
            Some(own2.saturating_sub(own)),
            Some(child2.saturating_sub(child)),
        ),
        _ => (None, None),
    };
    let tail = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    assert!(
        status.success(),
        "redress executor failed at concurrency {concurrency}; its log ends:\n{}",
        tail()
    );
    let seen = aws.report();
    assert!(
        seen.unknown.is_empty(),
        "the executor called what the stand-in does not implement: {:?}; teach the stand-in",
        seen.unknown
    );
    let at = format!(
        "at concurrency {concurrency}; the executor's log ends:\n{}",
        tail()
    );
    assert_eq!(seen.revoked, events, "every group fixed {at}");
    let verified = seen
        .calls
        .get("config:GetComplianceDetailsByResource")
        .copied();
    assert!(
        verified.unwrap_or(0) >= events as u64,
        "every finding verified with Config before its fix {at}"
    );
    let succeeded = BTreeMap::from([(Status::Succeeded.as_str().to_string(), events)]);
    assert_eq!(
        seen.ledger, succeeded,
        "one succeeded ledger entry per fix {at}"
    );
    assert_eq!(
        seen.delayed, events,
        "one closure check per fix, left delayed {at}"
    );
    assert_eq!(seen.dead_letters, 0, "nothing dead-lettered {at}");
    let (Some(first), Some(last)) = (seen.first_receive, seen.last_delete) else {
        panic!("no receive or no delete {at}");
    };
    Run {
        concurrency,
        events,
        wall,
        startup: first - start,
        busy: last - first,
        calls: seen.calls,
        late: seen.late,
        delayed: seen.delayed,
        cpu,
        stand_in_cpu,
    }
}

fn print(rows: &[Run]) {
    println!("Executor throughput vs concurrency (in-process HTTP stand-in for SQS/EC2/STS/Config/DynamoDB,");
    println!("not the emulator; 50 ms per remediation call, 10 ms per other call; direct fix");
    println!(
        "revoke_public_ingress with the whole safety path on: Config verification before the fix,"
    );
    println!("ledger intent and outcome, closure check after; release build)");
    println!(
        "{:>12} {:>7} {:>7} {:>7} {:>9} {:>9} {:>9} {:>15} {:>13} {:>13} {:>12}",
        "concurrency",
        "events",
        "wall s",
        "busy s",
        "events/s",
        "bound/s",
        "of bound",
        "SQS calls/event",
        "CPU ms/event",
        "stand-in CPU",
        "start-up ms"
    );
    for r in rows {
        let per_event = |c: Option<Duration>| {
            c.map(|c| format!("{:.3}", c.as_secs_f64() * 1000.0 / r.events as f64))
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:>12} {:>7} {:>7.2} {:>7.2} {:>9.1} {:>9.1} {:>8.0}% {:>15.3} {:>13} {:>13} {:>12}",
            r.concurrency,
            r.events,
            r.wall.as_secs_f64(),
            r.busy.as_secs_f64(),
            r.rate(),
            r.bound(),
            100.0 * r.rate() / r.bound(),
            r.sqs_per_event(),
            per_event(r.cpu),
            per_event(r.stand_in_cpu),
            r.startup.as_millis()
        );
    }
    println!(
        "(busy = first receive to last delete: wall without start-up and the final drained checks;"
    );
    println!(
        " events/s = events / busy; CPU = user + system per event (ms), of the executor process"
    );
    println!(" and of the bench process serving the stand-in, 10 ms resolution;");
    println!(" start-up = process start to first receive)");
    let top = rows.last().expect("runs");
    let terms: Vec<String> = top
        .held()
        .iter()
        .map(|(call, n, l)| format!("{n:.3} x {} ms {call}", l.as_millis()))
        .collect();
    println!(
        "bound = concurrency / the time a message holds its slot, which is the calls it waits for"
    );
    println!(
        "in sequence (calls per event x the stand-in's latency, at concurrency {}):",
        top.concurrency
    );
    println!("  {} = {:.0} ms", terms.join("\n  + "), top.held_ms());
    for r in rows {
        println!(
            "  concurrency {:>2}: {:>2} slots / {:.0} ms = {:.1} events/s; measured {:.1} ({:.0}%)",
            r.concurrency,
            r.concurrency,
            r.held_ms(),
            r.bound(),
            r.rate(),
            100.0 * r.rate() / r.bound()
        );
    }
    println!("the stand-in's own lateness on those calls (timer rounding, its lock, waiting for a CPU), per");
    println!("message, and the bound it leaves (not the target's bound):");
    for r in rows {
        let held = r.held_ms() + r.late_ms();
        println!(
            "  concurrency {:>2}: +{:.1} ms: {:>2} / {held:.0} ms = {:.1} events/s; measured {:.0}% of it",
            r.concurrency,
            r.late_ms(),
            r.concurrency,
            f64::from(r.concurrency) * 1000.0 / held,
            100.0 * r.rate() * held / (1000.0 * f64::from(r.concurrency))
        );
    }
    println!("(a slot is held from a handler's start to its verdict, workers/src/worker.rs: receives run");
    println!(" ahead of the slots, up to one receive's worth (10) beyond --concurrency; the closure check's");
    println!(
        " SendMessageBatch and the DeleteMessageBatch settle after the slot is released; Config"
    );
    println!(" re-evaluations are batched in the background; STS and DescribeTable are start-up)");
    let delayed: Vec<String> = rows.iter().map(|r| r.delayed.to_string()).collect();
    let concurrencies: Vec<String> = rows.iter().map(|r| r.concurrency.to_string()).collect();
    println!(
        "safety path, checked after each run: every finding verified with Config before its fix,"
    );
    println!(
        "every group revoked, one ledger entry per fix (succeeded), nothing dead-lettered; closure"
    );
    println!(
        "checks left delayed (due after [config] recheck_after, 1 min): {} at concurrency {}",
        delayed.join(", "),
        concurrencies.join(", ")
    );
    println!("calls per event at concurrency {}:", top.concurrency);
    for (call, n) in &top.calls {
        let slot = if holds_slot(call) {
            "holds the slot"
        } else {
            ""
        };
        println!("  {call:<42} {:>6.3}  {slot}", top.per_event(*n));
    }
    let worst = rows
        .iter()
        .min_by(|a, b| (a.rate() / a.bound()).total_cmp(&(b.rate() / b.bound())))
        .expect("runs");
    let share = worst.rate() / worst.bound();
    println!(
        "target: throughput >= {:.0}% of the bound at every concurrency, safety path on: lowest {:.0}% ({:.1} of {:.1} events/s at concurrency {}) ({})",
        TARGET_SHARE * 100.0,
        share * 100.0,
        worst.rate(),
        worst.bound(),
        worst.concurrency,
        if share >= TARGET_SHARE { "met" } else { "NOT met" }
    );
    let sqs = top.sqs_per_event();
    println!(
        "target: <= 0.3 SQS calls per event at saturation (executor, concurrency {}): measured {sqs:.3} ({})",
        top.concurrency,
        if sqs <= 0.3 { "met" } else { "NOT met" }
    );
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dir = std::env::temp_dir().join(format!("redress-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.toml"), policy()).unwrap();
    let mut rows = Vec::new();
    for (c, n) in RUNS {
        rows.push(run(c, n, &dir).await);
    }
    print(&rows);
    let _ = std::fs::remove_dir_all(dir);
}
