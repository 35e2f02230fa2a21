//! Notifications on the local stack: with a topic configured, a new approval request and
//! a failed fix each put exactly one message on the topic, with the `severity`, `kind`
//! and `account` attributes subscription filters use and a body in AWS Chatbot's
//! custom-notification format. An SQS queue subscribed to the topic (raw delivery off,
//! so SNS's envelope carries the attributes) stands in for Chatbot.

use std::collections::BTreeMap;

use redress::notify::ChatbotMessage;
use redress_workers::aws::sqs::Queue;
use serde_json::Value;

use crate::support::{policy_fixtures, text, EventBuilder, World, ACCOUNT, REGION};

const SG: &str = "AWS::EC2::SecurityGroup";

/// One message as the subscribed queue received it: its attributes and Chatbot body.
struct Told {
    attributes: BTreeMap<String, String>,
    body: String,
}

/// Unwraps SNS's envelope: `Message` is the body; `MessageAttributes` maps each name to
/// `{"Type": "String", "Value": ...}`.
fn unwrap_envelope(sqs_body: &str) -> Told {
    let envelope: Value = serde_json::from_str(sqs_body).unwrap();
    assert_eq!(envelope["Type"], "Notification", "{envelope:#}");
    let attributes = envelope["MessageAttributes"]
        .as_object()
        .unwrap_or_else(|| panic!("no MessageAttributes: {envelope:#}"))
        .iter()
        .map(|(k, v)| {
            assert_eq!(v["Type"], "String", "{k}: {v}");
            (k.clone(), v["Value"].as_str().unwrap().to_string())
        })
        .collect();
    Told {
        attributes,
        body: envelope["Message"].as_str().unwrap().to_string(),
    }
}

#[tokio::test]
async fn an_approval_request_and_a_failed_fix_each_notify_once() {
    let policy = format!(
        "[routing]\nauto_max_severity = \"MEDIUM\"\n{}",
        policy_fixtures(&["ssh-high", "always-fails"], &[])
    );
    let w = World::new("notify", &policy).await;
    let topic = format!("{}-notifications", w.prefix);

    // Named but missing: the workers refuse to start rather than run untold.
    let out = w
        .command(&["run", "--once"])
        .env("REDRESS_NOTIFY_TOPIC", &topic)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );

    let out = w
        .command(&["provision"])
        .env("REDRESS_NOTIFY_TOPIC", &topic)
        .output()
        .unwrap();
    assert!(out.status.success(), "provision: {}", text(&out.stderr));
    let arn = format!("arn:aws:sns:{REGION}:{ACCOUNT}:{topic}");
    assert!(
        text(&out.stdout).contains(&format!("topic     {topic}  (notifications: {arn})")),
        "{}",
        text(&out.stdout)
    );

    // Chatbot's stand-in: a queue subscribed to the topic, SNS's envelope kept.
    let inbox = Queue::create(&w.clients.sqs, &w.queue_name("inbox"), Vec::new())
        .await
        .unwrap();
    let sns = aws_sdk_sns::Client::new(&crate::support::sdk_config().await);
    sns.subscribe()
        .topic_arn(&arn)
        .protocol("sqs")
        .endpoint(inbox.arn().await.unwrap())
        .attributes("RawMessageDelivery", "false")
        .send()
        .await
        .unwrap();

    let ssh = w.security_group("ssh", &[(22, "0.0.0.0/0")]).await;
    let broken = w.security_group("broken", &[(22, "0.0.0.0/0")]).await;
    w.send_event(&EventBuilder::new("restricted-ssh", SG, &ssh))
        .await;
    w.send_event(&EventBuilder::new("broken-runbook-rule", SG, &broken))
        .await;
    let out = w
        .command(&["run", "--once"])
        .env("REDRESS_NOTIFY_TOPIC", &topic)
        .output()
        .unwrap();
    assert!(out.status.success(), "run: {}", text(&out.stderr));
    let approval = w.approval_ids();
    assert_eq!(approval.len(), 1, "one request waits");
    assert_eq!(
        w.drain("tasks-dlq").await.len(),
        1,
        "the failed fix is dead-lettered"
    );

    let told: Vec<Told> = w
        .drain("inbox")
        .await
        .iter()
        .map(|m| unwrap_envelope(&m.body))
        .collect();
    let kinds: Vec<&str> = told.iter().map(|t| t.attributes["kind"].as_str()).collect();
    assert_eq!(told.len(), 2, "one message each: {kinds:?}");
    for t in &told {
        let keys: Vec<&str> = t.attributes.keys().map(String::as_str).collect();
        assert_eq!(keys, ["account", "kind", "severity"]);
        assert_eq!(t.attributes["account"], ACCOUNT);
        let m = ChatbotMessage::parse(&t.body).unwrap_or_else(|e| panic!("{e}: {}", t.body));
        assert_eq!((m.version.as_str(), m.source.as_str()), ("1.0", "custom"));
        assert_eq!(m.content.text_type.as_deref(), Some("client-markdown"));
        assert_eq!(
            m.metadata.event_type.as_deref(),
            Some(t.attributes["kind"].as_str())
        );
    }

    let request = told
        .iter()
        .find(|t| t.attributes["kind"] == "approval_request")
        .unwrap_or_else(|| panic!("no approval request among {kinds:?}"));
    assert_eq!(request.attributes["severity"], "HIGH");
    let m = ChatbotMessage::parse(&request.body).unwrap();
    assert!(m
        .content
        .next_steps
        .iter()
        .any(|s| s.contains(&format!("redress approvals show {}", approval[0]))));
    assert!(
        m.content.description.contains(&ssh),
        "{}",
        m.content.description
    );
    assert!(m
        .content
        .next_steps
        .iter()
        .any(|s| s.contains(&format!("resourceId={ssh}"))));
    assert!(m
        .content
        .next_steps
        .iter()
        .any(|s| s.contains("configRuleName=restricted-ssh")));

    let failed = told
        .iter()
        .find(|t| t.attributes["kind"] == "fix_failed")
        .unwrap_or_else(|| panic!("no failed fix among {kinds:?}"));
    assert_eq!(failed.attributes["severity"], "LOW");
    let m = ChatbotMessage::parse(&failed.body).unwrap();
    assert!(
        m.content.description.contains(&broken),
        "{}",
        m.content.description
    );
    assert!(
        m.content.description.contains("dead-lettered (permanent)"),
        "{}",
        m.content.description
    );
}
