//! The stand-in for AWS: an in-process HTTP/1.1 server (connections kept alive) that
//! answers the calls the executor makes, each after a fixed latency ([`latency`]): SQS
//! (JSON protocol), EC2 and STS (query protocol), Config (JSON 1.1) and the DynamoDB
//! subset the ledger uses ([`super::dynamodb`]). It keeps just enough state to answer
//! faithfully: queues with delays and receipts, which groups were revoked (Config says
//! NON_COMPLIANT before and COMPLIANT after), and the ledger's table.
//!
//! Every call is counted by `service:Action`. A call it does not implement is answered
//! with a client error (not retried by the SDK) and recorded, so the bench fails by name
//! instead of hanging.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::dynamodb::Tables;

/// The account the stand-in's credentials belong to.
pub const ACCOUNT: &str = "123456789012";
/// The STS UserId of the executor's credentials: SQS's SenderId of what it sends.
const USER_ID: &str = "AIDABENCH";
/// The queue the tasks wait on.
pub const TASKS_QUEUE: &str = "bench-tasks";
/// The Config rule the findings come from: the only one Config knows here.
pub const CONFIG_RULE: &str = "restricted-common-ports";
/// The ledger's table, created before the executor starts.
pub const LEDGER_TABLE: &str = "bench-ledger";

/// The remediation call's latency; every other call waits [`CALL_LATENCY`].
pub const REMEDIATION_LATENCY: Duration = Duration::from_millis(50);
/// SQS, reads, DynamoDB reads and writes, and other calls.
pub const CALL_LATENCY: Duration = Duration::from_millis(10);

/// How long the stand-in takes to answer `call` (`service:Action`).
pub fn latency(call: &str) -> Duration {
    match call {
        "ec2:RevokeSecurityGroupIngress" => REMEDIATION_LATENCY,
        _ => CALL_LATENCY,
    }
}

#[derive(Clone)]
struct Message {
    id: String,
    body: String,
    sent_ms: u128,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Message>,
    /// Sent with a delay: visible from the instant given.
    delayed: Vec<(Instant, Message)>,
    /// Received, by receipt handle.
    in_flight: HashMap<String, Message>,
}

impl Queue {
    /// Makes the delayed messages that are due visible.
    fn due(&mut self, now: Instant) {
        let (due, waiting): (Vec<_>, Vec<_>) = self.delayed.drain(..).partition(|(t, _)| *t <= now);
        self.delayed = waiting;
        self.ready.extend(due.into_iter().map(|(_, m)| m));
    }
}

#[derive(Default)]
struct State {
    queues: HashMap<String, Queue>,
    messages: u64,
    receipts: u64,
    revoked: HashSet<String>,
    tables: Tables,
    calls: BTreeMap<String, u64>,
    late: BTreeMap<String, Duration>,
    unknown: BTreeSet<String>,
    first_receive: Option<Instant>,
    last_delete: Option<Instant>,
}

type Shared = Arc<Mutex<State>>;

/// What the stand-in saw, once the executor has exited.
pub struct Report {
    /// Every call, by `service:Action`.
    pub calls: BTreeMap<String, u64>,
    /// By `service:Action`, the time its answers took beyond [`latency`] in all: the
    /// stand-in's own delay (timer rounding, waiting for its lock or a CPU).
    pub late: BTreeMap<String, Duration>,
    /// Calls it does not implement, with why.
    pub unknown: BTreeSet<String>,
    /// Security groups revoked.
    pub revoked: usize,
    /// The first ReceiveMessage.
    pub first_receive: Option<Instant>,
    /// The last DeleteMessage(Batch).
    pub last_delete: Option<Instant>,
    /// Messages on the tasks queue still waiting out their delay (closure checks).
    pub delayed: usize,
    /// Messages on dead-letter queues.
    pub dead_letters: usize,
    /// Ledger entries, by status.
    pub ledger: BTreeMap<String, usize>,
}

/// A running stand-in.
pub struct StandIn {
    state: Shared,
    /// Its endpoint (`AWS_ENDPOINT_URL`).
    pub endpoint: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl StandIn {
    /// Starts a stand-in whose tasks queue holds `tasks`, with the ledger's table made.
    pub async fn start(tasks: impl IntoIterator<Item = String>) -> StandIn {
        let state: Shared = Arc::default();
        {
            let mut s = state.lock().unwrap();
            s.tables.create(LEDGER_TABLE);
            for body in tasks {
                s.send(TASKS_QUEUE, body, 0);
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (st, base) = (state.clone(), endpoint.clone());
        let server = tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(connection(stream, st.clone(), base.clone()));
            }
        });
        StandIn {
            state,
            endpoint,
            server,
        }
    }

