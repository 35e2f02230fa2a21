//! The loop every worker shares: receive a batch, handle its messages concurrently, settle
//! the verdicts ([`crate::settle`]), then delete what is durable in one call and hand
//! back the rest. A handler never deletes or records: it returns a [`Verdict`], and the
//! loop deletes only after the settler made the outcome durable.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::aws::retry::{with_backoff, AwsError};
use crate::aws::sqs::{Queue, Received};
use crate::report::Tally;
use crate::settle::{Ack, Settled, Settler, Verdict};
use tokio::sync::watch;
use tracing::Instrument;

/// Handles one message.
pub trait Handler: Send + Sync + 'static {
    /// Decides and acts; never panics, never deletes, never records: the verdict says
    /// what to send, record and acknowledge.
    fn handle(&self, message: &Received) -> impl Future<Output = Verdict> + Send;

    /// Finishes background work the handled messages started (before the process exits
    /// or freezes). Nothing by default.
    fn settle(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// How long a worker runs.
#[derive(Clone)]
pub enum RunUntil {
    /// Until shutdown.
    Shutdown,
    /// Until its queue is empty and every listed queue is empty with nothing in flight.
    /// Messages deliberately delayed do not count: those this process handed back to
    /// wait (retry back-off, in `deferred`) and those sent with a delay (a closure check
    /// waiting for Config).
    Drained(Vec<Queue>, Arc<Deferred>),
}

/// Messages this process handed back to wait (retry back-off): invisible, like messages
/// in flight, but nobody is working on them. Shared by the workers of a draining run,
/// with whether one of them found everything drained: then all stop. (Each looking for
/// itself can hang: the router stops, an event the executor's last fix caused arrives,
/// and the executor waits for a router that is gone.)
#[derive(Debug, Default)]
pub struct Deferred(Mutex<HashMap<(String, String), Instant>>, AtomicBool);

impl Deferred {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Instant>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a worker of this run found every queue drained.
    fn done(&self) -> bool {
        self.1.load(Ordering::SeqCst)
    }

    /// Every queue is drained: the run's workers stop.
    fn finish(&self) {
        self.1.store(true, Ordering::SeqCst);
    }

    /// A message of `queue` (URL) comes back after `secs`.
    fn defer(&self, queue: &str, message_id: &str, secs: i32) {
        let until = Instant::now() + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        self.lock()
            .insert((queue.to_string(), message_id.to_string()), until);
    }

    /// A message was received again: it is in flight, not waiting.
    fn received(&self, queue: &str, message_id: &str) {
        self.lock()
            .remove(&(queue.to_string(), message_id.to_string()));
    }

    /// How many messages of `queue` are still waiting out their delay.
    pub fn waiting(&self, queue: &str) -> u64 {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|((q, _), until)| q == queue && **until > now)
            .count() as u64
    }
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
    /// The report the settled verdicts go to.
    pub tally: Arc<Tally>,
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
        until: RunUntil,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), AwsError> {
        let wait = if matches!(until, RunUntil::Drained(..)) {
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
                    if matches!(until, RunUntil::Drained(..)) && failures >= DRAIN_RECEIVE_FAILURES
                    {
                        return Err(e);
                    }
                    tracing::warn!(worker = self.name, error = %e, "receive failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                if let RunUntil::Drained(queues, deferred) = &until {
                    if deferred.done() {
                        break;
                    }
                    if drained(queues, deferred).await {
                        deferred.finish();
                        break;
                    }
                }
                continue;
            }
            let deferred = match &until {
                RunUntil::Drained(_, d) => Some(d.as_ref()),
                RunUntil::Shutdown => None,
            };
            if let Some(d) = deferred {
                for m in &batch {
                    d.received(&self.queue.url, &m.message_id);
                }
            }
            // The heartbeat runs until the whole batch is acknowledged.
            tokio::select! {
                () = self.round(&batch, &shutdown, deferred) => {}
                never = self.heartbeat(&batch) => match never {},
            }
        }
        self.handler.settle().await;
        Ok(())
    }

    /// Handles a batch concurrently, settles the verdicts, then deletes every durable
    /// message in one call and hands the others back. A message the handler did not
    /// start (shutting down) is settled and handed back at once, not at the end of the
    /// batch, so another worker can take it while the batch's long work finishes.
    async fn round(
        &self,
        batch: &[Received],
        shutdown: &watch::Receiver<bool>,
        deferred: Option<&Deferred>,
    ) {
        let settler = Settler {
            worker: self.name,
            dlq: Some((&self.queue, &self.dlq)),
            tally: &self.tally,
        };
        let verdicts = futures::future::join_all(batch.iter().map(|m| {
            let span =
                tracing::info_span!("message", worker = self.name, message_id = %m.message_id);
            async {
                let verdict = self.handle(m, shutdown.clone()).await;
                if verdict.ack == Ack::Release && verdict.send.is_empty() {
                    let settled = settler.settle(vec![(m, verdict)]).await;
                    self.hand_back(m, settled[0]).await;
                    return None;
                }
                Some(verdict)
            }
            .instrument(span)
        }))
        .await;
        let rest: Vec<(&Received, Verdict)> = batch
            .iter()
            .zip(verdicts)
            .filter_map(|(m, v)| v.map(|v| (m, v)))
            .collect();
        let messages: Vec<&Received> = rest.iter().map(|(m, _)| *m).collect();
        let settled = settler.settle(rest).await;
        let mut durable: Vec<&str> = Vec::new();
        for (m, s) in messages.into_iter().zip(settled) {
            match s {
                Settled::Durable => durable.push(&m.receipt_handle),
                again => {
                    if let (Some(d), Settled::Again { after_secs }) = (deferred, again) {
                        if after_secs > 0 {
                            d.defer(&self.queue.url, &m.message_id, after_secs);
                        }
                    }
                    self.hand_back(m, again).await
                }
            }
        }
        // One DeleteMessageBatch for every message whose outcome is durable.
        self.delete_all(&durable).await;
    }

    /// Makes a message that must come back visible again after its delay.
    async fn hand_back(&self, m: &Received, settled: Settled) {
        if let Settled::Again { after_secs } = settled {
            if let Err(e) = self.queue.release(&m.receipt_handle, after_secs).await {
                // It returns after its visibility timeout instead.
                tracing::warn!(error = %e, "could not hand the message back");
            }
        }
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
    async fn handle(&self, m: &Received, mut shutdown: watch::Receiver<bool>) -> Verdict {
        let deadline = async {
            stop_requested(&mut shutdown).await;
            tokio::time::sleep(self.grace).await;
        };
        tokio::select! {
            ack = self.handler.handle(m) => ack,
            _ = deadline => {
                tracing::warn!(worker = self.name, grace = ?self.grace, "shutdown deadline passed; abandoning work in progress, its message returns to the queue");
                Verdict::ack(Ack::Release)
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
}

/// Resolves once shutdown is requested; never, if it cannot be any more (the sender is
/// gone without asking).
pub async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn drained(queues: &[Queue], deferred: &Deferred) -> bool {
    for q in queues {
        match q.depth().await {
            Ok(d) if d.visible == 0 && d.invisible <= deferred.waiting(&q.url) => {}
            Ok(_) => return false,
            Err(e) => {
                tracing::warn!(queue = %q.name, error = %e, "cannot read queue depth");
                return false;
            }
        }
    }
    true
}
