//! `redress dlq redrive`: SQS's native message-move task (StartMessageMoveTask, progress
//! from ListMessageMoveTasks). The local emulator lacks these APIs; they are tested with
//! aws-smithy-mocks below.

use std::time::Duration;

use crate::aws::retry::{poll, AwsError, Poll, PollError};

/// How a move task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// Terminal status (`COMPLETED`, `FAILED`, `CANCELLED`).
    pub status: String,
    /// Messages moved.
    pub moved: i64,
    /// Messages there were to move.
    pub to_move: i64,
    /// Why it failed, if it did.
    pub failure: Option<String>,
}

/// Starts a move of every message in the DLQ back to its source queue(s) and waits for
/// the task to end, calling `progress(moved, to_move)` on each poll.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_arn: &str,
    interval: Duration,
    deadline: Duration,
    progress: impl FnMut(i64, i64),
) -> Result<Moved, AwsError> {
    sqs.start_message_move_task()
        .source_arn(dlq_arn)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sqs:StartMessageMoveTask", e))?;
    // Shared by every poll's future; polls never overlap, so the lock is uncontended.
    let progress = std::sync::Mutex::new(progress);
    let outcome = poll(interval, deadline, || async {
        let out = sqs
            .list_message_move_tasks()
            .source_arn(dlq_arn)
            .max_results(1)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:ListMessageMoveTasks", e))?;
        let Some(t) = out.results().first() else {
            return Ok(Poll::Pending);
        };
        let moved = t.approximate_number_of_messages_moved();
        let to_move = t.approximate_number_of_messages_to_move().unwrap_or(0);
        if let Ok(mut report) = progress.lock() {
            report(moved, to_move);
        }
        let status = t.status().unwrap_or("RUNNING").to_string();
        Ok(match status.as_str() {
            "COMPLETED" | "FAILED" | "CANCELLED" => Poll::Done(Moved {
                status,
                moved,
                to_move,
                failure: t.failure_reason().map(str::to_string),
            }),
            _ => Poll::Pending,
        })
    })
    .await;
    match outcome {
        Ok(m) => Ok(m),
        Err(PollError::Aws(e)) => Err(e),
        Err(PollError::DeadlineExceeded) => Err(AwsError {
            operation: "sqs:ListMessageMoveTasks",
            code: "StillRunning".into(),
            message: format!(
                "the move task was still running after {deadline:?}; it continues in SQS"
            ),
            class: crate::aws::retry::ErrorClass::Transient,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::list_message_move_tasks::ListMessageMoveTasksOutput;
    use aws_sdk_sqs::operation::start_message_move_task::{
        StartMessageMoveTaskError, StartMessageMoveTaskOutput,
    };
    use aws_sdk_sqs::types::ListMessageMoveTasksResultEntry;
    use aws_sdk_sqs::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const ARN: &str = "arn:aws:sqs:us-east-1:123456789012:redress-tasks-dlq";

    fn entry(status: &str, moved: i64, failure: Option<&str>) -> ListMessageMoveTasksOutput {
        ListMessageMoveTasksOutput::builder()
            .results(
                ListMessageMoveTasksResultEntry::builder()
                    .status(status)
                    .approximate_number_of_messages_moved(moved)
                    .approximate_number_of_messages_to_move(500)
                    .set_failure_reason(failure.map(str::to_string))
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn reports_progress_until_completed() {
        let start = mock!(Client::start_message_move_task)
            .match_requests(|r| r.source_arn() == Some(ARN))
            .then_output(|| {
                StartMessageMoveTaskOutput::builder()
                    .task_handle("h")
                    .build()
            });
        let list = mock!(Client::list_message_move_tasks)
            .sequence()
            .output(|| entry("RUNNING", 100, None))
            .output(|| entry("RUNNING", 350, None))
            .output(|| entry("COMPLETED", 500, None))
            .build();
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&start, &list]);
        let mut seen = Vec::new();
        let out = redrive(
            &sqs,
            ARN,
            Duration::from_millis(1),
            Duration::from_secs(5),
            |m, _| seen.push(m),
        )
        .await
        .unwrap();
        assert_eq!(out.status, "COMPLETED");
        assert_eq!((out.moved, out.to_move), (500, 500));
        assert_eq!(seen, vec![100, 350, 500]);
    }

    #[tokio::test]
    async fn a_failed_move_reports_its_reason() {
        let start = mock!(Client::start_message_move_task).then_output(|| {
            StartMessageMoveTaskOutput::builder()
                .task_handle("h")
                .build()
        });
        let list = mock!(Client::list_message_move_tasks)
            .then_output(|| entry("FAILED", 20, Some("AccessDenied")));
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&start, &list]);
        let out = redrive(
            &sqs,
            ARN,
            Duration::from_millis(1),
            Duration::from_secs(5),
            |_, _| {},
        )
        .await
        .unwrap();
        assert_eq!(out.status, "FAILED");
        assert_eq!(out.failure.as_deref(), Some("AccessDenied"));
    }

    #[tokio::test]
    async fn an_unsupported_queue_is_a_permanent_error() {
        let start = mock!(Client::start_message_move_task).then_error(|| {
            StartMessageMoveTaskError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("UnsupportedOperation")
                    .message("source queue is not a DLQ")
                    .build(),
            )
        });
        let sqs = mock_client!(aws_sdk_sqs, [&start]);
        let err = redrive(
            &sqs,
            ARN,
            Duration::from_millis(1),
            Duration::from_secs(5),
            |_, _| {},
        )
        .await
        .unwrap_err();
        assert!(!err.is_transient());
        assert_eq!(err.code, "UnsupportedOperation");
    }
}