    /// What it saw so far.
    pub fn report(&self) -> Report {
        let mut s = self.state.lock().unwrap();
        let now = Instant::now();
        for q in s.queues.values_mut() {
            q.due(now);
        }
        let mut ledger = BTreeMap::new();
        for item in s.tables.items(LEDGER_TABLE) {
            if let Some(status) = item.get("status").and_then(|v| v["S"].as_str()) {
                *ledger.entry(status.to_string()).or_default() += 1;
            }
        }
        let dead_letters = s
            .queues
            .iter()
            .filter(|(name, _)| name.ends_with("-dlq"))
            .map(|(_, q)| q.ready.len() + q.in_flight.len() + q.delayed.len())
            .sum();
        Report {
            calls: s.calls.clone(),
            late: s.late.clone(),
            unknown: s.unknown.clone(),
            revoked: s.revoked.len(),
            first_receive: s.first_receive,
            last_delete: s.last_delete,
            delayed: s.queues.get(TASKS_QUEUE).map_or(0, |q| q.delayed.len()),
            dead_letters,
            ledger,
        }
    }
}

impl State {
    fn queue(&mut self, name: &str) -> &mut Queue {
        self.queues.entry(name.to_string()).or_default()
    }

    /// Queues a message, visible after `delay_secs`; returns its id.
    fn send(&mut self, queue: &str, body: String, delay_secs: u64) -> String {
        self.messages += 1;
        let m = Message {
            id: format!("m{}", self.messages),
            body,
            sent_ms: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        };
        let id = m.id.clone();
        let q = self.queue(queue);
        match delay_secs {
            0 => q.ready.push_back(m),
            s => q.delayed.push((Instant::now() + Duration::from_secs(s), m)),
        }
        id
    }

