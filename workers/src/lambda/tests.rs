//! The Lambda adapter through `lambda_runtime`, against a local runtime API
//! ([`super::test_api`]): SQS mocked with aws-smithy-mocks, SSM Automation with a fake
//! HTTP connector behind an `SdkConfig` (the executor builds its clients from one).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchOutput;
use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesOutput;
use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput;
use aws_sdk_sqs::operation::send_message::SendMessageOutput;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchResultEntry, QueueAttributeName,
    SendMessageBatchResultEntry,
};
use aws_sdk_sqs::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_types::body::SdkBody;
use redress::policy::Policy;

use super::test_api::{Answer, Invocation, LocalApi};
use super::{serve, serve_evaluator, Source};
use crate::aws::ec2::SecurityGroups;
use crate::aws::sqs::Queue;
use crate::executor::Executor;
use crate::router::Router;
use crate::worker::Handler;

const ACCOUNT: &str = "111122223333";
const QUEUES: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../tests/fixtures/lambda/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// `lambda_runtime` reads its settings from the environment when it starts: one test
/// at a time sets them and runs the runtime.
static LAMBDA_ENV: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Serves `invocations` through `lambda_runtime` from a local runtime API, the way
/// `redress lambda` does, and returns what the function answered.
async fn through_runtime<H: Handler>(
    handler: &H,
    worker: &'static str,
    source: &Source,
    invocations: Vec<Invocation>,
) -> Vec<Answer> {
    runtime_answers(invocations, || serve(handler, worker, source)).await
}

/// Runs `serve` (a function's runtime loop) against a local runtime API handing out
/// `invocations`; returns what the function answered.
async fn runtime_answers<F, Fut>(invocations: Vec<Invocation>, serve: F) -> Vec<Answer>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(), lambda_runtime::Error>>,
{
    let _env = LAMBDA_ENV.lock().await;
    let mut api = LocalApi::start(invocations).await;
    for (k, v) in [
        ("AWS_LAMBDA_RUNTIME_API", api.address.as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", "redress"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "test"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/redress"),
    ] {
        std::env::set_var(k, v);
    }
    let ended = tokio::time::timeout(Duration::from_secs(30), serve())
        .await
        .expect("the runtime stops once the local API has no more invocations");
    assert!(ended.is_err(), "ends when the API drops the connection");
    api.answers()
}

fn invocation(id: &str, body: String, deadline_ms: u64) -> Invocation {
    Invocation {
        request_id: id.to_string(),
        deadline_ms,
        body,
    }
}

fn failures(a: &Answer) -> Vec<String> {
    assert!(!a.error, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    v["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures: {}", a.body))
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect()
}

// --- SQS, mocked -------------------------------------------------------------------

fn queue_url() -> Rule {
    mock!(Client::get_queue_url).then_compute_output(|r| {
        GetQueueUrlOutput::builder()
            .queue_url(format!("{QUEUES}/{}", r.queue_name().unwrap_or_default()))
            .build()
    })
}

