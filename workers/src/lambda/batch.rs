//! One SQS-triggered Lambda invocation: the records become [`Received`] messages, the
//! worker's handler decides each, and the answer lists the records that must come back
//! (`ReportBatchItemFailures`). Lambda deletes every record not listed.

use std::collections::HashMap;

use crate::aws::sqs::{DeadLetter, Queue, Received};
use serde::Deserialize;

use crate::worker::{Ack, Handler};

/// The SQS event Lambda passes to the function.
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    /// The batch.
    #[serde(rename = "Records")]
    pub records: Vec<SqsRecord>,
}

/// One message of the batch.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsRecord {
    /// SQS message id; what a batch item failure names.
    pub message_id: String,
    /// Receipt handle.
    #[serde(default)]
    pub receipt_handle: String,
    /// The body.
    #[serde(default)]
    pub body: String,
    /// System attributes (`ApproximateReceiveCount`, `SenderId`, `SentTimestamp`).
    #[serde(default)]
    pub attributes: HashMap<String, String>,
    /// Message attributes.
    #[serde(default)]
    pub message_attributes: HashMap<String, SqsAttribute>,
    /// ARN of the queue it came from.
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: String,
}

/// A message attribute as Lambda presents it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsAttribute {
    /// String value, for `String` and `Number` attributes.
    pub string_value: Option<String>,
}

impl SqsRecord {
    /// The record as the workers see messages.
    pub fn received(&self) -> Received {
        Received {
            message_id: self.message_id.clone(),
            receipt_handle: self.receipt_handle.clone(),
            body: self.body.clone(),
            receive_count: self
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|c| c.parse().ok())
                .unwrap_or(1),
            attributes: self
                .message_attributes
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.string_value.clone()?)))
                .collect(),
            sender_id: self.attributes.get("SenderId").cloned(),
            sent_at_ms: self
                .attributes
                .get("SentTimestamp")
                .and_then(|t| t.parse().ok()),
        }
    }
}

/// The source queue of a record and its dead-letter queue, from the record's ARN.
async fn queues(sqs: &aws_sdk_sqs::Client, arn: &str) -> Option<(Queue, Queue)> {
    let name = arn.rsplit(':').next().filter(|n| !n.is_empty())?;
    let source = Queue::resolve(sqs, name).await.ok()?;
    let dlq = source.dead_letter_queue().await.ok()??;
    Some((source, dlq))
}

/// Handles a batch and returns the Lambda response. A record is reported as failed
/// (and comes back, or goes to the DLQ through SQS's redrive policy) unless its outcome
/// is durable: done, or copied to the dead-letter queue with its reason.
pub async fn handle_batch<H: Handler>(
    handler: &H,
    worker: &'static str,
    sqs: &aws_sdk_sqs::Client,
    event: &SqsEvent,
) -> serde_json::Value {
    let mut dead_letter_queues: HashMap<&str, Option<(Queue, Queue)>> = HashMap::new();
    for r in &event.records {
        if !dead_letter_queues.contains_key(r.event_source_arn.as_str()) {
            dead_letter_queues.insert(&r.event_source_arn, queues(sqs, &r.event_source_arn).await);
        }
    }
    let outcomes = futures::future::join_all(event.records.iter().map(|r| async {
        let message = r.received();
        let durable = match handler.handle(&message).await {
            Ack::Done => true,
            Ack::Forward { to, body, then } => match to.send(&body).await {
                Ok(_) => {
                    then();
                    true
                }
                Err(e) => {
                    tracing::warn!(message_id = %r.message_id, error = %e, "forward failed; reporting the record as failed");
                    false
                }
            },
            Ack::Retry { .. } | Ack::Release => false,
            Ack::DeadLetter { class, error } => match dead_letter_queues.get(r.event_source_arn.as_str()) {
                Some(Some((source, dlq))) => {
                    let why = DeadLetter {
                        error_class: class,
                        error: &error,
                        worker,
                    };
                    match source.copy_to_dead_letter(dlq, &message, &why).await {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(message_id = %r.message_id, error = %e, "could not dead-letter; reporting the record as failed");
                            false
                        }
                    }
                }
                // No dead-letter queue found: SQS's redrive policy is the way out.
                _ => {
                    tracing::warn!(message_id = %r.message_id, class, %error, "no dead-letter queue for the source; reporting the record as failed");
                    false
                }
            },
        };
        (r.message_id.clone(), durable)
    }))
    .await;
    let failures: Vec<serde_json::Value> = outcomes
        .into_iter()
        .filter(|(_, durable)| !durable)
        .map(|(id, _)| serde_json::json!({ "itemIdentifier": id }))
        .collect();
    serde_json::json!({ "batchItemFailures": failures })
}
