//! The loop every worker shares, as a pipeline: receive ahead while slots are free,
//! handle each message as soon as a slot frees, settle finished verdicts in batches
//! ([`crate::settle`]), then delete what is durable in one call and hand back the rest.
//! A handler never deletes or records: it returns a [`Verdict`], and the loop deletes
//! only after the settler made the outcome durable. The heartbeat covers each message
//! from its receive until it is acknowledged.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::aws::retry::{with_backoff, AwsError};
use crate::aws::sqs::{Queue, Received};
use crate::report::Tally;
use crate::settle::{Ack, Settled, Settler, Verdict};
use futures::FutureExt;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
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
    /// Until another worker of this draining run finds every queue drained: `run`'s
    /// executor, whose work comes through the router's hand-off. It never asks about
    /// queue depths itself (two calls after every empty receive).
    Follows(Arc<Deferred>),
}

impl RunUntil {
    /// The run's bookkeeping of hand-backs, for a draining run.
    fn deferred(&self) -> Option<&Arc<Deferred>> {
        match self {
            RunUntil::Shutdown => None,
            RunUntil::Drained(_, d) | RunUntil::Follows(d) => Some(d),
        }
    }
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
    /// Messages handled at once. With a heartbeat, up to one receive's worth more (ten)
    /// is received ahead, so a slot that frees starts its next message without waiting
    /// for SQS.
    pub concurrency: usize,
    /// The handling slots, when shared with another consumer of the same handler (the
    /// executor's, with `run`'s in-memory hand-off); `None`: its own, `concurrency` of them.
    pub slots: Option<Arc<Semaphore>>,
    /// Extend the visibility of every message received and not yet acknowledged this
    /// often (to three times as long), so long work (a runbook) is not redelivered
    /// mid-run. `None`: never.
    pub heartbeat: Option<Duration>,
    /// After shutdown is requested, how long work in progress may take before it is
    /// abandoned and its message made visible again.
    pub grace: Duration,
}

/// Time allowed for a delete or dead-letter call to get through transient errors.
const ACK_PATIENCE: Duration = Duration::from_secs(20);
/// Consecutive receive failures after which a draining (`--once`) run stops.
pub const DRAIN_RECEIVE_FAILURES: u32 = 10;
/// How long a finished message waits for others to finish, so that up to ten are
/// settled and deleted in one call each (and their closure checks sent in one). Only
/// while others are being handled: a lone message is settled at once. The wait costs
/// no slot (a slot frees when its handler returns) and the heartbeat covers the message
/// meanwhile, so it can be long enough to fill batches at a few events a second.
const ACK_LINGER: Duration = Duration::from_millis(500);
/// How often a second receive loop looks whether its worker holds messages again.
const IDLE_CHECK: Duration = Duration::from_millis(100);
/// Long-poll wait of a worker that holds messages: short, since shutdown waits for it.
const BUSY_WAIT_SECONDS: i32 = 2;
/// SQS's most messages per receive, send batch and delete batch.
const SQS_BATCH: usize = 10;

/// A handled message and its verdict, on its way to be settled and acknowledged.
type Finished = (Received, Verdict);

/// What a worker's loops share: the messages it holds (received, not yet acknowledged:
/// the heartbeat covers them) and how many of them a handler is working on.
#[derive(Default)]
struct InFlight {
    handles: Mutex<HashSet<String>>,
    handling: AtomicUsize,
    /// Receive loop 0 has ended: the others end too once they hold nothing.
    first_loop_ended: AtomicBool,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hold(&self, batch: &[Received]) {
        self.lock()
            .extend(batch.iter().map(|m| m.receipt_handle.clone()));
    }

    fn release<'a>(&self, handles: impl IntoIterator<Item = &'a str>) {
        let mut held = self.lock();
        for h in handles {
            held.remove(h);
        }
    }

    fn held(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }
}

/// Counts a handler at work for as long as it lives (a panic included).
struct Handling<'a>(&'a InFlight);

