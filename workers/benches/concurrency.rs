//! Executor throughput as concurrency grows, with a fixed latency on every AWS call.
//!
//! The local emulator serves only tens of SQS messages per second, so this bench runs the
//! real `redress executor` binary against an in-process HTTP stand-in for the few SQS,
//! EC2 and STS operations it calls, which answers after a fixed delay: 10 ms for SQS and
//! reads, 50 ms for the remediation call (RevokeSecurityGroupIngress). What it shows is
//! whether redress overlaps that waiting, i.e. that throughput follows concurrency.

use std::collections::{HashMap, HashSet, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const SQS_LATENCY: Duration = Duration::from_millis(10);
const READ_LATENCY: Duration = Duration::from_millis(10);
const REMEDIATION_LATENCY: Duration = Duration::from_millis(50);
const ACCOUNT: &str = "123456789012";

#[derive(Default)]
struct State {
    ready: VecDeque<(String, String)>,
    in_flight: HashMap<String, (String, String)>,
    revoked: HashSet<String>,
    receipts: u64,
    sqs_calls: u64,
    first_receive: Option<Instant>,
}

type Shared = Arc<Mutex<State>>;

fn xml(body: &str) -> (String, String) {
    ("text/xml".into(), body.into())
}

fn json(v: serde_json::Value) -> (String, String) {
    ("application/x-amz-json-1.0".into(), v.to_string())
}

fn form_value<'a>(form: &'a str, key: &str) -> Option<&'a str> {
    form.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

async fn sqs(state: &Shared, base: &str, action: &str, req: serde_json::Value) -> (String, String) {
    tokio::time::sleep(SQS_LATENCY).await;
    let mut s = state.lock().unwrap();
    s.sqs_calls += 1;
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
        _ => json(serde_json::json!({ "MessageId": "dead-letter" })),
    }
}

async fn query(state: &Shared, form: &str) -> (String, String) {
    match form_value(form, "Action").unwrap_or_default() {
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
        other => panic!("stand-in does not implement {other}"),
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
        let (content_type, answer) = match headers
            .get("x-amz-target")
            .and_then(|t| t.strip_prefix("AmazonSQS."))
        {
            Some(action) => {
                sqs(
                    &state,
                    &base,
                    action,
                    serde_json::from_str(&body).unwrap_or_default(),
                )
                .await
            }
            None => query(&state, &body).await,
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nx-amzn-RequestId: 1\r\n\r\n{answer}",
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
}

async fn run(concurrency: u32, events: usize, policy: &std::path::Path) -> Run {
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
        .env("REDRESS_POLICY", policy)
        .env("REDRESS_EVENTS_QUEUE", "bench-events")
        .env("REDRESS_TASKS_QUEUE", "bench-tasks")
        .env("REDRESS_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    let wall = start.elapsed();
    server.abort();
    assert!(
        status.success(),
        "redress executor failed at concurrency {concurrency}"
    );
    let s = state.lock().unwrap();
    assert_eq!(s.revoked.len(), events, "every group fixed");
    Run {
        concurrency,
        events,
        wall,
        startup: s.first_receive.map(|t| t - start).unwrap_or_default(),
        sqs_calls: s.sqs_calls,
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dir = std::env::temp_dir().join(format!("redress-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut rows = Vec::new();
    for (c, n) in [(1, 100), (8, 400), (64, 2000)] {
        rows.push(run(c, n, &policy).await);
    }
    println!("Executor throughput vs concurrency (in-process HTTP stand-in for SQS/EC2/STS, not the emulator;");
    println!("10 ms per SQS call and read, 50 ms per remediation call; direct fix revoke_public_ingress)");
    println!(
        "{:>12} {:>8} {:>9} {:>10} {:>15} {:>12}",
        "concurrency", "events", "wall s", "events/s", "SQS calls/event", "start-up ms"
    );
    for r in &rows {
        println!(
            "{:>12} {:>8} {:>9.2} {:>10.1} {:>15.2} {:>12}",
            r.concurrency,
            r.events,
            r.wall.as_secs_f64(),
            r.events as f64 / r.wall.as_secs_f64(),
            r.sqs_calls as f64 / r.events as f64,
            r.startup.as_millis()
        );
    }
    let top = rows.last().unwrap();
    let rate = top.events as f64 / top.wall.as_secs_f64();
    println!(
        "target: >= 800 events/s at concurrency 64 with 50 ms per remediation: measured {rate:.0} ({})",
        if rate >= 800.0 { "met" } else { "not met" }
    );
    let _ = std::fs::remove_dir_all(dir);
}
