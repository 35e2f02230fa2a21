//! The loop every worker shares: receive a batch, handle its messages concurrently, then
//! acknowledge each one in one of three ways. A handler never deletes: it returns an
//! [`Ack`], and the loop deletes only after the handler's outcome is durable.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::aws::retry::{with_backoff, AwsError};
use crate::aws::sqs::{DeadLetter, Queue, Received};
use tokio::sync::watch;
use tracing::Instrument;

/// Runs once a forwarded message has been accepted (audit, report).
pub type Then = Box<dyn FnOnce() + Send>;

/// What to do with a handled message.
pub enum Ack {
    /// Its outcome is recorded (sent on, audited): delete it.
    Done,
    /// Send `body` to `to`; once SQS accepts it, run `then` and delete the message, else
    /// leave it for redelivery. The loop sends in batches, so forwarding costs a tenth of
    /// a call per message.
    Forward {
        /// Destination queue.
        to: Queue,
        /// The message to send.
        body: String,
        /// What to record once it is accepted.
        then: Then,
    },
    /// A transient failure: make it visible again after this many seconds.
    Retry {
        /// Delay before redelivery.
        after_secs: i32,
    },
    /// Not started (shutting down): make it visible again at once for another worker.
    Release,
    /// It can never succeed as is: move it to the dead-letter queue with the reason.
    DeadLetter {
        /// `invalid_input`, `permanent`, `exhausted`, ...
        class: &'static str,
        /// Why.
        error: String,
    },
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ack::Done => f.write_str("Done"),
            Ack::Forward { to, .. } => write!(f, "Forward to {}", to.name),
            Ack::Retry { after_secs } => write!(f, "Retry after {after_secs}s"),
            Ack::Release => f.write_str("Release"),
            Ack::DeadLetter { class, error } => write!(f, "DeadLetter {class}: {error}"),
        }
    }
}

/// A message waiting to be forwarded: its source, the body to send, what to run after.
type Pending<'a> = (&'a Received, String, Then);

/// Seconds before a message whose forward failed comes back.
const FORWARD_RETRY_SECONDS: i32 = 5;

