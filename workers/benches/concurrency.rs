//! Executor throughput as concurrency grows, with a fixed latency on every AWS call.
//!
//! The local emulator serves only tens of SQS messages per second, so this bench runs the
//! real `redress executor` binary against an in-process HTTP stand-in for the few SQS,
//! EC2 and STS operations it calls, which answers after a fixed delay: 10 ms for SQS and
//! reads, 50 ms for the remediation call (RevokeSecurityGroupIngress). What it shows is
//! whether redress overlaps that waiting, i.e. that throughput follows concurrency.
//!
//! Every call is counted by action, so the table can say where the SQS calls per event
//! come from. A call the stand-in does not implement is answered with an error and fails
//! the bench by name (an executor that starts calling something new must be taught here,
//! or its latency would be missing from the figures).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const SQS_LATENCY: Duration = Duration::from_millis(10);
const READ_LATENCY: Duration = Duration::from_millis(10);
const REMEDIATION_LATENCY: Duration = Duration::from_millis(50);
/// Other calls the executor makes per fix (DescribeTags, StartConfigRulesEvaluation).
const OTHER_LATENCY: Duration = Duration::from_millis(10);
const ACCOUNT: &str = "123456789012";

#[derive(Default)]
struct State {
    ready: VecDeque<(String, String)>,
    in_flight: HashMap<String, (String, String)>,
    revoked: HashSet<String>,
    receipts: u64,
    sqs_calls: u64,
    /// Every call, by `service:Action`.
    calls: BTreeMap<String, u64>,
    /// Calls the stand-in does not implement.
    unknown: BTreeSet<String>,
    first_receive: Option<Instant>,
}

impl State {
    fn count(&mut self, call: String) {
        *self.calls.entry(call).or_default() += 1;
    }
}

type Shared = Arc<Mutex<State>>;

/// Status, content type, body.
type Answer = (u16, String, String);

fn xml(body: &str) -> Answer {
    (200, "text/xml".into(), body.into())
}

fn json(v: serde_json::Value) -> Answer {
    (200, "application/x-amz-json-1.0".into(), v.to_string())
}

/// Records a call the stand-in does not implement and answers with a client error (not
/// retried by the SDK), so the task fails visibly instead of hanging on a dead connection.
fn unknown(state: &Shared, call: String) -> Answer {
    let mut s = state.lock().unwrap();
    s.count(call.clone());
    s.unknown.insert(call.clone());
    (
        400,
        "application/x-amz-json-1.0".into(),
        serde_json::json!({"__type": "InvalidAction", "message": format!("bench stand-in does not implement {call}")}).to_string(),
    )
}

fn form_value<'a>(form: &'a str, key: &str) -> Option<&'a str> {
    form.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

