//! `redress provision`: queues with dead-letter queues, and the EventBridge rule feeding
//! the events queue. Idempotent: running it again changes nothing.

use aws_sdk_sqs::types::QueueAttributeName;
use crate::aws::Clients;
use crate::aws::retry::AwsError;
use crate::aws::sqs::Queue;

use crate::cli::Global;
use crate::error::CliResult;

/// Fourteen days, the SQS maximum: dead letters wait for an operator.
const RETENTION_14_DAYS: &str = "1209600";

/// How a queue is set up.
struct Shape {
    /// Visibility timeout (seconds).
    visibility: u32,
    /// Receives before SQS itself moves a message to the DLQ.
    max_receives: u32,
    /// Retention, when not the SQS default (4 days).
    retention: Option<&'static str>,
}

/// Events and tasks: SQS's backstop sits above the executor's own attempt cap (5), so
/// the worker dead-letters with a reason first.
const EVENTS: Shape = Shape {
    visibility: 60,
    max_receives: 10,
    retention: None,
};
/// Runbooks can run for minutes; the executor's visibility outlasts a typical one.
const TASKS: Shape = Shape {
    visibility: 900,
    max_receives: 10,
    retention: None,
};
/// Every `approvals list` receives every request, so the backstop is SQS's maximum, and
/// requests are kept as long as SQS allows (longer than the default 7-day TTL).
const APPROVALS: Shape = Shape {
    visibility: 60,
    max_receives: 1000,
    retention: Some(RETENTION_14_DAYS),
};

/// The detail-type redress consumes, as an EventBridge pattern.
pub fn event_pattern() -> String {
    serde_json::json!({
        "source": [redress::event::CONFIG_SOURCE],
        "detail-type": [redress::event::COMPLIANCE_CHANGE_DETAIL_TYPE],
    })
    .to_string()
}

/// Name of the EventBridge rule feeding `events_queue`.
pub fn rule_name(events_queue: &str) -> String {
    format!(
        "{}-compliance-change",
        events_queue.rsplit('/').next().unwrap_or(events_queue)
    )
}

async fn create(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> Result<String, AwsError> {
    let out = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.into_iter().collect()))
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sqs:CreateQueue", e))?;
    Ok(out.queue_url().unwrap_or_default().to_string())
}

/// Creates a queue and its `-dlq`; returns (url, arn).
async fn queue_with_dlq(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    shape: &Shape,
) -> Result<(String, String), AwsError> {
    let dlq_name = format!("{name}-dlq");
    let dlq_url = create(
        sqs,
        &dlq_name,
        vec![(
            QueueAttributeName::MessageRetentionPeriod,
            RETENTION_14_DAYS.into(),
        )],
    )
    .await?;
    let dlq_arn = Queue::at(sqs, &dlq_url).arn().await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": shape.max_receives,
    })
    .to_string();
    let mut attributes = vec![
        (QueueAttributeName::RedrivePolicy, redrive),
        (
            QueueAttributeName::VisibilityTimeout,
            shape.visibility.to_string(),
        ),
    ];
    if let Some(r) = shape.retention {
        attributes.push((QueueAttributeName::MessageRetentionPeriod, r.to_string()));
    }
    let url = create(sqs, name, attributes).await?;
    let arn = Queue::at(sqs, &url).arn().await?;
    println!(
        "queue     {name}  (dead letters: {dlq_name}, after {} receives)",
        shape.max_receives
    );
    Ok((url, arn))
}

/// Creates everything; prints what exists afterwards.
pub async fn provision(global: &Global) -> CliResult {
    let config = crate::aws::load().await;
    let clients = Clients::new(&config);
    let sqs = &clients.sqs;
    let plain = |n: &str| n.rsplit('/').next().unwrap_or(n).to_string();
    let (events_url, events_arn) =
        queue_with_dlq(sqs, &plain(&global.events_queue), &EVENTS).await?;
    queue_with_dlq(sqs, &plain(&global.tasks_queue), &TASKS).await?;
    queue_with_dlq(sqs, &plain(&global.approvals_queue), &APPROVALS).await?;

    let eb = &clients.eventbridge;
    if global.event_bus != "default" {
        match eb.create_event_bus().name(&global.event_bus).send().await {
            Ok(_) => {}
            Err(e) => {
                let e = AwsError::from_sdk("events:CreateEventBus", e);
                if e.code != "ResourceAlreadyExistsException" {
                    return Err(e.into());
                }
            }
        }
    }
    let rule = rule_name(&global.events_queue);
    let rule_arn = eb
        .put_rule()
        .name(&rule)
        .event_bus_name(&global.event_bus)
        .event_pattern(event_pattern())
        .description("AWS Config compliance changes to redress")
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("events:PutRule", e))?
        .rule_arn()
        .unwrap_or_default()
        .to_string();
    let target = aws_sdk_eventbridge::types::Target::builder()
        .id("redress-events-queue")
        .arn(&events_arn)
        .build()
        .map_err(|e| crate::error::CliError::failed(format!("bad target: {e}")))?;
    eb.put_targets()
        .rule(&rule)
        .event_bus_name(&global.event_bus)
        .targets(target)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("events:PutTargets", e))?;
    // Only this rule may send to the events queue.
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "EventBridgeRuleOnly",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": events_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }],
    })
    .to_string();
    sqs.set_queue_attributes()
        .queue_url(&events_url)
        .attributes(QueueAttributeName::Policy, policy)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sqs:SetQueueAttributes", e))?;
    println!(
        "rule      {rule} on bus {} → {}",
        global.event_bus,
        plain(&global.events_queue)
    );
    Ok(())
}
