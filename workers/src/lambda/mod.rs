//! `redress lambda`: run the router or the executor as an SQS-triggered AWS Lambda
//! function (custom runtime, `bootstrap` = this binary), with partial batch failure
//! reporting. For low-volume accounts; the same handlers as the long-running workers.

mod batch;
mod runtime;

use std::sync::Arc;

use crate::cli::{Global, LambdaArgs, LambdaWorker};
use crate::error::{CliError, CliResult};
use crate::report::Tally;
use crate::worker::Handler;

pub use batch::{handle_batch, SqsEvent};
use runtime::RuntimeApi;

/// Answers one invocation.
async fn invoke_once<H: Handler>(
    api: &RuntimeApi,
    handler: &H,
    worker: &'static str,
    sqs: &aws_sdk_sqs::Client,
) -> std::io::Result<()> {
    let invocation = api.next().await?;
    match serde_json::from_str::<SqsEvent>(&invocation.body) {
        Ok(event) => {
            let response = handle_batch(handler, worker, sqs, &event).await;
            // Lambda may freeze the process once it answers: finish background work first.
            handler.settle().await;
            api.respond(&invocation.request_id, &response.to_string())
                .await
        }
        Err(e) => {
            api.fail(&invocation.request_id, &format!("not an SQS event: {e}"))
                .await
        }
    }
}

async fn serve<H: Handler>(
    handler: H,
    worker: &'static str,
    sqs: aws_sdk_sqs::Client,
) -> CliResult {
    let address = std::env::var("AWS_LAMBDA_RUNTIME_API").map_err(|_| {
        CliError::input(
            "AWS_LAMBDA_RUNTIME_API is not set: `redress lambda` runs inside AWS Lambda",
        )
    })?;
    let api = RuntimeApi { address };
    loop {
        if let Err(e) = invoke_once(&api, &handler, worker, &sqs).await {
            // The runtime API is local and reliable; an error here means Lambda is
            // tearing the sandbox down. Exit so Lambda restarts cleanly.
            return Err(CliError::failed(format!("Lambda runtime API: {e}")));
        }
    }
}

