//! Where a Lambda worker's records must come from, and the proof that they do.
//!
//! Anyone allowed to invoke the function can hand it any payload, including a task whose
//! `attributes.SenderId` names an approver. The workers trust `SenderId` because SQS
//! stamps it, so a record counts only once it is shown to be a message SQS holds: its
//! `eventSourceARN` is the worker's configured queue (resolved at start-up, never read
//! from the payload), and that queue accepts its receipt handle, which only a message
//! received from it and still in flight has. The check is a `ChangeMessageVisibility`
//! that also hides the message for the rest of the invocation.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;

use crate::aws::retry::{with_backoff, AwsError};
use crate::aws::sqs::{Queue, SqsClient};

/// How long start-up calls ride out transient errors (Lambda's init phase is short).
const STARTUP_PATIENCE: Duration = Duration::from_secs(5);
/// How long a visibility check rides out transient errors (the caller also bounds it
/// by the invocation's deadline).
const PROOF_PATIENCE: Duration = Duration::from_secs(3);
/// The longest visibility timeout SQS allows.
const MAX_VISIBILITY: i32 = 43_200;

/// The queue a Lambda worker consumes (the events queue for the router, the tasks queue
/// for the executor), resolved from the configuration at start-up.
#[derive(Debug, Clone)]
pub struct Source {
    /// The queue.
    pub queue: Queue,
    /// Its ARN: the only `eventSourceARN` accepted.
    pub arn: String,
    /// Its dead-letter queue, from its redrive policy; `None` when it has none (then a
    /// dead letter is reported as a batch item failure and SQS's redrive is the way out).
    pub dlq: Option<Queue>,
}

/// Why a record was not proven to be a message of the source queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unproven(pub String);

impl Source {
    /// Resolves the queue (name or URL), then its ARN and its dead-letter queue at once.
    pub async fn resolve(sqs: &SqsClient, name_or_url: &str) -> Result<Source, AwsError> {
        let queue = with_backoff(STARTUP_PATIENCE, || Queue::resolve(sqs, name_or_url)).await?;
        let (arn, dlq) = tokio::try_join!(
            with_backoff(STARTUP_PATIENCE, || queue.arn()),
            with_backoff(STARTUP_PATIENCE, || queue.dead_letter_queue()),
        )?;
        if arn.is_empty() {
            return Err(AwsError::permanent(
                "sqs:GetQueueAttributes",
                format!("queue {} has no QueueArn attribute", queue.name),
            ));
        }
        Ok(Source { queue, arn, dlq })
    }

    /// Proves each record is a message of this queue in flight now, hiding the proven ones
    /// for `hide_for` (the invocation's remaining time, bounded to what SQS allows).
    /// Returns, per record in order, `Ok` or why it is not proven. Fails closed: a record
    /// whose check could not be made is not proven.
    pub async fn prove(
        &self,
        records: &[SqsMessage],
        hide_for: Duration,
    ) -> Vec<Result<(), Unproven>> {
        let seconds = i32::try_from(hide_for.as_secs())
            .unwrap_or(MAX_VISIBILITY)
            .clamp(0, MAX_VISIBILITY);
        let mut out: Vec<Result<(), Unproven>> = Vec::with_capacity(records.len());
        // (record index, receipt handle) of the records left to check with SQS.
        let mut to_check: Vec<(usize, &str)> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let arn = r.event_source_arn.as_deref().unwrap_or_default();
            let handle = r.receipt_handle.as_deref().unwrap_or_default();
            if arn != self.arn {
                out.push(Err(Unproven(format!(
                    "eventSourceARN {arn:?} is not the configured queue {}",
                    self.arn
                ))));
            } else if handle.is_empty() {
                out.push(Err(Unproven("no receipt handle".into())));
            } else {
                out.push(Ok(()));
                to_check.push((i, handle));
            }
        }
        let checks = to_check.chunks(10).map(|chunk| async move {
            let handles: Vec<&str> = chunk.iter().map(|(_, h)| *h).collect();
            let answer = with_backoff(PROOF_PATIENCE, || {
                self.queue.set_visibility_batch(&handles, seconds)
            })
            .await;
            (chunk, answer)
        });
        for (chunk, answer) in futures::future::join_all(checks).await {
            match answer {
                Ok(failed) => {
                    for (j, why) in failed {
                        if let Some((i, _)) = chunk.get(j) {
                            out[*i] = Err(Unproven(format!(
                                "queue {} rejected its receipt handle: {why}",
                                self.queue.name
                            )));
                        }
                    }
                }
                Err(e) => {
                    for (i, _) in chunk {
                        out[*i] = Err(Unproven(format!(
                            "could not check its receipt handle with queue {}: {e}",
                            self.queue.name
                        )));
                    }
                }
            }
        }
        out
    }
}
