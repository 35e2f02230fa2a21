//! One SQS-triggered Lambda invocation: the records proven to come from the worker's
//! queue become [`Received`] messages, the worker's handler decides each before the
//! invocation's deadline, the settler makes the verdicts durable, and the answer lists
//! the records that must come back (`ReportBatchItemFailures`). Lambda deletes every
//! record not listed.

use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use tokio::time::{timeout_at, Instant};
use tracing::Instrument;

use crate::aws::sqs::Received;
use crate::report::Tally;
use crate::settle::{Ack, Settled, Settler, Verdict};
use crate::worker::Handler;

use super::source::Source;

/// Handlers stop this long before the invocation's deadline (a runbook poll in
/// progress is abandoned; its record comes back and resumes through the same
/// idempotency token), leaving time to settle and answer.
pub const HANDLE_MARGIN: Duration = Duration::from_secs(2);
/// Settling and the handler's background flush stop this long before the deadline, so
/// the answer reaches Lambda in time.
pub const ANSWER_MARGIN: Duration = Duration::from_millis(500);
/// Proven records stay hidden this long past the deadline, so one answered just before
/// it is not received again before Lambda deletes it.
const VISIBILITY_SLACK: Duration = Duration::from_secs(5);

/// A record as the workers see messages.
pub fn received(m: &SqsMessage) -> Received {
    Received {
        message_id: m.message_id.clone().unwrap_or_default(),
        receipt_handle: m.receipt_handle.clone().unwrap_or_default(),
        body: m.body.clone().unwrap_or_default(),
        receive_count: m
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        attributes: m
            .message_attributes
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.string_value.clone()?)))
            .collect(),
        sender_id: m.attributes.get("SenderId").cloned(),
        sent_at_ms: m
            .attributes
            .get("SentTimestamp")
            .and_then(|t| t.parse().ok()),
    }
}

/// The invocation's deadline (`Lambda-Runtime-Deadline-Ms`) on tokio's clock.
pub fn deadline_instant(deadline: SystemTime) -> Instant {
    let now = Instant::now();
    match deadline.duration_since(SystemTime::now()) {
        Ok(left) => now + left,
        Err(_) => now,
    }
}

/// `deadline - margin` (a time already past makes a timeout at it expire at once).
fn before(deadline: Instant, margin: Duration) -> Instant {
    deadline.checked_sub(margin).unwrap_or(deadline)
}

/// Handles a batch and returns the Lambda response, in record order.
///
/// - A record not proven to be a message of `source` ([`Source::prove`]: another
///   `eventSourceARN`, or a receipt handle the queue rejects) is not handled: it is
///   logged and reported as a batch item failure. Not as a success, which would make
///   Lambda delete with that receipt handle: a stale handle of a real message may still
///   delete it while another consumer holds it, and a record of another queue (a
///   misconfigured trigger) would be dropped unhandled. For a forged record the answer
///   has no effect: it is not on the queue.
/// - A record whose handling has not finished [`HANDLE_MARGIN`] before `deadline` is
///   released and reported; so is every record unless the settler made its outcome
///   durable (done, or copied to the dead-letter queue with its reason), and every
///   record when settling does not finish [`ANSWER_MARGIN`] before the deadline.
pub async fn handle_batch<H: Handler>(
    handler: &H,
    worker: &'static str,
    source: &Source,
    tally: &Tally,
    event: &SqsEvent,
    deadline: Instant,
) -> SqsBatchResponse {
    let records = &event.records;
    let handle_until = before(deadline, HANDLE_MARGIN);
    let answer_by = before(deadline, ANSWER_MARGIN);
    let hide_for = deadline.saturating_duration_since(Instant::now()) + VISIBILITY_SLACK;
    let proofs = match timeout_at(handle_until, source.prove(records, hide_for)).await {
        Ok(p) => p,
        Err(_) => {
            tracing::warn!(worker, "out of time proving the records; none handled");
            vec![Err(super::source::Unproven("out of time".into())); records.len()]
        }
    };
    let mut failed = vec![false; records.len()];
    let mut proven: Vec<(usize, Received)> = Vec::new();
    for (i, (r, proof)) in records.iter().zip(proofs).enumerate() {
        match proof {
            Ok(()) => proven.push((i, received(r))),
            Err(why) => {
                tracing::warn!(
                    worker,
                    message_id = r.message_id.as_deref().unwrap_or_default(),
                    reason = %why.0,
                    "record not proven to be a message of the worker's queue; not handled"
                );
                failed[i] = true;
            }
        }
    }
    let verdicts = futures::future::join_all(proven.iter().map(|(_, m)| {
        let span = tracing::info_span!("message", worker, message_id = %m.message_id);
        async move {
            match timeout_at(handle_until, handler.handle(m)).await {
                Ok(v) => v,
                Err(_) => {
                    tracing::warn!(
                        worker,
                        "the invocation's deadline is near; abandoning the work, the message comes back"
                    );
                    Verdict::ack(Ack::Release)
                }
            }
        }
        .instrument(span)
    }))
    .await;
    let settler = Settler {
        worker,
        dlq: source.dlq.as_ref().map(|d| (&source.queue, d)),
        tally,
    };
    let batch = proven.iter().map(|(_, m)| m).zip(verdicts).collect();
    match timeout_at(answer_by, settler.settle(batch)).await {
        Ok(settled) => {
            for ((i, _), s) in proven.iter().zip(settled) {
                if s != Settled::Durable {
                    failed[*i] = true;
                }
            }
        }
        Err(_) => {
            tracing::warn!(
                worker,
                "out of time settling; every handled record comes back"
            );
            for (i, _) in &proven {
                failed[*i] = true;
            }
        }
    }
    let mut response = SqsBatchResponse::default();
    for (r, failed) in records.iter().zip(failed) {
        if failed {
            response.add_failure(r.message_id.clone().unwrap_or_default());
        }
    }
    response
}