async fn sqs(state: &Shared, base: &str, action: &str, req: serde_json::Value) -> Answer {
    tokio::time::sleep(SQS_LATENCY).await;
    let mut s = state.lock().unwrap();
    s.sqs_calls += 1;
    s.count(format!("sqs:{action}"));
    let url = req["QueueUrl"].as_str().unwrap_or_default();
    match action {
        "GetQueueUrl" => json(serde_json::json!({
            "QueueUrl": format!("{base}/{ACCOUNT}/{}", req["QueueName"].as_str().unwrap_or_default())
        })),
        "GetQueueAttributes" => {
            let mut attrs = serde_json::json!({
                "ApproximateNumberOfMessages": "0",
                "ApproximateNumberOfMessagesNotVisible": "0",
            });
            if url.ends_with("-tasks") {
                attrs["ApproximateNumberOfMessages"] = s.ready.len().to_string().into();
                attrs["ApproximateNumberOfMessagesNotVisible"] =
                    s.in_flight.len().to_string().into();
            }
            if !url.ends_with("-dlq") {
                let name = url.rsplit('/').next().unwrap_or_default();
                attrs["RedrivePolicy"] = serde_json::json!({
                    "deadLetterTargetArn": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}-dlq"),
                    "maxReceiveCount": 10,
                })
                .to_string()
                .into();
            }
            json(serde_json::json!({ "Attributes": attrs }))
        }
        "ReceiveMessage" => {
            s.first_receive.get_or_insert_with(Instant::now);
            let max = req["MaxNumberOfMessages"].as_u64().unwrap_or(1) as usize;
            let mut messages = Vec::new();
            while messages.len() < max && url.ends_with("-tasks") {
                let Some((id, body)) = s.ready.pop_front() else {
                    break;
                };
                s.receipts += 1;
                let receipt = format!("r{}", s.receipts);
                messages.push(serde_json::json!({
                    "MessageId": id, "ReceiptHandle": receipt, "Body": body,
                    "Attributes": {"ApproximateReceiveCount": "1", "SenderId": "AIDABENCH"},
                }));
                s.in_flight.insert(receipt, (id, body));
            }
            json(serde_json::json!({ "Messages": messages }))
        }
        "DeleteMessage" => {
            s.in_flight
                .remove(req["ReceiptHandle"].as_str().unwrap_or_default());
            json(serde_json::json!({}))
        }
        "DeleteMessageBatch" => {
            let mut ok = Vec::new();
            for e in req["Entries"].as_array().into_iter().flatten() {
                s.in_flight
                    .remove(e["ReceiptHandle"].as_str().unwrap_or_default());
                ok.push(serde_json::json!({ "Id": e["Id"] }));
            }
            json(serde_json::json!({ "Successful": ok, "Failed": [] }))
        }
        "ChangeMessageVisibility" => {
            if let Some(m) = s
                .in_flight
                .remove(req["ReceiptHandle"].as_str().unwrap_or_default())
            {
                s.ready.push_back(m);
            }
            json(serde_json::json!({}))
        }
        "SendMessage" => json(serde_json::json!({ "MessageId": "dead-letter" })),
        other => {
            drop(s);
            unknown(state, format!("sqs:{other}"))
        }
    }
}

/// JSON-protocol calls other than SQS, by X-Amz-Target.
async fn other_json(state: &Shared, target: &str) -> Answer {
    match target {
        "StarlingDoveService.StartConfigRulesEvaluation" => {
            tokio::time::sleep(OTHER_LATENCY).await;
            state
                .lock()
                .unwrap()
                .count("config:StartConfigRulesEvaluation".into());
            (200, "application/x-amz-json-1.1".into(), "{}".into())
        }
        other => unknown(state, other.to_string()),
    }
}

async fn query(state: &Shared, form: &str) -> Answer {
    let action = form_value(form, "Action").unwrap_or_default();
    let service = match action {
        "GetCallerIdentity" => "sts",
        _ => "ec2",
    };
    state.lock().unwrap().count(format!("{service}:{action}"));
    match action {
        "GetCallerIdentity" => xml(&format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
             <Arn>arn:aws:iam::{ACCOUNT}:user/bench</Arn><UserId>AIDABENCH</UserId><Account>{ACCOUNT}</Account>\
             </GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        )),
        "DescribeSecurityGroups" => {
            tokio::time::sleep(READ_LATENCY).await;
            let id = form_value(form, "GroupId.1").unwrap_or_default().to_string();
            let open = !state.lock().unwrap().revoked.contains(&id);
            let perms = if open {
                "<item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort>\
                 <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item>"
            } else {
                ""
            };
            xml(&format!(
                "<DescribeSecurityGroupsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>1</requestId>\
                 <securityGroupInfo><item><groupId>{id}</groupId><groupName>g</groupName><ipPermissions>{perms}</ipPermissions>\
                 </item></securityGroupInfo></DescribeSecurityGroupsResponse>"
            ))
        }
        "RevokeSecurityGroupIngress" => {
            tokio::time::sleep(REMEDIATION_LATENCY).await;
            let id = form_value(form, "GroupId").unwrap_or_default().to_string();
            state.lock().unwrap().revoked.insert(id);
            xml("<RevokeSecurityGroupIngressResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
                 <requestId>1</requestId><return>true</return></RevokeSecurityGroupIngressResponse>")
        }
        "DescribeTags" => {
            tokio::time::sleep(OTHER_LATENCY).await;
            xml("<DescribeTagsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>1</requestId>\
                 <tagSet/></DescribeTagsResponse>")
        }
        other => {
            let call = format!("{service}:{other}");
            let mut s = state.lock().unwrap();
            s.unknown.insert(call.clone());
            (
                400,
                "text/xml".into(),
                format!("<Response><Errors><Error><Code>InvalidAction</Code><Message>bench stand-in does not implement {call}</Message></Error></Errors><RequestID>1</RequestID></Response>"),
            )
        }
    }
}

