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
