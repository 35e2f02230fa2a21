//! `redress run`'s one hop: with router and executor in one process, a task the router
//! decides on goes to the executor in memory instead of through the tasks queue, and the
//! events message is acknowledged only once the executor's outcome is durable (the
//! merged verdict is settled as one: its sends, its records, then the delete). A killed
//! process therefore loses nothing: the events message comes back and is routed again,
//! and the executor, idempotent per finding, recognises work already done.
//!
//! What the executor decided here is settled with the event: a dead letter is copied to
//! the tasks dead-letter queue with its reason; a retry hands the event back for the
//! retry's delay (it is routed and handed over again, its receive count the attempt
//! count); a task not started (shutdown) hands the event back at once. A task goes
//! through the tasks queue when the executor has no free slot.
//!
//! A task handed over here carries no sender: the router built it in this process, and
//! it can claim no more than a routed task may (no approval, closure check or undo is
//! believed without an identity SQS asserts).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{watch, Semaphore};

use crate::aws::sqs::{DeadLetter, Queue, Received};
use crate::executor::Executor;
use crate::router::Router;
use crate::settle::{Ack, Outgoing, Verdict};
use crate::worker::Handler;

/// The router with the executor behind it, in one process.
pub struct Handoff {
    /// Routes each event.
    pub router: Router,
    /// Carries out the tasks handed over.
    pub executor: Arc<Executor>,
    /// The tasks queue: a task sent there is the router's verdict as it stands.
    pub tasks: Queue,
    /// The tasks dead-letter queue, for tasks the executor dead-letters here.
    pub tasks_dlq: Queue,
    /// The executor's slots, shared with the executor worker on the tasks queue: a task
    /// that finds none free is sent to the queue.
    pub slots: Arc<Semaphore>,
    /// Turns true on shutdown: from then on tasks go to the queue.
    pub shutdown: watch::Receiver<bool>,
}

impl Handler for Handoff {
    async fn handle(&self, m: &Received) -> Verdict {
        let routed = self.router.handle(m).await;
        self.hand_over(m, routed).await
    }

    async fn settle(&self) {
        self.router.settle().await;
        self.executor.settle().await;
    }
}

impl Handoff {
    /// Carries out the router verdict's tasks here where it can, and merges what the
    /// executor decided into the verdict.
    async fn hand_over(&self, m: &Received, mut routed: Verdict) -> Verdict {
        let (tasks, rest): (Vec<Outgoing>, Vec<Outgoing>) = std::mem::take(&mut routed.send)
            .into_iter()
            .partition(|o| self.is_task(o));
        routed.send = rest;
        for (i, task) in tasks.into_iter().enumerate() {
            match self.execute(m, i, &task).await {
                Some(done) if done.ack == Ack::Release => return released(routed, done),
                Some(done) => merge(&mut routed, done),
                None => routed.send.push(task),
            }
        }
        routed
    }

    /// A task for the executor now (not a delayed or best-effort message).
    fn is_task(&self, o: &Outgoing) -> bool {
        o.to.url == self.tasks.url && o.delay_secs == 0 && !o.best_effort
    }

    /// What the executor decided on a task, as a verdict to merge into the event's;
    /// `None`: the task goes to the queue as it is (no free slot). Once shutdown has
    /// begun, a task not started is released with its event, which comes back for
    /// another worker: sent to the tasks queue now, it could fall to this process's own
    /// receive that shutdown abandoned, and stay hidden until its visibility timeout.
    async fn execute(&self, m: &Received, i: usize, task: &Outgoing) -> Option<Verdict> {
        if *self.shutdown.borrow() {
            return Some(Verdict::ack(Ack::Release));
        }
        let _slot = self.slots.clone().try_acquire_owned().ok()?;
        let mut verdict = self.executor.handle(&in_memory(m, i, task)).await;
        match std::mem::replace(&mut verdict.ack, Ack::Done) {
            Ack::Done => {}
            // The event comes back after the delay, is routed again and handed over
            // again; its receive count is the attempt count.
            retry @ Ack::Retry { .. } => verdict.ack = retry,
            Ack::Release => verdict.ack = Ack::Release,
            Ack::DeadLetter { class, error } => {
                let why = DeadLetter {
                    error_class: class.as_str(),
                    error: &error,
                    worker: "executor",
                };
                let attributes = why.attributes(m.receive_count, &self.tasks.name);
                verdict = verdict.send(&self.tasks_dlq, task.body.clone());
                if let Some(copy) = verdict.send.last_mut() {
                    copy.attributes = attributes;
                }
            }
        }
        Some(verdict)
    }
}

/// Whether an events message can be held through a fix in memory: only if the heartbeat
/// extends its visibility before the events queue's `visibility_secs` run out, with a
/// beat to spare. Otherwise a fix longer than the timeout would see its event delivered
/// again (and again, until SQS's redrive dead-letters a fix that is running fine).
pub fn holdable(
    heartbeat: Option<std::time::Duration>,
    visibility_secs: u64,
) -> Result<(), String> {
    match heartbeat {
        None => Err(format!(
            "the heartbeat is off (--heartbeat 0), so an event cannot be held through its fix beyond the events queue's visibility timeout ({visibility_secs} s)"
        )),
        Some(p) if p.as_secs().saturating_mul(2) > visibility_secs => Err(format!(
            "the heartbeat ({} s) is over half the events queue's visibility timeout ({visibility_secs} s), so an event held through its fix could be delivered again",
            p.as_secs()
        )),
        Some(_) => Ok(()),
    }
}