    fn sqs(&mut self, base: &str, action: &str, req: &Value) -> Option<Value> {
        let url = req["QueueUrl"].as_str().unwrap_or_default();
        let name = url.rsplit('/').next().unwrap_or_default().to_string();
        let handle = |v: &Value| v["ReceiptHandle"].as_str().unwrap_or_default().to_string();
        let entries = req["Entries"].as_array().cloned().unwrap_or_default();
        let ok = |e: &Value| json!({ "Id": e["Id"] });
        Some(match action {
            "GetQueueUrl" => json!({
                "QueueUrl": format!("{base}/{ACCOUNT}/{}", req["QueueName"].as_str().unwrap_or_default())
            }),
            "GetQueueAttributes" => {
                let q = self.queue(&name);
                q.due(Instant::now());
                let mut attrs = json!({
                    "ApproximateNumberOfMessages": q.ready.len().to_string(),
                    "ApproximateNumberOfMessagesNotVisible": q.in_flight.len().to_string(),
                    "ApproximateNumberOfMessagesDelayed": q.delayed.len().to_string(),
                });
                if !name.ends_with("-dlq") {
                    attrs["RedrivePolicy"] = json!({
                        "deadLetterTargetArn": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}-dlq"),
                        "maxReceiveCount": 10,
                    })
                    .to_string()
                    .into();
                }
                json!({ "Attributes": attrs })
            }
            "ReceiveMessage" => {
                let now = Instant::now();
                self.first_receive.get_or_insert(now);
                let max = req["MaxNumberOfMessages"].as_u64().unwrap_or(1) as usize;
                self.queue(&name).due(now);
                let mut messages = Vec::new();
                while messages.len() < max {
                    let Some(m) = self.queue(&name).ready.pop_front() else {
                        break;
                    };
                    self.receipts += 1;
                    let receipt = format!("r{}", self.receipts);
                    messages.push(json!({
                        "MessageId": m.id, "ReceiptHandle": receipt, "Body": m.body,
                        "Attributes": {
                            "ApproximateReceiveCount": "1", "SenderId": USER_ID,
                            "SentTimestamp": m.sent_ms.to_string(),
                        },
                    }));
                    self.queue(&name).in_flight.insert(receipt, m);
                }
                json!({ "Messages": messages })
            }
            "DeleteMessage" | "DeleteMessageBatch" => {
                self.last_delete = Some(Instant::now());
                let q = self.queue(&name);
                if action == "DeleteMessage" {
                    q.in_flight.remove(&handle(req));
                    json!({})
                } else {
                    for e in &entries {
                        q.in_flight.remove(&handle(e));
                    }
                    json!({ "Successful": entries.iter().map(ok).collect::<Vec<_>>(), "Failed": [] })
                }
            }
            "ChangeMessageVisibility" | "ChangeMessageVisibilityBatch" => {
                let q = self.queue(&name);
                let single = [req.clone()];
                let changes = if action == "ChangeMessageVisibility" {
                    &single[..]
                } else {
                    &entries[..]
                };
                // A timeout of 0 hands the message back; a heartbeat's keeps it.
                for e in changes {
                    if e["VisibilityTimeout"].as_i64() == Some(0) {
                        if let Some(m) = q.in_flight.remove(&handle(e)) {
                            q.ready.push_back(m);
                        }
                    }
                }
                match action {
                    "ChangeMessageVisibility" => json!({}),
                    _ => {
                        json!({ "Successful": entries.iter().map(ok).collect::<Vec<_>>(), "Failed": [] })
                    }
                }
            }
            "SendMessage" => {
                let body = req["MessageBody"].as_str().unwrap_or_default().to_string();
                let delay = req["DelaySeconds"].as_u64().unwrap_or(0);
                json!({ "MessageId": self.send(&name, body, delay), "MD5OfMessageBody": "" })
            }
            "SendMessageBatch" => {
                let mut sent = Vec::new();
                for e in &entries {
                    let body = e["MessageBody"].as_str().unwrap_or_default().to_string();
                    let delay = e["DelaySeconds"].as_u64().unwrap_or(0);
                    let id = self.send(&name, body, delay);
                    sent.push(json!({ "Id": e["Id"], "MessageId": id, "MD5OfMessageBody": "" }));
                }
                json!({ "Successful": sent, "Failed": [] })
            }
            _ => return None,
        })
    }

    fn config(&mut self, action: &str, req: &Value) -> Option<Answer> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        Some(match action {
            "GetComplianceDetailsByResource" => {
                let id = req["ResourceId"].as_str().unwrap_or_default();
                let compliance = match self.revoked.contains(id) {
                    true => "COMPLIANT",
                    false => "NON_COMPLIANT",
                };
                json11(json!({ "EvaluationResults": [{
                    "EvaluationResultIdentifier": {
                        "EvaluationResultQualifier": {
                            "ConfigRuleName": CONFIG_RULE,
                            "ResourceType": req["ResourceType"],
                            "ResourceId": id,
                            "EvaluationMode": "DETECTIVE",
                        },
                        "OrderingTimestamp": now,
                    },
                    "ComplianceType": compliance,
                    "ResultRecordedTime": now,
                    "ConfigRuleInvokedTime": now,
                }]}))
            }
            "DescribeConfigRules" => {
                let names = req["ConfigRuleNames"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if names.iter().any(|n| n != CONFIG_RULE) {
                    return Some(error_json(
                        "NoSuchConfigRuleException",
                        "The ConfigRule provided in the request is invalid.",
                    ));
                }
                json11(json!({ "ConfigRules": [{
                    "ConfigRuleName": CONFIG_RULE,
                    "ConfigRuleArn": format!("arn:aws:config:us-east-1:{ACCOUNT}:config-rule/config-rule-bench"),
                    "ConfigRuleId": "config-rule-bench",
                    "Source": {"Owner": "AWS", "SourceIdentifier": "RESTRICTED_INCOMING_TRAFFIC"},
                    "ConfigRuleState": "ACTIVE",
                }]}))
            }
            "StartConfigRulesEvaluation" => json11(json!({})),
            _ => return None,
        })
    }

    fn query(&mut self, action: &str, form: &str) -> Option<Answer> {
        const EC2: &str = "xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"";
        Some(match action {
            "GetCallerIdentity" => xml(format!(
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
                 <Arn>arn:aws:iam::{ACCOUNT}:user/bench</Arn><UserId>{USER_ID}</UserId><Account>{ACCOUNT}</Account>\
                 </GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
            )),
            "DescribeSecurityGroups" => {
                let id = form_value(form, "GroupId.1").unwrap_or_default();
                let perms = match self.revoked.contains(id) {
                    true => "",
                    false => "<item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort>\
                              <ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges></item>",
                };
                xml(format!(
                    "<DescribeSecurityGroupsResponse {EC2}><requestId>1</requestId>\
                     <securityGroupInfo><item><groupId>{id}</groupId><groupName>g</groupName><ipPermissions>{perms}</ipPermissions>\
                     </item></securityGroupInfo></DescribeSecurityGroupsResponse>"
                ))
            }
            "RevokeSecurityGroupIngress" => {
                let id = form_value(form, "GroupId").unwrap_or_default();
                self.revoked.insert(id.to_string());
                xml(format!(
                    "<RevokeSecurityGroupIngressResponse {EC2}><requestId>1</requestId><return>true</return></RevokeSecurityGroupIngressResponse>"
                ))
            }
            "DescribeTags" => xml(format!(
                "<DescribeTagsResponse {EC2}><requestId>1</requestId><tagSet/></DescribeTagsResponse>"
            )),
            _ => return None,
        })
    }

    /// Answers one call (after its latency has passed), or `None` if not implemented.
    fn answer(&mut self, base: &str, call: &str, request: &Request) -> Option<Answer> {
        let (service, action) = call.split_once(':').unwrap_or_default();
        match (service, request) {
            ("sqs", Request::Json(req)) => self.sqs(base, action, req).map(json10),
            ("config", Request::Json(req)) => self.config(action, req),
            ("dynamodb", Request::Json(req)) => match self.tables.call(action, req) {
                Ok(v) => Some(json10(v)),
                // What the subset does not implement, as a missing call.
                Err(("ValidationException", why)) => {
                    self.unknown.insert(format!("{call} ({why})"));
                    Some(error_json("ValidationException", &why))
                }
                Err((kind, why)) => Some(error_json(kind, &why)),
            },
            ("sts" | "ec2", Request::Form(form)) => self.query(action, form),
            _ => None,
        }
    }
}