/// Every queue's ARN, and a redrive policy naming `<name>-dlq` when `dlq`.
fn queue_attributes(dlq: bool) -> Rule {
    mock!(Client::get_queue_attributes).then_compute_output(move |r| {
        let name = r
            .queue_url()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default();
        let arn = format!("arn:aws:sqs:eu-west-1:{ACCOUNT}:{name}");
        let mut out =
            GetQueueAttributesOutput::builder().attributes(QueueAttributeName::QueueArn, &arn);
        if dlq {
            out = out.attributes(
                QueueAttributeName::RedrivePolicy,
                format!(r#"{{"deadLetterTargetArn":"{arn}-dlq","maxReceiveCount":10}}"#),
            );
        }
        out.build()
    })
}

/// Visibility changes, as the queue answers them: only the handles it issued for
/// messages in flight succeed. Records each (handle, seconds) asked for.
struct Visibility {
    rule: Rule,
    asked: Arc<Mutex<Vec<(String, i32)>>>,
}

fn visibility(in_flight: &[&str]) -> Visibility {
    let in_flight: HashSet<String> = in_flight.iter().map(|h| h.to_string()).collect();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    let rule = mock!(Client::change_message_visibility_batch).then_compute_output(move |r| {
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for e in r.entries() {
            let handle = e.receipt_handle().to_string();
            seen.lock()
                .unwrap()
                .push((handle.clone(), e.visibility_timeout().unwrap_or(-1)));
            if in_flight.contains(&handle) {
                ok.push(
                    ChangeMessageVisibilityBatchResultEntry::builder()
                        .id(e.id())
                        .build()
                        .unwrap(),
                );
            } else {
                failed.push(
                    BatchResultErrorEntry::builder()
                        .id(e.id())
                        .sender_fault(true)
                        .code("ReceiptHandleIsInvalid")
                        .message("The input receipt handle is invalid.")
                        .build()
                        .unwrap(),
                );
            }
        }
        ChangeMessageVisibilityBatchOutput::builder()
            .set_successful(Some(ok))
            .set_failed(Some(failed))
            .build()
            .unwrap()
    });
    Visibility { rule, asked }
}

/// SendMessageBatch accepting everything; records (queue URL, body) of each message.
struct Sent {
    rule: Rule,
    messages: Arc<Mutex<Vec<(String, String)>>>,
}

fn sent() -> Sent {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let seen = messages.clone();
    let rule = mock!(Client::send_message_batch).then_compute_output(move |r| {
        let mut ok = Vec::new();
        for e in r.entries() {
            seen.lock().unwrap().push((
                r.queue_url().unwrap_or_default().to_string(),
                e.message_body().to_string(),
            ));
            ok.push(
                SendMessageBatchResultEntry::builder()
                    .id(e.id())
                    .message_id(format!("sent-{}", e.id()))
                    .md5_of_message_body("x")
                    .build()
                    .unwrap(),
            );
        }
        SendMessageBatchOutput::builder()
            .set_successful(Some(ok))
            .set_failed(Some(Vec::new()))
            .build()
            .unwrap()
    });
    Sent { rule, messages }
}

/// Any single SendMessage (a dead-letter copy).
fn any_send_message() -> Rule {
    mock!(Client::send_message).then_output(|| SendMessageOutput::builder().message_id("d").build())
}

// --- the router ----------------------------------------------------------------------

const ROUTER_POLICY: &str = r#"
[[rule]]
id = "common-ports"
config_rule = "restricted-common-ports"
severity = "MEDIUM"
action = { fix = "revoke_public_ingress", ports = [21] }
"#;

fn router(sqs: &Client) -> Router {
    let ec2 = mock_client!(aws_sdk_ec2, []);
    Router {
        policy: Arc::new(Policy::from_toml(ROUTER_POLICY, "p").unwrap()),
        tasks: Queue::at(sqs, &format!("{QUEUES}/redress-tasks")),
        approvals: Queue::at(sqs, &format!("{QUEUES}/redress-approvals")),
        security_groups: SecurityGroups::new(ec2),
        dry_run: false,
        requests_via_executor: false,
    }
}

const ONE_BAD: [&str; 3] = [
    "0f6d1a2b-0000-4000-8000-000000000001",
    "0f6d1a2b-0000-4000-8000-000000000002",
    "0f6d1a2b-0000-4000-8000-000000000003",
];

#[tokio::test]
async fn the_bad_record_is_the_only_batch_item_failure_when_no_dlq_is_found() {
    let (url, attrs, send) = (queue_url(), queue_attributes(false), sent());
    let vis = visibility(&["AQEB-handle-1", "AQEB-handle-2", "AQEB-handle-3"]);
    let sqs = mock_client!(
        aws_sdk_sqs,
        RuleMode::MatchAny,
        [&url, &attrs, &vis.rule, &send.rule]
    );
    let source = Source::resolve(&sqs, "redress-events").await.unwrap();
    assert_eq!(
        source.arn,
        format!("arn:aws:sqs:eu-west-1:{ACCOUNT}:redress-events")
    );
    assert!(source.dlq.is_none());
    let deadline = now_ms() + 60_000;
    let answers = through_runtime(
        &router(&sqs),
        "router",
        &source,
        vec![invocation(
            "req-1",
            fixture("sqs-batch-one-bad.json"),
            deadline,
        )],
    )
    .await;
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].request_id, "req-1");
    assert_eq!(failures(&answers[0]), [ONE_BAD[1]]);
    let tasks = send.messages.lock().unwrap().clone();
    assert_eq!(
        tasks.len(),
        2,
        "the two good records became tasks, in one batch"
    );
    assert_eq!(send.rule.num_calls(), 1);
    assert!(tasks.iter().all(|(q, _)| q.ends_with("/redress-tasks")));
    // Every record's handle was proven, hidden for about the minute left.
    let asked = vis.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 3);
    assert!(
        asked.iter().all(|(_, s)| (55..=66).contains(s)),
        "{asked:?}"
    );
}