/// The task as the executor receives it: the events message's id and attempt, the task
/// as its body, no sender and no receipt (it is acknowledged with the events message).
fn in_memory(m: &Received, i: usize, task: &Outgoing) -> Received {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .ok();
    Received {
        message_id: format!("{}/{i}", m.message_id),
        receipt_handle: String::new(),
        body: task.body.clone(),
        receive_count: m.receive_count,
        attributes: Default::default(),
        sender_id: None,
        sent_at_ms: now_ms,
    }
}

/// The event handed back at once, unsettled: nothing is sent or recorded (it is routed
/// again when it comes back); the notes, being facts, are kept.
fn released(routed: Verdict, done: Verdict) -> Verdict {
    let mut v = Verdict::ack(Ack::Release);
    v.notes = routed.notes.into_iter().chain(done.notes).collect();
    v
}

/// The routed verdict with the executor's verdict folded in: its messages, records and
/// notes, its report line (the event's fate is the fix's), and a retry.
fn merge(routed: &mut Verdict, done: Verdict) {
    if matches!(done.ack, Ack::Retry { .. }) {
        routed.ack = done.ack;
    }
    routed.send.extend(done.send);
    routed.records.extend(done.records);
    routed.notes.extend(done.notes);
    if done.report.is_some() {
        routed.report = done.report;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use aws_smithy_mocks::mock_client;
    use aws_smithy_runtime_api::client::http::{
        HttpConnector, HttpConnectorFuture, SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use redress::message::Task;

    use super::*;
    use crate::aws::ec2::SecurityGroups;
    use crate::executor::Finished;
    use crate::report::Disposition;

    const QUEUES: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333";
    /// The rule, verified with Config.
    const VERIFIED: &str = r#"
[[rule]]
id = "ssh"
config_rule = "restricted-ssh"
severity = "MEDIUM"
action = { fix = "revoke_public_ingress", ports = [22] }
"#;

    /// The rule, acted on without asking Config (these tests have no network).
    fn unverified() -> String {
        format!("[config]\nverify = false\n{VERIFIED}")
    }

    /// A policy without the rule: the executor refuses the router's task.
    const NO_RULE: &str = r#"
[[rule]]
id = "other"
config_rule = "restricted-common-ports"
severity = "MEDIUM"
action = { fix = "revoke_public_ingress", ports = [21] }
"#;

    /// No network: every AWS call other than SQS fails, and is counted.
    #[derive(Debug, Clone, Default)]
    struct Offline(Arc<AtomicUsize>);

    impl HttpConnector for Offline {
        fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            HttpConnectorFuture::ready(Err(ConnectorError::other(
                "no network in this test".into(),
                None,
            )))
        }
    }

    fn handoff(slots: usize, executor_policy: &str, stopping: bool) -> (Handoff, Offline) {
        let sqs = mock_client!(aws_sdk_sqs, []);
        let offline = Offline::default();
        let tasks = Queue::at(&sqs, &format!("{QUEUES}/redress-tasks"));
        let router = Router {
            policy: Arc::new(redress::policy::Policy::from_toml(&unverified(), "p").unwrap()),
            tasks: tasks.clone(),
            approvals: Queue::at(&sqs, &format!("{QUEUES}/redress-approvals")),
            security_groups: SecurityGroups::new(mock_client!(aws_sdk_ec2, [])),
            dry_run: false,
            requests_via_executor: false,
        };
        let executor = crate::test_support::executor(
            executor_policy,
            &sqs,
            QUEUES,
            SharedHttpConnector::new(offline.clone()),
        );
        let handoff = Handoff {
            router,
            executor: Arc::new(executor),
            tasks,
            tasks_dlq: Queue::at(&sqs, &format!("{QUEUES}/redress-tasks-dlq")),
            slots: Arc::new(Semaphore::new(slots)),
            shutdown: watch::channel(stopping).1,
        };
        (handoff, offline)
    }

    fn event() -> Received {
        let body = std::fs::read_to_string(format!(
            "{}/../tests/fixtures/events/sg-ssh-open-noncompliant.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        Received {
            message_id: "m-1".into(),
            receipt_handle: "r-1".into(),
            body,
            receive_count: 1,
            attributes: Default::default(),
            sender_id: Some("AROAEVENTBRIDGE:rule".into()),
            sent_at_ms: None,
        }
    }

    fn tasks_sent(h: &Handoff, v: &Verdict) -> usize {
        v.send.iter().filter(|o| o.to.url == h.tasks.url).count()
    }

    fn executor_records(v: &Verdict) -> usize {
        v.records.iter().filter(|r| r.worker == "executor").count()
    }

    #[tokio::test]
    async fn a_task_the_executor_finishes_here_is_not_sent_and_the_event_takes_its_outcome() {
        let (h, offline) = handoff(1, &unverified(), false);
        // The executor remembers finishing this task: it settles it here without AWS.
        let routed = h.router.handle(&event()).await;
        assert_eq!(tasks_sent(&h, &routed), 1, "the router makes a task");
        let task: Task = serde_json::from_str(&routed.send[0].body).unwrap();
        let seen = Finished {
            outcome: "succeeded".into(),
            at: "2026-12-07T00:00:00Z".into(),
            execution_id: None,
        };
        h.executor
            .recent
            .insert(&task.client_token(), seen, Instant::now());

        let v = h.handle(&event()).await;
        assert_eq!(v.ack, Ack::Done);
        assert_eq!(tasks_sent(&h, &v), 0, "no hop through the tasks queue");
        assert_eq!(
            executor_records(&v),
            1,
            "the executor's record is settled with it"
        );
        let (fate, _, detail) = v.report.expect("a report line");
        assert_eq!(fate, Disposition::Skipped);
        assert!(detail.contains("duplicate"), "{detail}");
        assert_eq!(offline.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn with_no_free_executor_slot_the_task_goes_to_the_tasks_queue() {
        let (h, offline) = handoff(0, &unverified(), false);
        let v = h.handle(&event()).await;
        assert_eq!(tasks_sent(&h, &v), 1);
        assert_eq!(executor_records(&v), 0);
        assert_eq!(v.report.expect("a report line").0, Disposition::Forwarded);
        assert_eq!(offline.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn once_shutdown_began_the_event_is_handed_back_with_nothing_sent() {
        let (h, offline) = handoff(1, &unverified(), true);
        let v = h.handle(&event()).await;
        assert_eq!(v.ack, Ack::Release);
        assert!(v.send.is_empty(), "{:?}", v.send);
        assert!(v.records.is_empty());
        assert_eq!(offline.0.load(Ordering::SeqCst), 0, "nothing was attempted");
    }

    #[tokio::test]
    async fn a_task_the_executor_dead_letters_here_is_copied_to_the_tasks_dlq_with_its_reason() {
        // The executor's policy has no such rule: it refuses the router's task.
        let (h, offline) = handoff(1, NO_RULE, false);
        let v = h.handle(&event()).await;
        assert_eq!(v.ack, Ack::Done, "the event's outcome is the dead letter");
        assert_eq!(tasks_sent(&h, &v), 0, "not decided twice");
        let dead: Vec<_> = v
            .send
            .iter()
            .filter(|o| o.to.url == h.tasks_dlq.url)
            .collect();
        assert_eq!(dead.len(), 1);
        let a = &dead[0].attributes;
        assert_eq!(a[crate::aws::sqs::attr::ERROR_CLASS], "refused");
        assert_eq!(a[crate::aws::sqs::attr::WORKER], "executor");
        assert_eq!(a[crate::aws::sqs::attr::SOURCE_QUEUE], "redress-tasks");
        assert!(a[crate::aws::sqs::attr::ERROR].contains("ssh"), "{a:?}");
        assert_eq!(
            executor_records(&v),
            1,
            "the refusal is recorded once, here"
        );
        assert_eq!(
            v.report.expect("a report line").0,
            Disposition::DeadLettered
        );
        assert!(h.slots.try_acquire().is_ok(), "the slot is free again");
        assert_eq!(offline.0.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_task_to_retry_hands_the_event_back_for_its_delay_unrecorded() {
        // Config cannot be asked (no network): the executor retries later.
        let (h, offline) = handoff(1, VERIFIED, false);
        let v = h.handle(&event()).await;
        assert!(
            matches!(v.ack, Ack::Retry { after_secs } if after_secs > 0),
            "{:?}",
            v.ack
        );
        assert_eq!(
            tasks_sent(&h, &v),
            0,
            "handed over again when it comes back"
        );
        assert_eq!(v.report.expect("a report line").0, Disposition::Retrying);
        assert!(offline.0.load(Ordering::SeqCst) > 0, "the executor did ask");
    }

    #[test]
    fn an_event_is_held_through_a_fix_only_if_the_heartbeat_beats_well_within_its_timeout() {
        use std::time::Duration;
        assert!(holdable(Some(Duration::from_secs(30)), 60).is_ok());
        let slow = holdable(Some(Duration::from_secs(31)), 60).unwrap_err();
        assert!(slow.contains("over half"), "{slow}");
        let off = holdable(None, 900).unwrap_err();
        assert!(off.contains("--heartbeat 0"), "{off}");
    }

    #[test]
    fn a_task_handed_over_in_memory_claims_no_sender() {
        let task = Outgoing {
            to: Queue::at(&mock_client!(aws_sdk_sqs, []), "https://q/t"),
            body: "{}".into(),
            delay_secs: 0,
            best_effort: false,
            attributes: Default::default(),
        };
        let m = in_memory(&event(), 0, &task);
        assert_eq!(m.sender_id, None);
        assert_eq!(m.message_id, "m-1/0");
        assert_eq!(m.body, "{}");
    }
}
