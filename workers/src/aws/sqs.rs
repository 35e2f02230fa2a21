//! The SQS seam: resolving queues and their dead-letter queues, receiving, sending,
//! deleting and dead-lettering messages. Workers see [`Queue`] and [`Received`], not the
//! SDK.

use std::collections::HashMap;

use aws_sdk_sqs::types::{
    BatchResultErrorEntry, ChangeMessageVisibilityBatchRequestEntry,
    DeleteMessageBatchRequestEntry, MessageAttributeValue, MessageSystemAttributeName,
    QueueAttributeName, SendMessageBatchRequestEntry,
};

use super::retry::AwsError;

/// A queue, resolved to its URL.
#[derive(Clone, Debug)]
pub struct Queue {
    client: aws_sdk_sqs::Client,
    /// Queue URL.
    pub url: String,
    /// Queue name (last path segment of the URL).
    pub name: String,
}

/// A received message.
#[derive(Clone, Debug)]
pub struct Received {
    /// SQS message id.
    pub message_id: String,
    /// Handle for delete and visibility changes.
    pub receipt_handle: String,
    /// The body.
    pub body: String,
    /// How many times it has been received, this time included.
    pub receive_count: u32,
    /// String message attributes.
    pub attributes: HashMap<String, String>,
    /// Who sent it: the sender's unique id (an STS UserId), as SQS stamped it.
    pub sender_id: Option<String>,
    /// When it was first sent (milliseconds since the epoch).
    pub sent_at_ms: Option<u64>,
}

/// How many messages a queue holds (SQS's approximate counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    /// Ready to be received.
    pub visible: u64,
    /// Received and not yet deleted, or handed back to wait.
    pub invisible: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
}

/// A message to send.
#[derive(Debug, Clone, Default)]
pub struct Outbound {
    /// Body.
    pub body: String,
    /// String message attributes.
    pub attributes: HashMap<String, String>,
    /// Seconds before it becomes visible (SQS allows 0 to 900).
    pub delay_secs: i32,
}

impl Outbound {
    /// A body, no attributes, no delay.
    pub fn body(body: impl Into<String>) -> Outbound {
        Outbound {
            body: body.into(),
            ..Outbound::default()
        }
    }
}

/// Why a message was dead-lettered by a worker; written as message attributes.
#[derive(Clone, Debug)]
pub struct DeadLetter<'a> {
    /// `permanent`, `invalid_input`, `exhausted`, ...
    pub error_class: &'a str,
    /// Readable reason.
    pub error: &'a str,
    /// Worker that gave up (`router`, `executor`).
    pub worker: &'a str,
}

impl DeadLetter<'_> {
    /// The attributes of the dead-letter copy of a message from `source_queue` (its
    /// name), received `attempts` times.
    pub fn attributes(&self, attempts: u32, source_queue: &str) -> HashMap<String, String> {
        let mut reason: String = self.error.chars().take(MAX_REASON).collect();
        if reason.is_empty() {
            reason.push_str("(no reason given)");
        }
        HashMap::from([
            (attr::ERROR_CLASS.to_string(), self.error_class.to_string()),
            (attr::ERROR.to_string(), reason),
            (attr::WORKER.to_string(), self.worker.to_string()),
            (attr::FAILED_AT.to_string(), redress::time::now_rfc3339()),
            (attr::ATTEMPTS.to_string(), attempts.to_string()),
            (attr::SOURCE_QUEUE.to_string(), source_queue.to_string()),
        ])
    }
}

/// The SQS client, as an opaque handle for code outside the edge.
pub use aws_sdk_sqs::Client as SqsClient;
pub use redress::dead_letter::attr;

/// The entries of a batch call that failed, as (index in the batch, reason).
fn failures(failed: &[BatchResultErrorEntry]) -> Vec<(usize, String)> {
    failed
        .iter()
        .filter_map(|f| {
            Some((
                f.id().parse().ok()?,
                f.message().unwrap_or(f.code()).to_string(),
            ))
        })
        .collect()
}

/// SQS caps a message attribute value's size with the body; keep reasons readable, short.
const MAX_REASON: usize = 1000;

fn text(value: &str) -> MessageAttributeValue {
    // Building a String attribute with both fields set cannot fail.
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data_type is set")
}

