//! Reading dead letters: what a message was about and why it failed, from whatever can be
//! parsed of it (even a malformed body), and which ones an operator's filter selects. Pure.

use serde::Serialize;

use crate::message::{ApprovalsMessage, Task};

/// Attribute names on dead-lettered messages.
pub mod attr {
    /// Error class.
    pub const ERROR_CLASS: &str = "redress.error_class";
    /// Error message.
    pub const ERROR: &str = "redress.error";
    /// Worker that dead-lettered it.
    pub const WORKER: &str = "redress.worker";
    /// When (RFC 3339).
    pub const FAILED_AT: &str = "redress.failed_at";
    /// Receive count when dead-lettered.
    pub const ATTEMPTS: &str = "redress.attempts";
    /// Queue the message came from (informational: replay never trusts it and sends
    /// only to the queue whose redrive policy names the DLQ).
    pub const SOURCE_QUEUE: &str = "redress.source_queue";
}

/// Attribute counting how often a message was replayed from a dead-letter queue.
pub const REPLAY_COUNT: &str = "redress.replay_count";

/// What a dead letter is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// What kind of message it is: `event`, `task`, `approval`, `unreadable`.
    pub kind: &'static str,
    /// Policy rule id (tasks, approvals) or Config rule name (events), when found.
    pub rule: Option<String>,
    /// Resource id, when found.
    pub resource: Option<String>,
    /// Error class the worker recorded, or `sqs_redrive` when SQS moved it.
    pub error_class: String,
    /// The worker's reason, or what is known.
    pub error: String,
    /// Times replayed so far.
    pub replay_count: u32,
}

/// Finds a string field anywhere in a JSON value (first match, depth first).
fn find_str(v: &serde_json::Value, key: &str) -> Option<String> {
    match v {
        serde_json::Value::Object(map) => map
            .get(key)
            .and_then(|x| x.as_str().map(str::to_string))
            .or_else(|| map.values().find_map(|x| find_str(x, key))),
        serde_json::Value::Array(items) => items.iter().find_map(|x| find_str(x, key)),
        serde_json::Value::String(s) if s.trim_start().starts_with('{') => {
            // SNS wraps the Config message as a JSON string.
            serde_json::from_str(s)
                .ok()
                .and_then(|inner| find_str(&inner, key))
        }
        _ => None,
    }
}

/// Summarises a dead letter from its body, its attributes and its receive count.
pub fn summarise(
    body: &str,
    attributes: &std::collections::HashMap<String, String>,
    receive_count: u32,
) -> Summary {
    let (kind, rule, resource) = if let Ok(t) = serde_json::from_str::<Task>(body) {
        ("task", Some(t.rule_id), Some(t.finding.resource_id))
    } else if let Ok(a) = serde_json::from_str::<ApprovalsMessage>(body) {
        match a {
            ApprovalsMessage::Request(r) => (
                "approval",
                Some(r.task.rule_id),
                Some(r.task.finding.resource_id),
            ),
            ApprovalsMessage::Moot(n) => ("approval", Some(n.rule_id), Some(n.resource_id)),
        }
    } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        (
            "event",
            find_str(&v, "configRuleName"),
            find_str(&v, "resourceId"),
        )
    } else {
        ("unreadable", None, None)
    };
    let (error_class, error) = match (
        attributes.get(attr::ERROR_CLASS),
        attributes.get(attr::ERROR),
    ) {
        (Some(c), Some(e)) => (c.clone(), e.clone()),
        (Some(c), None) => (c.clone(), "(no reason recorded)".into()),
        _ => (
            "sqs_redrive".into(),
            format!("moved by SQS after {receive_count} receives without being handled"),
        ),
    };
    Summary {
        kind,
        rule,
        resource,
        error_class,
        error,
        replay_count: attributes
            .get(REPLAY_COUNT)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0),
    }
}

/// An operator's selection of dead letters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Glob over the rule (policy rule id or Config rule name).
    pub rule: Option<globset::GlobMatcher>,
    /// Exact resource id.
    pub resource: Option<String>,
    /// Exact error class.
    pub error_class: Option<String>,
}

impl Filter {
    /// Whether the filter selects this dead letter.
    pub fn selects(&self, s: &Summary) -> bool {
        self.rule
            .as_ref()
            .is_none_or(|g| s.rule.as_deref().is_some_and(|r| g.is_match(r)))
            && self
                .resource
                .as_ref()
                .is_none_or(|r| s.resource.as_deref() == Some(r.as_str()))
            && self
                .error_class
                .as_ref()
                .is_none_or(|c| &s.error_class == c)
    }
}