/// Handles one message.
pub trait Handler: Send + Sync + 'static {
    /// Decides and acts; never panics, never deletes.
    fn handle(&self, message: &Received) -> impl Future<Output = Ack> + Send;

    /// Finishes background work the handled messages started (before the process exits
    /// or freezes). Nothing by default.
    fn settle(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// How long a worker runs.
#[derive(Clone)]
pub enum Until {
    /// Until shutdown.
    Shutdown,
    /// Until its queue is empty and every listed queue is empty with nothing in flight.
    Drained(Vec<Queue>),
}

/// One worker: a queue, its dead-letter queue and a handler.
pub struct Worker<H> {
    /// `router` or `executor`: used in logs and dead-letter attributes.
    pub name: &'static str,
    /// Queue consumed.
    pub queue: Queue,
    /// Where unusable messages go.
    pub dlq: Queue,
    /// The handler.
    pub handler: Arc<H>,
    /// Messages per receive (1–10), all handled at once.
    pub batch: i32,
    /// While a batch is handled, extend its messages' visibility this often (to three
    /// times as long), so long work (a runbook) is not redelivered mid-run. `None`: never.
    pub heartbeat: Option<Duration>,
    /// After shutdown is requested, how long work in progress may take before it is
    /// abandoned and its message made visible again.
    pub grace: Duration,
}

/// Time allowed for a delete or dead-letter call to get through transient errors.
const ACK_PATIENCE: Duration = Duration::from_secs(20);
/// Consecutive receive failures after which a draining (`--once`) run stops.
pub const DRAIN_RECEIVE_FAILURES: u32 = 10;

impl<H: Handler> Worker<H> {
    /// Runs until `until` is met or `shutdown` turns true. A batch in progress is always
    /// finished: shutdown only stops the next receive. Receive errors are retried; a
    /// draining run gives up after [`DRAIN_RECEIVE_FAILURES`] in a row, since it is
    /// expected to end.
    pub async fn run(
        &self,
        until: Until,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), AwsError> {
        let wait = if matches!(until, Until::Drained(_)) {
            1
        } else {
            20
        };
        let mut failures = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let batch = tokio::select! {
                r = self.queue.receive(self.batch, wait) => r,
                _ = shutdown.changed() => break,
            };
            if *shutdown.borrow() {
                // Received as shutdown began: none started, so hand them all back now.
                if let Ok(b) = &batch {
                    let handles: Vec<&str> = b.iter().map(|m| m.receipt_handle.as_str()).collect();
                    self.release_now(&handles).await;
                }
                break;
            }
            let batch = match batch {
                Ok(b) => {
                    failures = 0;
                    b
                }
                Err(e) => {
                    failures += 1;
                    if matches!(until, Until::Drained(_)) && failures >= DRAIN_RECEIVE_FAILURES {
                        return Err(e);
                    }
                    tracing::warn!(worker = self.name, error = %e, "receive failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                if let Until::Drained(queues) = &until {
                    if drained(queues).await {
                        break;
                    }
                }
                continue;
            }
            // The heartbeat runs until the whole batch is acknowledged.
            tokio::select! {
                () = self.round(&batch, &shutdown) => {}
                never = self.heartbeat(&batch) => match never {},
            }
        }
        self.handler.settle().await;
        Ok(())
    }

    /// Handles a batch concurrently, then forwards and deletes in batches.
    async fn round(&self, batch: &[Received], shutdown: &watch::Receiver<bool>) {
        let acks = futures::future::join_all(batch.iter().map(|m| {
            let span =
                tracing::info_span!("message", worker = self.name, message_id = %m.message_id);
            self.process(m, shutdown.clone()).instrument(span)
        }))
        .await;
        let mut done: Vec<&str> = Vec::new();
        let mut forwards: Vec<(&Received, Queue, String, Then)> = Vec::new();
        for (m, ack) in batch.iter().zip(acks) {
            match ack {
                Some(Ack::Forward { to, body, then }) => forwards.push((m, to, body, then)),
                Some(_) => done.push(&m.receipt_handle),
                None => {}
            }
        }
        done.extend(self.forward_all(forwards).await);
        // One DeleteMessageBatch for every message whose outcome is recorded.
        self.delete_all(&done).await;
    }

    /// Sends forwarded messages in batches per destination; returns the receipt handles
    /// of the messages whose forward was accepted (their `then` has run).
    async fn forward_all<'a>(
        &self,
        forwards: Vec<(&'a Received, Queue, String, Then)>,
    ) -> Vec<&'a str> {
        let mut by_queue: Vec<(Queue, Vec<Pending<'a>>)> = Vec::new();
        for (m, to, body, then) in forwards {
            match by_queue.iter_mut().find(|(q, _)| q.url == to.url) {
                Some((_, group)) => group.push((m, body, then)),
                None => by_queue.push((to, vec![(m, body, then)])),
            }
        }
        let mut accepted = Vec::new();
        for (queue, group) in by_queue {
            let mut group = group.into_iter().peekable();
            while group.peek().is_some() {
                let chunk: Vec<Pending<'a>> = group.by_ref().take(10).collect();
                let bodies: Vec<(String, std::collections::HashMap<String, String>)> = chunk
                    .iter()
                    .map(|(_, b, _)| (b.clone(), Default::default()))
                    .collect();
                let failed = match queue.send_batch(&bodies).await {
                    Ok(failed) => failed,
                    Err(e) => {
                        tracing::warn!(queue = %queue.name, error = %e, "forward failed; messages left for redelivery");
                        (0..chunk.len()).map(|i| (i, e.to_string())).collect()
                    }
                };
                for (i, (m, _, then)) in chunk.into_iter().enumerate() {
                    if failed.iter().any(|(f, _)| *f == i) {
                        if let Err(e) = self
                            .queue
                            .release(&m.receipt_handle, FORWARD_RETRY_SECONDS)
                            .await
                        {
                            tracing::warn!(error = %e, "could not release; the message returns after its timeout");
                        }
                    } else {
                        then();
                        accepted.push(m.receipt_handle.as_str());
                    }
                }
            }
        }
        accepted
    }

    async fn delete_all(&self, handles: &[&str]) {
        if handles.is_empty() {
            return;
        }
        match with_backoff(ACK_PATIENCE, || self.queue.delete_batch(handles)).await {
            Ok(failed) => {
                for (i, why) in failed {
                    // It comes back and is handled again: handlers are idempotent.
                    tracing::error!(receipt = handles[i], %why, "delete failed; message will be redelivered");
                }
            }
            Err(e) => tracing::error!(error = %e, "delete failed; messages will be redelivered"),
        }
    }

    /// Makes messages visible again at once.
    async fn release_now(&self, handles: &[&str]) {
        if handles.is_empty() {
            return;
        }
        match self.queue.release_all(handles).await {
            Ok(()) => tracing::info!(
                worker = self.name,
                count = handles.len(),
                "released unstarted messages"
            ),
            Err(e) => {
                tracing::warn!(worker = self.name, error = %e, "could not release; the messages return after their visibility timeout")
            }
        }
    }

    /// Runs the handler, abandoning it `grace` after shutdown is requested.
    async fn handle(&self, m: &Received, mut shutdown: watch::Receiver<bool>) -> Ack {
        let deadline = async {
            stop_requested(&mut shutdown).await;
            tokio::time::sleep(self.grace).await;
        };
        tokio::select! {
            ack = self.handler.handle(m) => ack,
            _ = deadline => {
                tracing::warn!(worker = self.name, grace = ?self.grace, "shutdown deadline passed; abandoning work in progress, its message returns to the queue");
                Ack::Release
            }
        }
    }

    /// Extends the visibility of every message of the batch every heartbeat (to three
    /// times as long), until the batch is acknowledged: a message whose work is done
    /// still waits for the batch's delete, and must not come back meanwhile. Never ends.
    async fn heartbeat(&self, batch: &[Received]) -> std::convert::Infallible {
        let Some(period) = self.heartbeat else {
            return std::future::pending().await;
        };
        let period = period.clamp(Duration::from_secs(1), Duration::from_secs(43_200 / 3));
        let extend_to = i32::try_from(period.as_secs() * 3).unwrap_or(43_200);
        let handles: Vec<&str> = batch.iter().map(|m| m.receipt_handle.as_str()).collect();
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            beat.tick().await;
            match self.queue.set_visibility_all(&handles, extend_to).await {
                Ok(()) => tracing::debug!(
                    seconds = extend_to,
                    count = handles.len(),
                    "heartbeat: visibility extended"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat failed; messages may be redelivered while still in progress")
                }
            }
        }
    }

    /// Handles one message and applies its acknowledgement, except deletion and
    /// forwarding, which the loop batches: returns the ack when there is more to do.
    async fn process(&self, m: &Received, shutdown: watch::Receiver<bool>) -> Option<Ack> {
        let ack = self.handle(m, shutdown).await;
        let result = match &ack {
            Ack::Done | Ack::Forward { .. } => return Some(ack),
            Ack::Release => self.queue.release(&m.receipt_handle, 0).await,
            Ack::Retry { after_secs } => self.queue.release(&m.receipt_handle, *after_secs).await,
            Ack::DeadLetter { class, error } => {
                let why = DeadLetter {
                    error_class: class,
                    error,
                    worker: self.name,
                };
                tracing::warn!(class, error = %error, "dead-lettering message");
                with_backoff(ACK_PATIENCE, || self.queue.dead_letter(&self.dlq, m, &why)).await
            }
        };
        if let Err(e) = result {
            // The message stays on the queue and comes back: handlers are idempotent.
            tracing::error!(error = %e, ?ack, "acknowledgement failed; message will be redelivered");
        }
        None
    }
}

/// Resolves once shutdown is requested; never, if it cannot be any more (the sender is
/// gone without asking).
pub async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn drained(queues: &[Queue]) -> bool {
    for q in queues {
        match q.depth().await {
            Ok((0, 0)) => {}
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(queue = %q.name, error = %e, "cannot read queue depth");
                return false;
            }
        }
    }
    true
}