/// Status, content type, body.
type Answer = (u16, &'static str, String);

fn xml(body: String) -> Answer {
    (200, "text/xml", body)
}

fn json10(v: Value) -> Answer {
    (200, "application/x-amz-json-1.0", v.to_string())
}

fn json11(v: Value) -> Answer {
    (200, "application/x-amz-json-1.1", v.to_string())
}

/// A JSON-protocol client error of this type.
fn error_json(kind: &str, message: &str) -> Answer {
    (
        400,
        "application/x-amz-json-1.0",
        json!({"__type": format!("com.amazonaws.bench#{kind}"), "message": message}).to_string(),
    )
}

fn form_value<'a>(form: &'a str, key: &str) -> Option<&'a str> {
    form.split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// A request's body, by protocol.
enum Request {
    /// SQS, Config, DynamoDB.
    Json(Value),
    /// EC2, STS.
    Form(String),
}

/// Names the call (`service:Action`), waits its latency, counts it and answers it.
async fn serve(state: &Shared, base: &str, target: Option<&str>, body: String) -> Answer {
    let (call, request) = match target {
        Some(t) => {
            let (prefix, action) = t.split_once('.').unwrap_or((t, ""));
            let service = match prefix {
                "AmazonSQS" => "sqs",
                "StarlingDoveService" => "config",
                "DynamoDB_20120810" => "dynamodb",
                other => other,
            };
            let req = serde_json::from_str(&body).unwrap_or_default();
            (format!("{service}:{action}"), Request::Json(req))
        }
        None => {
            let action = form_value(&body, "Action").unwrap_or_default();
            let service = match action {
                "GetCallerIdentity" => "sts",
                _ => "ec2",
            };
            (format!("{service}:{action}"), Request::Form(body))
        }
    };
    let began = Instant::now();
    tokio::time::sleep(latency(&call)).await;
    let mut s = state.lock().unwrap();
    *s.calls.entry(call.clone()).or_default() += 1;
    let answer = s.answer(base, &call, &request);
    *s.late.entry(call.clone()).or_default() += began.elapsed().saturating_sub(latency(&call));
    match answer {
        Some(answer) => answer,
        None => {
            s.unknown.insert(call.clone());
            let why = format!("bench stand-in does not implement {call}");
            match request {
                Request::Json(_) => error_json("InvalidAction", &why),
                Request::Form(_) => (
                    400,
                    "text/xml",
                    format!("<Response><Errors><Error><Code>InvalidAction</Code><Message>{why}</Message></Error></Errors><RequestID>1</RequestID></Response>"),
                ),
            }
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
        let target = headers.get("x-amz-target").map(String::as_str);
        let (status, content_type, answer) = serve(&state, &base, target, body).await;
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
