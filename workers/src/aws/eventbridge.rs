//! EventBridge: put an event on a bus, and the bus, rule and SQS target `provision`
//! creates.

use super::AwsError;

/// EventBridge, through one client.
#[derive(Clone, Debug)]
pub struct EventBridge {
    client: aws_sdk_eventbridge::Client,
}

impl EventBridge {
    /// Wraps an EventBridge client.
    pub fn new(client: aws_sdk_eventbridge::Client) -> EventBridge {
        EventBridge { client }
    }

    /// Puts one event; returns its id, or why EventBridge refused it.
    pub async fn put_event(
        &self,
        bus: &str,
        source: &str,
        detail_type: &str,
        detail: &str,
    ) -> Result<Result<String, String>, AwsError> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(source)
            .detail_type(detail_type)
            .detail(detail)
            .event_bus_name(bus)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("events:PutEvents", e))?;
        let first = out.entries().first();
        if out.failed_entry_count() > 0 || first.and_then(|e| e.error_code()).is_some() {
            return Ok(Err(format!(
                "{} {}",
                first.and_then(|e| e.error_code()).unwrap_or("?"),
                first.and_then(|e| e.error_message()).unwrap_or("")
            )));
        }
        Ok(Ok(first
            .and_then(|e| e.event_id())
            .unwrap_or("?")
            .to_string()))
    }

    /// Creates a custom event bus unless it exists.
    pub async fn ensure_bus(&self, name: &str) -> Result<(), AwsError> {
        match self.client.create_event_bus().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = AwsError::from_sdk("events:CreateEventBus", e);
                if e.code == "ResourceAlreadyExistsException" {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Creates or updates a rule on a bus; returns its ARN.
    pub async fn put_rule(
        &self,
        bus: &str,
        name: &str,
        pattern: &str,
        description: &str,
    ) -> Result<String, AwsError> {
        Ok(self
            .client
            .put_rule()
            .name(name)
            .event_bus_name(bus)
            .event_pattern(pattern)
            .description(description)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("events:PutRule", e))?
            .rule_arn()
            .unwrap_or_default()
            .to_string())
    }

    /// Points a rule at a target (an SQS queue's ARN) under a fixed target id.
    pub async fn put_target(
        &self,
        bus: &str,
        rule: &str,
        target_id: &str,
        arn: &str,
    ) -> Result<(), AwsError> {
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id(target_id)
            .arn(arn)
            .build()
            .expect("id and arn are set");
        self.client
            .put_targets()
            .rule(rule)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("events:PutTargets", e))?;
        Ok(())
    }
}
