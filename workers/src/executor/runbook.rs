//! Runbook fixes: start the SSM Automation document with an idempotency token, poll it
//! to a terminal status, and report the real outcome.

use redress::automation::{classify, StatusClass};
use redress::ledger::Change;
use redress::policy::RenderedRunbook;

use crate::aws::retry::{poll, ErrorClass, PollError};
use crate::aws::ssm::Automation;

use super::outcome::{Done, FixError, FixResult};

/// Starts the runbook and waits for its terminal status.
pub async fn run(
    automation: &Automation,
    runbook: &RenderedRunbook,
    client_token: &str,
) -> FixResult {
    let a = automation;
    let id = a.start(runbook, client_token).await?;
    let with_id = |mut e: FixError| {
        e.execution_id = Some(id.clone());
        e
    };
    let finished = poll(a.poll_interval, a.timeout, || a.status(&id))
        .await
        .map_err(|e| match e {
            PollError::Aws(e) => with_id(e.into()),
            // Still running: a redelivery resumes it through the same token.
            PollError::DeadlineExceeded => with_id(FixError {
                class: ErrorClass::Transient,
                message: format!(
                    "runbook {} still running after {:?}",
                    runbook.document, a.timeout
                ),
                execution_id: None,
                refused: false,
            }),
        })?;
    match classify(&finished.status) {
        StatusClass::Succeeded => Ok(Done {
            execution_id: Some(id),
            ..Done::succeeded(
                format!("runbook {} ended {}", runbook.document, finished.status),
                change(runbook),
            )
        }),
        _ => Err(with_id(FixError::permanent(format!(
            "runbook {} ended {}: {}",
            runbook.document,
            finished.status,
            finished.failure.as_deref().unwrap_or("no failure message")
        )))),
    }
}

/// What a runbook changes, for the ledger: the document and the inputs it was started
/// with. (The settings an inverse would need are not read yet, so it cannot be undone.)
pub fn change(runbook: &RenderedRunbook) -> Change {
    Change::Runbook {
        document: runbook.document.clone(),
        inputs: runbook.parameters.clone(),
        before: None,
        after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ssm::operation::get_automation_execution::GetAutomationExecutionOutput;
    use aws_sdk_ssm::operation::start_automation_execution::{
        StartAutomationExecutionError, StartAutomationExecutionOutput,
    };
    use aws_sdk_ssm::types::{AutomationExecution, AutomationExecutionStatus};
    use aws_sdk_ssm::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};
    use redress::audit::Outcome;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn runbook() -> RenderedRunbook {
        RenderedRunbook {
            document: "AWS-EnableS3BucketEncryption".into(),
            parameters: BTreeMap::from([("BucketName".into(), vec!["b".into()])]),
            assume_role: Some("arn:aws:iam::111122223333:role/r".into()),
        }
    }

    fn status(s: &str, failure: Option<&str>) -> GetAutomationExecutionOutput {
        GetAutomationExecutionOutput::builder()
            .automation_execution(
                AutomationExecution::builder()
                    .automation_execution_id("exec-1")
                    .automation_execution_status(AutomationExecutionStatus::from(s))
                    .set_failure_message(failure.map(str::to_string))
                    .build(),
            )
            .build()
    }

    fn automation(client: Client) -> Automation {
        Automation::new(client, Duration::from_millis(1), Duration::from_secs(5))
    }

    async fn run_to(terminal: &'static str) -> (FixResult, usize) {
        let start = mock!(Client::start_automation_execution)
            .match_requests(|r| {
                r.client_token() == Some("tok")
                    && r.parameters().is_some_and(|p| {
                        p.get("AutomationAssumeRole").is_some() && p.get("BucketName").is_some()
                    })
            })
            .then_output(|| {
                StartAutomationExecutionOutput::builder()
                    .automation_execution_id("exec-1")
                    .build()
            });
        let get = mock!(Client::get_automation_execution)
            .sequence()
            .output(|| status("Pending", None))
            .output(|| status("InProgress", None))
            .output(move || status(terminal, Some("step x failed")))
            .build();
        let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&start, &get]);
        let out = run(&automation(client), &runbook(), "tok").await;
        (out, get.num_calls())
    }

    #[tokio::test]
    async fn success_statuses_succeed_after_polling() {
        for s in ["Success", "CompletedWithSuccess"] {
            let (out, polls) = run_to(s).await;
            let done = out.unwrap();
            assert_eq!(done.outcome, Outcome::Succeeded, "{s}");
            assert_eq!(done.execution_id.as_deref(), Some("exec-1"));
            assert_eq!(polls, 3);
        }
    }

    #[tokio::test]
    async fn every_failure_status_is_a_permanent_failure() {
        for s in [
            "Failed",
            "TimedOut",
            "Cancelled",
            "Rejected",
            "CompletedWithFailure",
            "Exited",
        ] {
            let (out, _) = run_to(s).await;
            let err = out.unwrap_err();
            assert_eq!(err.class, ErrorClass::Permanent, "{s}");
            assert!(
                err.message.contains(s) && err.message.contains("step x failed"),
                "{}",
                err.message
            );
            assert_eq!(err.execution_id.as_deref(), Some("exec-1"));
        }
    }

    #[tokio::test]
    async fn still_running_at_the_deadline_is_transient() {
        let start = mock!(Client::start_automation_execution).then_output(|| {
            StartAutomationExecutionOutput::builder()
                .automation_execution_id("exec-1")
                .build()
        });
        let get = mock!(Client::get_automation_execution)
            .sequence()
            .output(|| status("InProgress", None))
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&start, &get]);
        let a = Automation::new(client, Duration::from_millis(1), Duration::from_millis(200));
        let err = run(&a, &runbook(), "tok").await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Transient);
        assert!(get.num_calls() >= 1, "polled until the deadline");
    }

    #[tokio::test]
    async fn throttling_is_retried_and_classified_transient() {
        let throttled = || {
            StartAutomationExecutionError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            )
        };
        // Throttled once, then accepted: the run completes.
        let start = mock!(Client::start_automation_execution)
            .sequence()
            .error(throttled)
            .output(|| {
                StartAutomationExecutionOutput::builder()
                    .automation_execution_id("exec-1")
                    .build()
            })
            .build();
        let get = mock!(Client::get_automation_execution).then_output(|| status("Success", None));
        let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, [&start, &get]);
        let (a, rb) = (automation(client), runbook());
        let retried =
            crate::aws::retry::with_backoff(Duration::from_secs(5), || a.start(&rb, "tok")).await;
        assert_eq!(retried.unwrap(), "exec-1");
        assert_eq!(start.num_calls(), 2);
        // Throttled for good: the error says transient, so the task is left for retry.
        let start = mock!(Client::start_automation_execution).then_error(throttled);
        let client = mock_client!(aws_sdk_ssm, [&start]);
        let err = run(&automation(client), &runbook(), "tok")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Transient, "{}", err.message);
    }

    #[tokio::test]
    async fn access_denied_is_permanent() {
        let start = mock!(Client::start_automation_execution).then_error(|| {
            StartAutomationExecutionError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not allowed")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_ssm, [&start]);
        let err = run(&automation(client), &runbook(), "tok")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Permanent);
    }
}