impl Queue {
    /// Resolves a queue given by name or URL.
    pub async fn resolve(
        client: &aws_sdk_sqs::Client,
        name_or_url: &str,
    ) -> Result<Queue, AwsError> {
        let url = if name_or_url.starts_with("http://") || name_or_url.starts_with("https://") {
            name_or_url.to_string()
        } else {
            client
                .get_queue_url()
                .queue_name(name_or_url)
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("sqs:GetQueueUrl", e))?
                .queue_url()
                .unwrap_or_default()
                .to_string()
        };
        Ok(Queue::at(client, &url))
    }

    /// Creates a queue (or finds the existing one with the same attributes) with these
    /// attributes (`RedrivePolicy`, `VisibilityTimeout`, ...).
    pub async fn create(
        client: &aws_sdk_sqs::Client,
        name: &str,
        attributes: Vec<(&str, String)>,
    ) -> Result<Queue, AwsError> {
        let out = client
            .create_queue()
            .queue_name(name)
            .set_attributes(Some(
                attributes
                    .into_iter()
                    .map(|(k, v)| (QueueAttributeName::from(k), v))
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:CreateQueue", e))?;
        Ok(Queue::at(client, out.queue_url().unwrap_or_default()))
    }

    /// Sets one queue attribute (`Policy`, `RedrivePolicy`, ...).
    pub async fn set_attribute(&self, name: &str, value: String) -> Result<(), AwsError> {
        self.client
            .set_queue_attributes()
            .queue_url(&self.url)
            .attributes(QueueAttributeName::from(name), value)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:SetQueueAttributes", e))?;
        Ok(())
    }

    /// The queues whose redrive policy names this one as their dead-letter queue.
    pub async fn dead_letter_sources(&self) -> Result<Vec<Queue>, AwsError> {
        let out = self
            .client
            .list_dead_letter_source_queues()
            .queue_url(&self.url)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:ListDeadLetterSourceQueues", e))?;
        Ok(out
            .queue_urls()
            .iter()
            .map(|u| Queue::at(&self.client, u))
            .collect())
    }

    /// A queue at a known URL.
    pub fn at(client: &aws_sdk_sqs::Client, url: &str) -> Queue {
        let name = url.rsplit('/').next().unwrap_or(url).to_string();
        Queue {
            client: client.clone(),
            url: url.to_string(),
            name,
        }
    }

    /// The dead-letter queue named by this queue's `RedrivePolicy`, if it has one.
    pub async fn dead_letter_queue(&self) -> Result<Option<Queue>, AwsError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:GetQueueAttributes", e))?;
        let Some(policy) = out
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        else {
            return Ok(None);
        };
        let arn = serde_json::from_str::<serde_json::Value>(policy)
            .ok()
            .and_then(|v| v.get("deadLetterTargetArn")?.as_str().map(str::to_string));
        match arn.as_deref().and_then(|a| a.rsplit(':').next()) {
            Some(name) => Queue::resolve(&self.client, name).await.map(Some),
            None => Ok(None),
        }
    }

    /// Receives up to `max` (≤ 10) messages, long-polling up to `wait_seconds`.
    pub async fn receive(&self, max: i32, wait_seconds: i32) -> Result<Vec<Received>, AwsError> {
        self.receive_hidden_for(max, wait_seconds, None).await
    }

    /// Like [`Queue::receive`], hiding what it returns for `visibility` seconds instead
    /// of the queue's default.
    pub async fn receive_hidden_for(
        &self,
        max: i32,
        wait_seconds: i32,
        visibility: Option<i32>,
    ) -> Result<Vec<Received>, AwsError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(wait_seconds)
            .set_visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .message_system_attribute_names(MessageSystemAttributeName::SenderId)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| Received {
                message_id: m.message_id().unwrap_or_default().to_string(),
                receipt_handle: m.receipt_handle().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
                attributes: m
                    .message_attributes()
                    .map(|attrs| {
                        attrs
                            .iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default(),
                sender_id: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SenderId))
                    .cloned(),
                sent_at_ms: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                    .and_then(|t| t.parse().ok()),
            })
            .collect())
    }

    /// Reads every message on the queue, hiding each for `visibility` seconds (long
    /// enough to finish reading); stops at the first empty receive. Pair with
    /// [`Queue::release_all`] so others are not blocked.
    pub async fn scan(&self, visibility: i32) -> Result<Vec<Received>, AwsError> {
        let mut all = Vec::new();
        loop {
            let batch = self.receive_hidden_for(10, 1, Some(visibility)).await?;
            if batch.is_empty() {
                return Ok(all);
            }
            all.extend(batch);
        }
    }

    /// Makes these messages visible again at once, ten per call.
    pub async fn release_all(&self, receipt_handles: &[&str]) -> Result<(), AwsError> {
        self.set_visibility_all(receipt_handles, 0).await
    }

    /// Sets these messages' visibility timeout (seconds from now), ten per call. An
    /// entry SQS refuses is logged, not fatal: the message reappears when its visibility
    /// times out.
    pub async fn set_visibility_all(
        &self,
        receipt_handles: &[&str],
        seconds: i32,
    ) -> Result<(), AwsError> {
        for chunk in receipt_handles.chunks(10) {
            for (_, why) in self.set_visibility_batch(chunk, seconds).await? {
                tracing::warn!(queue = %self.name, %why, "could not change a message's visibility");
            }
        }
        Ok(())
    }

    /// Sets up to ten received messages' visibility timeout (seconds from now) in one
    /// call. Returns the indexes that failed, with the reason: an entry fails when its
    /// receipt handle is not one this queue issued for a message in flight.
    pub async fn set_visibility_batch(
        &self,
        receipt_handles: &[&str],
        seconds: i32,
    ) -> Result<Vec<(usize, String)>, AwsError> {
        let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, h)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*h)
                    .visibility_timeout(seconds)
                    .build()
                    .expect("id and required fields are set")
            })
            .collect();
        let out = self
            .client
            .change_message_visibility_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:ChangeMessageVisibilityBatch", e))?;
        // An entry counts only if SQS says it succeeded: one it did not answer failed.
        let mut failed = failures(out.failed());
        for i in 0..receipt_handles.len() {
            let answered = out.successful().iter().any(|s| s.id() == i.to_string())
                || failed.iter().any(|(f, _)| *f == i);
            if !answered {
                failed.push((i, "no result for this entry".to_string()));
            }
        }
        Ok(failed)
    }

    /// Sends a body; returns the new message id.
    pub async fn send(&self, body: &str) -> Result<String, AwsError> {
        self.send_with(body, HashMap::new()).await
    }

    async fn send_with(
        &self,
        body: &str,
        attributes: HashMap<String, MessageAttributeValue>,
    ) -> Result<String, AwsError> {
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .set_message_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:SendMessage", e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }

    /// Sends up to ten messages in one call, each with string attributes and an
    /// optional delay. Returns the indexes that failed, with the reason (partial failure
    /// is normal in SQS batches).
    pub async fn send_batch(
        &self,
        messages: &[Outbound],
    ) -> Result<Vec<(usize, String)>, AwsError> {
        let entries: Vec<SendMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .set_message_attributes((!m.attributes.is_empty()).then(|| {
                        m.attributes
                            .iter()
                            .map(|(k, v)| (k.clone(), text(v)))
                            .collect()
                    }))
                    .set_delay_seconds((m.delay_secs > 0).then_some(m.delay_secs))
                    .build()
                    .expect("id and required fields are set")
            })
            .collect();
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:SendMessageBatch", e))?;
        Ok(failures(out.failed()))
    }

    /// Deletes up to ten received messages in one call. Returns the indexes that failed.
    pub async fn delete_batch(
        &self,
        receipt_handles: &[&str],
    ) -> Result<Vec<(usize, String)>, AwsError> {
        let entries: Vec<DeleteMessageBatchRequestEntry> = receipt_handles
            .iter()
            .enumerate()
            .map(|(i, h)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*h)
                    .build()
                    .expect("id and required fields are set")
            })
            .collect();
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:DeleteMessageBatch", e))?;
        Ok(failures(out.failed()))
    }

    /// The queue's ARN.
    pub async fn arn(&self) -> Result<String, AwsError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:GetQueueAttributes", e))?;
        Ok(out
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default())
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), AwsError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:DeleteMessage", e))?;
        Ok(())
    }

    /// Makes a received message visible again after `seconds` (0: at once).
    pub async fn release(&self, receipt_handle: &str, seconds: i32) -> Result<(), AwsError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:ChangeMessageVisibility", e))?;
        Ok(())
    }

    /// Sends a copy of `message` (from this queue) to `dlq` with the reason as attributes;
    /// the caller removes the original afterwards (the poller's batch delete, or Lambda
    /// for a record not reported as failed): a crash in between duplicates, never loses.
    pub async fn copy_to_dead_letter(
        &self,
        dlq: &Queue,
        message: &Received,
        why: &DeadLetter<'_>,
    ) -> Result<(), AwsError> {
        let attributes = why
            .attributes(message.receive_count, &self.name)
            .into_iter()
            .map(|(k, v)| (k, text(&v)))
            .collect();
        // SQS rejects empty bodies; keep the message recognisable anyway.
        let body = if message.body.is_empty() {
            "(empty body)"
        } else {
            &message.body
        };
        dlq.send_with(body, attributes).await.map(|_| ())
    }

    /// The queue's visibility timeout, in seconds.
    pub async fn visibility_timeout(&self) -> Result<u64, AwsError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:GetQueueAttributes", e))?;
        Ok(out
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
            .and_then(|v| v.parse().ok())
            // SQS's default.
            .unwrap_or(30))
    }

    /// Approximate counts: visible, in flight (or waiting to come back), delayed.
    pub async fn depth(&self) -> Result<Depth, AwsError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sqs:GetQueueAttributes", e))?;
        let get = |name: QueueAttributeName| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Depth {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages),
            invisible: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
            delayed: get(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        })
    }
}