/// Serves HTTP/1.1 with keep-alive on one connection.
async fn connection(stream: TcpStream, state: Shared, base: String) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut headers = HashMap::new();
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        loop {
            line.clear();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let target = headers.get("x-amz-target").cloned();
        let (status, content_type, answer) = match target.as_deref() {
            Some(t) => match t.strip_prefix("AmazonSQS.") {
                Some(action) => {
                    sqs(
                        &state,
                        &base,
                        action,
                        serde_json::from_str(&body).unwrap_or_default(),
                    )
                    .await
                }
                None => other_json(&state, t).await,
            },
            None => query(&state, &body).await,
        };
        let reason = if status == 200 { "OK" } else { "Bad Request" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: 1\r\n\r\n{answer}",
            answer.len()
        );
        if reader
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

const POLICY: &str = r#"
[[rule]]
id = "sg-open"
config_rule = "restricted-common-ports"
severity = "MEDIUM"
action = { fix = "revoke_public_ingress", ports = [22] }
"#;

fn task(i: usize) -> String {
    serde_json::json!({
        "version": 1, "rule_id": "sg-open", "severity": "MEDIUM", "created_at": "2026-11-27T00:00:00Z",
        "finding": {
            "event_id": format!("e{i}"), "config_rule_name": "restricted-common-ports",
            "resource_id": format!("sg-{i:017x}"), "resource_type": "AWS::EC2::SecurityGroup",
            "account_id": ACCOUNT, "region": "us-east-1", "compliance": "NON_COMPLIANT",
        },
    })
    .to_string()
}

struct Run {
    concurrency: u32,
    events: usize,
    wall: Duration,
    startup: Duration,
    sqs_calls: u64,
    calls: BTreeMap<String, u64>,
    /// User + system CPU of the executor process, if /proc could tell.
    cpu: Option<Duration>,
}

/// CPU time (user + system) of this process's waited-for children, from /proc/self/stat
/// (cutime + cstime, in clock ticks of 1/100 s on Linux): the difference around one run
/// is the executor's CPU, since it is the only child and it has been reaped.
fn children_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // cutime and cstime are fields 16 and 17 of the whole line: 14 and 15 after ")".
    let ticks: u64 = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

async fn run(concurrency: u32, events: usize, dir: &std::path::Path) -> Run {
    let policy = dir.join("policy.toml");
    let log = dir.join(format!("executor-{concurrency}.log"));
    let state: Shared = Arc::default();
    {
        let mut s = state.lock().unwrap();
        s.ready = (0..events).map(|i| (format!("m{i}"), task(i))).collect();
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (st, b) = (state.clone(), base.clone());
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            tokio::spawn(connection(stream, st.clone(), b.clone()));
        }
    });
    let cpu_before = children_cpu();
    let start = Instant::now();
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_redress"))
        .args([
            "executor",
            "--once",
            "--concurrency",
            &concurrency.to_string(),
        ])
        .env("AWS_ENDPOINT_URL", &base)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "bench")
        .env("AWS_SECRET_ACCESS_KEY", "bench")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env("REDRESS_POLICY", &policy)
        .env("REDRESS_EVENTS_QUEUE", "bench-events")
        .env("REDRESS_TASKS_QUEUE", "bench-tasks")
        .env("REDRESS_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .status()
        .await
        .unwrap();
    let wall = start.elapsed();
    let cpu = match (cpu_before, children_cpu()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    server.abort();
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
    let s = state.lock().unwrap();
    assert!(
        s.unknown.is_empty(),
        "the executor called what the stand-in does not implement: {:?}; teach the stand-in",
        s.unknown
    );
    assert_eq!(
        s.revoked.len(),
        events,
        "every group fixed at concurrency {concurrency}; the executor's log ends:\n{}",
        tail()
    );
    Run {
        concurrency,
        events,
        wall,
        startup: s.first_receive.map(|t| t - start).unwrap_or_default(),
        sqs_calls: s.sqs_calls,
        calls: s.calls.clone(),
        cpu,
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dir = std::env::temp_dir().join(format!("redress-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap();
    let mut rows = Vec::new();
    for (c, n) in [(1, 100), (8, 400), (64, 2000)] {
        rows.push(run(c, n, &dir).await);
    }
    println!("Executor throughput vs concurrency (in-process HTTP stand-in for SQS/EC2/STS/Config, not the");
    println!(
        "emulator; 10 ms per SQS call, per read and per other call, 50 ms per remediation call;"
    );
    println!("direct fix revoke_public_ingress; release build; start-up = process start to first receive)");
    println!(
        "{:>12} {:>8} {:>9} {:>10} {:>15} {:>14} {:>12}",
        "concurrency",
        "events",
        "wall s",
        "events/s",
        "SQS calls/event",
        "CPU ms/event",
        "start-up ms"
    );
    for r in &rows {
        let cpu = r
            .cpu
            .map(|c| format!("{:.3}", c.as_secs_f64() * 1000.0 / r.events as f64))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:>12} {:>8} {:>9.2} {:>10.1} {:>15.2} {:>14} {:>12}",
            r.concurrency,
            r.events,
            r.wall.as_secs_f64(),
            r.events as f64 / r.wall.as_secs_f64(),
            r.sqs_calls as f64 / r.events as f64,
            cpu,
            r.startup.as_millis()
        );
    }
    println!(
        "(CPU = user + system of the executor process, 10 ms resolution; --concurrency N runs"
    );
    println!(" ceil(N/10) receive loops of ceil(N/loops) messages: 64 means 7 loops of 10, 70 in flight)");
    let top = rows.last().unwrap();
    let per_event = |v: u64| v as f64 / top.events as f64;
    // What the calls each message waits for allow: a receive loop handles its batch at
    // once, so one round is receive + the slowest message's calls in sequence + delete.
    let loops = top.concurrency.div_ceil(10);
    let in_flight = loops * top.concurrency.div_ceil(loops);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let serial_ms: f64 = top
        .calls
        .iter()
        .filter(|(call, _)| !call.starts_with("sqs:") && !call.starts_with("sts:"))
        .map(|(call, n)| {
            let latency = match call.as_str() {
                "ec2:RevokeSecurityGroupIngress" => REMEDIATION_LATENCY,
                "ec2:DescribeSecurityGroups" => READ_LATENCY,
                _ => OTHER_LATENCY,
            };
            per_event(*n) * ms(latency)
        })
        .sum();
    let round_ms = serial_ms + 2.0 * ms(SQS_LATENCY);
    println!(
        "bound at concurrency {}: {in_flight} in flight / ({serial_ms:.0} ms of calls per message + {:.0} ms receive and delete per round) = {:.0} events/s",
        top.concurrency,
        2.0 * ms(SQS_LATENCY),
        in_flight as f64 * 1000.0 / round_ms
    );
    println!("calls per event at concurrency {}:", top.concurrency);
    for (call, n) in &top.calls {
        println!("  {call:<40} {:>6.3}", per_event(*n));
    }
    let rate = top.events as f64 / top.wall.as_secs_f64();
    println!(
        "target: >= 800 events/s at concurrency 64 with 50 ms per remediation: measured {rate:.0} ({})",
        if rate >= 800.0 { "met" } else { "NOT met" }
    );
    let sqs = per_event(top.sqs_calls);
    println!(
        "target: <= 0.3 SQS calls per event at saturation (executor, concurrency 64): measured {sqs:.3} ({})",
        if sqs <= 0.3 { "met" } else { "NOT met" }
    );
    let _ = std::fs::remove_dir_all(dir);
}
