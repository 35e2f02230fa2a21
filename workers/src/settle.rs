//! Settling: handlers decide, this module settles. A handler returns a [`Verdict`] (the
//! messages to send on, how to acknowledge the message, the audit records and the report
//! line); [`Settler::settle`] makes a batch of verdicts durable (sends in batches per
//! destination, copies dead letters with their reason) and only then writes each
//! verdict's records and report line. It is the one place that writes the router's and
//! executor's audit records. The SQS poller ([`crate::worker`]) and the Lambda adapter
//! ([`crate::lambda`]) both settle through it; what they do with a settled message
//! differs only in how it leaves the queue (a delete, or Lambda's batch response).
//!
//! It is also the one place that tells people ([`crate::notify`]): once a batch is
//! settled and recorded, what each verdict gives rise to (an approval request sent, a
//! fix failed or dead-lettered, a guard tripped or reset, a finding still non-compliant)
//! is published to the notification topic, if one is configured. A publish never
//! changes what became of a message.

use std::collections::HashMap;
use std::time::Duration;

use redress::audit::AuditRecord;
use redress::message::ApprovalsMessage;
use redress::notify::{notifications, Notification, Settlement};

use crate::aws::retry::with_backoff;
use crate::aws::sqs::{attr, DeadLetter, Outbound, Queue, Received};
use crate::report::{Disposition, Tally};

/// How to acknowledge a handled message once its outgoing messages are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Its outcome is recorded: remove it from the queue.
    Done,
    /// A transient failure: make it visible again after this many seconds.
    Retry {
        /// Delay before redelivery.
        after_secs: i32,
    },
    /// Not started (shutting down, or out of time): visible again at once.
    Release,
    /// It can never succeed as is: copy it to the dead-letter queue with the reason.
    DeadLetter {
        /// Why it failed, as a class.
        class: DeadLetterClass,
        /// Why.
        error: String,
    },
}

/// Why a message was dead-lettered, as written in its `redress.error_class` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterClass {
    /// The body could not be used (not JSON, not an event, invalid fields).
    InvalidInput,
    /// The executor would not act (policy, approval or safety checks).
    Refused,
    /// Retrying cannot help.
    Permanent,
    /// Transient failures until the attempt cap.
    Exhausted,
}

impl DeadLetterClass {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterClass::InvalidInput => "invalid_input",
            DeadLetterClass::Refused => "refused",
            DeadLetterClass::Permanent => "permanent",
            DeadLetterClass::Exhausted => "exhausted",
        }
    }
}

/// A message to send before the verdict counts.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Destination.
    pub to: Queue,
    /// Body.
    pub body: String,
    /// Seconds before it becomes visible (a closure check waits for Config).
    pub delay_secs: i32,
    /// Not worth redoing the verdict for: if SQS does not accept it, it is logged and
    /// the verdict still counts (a fix's first closure check: the fix has happened, and
    /// its record must not wait on the check).
    pub best_effort: bool,
    /// String attributes (a dead letter's reason, when it is one: see
    /// [`DeadLetter::attributes`](crate::aws::sqs::DeadLetter::attributes)).
    pub attributes: HashMap<String, String>,
}

/// What a handler decided about one message. Nothing in it has happened yet, except
/// the fix itself: settling makes it durable and records it.
#[derive(Debug)]
pub struct Verdict {
    /// How to acknowledge the message.
    pub ack: Ack,
    /// Messages to send first (a task, an approval request, a moot notice); if any is
    /// not accepted, the message comes back instead.
    pub send: Vec<Outgoing>,
    /// Audit records of the outcome, written once it is durable.
    pub records: Vec<AuditRecord>,
    /// Audit records of facts observed while deciding (a guard tripped), written
    /// whatever becomes of the message.
    pub notes: Vec<AuditRecord>,
    /// The report line.
    pub report: Option<(Disposition, String, String)>,
}

impl Verdict {
    /// A verdict with this acknowledgement and nothing else.
    pub fn ack(ack: Ack) -> Verdict {
        Verdict {
            ack,
            send: Vec::new(),
            records: Vec::new(),
            notes: Vec::new(),
            report: None,
        }
    }

    /// Done: the outcome is recorded.
    pub fn done() -> Verdict {
        Verdict::ack(Ack::Done)
    }

    /// Dead-letter with a class and reason.
    pub fn dead_letter(class: DeadLetterClass, error: impl Into<String>) -> Verdict {
        Verdict::ack(Ack::DeadLetter {
            class,
            error: error.into(),
        })
    }

    /// Also send this message first.
    pub fn send(self, to: &Queue, body: String) -> Verdict {
        self.send_later(to, body, 0)
    }