#[tokio::test]
async fn with_a_dlq_the_bad_record_is_dead_lettered_with_its_reason_and_not_reported() {
    let to_dlq = mock!(Client::send_message)
        .match_requests(|r| {
            r.queue_url()
                .is_some_and(|u| u.ends_with("redress-events-dlq"))
                && r.message_attributes()
                    .and_then(|a| a.get("redress.error"))
                    .and_then(|v| v.string_value())
                    .is_some_and(|e| e.starts_with("invalid event: body is not JSON"))
        })
        .then_output(|| SendMessageOutput::builder().message_id("d").build());
    let (url, attrs, send) = (queue_url(), queue_attributes(true), sent());
    let vis = visibility(&["AQEB-handle-1", "AQEB-handle-2", "AQEB-handle-3"]);
    let sqs = mock_client!(
        aws_sdk_sqs,
        RuleMode::MatchAny,
        [&url, &attrs, &vis.rule, &to_dlq, &send.rule]
    );
    let source = Source::resolve(&sqs, "redress-events").await.unwrap();
    assert_eq!(
        source.dlq.as_ref().map(|q| q.name.as_str()),
        Some("redress-events-dlq")
    );
    let answers = through_runtime(
        &router(&sqs),
        "router",
        &source,
        vec![invocation(
            "req-1",
            fixture("sqs-batch-one-bad.json"),
            now_ms() + 60_000,
        )],
    )
    .await;
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].body, r#"{"batchItemFailures":[]}"#);
    assert_eq!(to_dlq.num_calls(), 1);
    assert_eq!(send.messages.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn records_not_proven_to_come_from_the_events_queue_are_not_handled() {
    let (url, attrs, send, dead) = (
        queue_url(),
        queue_attributes(true),
        sent(),
        any_send_message(),
    );
    // The queue issued the first record's handle only.
    let vis = visibility(&["AQEB-handle-11"]);
    let sqs = mock_client!(
        aws_sdk_sqs,
        RuleMode::MatchAny,
        [&url, &attrs, &vis.rule, &send.rule, &dead]
    );
    let source = Source::resolve(&sqs, "redress-events").await.unwrap();
    let answers = through_runtime(
        &router(&sqs),
        "router",
        &source,
        vec![invocation(
            "req-1",
            fixture("sqs-batch-forged.json"),
            now_ms() + 60_000,
        )],
    )
    .await;
    // Another queue's record and the one whose handle the queue rejects are not
    // handled: reported, so Lambda deletes nothing with their handles.
    assert_eq!(
        failures(&answers[0]),
        [
            "0f6d1a2b-0000-4000-8000-000000000012",
            "0f6d1a2b-0000-4000-8000-000000000013"
        ]
    );
    let tasks = send.messages.lock().unwrap().clone();
    assert_eq!(
        tasks.len(),
        1,
        "only the proven record became a task: {tasks:?}"
    );
    assert!(
        tasks[0].1.contains("sg-0fedcba9876543210"),
        "{}",
        tasks[0].1
    );
    assert_eq!(dead.num_calls(), 0, "nothing dead-lettered");
    // The other queue's record never reached SQS: its ARN alone disqualifies it.
    let asked: Vec<String> = vis
        .asked
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h.clone())
        .collect();
    assert_eq!(asked, ["AQEB-handle-11", "made-up-handle-13"]);
}

// --- the executor --------------------------------------------------------------------

/// Verification is off: these tests are about the invocation deadline, and the fake
/// below speaks only SSM Automation (Config's part is tested in `tests/e2e/config.rs`).
const EXECUTOR_POLICY: &str = r#"
[config]
verify = false

[[rule]]
id = "s3-encryption"
config_rule = "s3-bucket-server-side-encryption-enabled"
severity = "MEDIUM"
action = { runbook = "AWS-EnableS3BucketEncryption", parameters = { BucketName = ["{resource_id}"], SSEAlgorithm = ["AES256"] } }
"#;