/// Runs the chosen worker under the Lambda runtime.
pub async fn run(global: &Global, args: &LambdaArgs) -> CliResult {
    let policy = crate::run::load_policy(global)?;
    let config = crate::aws::load().await;
    let clients = crate::aws::Clients::new(&config);
    let tally = Arc::new(Tally::default());
    match args.worker {
        LambdaWorker::Router => {
            let handler = crate::run::router(global, policy, &clients, tally).await?;
            serve(handler, "router", clients.sqs.clone()).await
        }
        LambdaWorker::Executor => {
            let handler = crate::run::executor(
                global,
                &args.executor,
                policy,
                &clients,
                &config,
                tally,
                // A Lambda invocation is not signalled; the platform ends it.
                tokio::sync::watch::channel(false).1,
            )
            .await?;
            serve(handler, "executor", clients.sqs.clone()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesOutput;
    use aws_sdk_sqs::operation::get_queue_url::GetQueueUrlOutput;
    use aws_sdk_sqs::operation::send_message::SendMessageOutput;
    use aws_sdk_sqs::types::QueueAttributeName;
    use aws_sdk_sqs::Client;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use redress::policy::Policy;
    use crate::aws::sqs::Queue;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::executor::SecurityGroups;
    use crate::router::Router;

    const POLICY: &str = r#"
[[rule]]
id = "common-ports"
config_rule = "restricted-common-ports"
severity = "MEDIUM"
action = { fix = "revoke_public_ingress", ports = [21] }
"#;

    fn fixture() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/lambda/sqs-batch-one-bad.json"
        ))
        .unwrap()
    }

    fn router(sqs: &Client) -> Router {
        let ec2 = mock_client!(aws_sdk_ec2, []);
        Router {
            policy: Arc::new(Policy::from_toml(POLICY, "p").unwrap()),
            tasks: Queue::at(
                sqs,
                "https://sqs.eu-west-1.amazonaws.com/111122223333/redress-tasks",
            ),
            approvals: Queue::at(
                sqs,
                "https://sqs.eu-west-1.amazonaws.com/111122223333/redress-approvals",
            ),
            security_groups: SecurityGroups::new(ec2),
            dry_run: false,
            tally: Arc::new(Tally::default()),
        }
    }

    fn queue_url() -> Rule {
        mock!(Client::get_queue_url).then_compute_output(|r| {
            GetQueueUrlOutput::builder()
                .queue_url(format!(
                    "https://sqs.eu-west-1.amazonaws.com/111122223333/{}",
                    r.queue_name().unwrap_or_default()
                ))
                .build()
        })
    }

    fn sent() -> Rule {
        mock!(Client::send_message)
            .then_output(|| SendMessageOutput::builder().message_id("m").build())
    }

    #[tokio::test]
    async fn the_bad_record_is_the_only_batch_item_failure_when_no_dlq_is_found() {
        let no_redrive = mock!(Client::get_queue_attributes)
            .then_output(|| GetQueueAttributesOutput::builder().build());
        let (url, send) = (queue_url(), sent());
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &no_redrive, &send]);
        let event: SqsEvent = serde_json::from_str(&fixture()).unwrap();
        let response = handle_batch(&router(&sqs), "router", &sqs, &event).await;
        assert_eq!(
            response,
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "0f6d1a2b-0000-4000-8000-000000000002"}]})
        );
        assert_eq!(send.num_calls(), 2, "the two good records became tasks");
    }

    #[tokio::test]
    async fn with_a_dlq_the_bad_record_is_dead_lettered_with_its_reason_and_not_reported() {
        let redrive = mock!(Client::get_queue_attributes).then_output(|| {
            GetQueueAttributesOutput::builder()
                .attributes(
                    QueueAttributeName::RedrivePolicy,
                    r#"{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:111122223333:redress-events-dlq","maxReceiveCount":10}"#,
                )
                .build()
        });
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
        let (url, send) = (queue_url(), sent());
        let sqs = mock_client!(
            aws_sdk_sqs,
            RuleMode::MatchAny,
            [&url, &redrive, &to_dlq, &send]
        );
        let event: SqsEvent = serde_json::from_str(&fixture()).unwrap();
        let response = handle_batch(&router(&sqs), "router", &sqs, &event).await;
        assert_eq!(response, serde_json::json!({"batchItemFailures": []}));
        assert_eq!(to_dlq.num_calls(), 1);
    }

    #[tokio::test]
    async fn speaks_the_runtime_api() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let body = fixture();
        let server = tokio::spawn(async move {
            // GET next → the fixture; then POST response → captured.
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n])
                .starts_with("GET /2018-06-01/runtime/invocation/next"));
            let answer = format!(
                "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: req-1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(answer.as_bytes()).await.unwrap();
            drop(s);
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut chunk = vec![0; 4096];
            loop {
                let n = s.read(&mut chunk).await.unwrap();
                request.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if rest.len() >= len {
                        break;
                    }
                }
            }
            s.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let no_redrive = mock!(Client::get_queue_attributes)
            .then_output(|| GetQueueAttributesOutput::builder().build());
        let (url, send) = (queue_url(), sent());
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&url, &no_redrive, &send]);
        invoke_once(&RuntimeApi { address }, &router(&sqs), "router", &sqs)
            .await
            .unwrap();
        let posted = server.await.unwrap();
        assert!(
            posted.starts_with("POST /2018-06-01/runtime/invocation/req-1/response"),
            "{posted}"
        );
        assert!(posted.ends_with(r#"{"batchItemFailures":[{"itemIdentifier":"0f6d1a2b-0000-4000-8000-000000000002"}]}"#), "{posted}");
    }
}
