//! `redress provision`: queues with dead-letter queues, the EventBridge rule feeding the
//! events queue, the ledger table, the notification topic (when `--notify-topic` names
//! one), and redress's three Config custom rules (each with the function Config requires
//! behind it). Idempotent: running it again changes nothing.

use crate::aws::retry::AwsError;
use crate::aws::sqs::Queue;
use crate::aws::Clients;

use crate::aws::custom_rules::CustomRules;
use crate::aws::ledger::LedgerTable;
use crate::aws::ledger_table::Ensured;
use crate::aws::sns::Topic;
use crate::cli::{Global, LedgerChoice, ProvisionArgs};
use crate::error::CliResult;
use crate::notify::TopicChoice;

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

async fn queue_with_dlq(
    clients: &Clients,
    name: &str,
    shape: &Shape,
) -> Result<(String, String), AwsError> {
    let dlq_name = format!("{name}-dlq");
    let dlq = Queue::create(
        &clients.sqs,
        &dlq_name,
        vec![("MessageRetentionPeriod", RETENTION_14_DAYS.into())],
    )
    .await?;
    let dlq_arn = dlq.arn().await?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": shape.max_receives,
    })
    .to_string();
    let mut attributes = vec![
        ("RedrivePolicy", redrive),
        ("VisibilityTimeout", shape.visibility.to_string()),
    ];
    if let Some(r) = shape.retention {
        attributes.push(("MessageRetentionPeriod", r.to_string()));
    }
    let queue = Queue::create(&clients.sqs, name, attributes).await?;
    let (url, arn) = (queue.url.clone(), queue.arn().await?);
    println!(
        "queue     {name}  (dead letters: {dlq_name}, after {} receives)",
        shape.max_receives
    );
    Ok((url, arn))
}

/// The name of the function (and its role) behind redress's Config rules.
const EVALUATOR: &str = "redress-evaluator";

/// redress's Config rules, bound to one placeholder function whose environment names
/// this binary (the local Config stand-in runs it for each invocation).
async fn config_rules(config: &crate::aws::SdkConfig, args: &ProvisionArgs) -> CliResult {
    use redress::evaluate::RuleKind;
    let apps = redress::evaluate::parameter_drift::apps(Some(&args.apps))
        .map_err(|e| crate::error::CliError::input(format!("--apps: {e}")))?;
    let me = std::env::current_exe()
        .map_err(|e| crate::error::CliError::failed(format!("cannot find this binary: {e}")))?;
    let rules = CustomRules::new(config);
    let role = rules.role(EVALUATOR).await?;
    let function = rules
        .function(EVALUATOR, &role, &me.to_string_lossy())
        .await?;
    for kind in RuleKind::ALL {
        let parameters = match kind {
            RuleKind::ParameterDrift => serde_json::json!({ "apps": apps.join(",") }),
            _ => serde_json::json!({}),
        };
        rules.rule(kind, &function, &parameters.to_string()).await?;
        println!("config    {} (function {EVALUATOR})", kind.name());
    }
    Ok(())
}

/// Creates everything; prints what exists afterwards.
pub async fn provision(global: &Global, args: &ProvisionArgs) -> CliResult {
    let config = crate::aws::load().await;
    let clients = Clients::new(&config);
    let plain = |n: &str| n.rsplit('/').next().unwrap_or(n).to_string();
    let (events_url, events_arn) =
        queue_with_dlq(&clients, &plain(&global.events_queue), &EVENTS).await?;
    queue_with_dlq(&clients, &plain(&global.tasks_queue), &TASKS).await?;
    queue_with_dlq(&clients, &plain(&global.approvals_queue), &APPROVALS).await?;

    let eb = crate::aws::eventbridge::EventBridge::new(clients.eventbridge.clone());
    if global.event_bus != "default" {
        eb.ensure_bus(&global.event_bus).await?;
    }
    let rule = rule_name(&global.events_queue);
    let rule_arn = eb
        .put_rule(
            &global.event_bus,
            &rule,
            &event_pattern(),
            "AWS Config compliance changes to redress",
        )
        .await?;
    eb.put_target(
        &global.event_bus,
        &rule,
        "redress-events-queue",
        &events_arn,
    )
    .await?;
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
    Queue::at(&clients.sqs, &events_url)
        .set_attribute("Policy", policy)
        .await?;
    println!(
        "rule      {rule} on bus {} → {}",
        global.event_bus,
        plain(&global.events_queue)
    );
    ledger_table(global, &clients).await?;
    notify_topic(global, &clients).await?;
    config_rules(&config, args).await
}

/// The notification topic, when `--notify-topic` names one (given as an ARN, the
/// topic of that name here).
async fn notify_topic(global: &Global, clients: &Clients) -> CliResult {
    let TopicChoice::Required(topic) = global.notify() else {
        return Ok(());
    };
    let name = topic.rsplit(':').next().unwrap_or(topic);
    let created = Topic::ensure(clients.sns.clone(), name).await?;
    println!("topic     {name}  (notifications: {})", created.arn);
    Ok(())
}

/// The ledger's table, unless `--ledger-table` is empty.
async fn ledger_table(global: &Global, clients: &Clients) -> CliResult {
    let name = match global.ledger() {
        LedgerChoice::Off => return Ok(()),
        LedgerChoice::IfExists(n) | LedgerChoice::Required(n) => n,
    };
    let ensured = LedgerTable::new(clients.dynamodb.clone(), name)
        .ensure()
        .await?;
    let how = match ensured {
        Ensured::Created => "created",
        Ensured::Existed => "exists",
    };
    println!("table     {name}  (ledger, {how}: on demand, TTL on ttl, point-in-time recovery)");
    Ok(())
}