/// The body to replay: a task gets its generation bumped, so a deliberate retry of a
/// failed runbook starts a new execution instead of finding the failed one by its
/// idempotency token. A task's approval is dropped: the operator replaying it is not the
/// approver, so a rule that needs approval gets a new request from the executor instead
/// of running on someone else's word. Other bodies go back unchanged.
pub fn replay_body(body: &str) -> String {
    match serde_json::from_str::<Task>(body) {
        Ok(mut t) => {
            t.generation = t.generation.saturating_add(1);
            t.approval = None;
            serde_json::to_string(&t).unwrap_or_else(|_| body.to_string())
        }
        Err(_) => body.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_replayed_task_loses_its_approval_and_gets_a_new_generation() {
        let event = crate::event::parse_message(&fixture("sg-ssh-open-noncompliant.json")).unwrap();
        let mut task = Task::new(
            "ssh",
            crate::policy::Severity::High,
            crate::message::Finding::from_event(&event),
        );
        task.approval = Some(crate::message::Approval {
            request_id: task.approval_id(),
            approved_by: "arn:aws:iam::123456789012:user/alice".into(),
            approver_user_id: "AIDAALICE".into(),
            approved_at: "2026-12-01T00:00:00Z".into(),
            reason: None,
            action_digest: None,
            policy_version: None,
        });
        let replayed: Task =
            serde_json::from_str(&replay_body(&serde_json::to_string(&task).unwrap())).unwrap();
        assert_eq!(replayed.approval, None);
        assert_eq!(replayed.generation, 1);
        assert_ne!(replayed.approval_id(), task.approval_id(), "a new request");
        assert_eq!(replay_body("not json"), "not json");
    }

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/../tests/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn reads_what_it_can_even_from_malformed_bodies() {
        let attrs = HashMap::from([
            (attr::ERROR_CLASS.to_string(), "invalid_input".to_string()),
            (
                attr::ERROR.to_string(),
                "invalid event: detail.resourceId: ...".to_string(),
            ),
        ]);
        let s = summarise(&fixture("bad/resource-id-injection.json"), &attrs, 1);
        assert_eq!(
            (s.kind, s.rule.as_deref(), s.resource.as_deref()),
            ("event", Some("restricted-ssh"), Some("sg-1; rm -rf /"))
        );
        assert_eq!(s.error_class, "invalid_input");
        let s = summarise(&fixture("bad/not-json.txt"), &attrs, 1);
        assert_eq!((s.kind, s.rule, s.resource), ("unreadable", None, None));
        let s = summarise(
            &fixture("sns-wrapped-compliance-change.json"),
            &HashMap::new(),
            10,
        );
        assert_eq!(
            s.resource.as_deref(),
            Some("sg-0a1b2c3d4e5f60718"),
            "found inside the SNS string"
        );
        assert_eq!(s.error_class, "sqs_redrive");
        assert!(s.error.contains("10 receives"));
    }

    #[test]
    fn filters_and_replay_bodies() {
        let s = Summary {
            kind: "task",
            rule: Some("s3-encryption".into()),
            resource: Some("b".into()),
            error_class: "permanent".into(),
            error: "x".into(),
            replay_count: 0,
        };
        let glob = |g: &str| Some(globset::Glob::new(g).unwrap().compile_matcher());
        assert!(Filter::default().selects(&s));
        assert!(Filter {
            rule: glob("s3-*"),
            ..Default::default()
        }
        .selects(&s));
        assert!(!Filter {
            rule: glob("sg-*"),
            ..Default::default()
        }
        .selects(&s));
        assert!(!Filter {
            resource: Some("c".into()),
            ..Default::default()
        }
        .selects(&s));
        assert!(!Filter {
            error_class: Some("exhausted".into()),
            ..Default::default()
        }
        .selects(&s));

        let event = crate::event::parse_message(&fixture("sg-ssh-open-noncompliant.json")).unwrap();
        let task = Task::new(
            "r",
            crate::policy::Severity::Low,
            crate::message::Finding::from_event(&event),
        );
        let again: Task =
            serde_json::from_str(&replay_body(&serde_json::to_string(&task).unwrap())).unwrap();
        assert_eq!(again.generation, 1);
        assert_ne!(again.client_token(), task.client_token());
        assert_eq!(replay_body("not json"), "not json");
    }
}