/// SSM Automation that starts every runbook and reports it `InProgress` for ever;
/// counts the calls, and answers anything else with an error it records.
#[derive(Debug, Clone, Default)]
struct Automation {
    starts: Arc<AtomicUsize>,
    polls: Arc<AtomicUsize>,
    other: Arc<Mutex<Vec<String>>>,
}

impl HttpConnector for Automation {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let (status, body) = match target {
            "AmazonSSM.StartAutomationExecution" => {
                self.starts.fetch_add(1, Ordering::SeqCst);
                (200, r#"{"AutomationExecutionId":"exec-1"}"#)
            }
            "AmazonSSM.GetAutomationExecution" => {
                self.polls.fetch_add(1, Ordering::SeqCst);
                (
                    200,
                    r#"{"AutomationExecution":{"AutomationExecutionId":"exec-1","AutomationExecutionStatus":"InProgress"}}"#,
                )
            }
            other => {
                self.other.lock().unwrap().push(other.to_string());
                (
                    400,
                    r#"{"__type":"ValidationException","message":"not faked"}"#,
                )
            }
        };
        let mut response = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body));
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.1");
        HttpConnectorFuture::ready(Ok(response))
    }
}

/// The executor as `redress lambda` builds it, its AWS clients answered by the fake
/// Automation (no network), its SQS the mock.
fn executor(sqs: &Client, automation: &Automation) -> Executor {
    crate::test_support::executor(
        EXECUTOR_POLICY,
        sqs,
        QUEUES,
        SharedHttpConnector::new(automation.clone()),
    )
}

#[tokio::test]
async fn the_deadline_arriving_during_a_runbook_poll_stops_it_and_reports_the_record() {
    let (url, attrs, send, dead) = (
        queue_url(),
        queue_attributes(true),
        sent(),
        any_send_message(),
    );
    let vis = visibility(&["AQEB-handle-21"]);
    let sqs = mock_client!(
        aws_sdk_sqs,
        RuleMode::MatchAny,
        [&url, &attrs, &vis.rule, &send.rule, &dead]
    );
    let automation = Automation::default();
    let executor = executor(&sqs, &automation);
    let source = Source::resolve(&sqs, "redress-tasks").await.unwrap();
    let deadline = now_ms() + 3_000;
    let answers = through_runtime(
        &executor,
        "executor",
        &source,
        vec![invocation(
            "req-1",
            fixture("sqs-task-runbook.json"),
            deadline,
        )],
    )
    .await;
    assert_eq!(answers.len(), 1);
    assert_eq!(
        failures(&answers[0]),
        ["7c2e0d1a-0000-4000-8000-000000000021"],
        "still running at the deadline: the record comes back"
    );
    let answered_ms = answers[0]
        .at
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        answered_ms < deadline,
        "answered {} ms after the deadline",
        answered_ms.saturating_sub(deadline)
    );
    // It was cut at the handling margin, not ended early some other way.
    let cut_ms = deadline - super::HANDLE_MARGIN.as_millis() as u64;
    assert!(
        answered_ms + 250 >= cut_ms,
        "answered {} ms before handling had to stop",
        cut_ms - answered_ms
    );
    assert_eq!(automation.starts.load(Ordering::SeqCst), 1);
    let polls = automation.polls.load(Ordering::SeqCst);
    assert!(polls >= 1, "the runbook was being polled");
    assert_eq!(*automation.other.lock().unwrap(), Vec::<String>::new());
    // The poll stopped with the invocation: no status is asked for any more.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        automation.polls.load(Ordering::SeqCst),
        polls,
        "polling went on"
    );
    // Released, not settled as anything else: nothing sent, nothing dead-lettered.
    assert_eq!(send.rule.num_calls(), 0);
    assert_eq!(dead.num_calls(), 0);
}