impl<'a> Handling<'a> {
    fn start(flight: &'a InFlight) -> Handling<'a> {
        flight.handling.fetch_add(1, Ordering::SeqCst);
        Handling(flight)
    }
}

impl Drop for Handling<'_> {
    fn drop(&mut self) {
        self.0.handling.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Slots: `handle` bounds the messages a handler works on at once, `admit` those
/// received and not yet handled to completion (one receive's worth more), so receiving
/// ahead never hoards more than one batch.
struct Slots {
    handle: Arc<Semaphore>,
    admit: Arc<Semaphore>,
}

impl<H: Handler> Worker<H> {
    /// Runs until `until` is met or `shutdown` turns true. Receiving, handling and
    /// acknowledging overlap: a receive loop takes up to ten messages whenever fewer
    /// than `concurrency` are being handled, each message is handled as soon as a slot
    /// frees, and finished messages are settled and deleted in batches. Shutdown stops
    /// the receives and hands back messages not started; work in progress is finished
    /// (within `grace`) and acknowledged. Receive errors are retried; a draining run
    /// gives up after [`DRAIN_RECEIVE_FAILURES`] in a row, since it is expected to end.
    pub async fn run(
        self: Arc<Self>,
        until: RunUntil,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(), AwsError> {
        let per_receive = self.concurrency.clamp(1, SQS_BATCH);
        // Without a heartbeat nothing covers a message waiting for a slot: none is
        // received ahead, so each starts as soon as it arrives.
        let ahead = if self.heartbeat.is_some() {
            per_receive
        } else {
            0
        };
        let slots = Slots {
            handle: self
                .slots
                .clone()
                .unwrap_or_else(|| Arc::new(Semaphore::new(self.concurrency.max(1)))),
            admit: Arc::new(Semaphore::new(self.concurrency.max(1) + ahead)),
        };
        let flight = Arc::new(InFlight::default());
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Finished>();
        // Two receive loops overlap one receive's round trip with the next when there
        // are more slots than one receive fills.
        let receivers = if self.concurrency > per_receive { 2 } else { 1 };
        let receiving = futures::future::join_all((0..receivers).map(|i| {
            self.receive_loop(
                i,
                &until,
                shutdown.clone(),
                &slots,
                &flight,
                per_receive,
                done_tx.clone(),
            )
        }));
        drop(done_tx);
        let deferred = until.deferred().cloned();
        let acknowledging = async {
            tokio::select! {
                () = self.acknowledge(done_rx, &flight, deferred) => {}
                never = self.heartbeat(&flight) => match never {},
            }
        };
        let (received, ()) = tokio::join!(receiving, acknowledging);
        self.handler.settle().await;
        received.into_iter().collect()
    }

    /// Receives while there is room and starts a handler for each message; ends on
    /// shutdown, when drained, or when a draining run cannot receive. Loop 0 receives
    /// always; a second loop only while the worker holds messages (it overlaps receives
    /// under load, and never long-polls an idle queue: see `busy` below).
    #[allow(clippy::too_many_arguments)]
    async fn receive_loop(
        self: &Arc<Self>,
        index: usize,
        until: &RunUntil,
        shutdown: watch::Receiver<bool>,
        slots: &Slots,
        flight: &Arc<InFlight>,
        per_receive: usize,
        done: mpsc::UnboundedSender<Finished>,
    ) -> Result<(), AwsError> {
        let ended = self
            .receive_rounds(index, until, shutdown, slots, flight, per_receive, done)
            .await;
        if index == 0 {
            flight.first_loop_ended.store(true, Ordering::SeqCst);
        }
        ended
    }

    /// [`receive_loop`](Self::receive_loop)'s rounds.
    #[allow(clippy::too_many_arguments)]
    async fn receive_rounds(
        self: &Arc<Self>,
        index: usize,
        until: &RunUntil,
        mut shutdown: watch::Receiver<bool>,
        slots: &Slots,
        flight: &Arc<InFlight>,
        per_receive: usize,
        done: mpsc::UnboundedSender<Finished>,
    ) -> Result<(), AwsError> {
        let mut failures = 0;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // Room for a receive's worth: fewer than `concurrency` are being handled.
            let room = tokio::select! {
                r = slots.admit.clone().acquire_many_owned(per_receive as u32) => r.expect("never closed"),
                _ = shutdown.changed() => break,
            };
            // While this worker holds messages, a receive is never abandoned: SQS may
            // still hand it messages (those this worker hands back at shutdown among
            // them), which would then be lost to sight until their visibility timeout.
            // So it waits briefly and its catch is handed back. Only loop 0 of an idle
            // worker long-polls, and shutdown cuts that short: holding nothing, the
            // worker hands nothing back into it.
            let busy = !flight.lock().is_empty();
            if index > 0 && !busy {
                drop(room);
                // Loop 0 decides when the worker is done (drained, or failing).
                if flight.first_loop_ended.load(Ordering::SeqCst) {
                    break;
                }
                tokio::select! {
                    () = tokio::time::sleep(IDLE_CHECK) => continue,
                    _ = shutdown.changed() => break,
                }
            }
            // A draining run's receives are short, never cut: one cut at the run's end
            // could still take a message sent just after (an approval), and hide it
            // for the queue's visibility timeout.
            let wait = if until.deferred().is_some() {
                1
            } else if busy {
                BUSY_WAIT_SECONDS
            } else {
                20
            };
            let receive = self.queue.receive(per_receive as i32, wait);
            let batch = if busy {
                receive.await
            } else {
                tokio::select! {
                    r = receive => r,
                    _ = shutdown.changed() => break,
                }
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
                    if until.deferred().is_some() && failures >= DRAIN_RECEIVE_FAILURES {
                        return Err(e);
                    }
                    tracing::warn!(worker = self.name, error = %e, "receive failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if batch.is_empty() {
                drop(room);
                match until {
                    RunUntil::Drained(queues, deferred) => {
                        if deferred.done() {
                            break;
                        }
                        if flight.lock().is_empty() && drained(queues, deferred).await {
                            deferred.finish();
                            break;
                        }
                    }
                    RunUntil::Follows(deferred) if deferred.done() => break,
                    _ => {}
                }
                continue;
            }
            if let Some(d) = until.deferred() {
                for m in &batch {
                    d.received(&self.queue.url, &m.message_id);
                }
            }
            flight.hold(&batch);
            // One admission per message received; the rest of the room goes back.
            let mut room = room;
            for m in batch {
                let admitted = room.split(1).expect("a permit per message");
                self.start(m, admitted, slots, flight, shutdown.clone(), done.clone());
            }
        }
        Ok(())
    }

    /// Handles one message on its own task once a slot is free, and passes its verdict
    /// on to be settled. A message still waiting for a slot at shutdown is handed back
    /// unstarted.
    fn start(
        self: &Arc<Self>,
        m: Received,
        admitted: OwnedSemaphorePermit,
        slots: &Slots,
        flight: &Arc<InFlight>,
        mut shutdown: watch::Receiver<bool>,
        done: mpsc::UnboundedSender<Finished>,
    ) {
        let (worker, slot, flight) = (self.clone(), slots.handle.clone(), flight.clone());
        let span = tracing::info_span!("message", worker = self.name, message_id = %m.message_id);
        tokio::spawn(
            async move {
                let verdict = tokio::select! {
                    // Shutdown first: a message not started by then is handed back.
                    biased;
                    () = stop_requested(&mut shutdown) => Verdict::ack(Ack::Release),
                    slot = slot.acquire_owned() => {
                        let _slot = slot.expect("never closed");
                        let _handling = Handling::start(&flight);
                        // A handler that panics must not hold its message for ever (the
                        // heartbeat would keep it hidden): it is handed back instead.
                        let handled = AssertUnwindSafe(worker.handle(&m, shutdown.clone()))
                            .catch_unwind()
                            .await;
                        handled.unwrap_or_else(|_| {
                            tracing::error!(worker = worker.name, "the handler panicked; the message is handed back");
                            Verdict::ack(Ack::Release)
                        })
                    }
                };
                drop(admitted);
                // The acknowledging loop outlives every sender.
                let _ = done.send((m, verdict));
            }
            .instrument(span),
        );
    }

    /// Settles finished messages in batches of up to ten (waiting [`ACK_LINGER`] for
    /// more while others are being handled), several batches at once; ends when every
    /// handler has finished and its message is acknowledged.
    async fn acknowledge(
        self: &Arc<Self>,
        mut done: mpsc::UnboundedReceiver<Finished>,
        flight: &Arc<InFlight>,
        deferred: Option<Arc<Deferred>>,
    ) {
        let mut settling = tokio::task::JoinSet::new();
        while let Some(first) = done.recv().await {
            // A message handed back at once with nothing to send: no reason to wait.
            if first.1.ack == Ack::Release && first.1.send.is_empty() {
                let (worker, flight) = (self.clone(), flight.clone());
                settling.spawn(async move { worker.settle(vec![first], &flight, None).await });
                continue;
            }
            let mut batch = vec![first];
            let linger = tokio::time::sleep(ACK_LINGER);
            tokio::pin!(linger);
            while batch.len() < SQS_BATCH {
                if let Ok(m) = done.try_recv() {
                    batch.push(m);
                    continue;
                }
                if flight.handling.load(Ordering::SeqCst) == 0 {
                    break;
                }
                tokio::select! {
                    m = done.recv() => match m {
                        Some(m) => batch.push(m),
                        None => break,
                    },
                    () = &mut linger => break,
                }
            }
            let (worker, flight, deferred) = (self.clone(), flight.clone(), deferred.clone());
            settling.spawn(async move {
                let handles: Vec<String> = batch
                    .iter()
                    .map(|(m, _)| m.receipt_handle.clone())
                    .collect();
                let settled = AssertUnwindSafe(worker.settle(batch, &flight, deferred.as_deref()))
                    .catch_unwind()
                    .await;
                if settled.is_err() {
                    // Not acknowledged: the messages come back after their visibility
                    // timeout, once no heartbeat extends it.
                    tracing::error!(
                        worker = worker.name,
                        "settling panicked; its messages will be redelivered"
                    );
                    flight.release(handles.iter().map(String::as_str));
                }
            });
            while settling.try_join_next().is_some() {}
        }
        while settling.join_next().await.is_some() {}
    }

    /// Settles a batch of verdicts, then deletes every durable message in one call and
    /// hands the others back.
    async fn settle(&self, batch: Vec<Finished>, flight: &InFlight, deferred: Option<&Deferred>) {
        let settler = Settler {
            worker: self.name,
            dlq: Some((&self.queue, &self.dlq)),
            tally: &self.tally,
        };
        let (messages, verdicts): (Vec<Received>, Vec<Verdict>) = batch.into_iter().unzip();
        let settled = settler
            .settle(messages.iter().zip(verdicts).collect())
            .await;
        let mut durable: Vec<&str> = Vec::new();
        for (m, s) in messages.iter().zip(settled) {
            match s {
                Settled::Durable => durable.push(&m.receipt_handle),
                again => {
                    if let (Some(d), Settled::Again { after_secs }) = (deferred, again) {
                        if after_secs > 0 {
                            d.defer(&self.queue.url, &m.message_id, after_secs);
                        }
                    }
                    // Off the heartbeat first, or its next beat would undo the delay.
                    flight.release([m.receipt_handle.as_str()]);
                    self.hand_back(m, again).await
                }
            }
        }
        // One DeleteMessageBatch for every message whose outcome is durable; the
        // heartbeat covers them until it is done.
        self.delete_all(&durable).await;
        flight.release(durable);
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

    /// Every heartbeat, extends the visibility of every message held (received and not
    /// yet acknowledged) to three times the period: a message whose work is done still
    /// waits for its batch's delete, and must not come back meanwhile. Never ends.
    async fn heartbeat(&self, flight: &InFlight) -> std::convert::Infallible {
        let Some(period) = self.heartbeat else {
            return std::future::pending().await;
        };
        let period = period.clamp(Duration::from_secs(1), Duration::from_secs(43_200 / 3));
        let extend_to = i32::try_from(period.as_secs() * 3).unwrap_or(43_200);
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            beat.tick().await;
            let held = flight.held();
            if held.is_empty() {
                continue;
            }
            let handles: Vec<&str> = held.iter().map(String::as_str).collect();
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityOutput;
    use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesOutput;
    use aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput;
    use aws_sdk_sqs::types::Message;
    use aws_sdk_sqs::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    use super::*;

    const QUEUE: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/redress-tasks";

    struct Panics;

    impl Handler for Panics {
        async fn handle(&self, _: &Received) -> Verdict {
            panic!("a handler bug, on purpose")
        }
    }

    #[tokio::test]
    async fn a_handler_that_panics_hands_its_message_back_and_a_draining_run_ends() {
        drain_one_panicking(1).await;
    }

    #[tokio::test]
    async fn a_draining_run_with_two_receive_loops_ends() {
        drain_one_panicking(20).await;
    }

    #[tokio::test]
    async fn a_follower_never_asks_about_depth_and_ends_when_the_run_is_drained() {
        let receive =
            mock!(Client::receive_message).then_output(|| ReceiveMessageOutput::builder().build());
        let depth = mock!(Client::get_queue_attributes)
            .then_output(|| GetQueueAttributesOutput::builder().build());
        let sqs = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&receive, &depth]);
        let worker = Arc::new(Worker {
            name: "executor",
            queue: Queue::at(&sqs, QUEUE),
            dlq: Queue::at(&sqs, &format!("{QUEUE}-dlq")),
            handler: Arc::new(Panics),
            tally: Arc::default(),
            concurrency: 10,
            slots: None,
            heartbeat: Some(Duration::from_secs(30)),
            grace: Duration::from_secs(1),
        });
        let deferred = Arc::new(Deferred::default());
        // Kept, or the worker would read its end as a shutdown.
        let (_shutdown, stop) = watch::channel(false);
        let run = tokio::spawn(worker.run(RunUntil::Follows(deferred.clone()), stop));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!run.is_finished(), "it waits for the run's end");
        deferred.finish();
        let ended = tokio::time::timeout(Duration::from_secs(5), run).await;
        assert!(ended.is_ok(), "the run ended but the follower did not");
        assert_eq!(
            depth.num_calls(),
            0,
            "a follower asks no queue about its depth"
        );
        assert!(receive.num_calls() > 0);
    }

    /// Runs a draining worker over one message its handler panics on; checks the run
    /// ends and the message was handed back at once.
    async fn drain_one_panicking(concurrency: usize) {
        // One message, then an empty queue.
        let first = Arc::new(AtomicBool::new(true));
        let receive = mock!(Client::receive_message).then_compute_output(move |_| {
            let messages = first.swap(false, Ordering::SeqCst).then(|| {
                vec![Message::builder()
                    .message_id("m-1")
                    .receipt_handle("r-1")
                    .body("{}")
                    .build()]
            });
            ReceiveMessageOutput::builder()
                .set_messages(messages)
                .build()
        });
        let released = Arc::new(Mutex::new(Vec::new()));
        let seen = released.clone();
        let visibility = mock!(Client::change_message_visibility).then_compute_output(move |r| {
            seen.lock().unwrap().push((
                r.receipt_handle().unwrap_or_default().to_string(),
                r.visibility_timeout().unwrap_or(-1),
            ));
            ChangeMessageVisibilityOutput::builder().build()
        });
        let depth = mock!(Client::get_queue_attributes)
            .then_output(|| GetQueueAttributesOutput::builder().build());
        let sqs = mock_client!(
            aws_sdk_sqs,
            RuleMode::MatchAny,
            [&receive, &visibility, &depth]
        );
        let queue = Queue::at(&sqs, QUEUE);
        let worker = Arc::new(Worker {
            name: "executor",
            queue: queue.clone(),
            dlq: Queue::at(&sqs, &format!("{QUEUE}-dlq")),
            handler: Arc::new(Panics),
            tally: Arc::default(),
            concurrency,
            slots: None,
            heartbeat: Some(Duration::from_secs(30)),
            grace: Duration::from_secs(1),
        });
        let until = RunUntil::Drained(vec![queue], Arc::default());
        let ended = tokio::time::timeout(
            Duration::from_secs(10),
            worker.run(until, watch::channel(false).1),
        )
        .await;
        assert!(
            ended.is_ok(),
            "the run never ended: the message stayed held"
        );
        assert_eq!(
            *released.lock().unwrap(),
            vec![("r-1".to_string(), 0)],
            "handed back at once"
        );
    }
}