    /// Also send this message first, visible only after `delay_secs` (at most 900).
    pub fn send_later(mut self, to: &Queue, body: String, delay_secs: i32) -> Verdict {
        self.send.push(Outgoing {
            to: to.clone(),
            body,
            delay_secs: delay_secs.clamp(0, 900),
            best_effort: false,
            attributes: HashMap::new(),
        });
        self
    }

    /// [`send_later`](Self::send_later), but the verdict counts even if SQS does not
    /// accept the message (it is logged).
    pub fn send_later_best_effort(self, to: &Queue, body: String, delay_secs: i32) -> Verdict {
        let mut v = self.send_later(to, body, delay_secs);
        if let Some(o) = v.send.last_mut() {
            o.best_effort = true;
        }
        v
    }

    /// Also write this record once durable.
    pub fn record(mut self, r: AuditRecord) -> Verdict {
        self.records.push(r);
        self
    }

    /// The report line.
    pub fn report(
        mut self,
        fate: Disposition,
        subject: impl Into<String>,
        detail: impl Into<String>,
    ) -> Verdict {
        self.report = Some((fate, subject.into(), detail.into()));
        self
    }
}

/// What became of a settled message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Its outcome is durable: remove it from the queue.
    Durable,
    /// It must come back after this many seconds.
    Again {
        /// Delay before redelivery.
        after_secs: i32,
    },
}

/// Seconds before a message whose outgoing message was not accepted comes back.
const SEND_RETRY_SECONDS: i32 = 5;
/// Time allowed for a dead-letter copy to get through transient errors.
const DEAD_LETTER_PATIENCE: Duration = Duration::from_secs(20);

/// Settles verdicts for one worker.
pub struct Settler<'a> {
    /// `router` or `executor`, written on dead letters.
    pub worker: &'static str,
    /// The queue the messages came from and its dead-letter queue; `None` when none is
    /// known (Lambda without a redrive policy): a dead letter then comes back, and
    /// SQS's redrive is the way out.
    pub dlq: Option<(&'a Queue, &'a Queue)>,
    /// The report.
    pub tally: &'a Tally,
}

impl Settler<'_> {
    /// Makes a batch of verdicts durable and records the durable ones; returns what
    /// became of each message, in order.
    pub async fn settle(&self, batch: Vec<(&Received, Verdict)>) -> Vec<Settled> {
        let sent = self.send_all(&batch).await;
        let mut out = Vec::with_capacity(batch.len());
        let mut tell = Vec::new();
        for ((m, verdict), sent) in batch.into_iter().zip(sent) {
            let settled = if sent {
                self.acknowledge(m, &verdict.ack).await
            } else {
                Settled::Again {
                    after_secs: SEND_RETRY_SECONDS,
                }
            };
            if crate::notify::enabled() {
                tell.extend(told(self.worker, &verdict, settled));
            }
            self.record(verdict, settled);
            out.push(settled);
        }
        crate::notify::tell(tell).await;
        out
    }

    /// Sends every verdict's outgoing messages, ten per call per destination; returns,
    /// per verdict, whether all of its messages were accepted.
    async fn send_all(&self, batch: &[(&Received, Verdict)]) -> Vec<bool> {
        let mut ok = vec![true; batch.len()];
        // Per destination URL: the queue and (verdict index, message) of each message.
        type Group<'q> = (&'q Queue, Vec<(usize, &'q Outgoing)>);
        let mut by_queue: HashMap<&str, Group<'_>> = HashMap::new();
        for (i, (_, v)) in batch.iter().enumerate() {
            for o in &v.send {
                by_queue
                    .entry(o.to.url.as_str())
                    .or_insert_with(|| (&o.to, Vec::new()))
                    .1
                    .push((i, o));
            }
        }
        for (queue, items) in by_queue.into_values() {
            for chunk in items.chunks(10) {
                let bodies: Vec<Outbound> = chunk
                    .iter()
                    .map(|(_, o)| Outbound {
                        body: o.body.clone(),
                        attributes: o.attributes.clone(),
                        delay_secs: o.delay_secs,
                    })
                    .collect();
                let failed = match queue.send_batch(&bodies).await {
                    Ok(failed) => failed.into_iter().map(|(i, _)| i).collect(),
                    Err(e) => {
                        tracing::warn!(queue = %queue.name, error = %e, "send failed; messages left for redelivery");
                        (0..chunk.len()).collect::<Vec<_>>()
                    }
                };
                for i in failed {
                    let (verdict, o) = chunk[i];
                    if o.best_effort {
                        tracing::warn!(queue = %queue.name, "a best-effort message was not accepted; going on without it");
                    } else {
                        ok[verdict] = false;
                    }
                }
            }
        }
        ok
    }

    async fn acknowledge(&self, m: &Received, ack: &Ack) -> Settled {
        match ack {
            Ack::Done => Settled::Durable,
            Ack::Retry { after_secs } => Settled::Again {
                after_secs: *after_secs,
            },
            Ack::Release => Settled::Again { after_secs: 0 },
            Ack::DeadLetter { class, error } => {
                let Some((source, dlq)) = self.dlq else {
                    tracing::warn!(class = class.as_str(), %error, "no dead-letter queue known; the message comes back and SQS's redrive moves it");
                    return Settled::Again { after_secs: 0 };
                };
                let why = DeadLetter {
                    error_class: class.as_str(),
                    error,
                    worker: self.worker,
                };
                tracing::warn!(class = class.as_str(), %error, "dead-lettering message");
                match with_backoff(DEAD_LETTER_PATIENCE, || {
                    source.copy_to_dead_letter(dlq, m, &why)
                })
                .await
                {
                    Ok(()) => Settled::Durable,
                    Err(e) => {
                        tracing::error!(error = %e, "could not dead-letter; the message comes back");
                        Settled::Again { after_secs: 0 }
                    }
                }
            }
        }
    }

    /// Writes the verdict's notes always, and its records and report line once its
    /// outcome is durable (a retry's report line too: it says it will retry).
    fn record(&self, v: Verdict, settled: Settled) {
        for n in v.notes {
            n.emit();
        }
        let retrying = matches!(v.ack, Ack::Retry { .. });
        if settled == Settled::Durable {
            for r in v.records {
                r.emit();
            }
        }
        if settled == Settled::Durable || retrying {
            if let Some((fate, subject, detail)) = v.report {
                self.tally.add(fate, subject, detail);
            }
        }
    }
}