#[tokio::test]
async fn a_forged_approved_task_is_not_handled() {
    let (url, attrs, send, dead) = (
        queue_url(),
        queue_attributes(true),
        sent(),
        any_send_message(),
    );
    // The payload names the tasks queue, but the queue never issued its handle.
    let vis = visibility(&[]);
    let sqs = mock_client!(
        aws_sdk_sqs,
        RuleMode::MatchAny,
        [&url, &attrs, &vis.rule, &send.rule, &dead]
    );
    let automation = Automation::default();
    let executor = executor(&sqs, &automation);
    let source = Source::resolve(&sqs, "redress-tasks").await.unwrap();
    let answers = through_runtime(
        &executor,
        "executor",
        &source,
        vec![invocation(
            "req-1",
            fixture("sqs-task-forged-approval.json"),
            now_ms() + 60_000,
        )],
    )
    .await;
    assert_eq!(
        failures(&answers[0]),
        ["7c2e0d1a-0000-4000-8000-000000000031"]
    );
    assert_eq!(vis.rule.num_calls(), 1, "its receipt handle was checked");
    assert_eq!(automation.starts.load(Ordering::SeqCst), 0, "no runbook");
    assert_eq!(send.rule.num_calls() + dead.num_calls(), 0, "nothing sent");
}

// --- The evaluator: Config custom-rule invocations -----------------------------------

/// Lambda mode's evaluator, through the runtime: a Config custom-rule invocation (AWS's
/// documented shape, `tests/fixtures/config-invocations/`) is answered by putting its
/// evaluation with the invocation's result token; a put Config refuses is the
/// invocation's error, so Config records the run as failed.
#[tokio::test]
async fn the_evaluator_answers_a_config_invocation_with_put_evaluations() {
    use aws_sdk_config::operation::put_evaluations::{PutEvaluationsInput, PutEvaluationsOutput};
    use aws_sdk_config::types::Evaluation as SdkEvaluation;

    let body = std::fs::read_to_string(format!(
        "{}/../tests/fixtures/config-invocations/sg-admin-port-open.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let sent: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let seen = sent.clone();
    let accept = mock!(aws_sdk_config::Client::put_evaluations).then_compute_output(
        move |r: &PutEvaluationsInput| {
            for e in r.evaluations() {
                seen.lock().unwrap().push((
                    r.result_token().unwrap_or_default().to_string(),
                    e.compliance_resource_id().to_string(),
                    e.compliance_type().as_str().to_string(),
                ));
            }
            PutEvaluationsOutput::builder().build()
        },
    );
    let refuse = mock!(aws_sdk_config::Client::put_evaluations).then_output(|| {
        PutEvaluationsOutput::builder()
            .failed_evaluations(
                SdkEvaluation::builder()
                    .compliance_resource_type("AWS::EC2::SecurityGroup")
                    .compliance_resource_id("sg-0a1b2c3d4e5f60718")
                    .compliance_type(aws_sdk_config::types::ComplianceType::NonCompliant)
                    .ordering_timestamp(aws_smithy_types::DateTime::from_secs(0))
                    .build()
                    .unwrap(),
            )
            .build()
    });
    let evaluator = |put: &Rule| {
        crate::evaluate::Evaluator::from_parts(
            crate::aws::compliance::Compliance::new(mock_client!(aws_sdk_config, [put])),
            SecurityGroups::new(mock_client!(aws_sdk_ec2, [])),
            crate::aws::ssm::Parameters::new(mock_client!(aws_sdk_ssm, [])),
        )
    };
    let deadline = now_ms() + 60_000;

    let accepting = evaluator(&accept);
    let answers = runtime_answers(vec![invocation("c1", body.clone(), deadline)], || {
        serve_evaluator(&accepting)
    })
    .await;
    assert_eq!(answers.len(), 1);
    assert!(!answers[0].error, "{}", answers[0].body);
    let token: String = serde_json::from_str::<serde_json::Value>(&body).unwrap()["resultToken"]
        .as_str()
        .unwrap()
        .into();
    assert_eq!(
        *sent.lock().unwrap(),
        vec![(token, "sg-0a1b2c3d4e5f60718".into(), "NON_COMPLIANT".into())]
    );
    assert_eq!(accept.num_calls(), 1);

    let refusing = evaluator(&refuse);
    let answers = runtime_answers(vec![invocation("c2", body, deadline)], || {
        serve_evaluator(&refusing)
    })
    .await;
    assert_eq!(answers.len(), 1);
    assert!(answers[0].error, "a refused put fails the invocation");
    assert!(
        answers[0]
            .body
            .contains("Config did not accept the evaluation"),
        "{}",
        answers[0].body
    );
}
