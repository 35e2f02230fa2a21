//! What AWS Config hands a custom rule's Lambda function: the `invokingEvent` (a JSON
//! string) says why the rule runs (a configuration change, with the configuration item
//! or, when it is too large, only its summary; or a schedule), and `ruleParameters` (a
//! JSON string) holds the rule's input parameters.

use std::collections::BTreeMap;

use serde_json::Value;

/// Why Config invoked the rule, and what to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// A resource changed: evaluate its configuration item.
    Change {
        /// The resource.
        resource: Resource,
        /// The item's `configuration`.
        configuration: Value,
    },
    /// A resource changed, but its item was too large to send: fetch it
    /// (`GetResourceConfigHistory`, latest item) and evaluate that.
    Oversized {
        /// The resource.
        resource: Resource,
    },
    /// The resource was deleted, or left the rule's scope: report it NOT_APPLICABLE.
    Gone {
        /// The resource.
        resource: Resource,
    },
    /// A periodic run: evaluate everything in scope.
    Scheduled {
        /// `notificationCreationTime`, the evaluations' ordering timestamp.
        at: String,
    },
}

/// A resource named by an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// Its type.
    pub resource_type: String,
    /// Its id.
    pub resource_id: String,
    /// `configurationItemCaptureTime`: the evaluation's ordering timestamp.
    pub captured_at: String,
}

/// Configuration item statuses of a resource that exists and was recorded: any other
/// (`ResourceDeleted`, `ResourceDeletedNotRecorded`, `ResourceNotRecorded`) carries no
/// configuration to judge, so the rule does not apply (AWS's guidance for custom rules).
const APPLICABLE: [&str; 2] = ["OK", "ResourceDiscovered"];

/// Whether an item of this status (absent: the stand-in's older items) can be judged.
fn applicable(status: Option<String>) -> bool {
    status.is_none_or(|s| APPLICABLE.contains(&s.as_str()))
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn resource(item: &Value) -> Result<Resource, String> {
    Ok(Resource {
        resource_type: text(item, "resourceType").ok_or("the item has no resourceType")?,
        resource_id: text(item, "resourceId").ok_or("the item has no resourceId")?,
        captured_at: text(item, "configurationItemCaptureTime")
            .ok_or("the item has no configurationItemCaptureTime")?,
    })
}

/// Reads an invocation's `invokingEvent` and `eventLeftScope`.
pub fn trigger(invoking_event: &str, event_left_scope: bool) -> Result<Trigger, String> {
    let e: Value = serde_json::from_str(invoking_event)
        .map_err(|err| format!("invokingEvent is not JSON: {err}"))?;
    let kind = text(&e, "messageType").ok_or("invokingEvent has no messageType")?;
    match kind.as_str() {
        "ConfigurationItemChangeNotification" => {
            let item = e
                .get("configurationItem")
                .ok_or("a change notification without its configurationItem")?;
            let resource = resource(item)?;
            if event_left_scope || !applicable(text(item, "configurationItemStatus")) {
                return Ok(Trigger::Gone { resource });
            }
            Ok(Trigger::Change {
                resource,
                configuration: item.get("configuration").cloned().unwrap_or(Value::Null),
            })
        }
        "OversizedConfigurationItemChangeNotification" => {
            let summary = e
                .get("configurationItemSummary")
                .ok_or("an oversized notification without its configurationItemSummary")?;
            let resource = resource(summary)?;
            if event_left_scope || !applicable(text(summary, "configurationItemStatus")) {
                return Ok(Trigger::Gone { resource });
            }
            Ok(Trigger::Oversized { resource })
        }
        "ScheduledNotification" => Ok(Trigger::Scheduled {
            at: text(&e, "notificationCreationTime")
                .ok_or("a scheduled notification without notificationCreationTime")?,
        }),
        other => Err(format!("messageType {other:?} is not one a rule evaluates")),
    }
}

/// The rule's input parameters (`ruleParameters`, a JSON object of strings; absent or
/// empty: none).
pub fn parameters(rule_parameters: Option<&str>) -> Result<BTreeMap<String, String>, String> {
    match rule_parameters.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(t) => serde_json::from_str(t)
            .map_err(|e| format!("ruleParameters is not a JSON object of strings: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(status: &str) -> String {
        json!({
            "configurationItem": {
                "configurationItemCaptureTime": "2026-12-01T06:00:00.000Z",
                "configurationItemStatus": status,
                "resourceType": "AWS::EC2::SecurityGroup",
                "resourceId": "sg-0a1b2c3d4e5f60718",
                "configuration": {"ipPermissions": []}
            },
            "notificationCreationTime": "2026-12-01T06:00:01.000Z",
            "messageType": "ConfigurationItemChangeNotification",
            "recordVersion": "1.3"
        })
        .to_string()
    }

    #[test]
    fn a_change_carries_its_item() {
        let Trigger::Change {
            resource,
            configuration,
        } = trigger(&change("OK"), false).unwrap()
        else {
            panic!("a change");
        };
        assert_eq!(resource.resource_id, "sg-0a1b2c3d4e5f60718");
        assert_eq!(resource.captured_at, "2026-12-01T06:00:00.000Z");
        assert_eq!(configuration["ipPermissions"], json!([]));
    }

    #[test]
    fn deleted_or_out_of_scope_resources_are_gone() {
        assert!(matches!(
            trigger(&change("ResourceDeleted"), false),
            Ok(Trigger::Gone { .. })
        ));
        assert!(matches!(
            trigger(&change("OK"), true),
            Ok(Trigger::Gone { .. })
        ));
        // Not recorded: no configuration to judge (an empty one would look compliant).
        for status in ["ResourceNotRecorded", "ResourceDeletedNotRecorded"] {
            assert!(
                matches!(trigger(&change(status), false), Ok(Trigger::Gone { .. })),
                "{status}"
            );
        }
        assert!(matches!(
            trigger(&change("ResourceDiscovered"), false),
            Ok(Trigger::Change { .. })
        ));
    }

    #[test]
    fn oversized_and_scheduled_invocations() {
        let oversized = json!({
            "configurationItemSummary": {
                "configurationItemCaptureTime": "2026-12-01T06:00:00.000Z",
                "configurationItemStatus": "OK",
                "resourceType": "AWS::EC2::SecurityGroup",
                "resourceId": "sg-0a1b2c3d4e5f60718"
            },
            "messageType": "OversizedConfigurationItemChangeNotification",
            "notificationCreationTime": "2026-12-01T06:00:01.000Z"
        })
        .to_string();
        assert!(matches!(
            trigger(&oversized, false),
            Ok(Trigger::Oversized { .. })
        ));
        let scheduled = json!({
            "awsAccountId": "111122223333",
            "notificationCreationTime": "2026-12-01T06:00:01.000Z",
            "messageType": "ScheduledNotification",
            "recordVersion": "1.0"
        })
        .to_string();
        assert_eq!(
            trigger(&scheduled, false).unwrap(),
            Trigger::Scheduled {
                at: "2026-12-01T06:00:01.000Z".into()
            }
        );
        assert!(trigger("{}", false).is_err());
        assert!(trigger("not json", false).is_err());
    }

    #[test]
    fn rule_parameters() {
        assert!(parameters(None).unwrap().is_empty());
        assert_eq!(
            parameters(Some(r#"{"ports":"22,3389"}"#)).unwrap()["ports"],
            "22,3389"
        );
        assert!(parameters(Some(r#"{"ports":22}"#)).is_err());
    }
}