/// What a settled verdict tells people: guard notes always; once durable, its approval
/// requests (the bodies it sent that are requests), a fix that failed, a dead letter,
/// a finding still non-compliant.
fn told(worker: &str, v: &Verdict, settled: Settled) -> Vec<Notification> {
    let requests: Vec<_> = v
        .send
        .iter()
        .filter_map(|o| match serde_json::from_str(&o.body) {
            Ok(ApprovalsMessage::Request(r)) => Some(*r),
            _ => None,
        })
        .collect();
    // Dead-lettered here, or (a task `run` handed over in memory) a copy sent to a
    // dead-letter queue in its worker's name.
    let (worker, dead_lettered) = match &v.ack {
        Ack::DeadLetter { class, error } => (worker, Some((class.as_str(), error.as_str()))),
        _ => v
            .send
            .iter()
            .find_map(|o| {
                let a = &o.attributes;
                Some((
                    a.get(attr::WORKER)?.as_str(),
                    Some((
                        a.get(attr::ERROR_CLASS)?.as_str(),
                        a.get(attr::ERROR)?.as_str(),
                    )),
                ))
            })
            .unwrap_or((worker, None)),
    };
    notifications(&Settlement {
        worker,
        durable: settled == Settled::Durable,
        records: &v.records,
        notes: &v.notes,
        requests: &requests,
        dead_lettered,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redress::audit::{AuditDecision, Outcome};
    use redress::notify::Kind;

    fn failed() -> AuditRecord {
        let mut r = AuditRecord::bare("executor", AuditDecision::Remediate);
        r.resource_id = Some("sg-1".into());
        r.outcome = Some(Outcome::Failed);
        r
    }

    #[test]
    fn a_dead_lettered_failure_is_told_once_it_is_durable() {
        let v = Verdict::dead_letter(DeadLetterClass::Permanent, "gone").record(failed());
        let out = told("executor", &v, Settled::Durable);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::FixFailed);
        assert!(out[0]
            .body
            .content
            .description
            .contains("dead-lettered (permanent)"));
        assert!(told("executor", &v, Settled::Again { after_secs: 0 }).is_empty());
    }

    #[test]
    fn a_dead_letter_copy_sent_for_a_handed_over_task_is_told_as_one() {
        let sqs = aws_smithy_mocks::mock_client!(aws_sdk_sqs, []);
        let dlq = Queue::at(&sqs, "http://localhost/redress-tasks-dlq");
        // `run` settles the executor's dead letter with the event: the event is done.
        let mut v = Verdict::done().send(&dlq, "{}".into()).record(failed());
        v.send[0].attributes = DeadLetter {
            error_class: "permanent",
            error: "gone",
            worker: "executor",
        }
        .attributes(1, "redress-tasks");
        let out = told("router", &v, Settled::Durable);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::FixFailed);
        assert!(out[0]
            .body
            .content
            .description
            .contains("dead-lettered (permanent)"));
    }

    #[test]
    fn only_request_bodies_count_as_approval_requests() {
        let sqs = aws_smithy_mocks::mock_client!(aws_sdk_sqs, []);
        let q = Queue::at(&sqs, "http://localhost/q");
        // A moot notice or a task is not a request: nothing to tell.
        let v = Verdict::done()
            .send(&q, r#"{"kind":"moot"}"#.into())
            .send(&q, "{}".into());
        assert!(told("router", &v, Settled::Durable).is_empty());
    }
}
