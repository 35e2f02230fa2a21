//! The notification topic (SNS): finding it at start-up, creating it for
//! `redress provision` (on AWS, redress.yaml creates it, encrypted), and publishing one
//! message with its String attributes. What a message says is the domain's
//! (`redress::notify`).

use aws_sdk_sns::types::MessageAttributeValue;

use super::retry::AwsError;

/// One SNS topic.
#[derive(Debug, Clone)]
pub struct Topic {
    client: aws_sdk_sns::Client,
    /// The topic's ARN.
    pub arn: String,
}

/// The partition of a region, for ARNs.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The ARN of a topic given by name (in this account and region) or by ARN.
pub fn arn_of(name_or_arn: &str, account: &str, region: &str) -> String {
    if name_or_arn.starts_with("arn:") {
        name_or_arn.to_string()
    } else {
        format!(
            "arn:{}:sns:{region}:{account}:{name_or_arn}",
            partition(region)
        )
    }
}

impl Topic {
    /// The topic with this ARN.
    pub fn new(client: aws_sdk_sns::Client, arn: impl Into<String>) -> Topic {
        Topic {
            client,
            arn: arn.into(),
        }
    }

    /// The topic given by name (in the credentials' account and the configured region)
    /// or by ARN; whether it exists is [`Topic::exists`]'s to say.
    pub async fn find(
        client: &aws_sdk_sns::Client,
        sts: &aws_sdk_sts::Client,
        name_or_arn: &str,
    ) -> Result<Topic, AwsError> {
        if name_or_arn.starts_with("arn:") {
            return Ok(Topic::new(client.clone(), name_or_arn));
        }
        let account = super::caller_identity(sts).await?.account;
        let region = client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default();
        Ok(Topic::new(
            client.clone(),
            arn_of(name_or_arn, &account, &region),
        ))
    }

    /// Creates the topic if it does not exist (SNS's `CreateTopic` is idempotent for
    /// the same name and attributes) and returns it.
    pub async fn ensure(client: aws_sdk_sns::Client, name: &str) -> Result<Topic, AwsError> {
        let out = client
            .create_topic()
            .name(name)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sns:CreateTopic", e))?;
        let arn = out.topic_arn().unwrap_or_default().to_string();
        Ok(Topic::new(client, arn))
    }

    /// Whether the topic exists (and may be read by these credentials).
    pub async fn exists(&self) -> Result<bool, AwsError> {
        match self
            .client
            .get_topic_attributes()
            .topic_arn(&self.arn)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::from_sdk("sns:GetTopicAttributes", e);
                if e.code == "NotFound" || e.code == "NotFoundException" {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Publishes `body` with these String message attributes; returns SNS's message id.
    pub async fn publish(
        &self,
        body: &str,
        attributes: &[(&str, String)],
    ) -> Result<String, AwsError> {
        let mut call = self.client.publish().topic_arn(&self.arn).message(body);
        for (name, value) in attributes {
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .expect("all required builder parameters specified");
            call = call.message_attributes(*name, value);
        }
        let out = call
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("sns:Publish", e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sns::operation::publish::PublishOutput;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    #[test]
    fn names_become_arns_in_the_right_partition() {
        assert_eq!(
            arn_of("redress-notifications", "111122223333", "eu-west-1"),
            "arn:aws:sns:eu-west-1:111122223333:redress-notifications"
        );
        assert_eq!(
            arn_of("t", "111122223333", "cn-north-1"),
            "arn:aws-cn:sns:cn-north-1:111122223333:t"
        );
        let arn = "arn:aws:sns:us-east-1:111122223333:other";
        assert_eq!(arn_of(arn, "999999999999", "eu-west-1"), arn);
    }

    #[tokio::test]
    async fn publish_sends_the_body_and_string_attributes() {
        let rule = mock!(aws_sdk_sns::Client::publish)
            .match_requests(|r| {
                let attrs = r.message_attributes().unwrap();
                r.topic_arn() == Some("arn:aws:sns:us-east-1:1:t")
                    && r.message() == Some("{}")
                    && attrs.len() == 2
                    && attrs["kind"].data_type() == "String"
                    && attrs["kind"].string_value() == Some("fix_failed")
                    && attrs["severity"].string_value() == Some("HIGH")
            })
            .then_output(|| PublishOutput::builder().message_id("m-1").build());
        let client = mock_client!(aws_sdk_sns, RuleMode::Sequential, [&rule]);
        let topic = Topic::new(client, "arn:aws:sns:us-east-1:1:t");
        let id = topic
            .publish(
                "{}",
                &[("kind", "fix_failed".into()), ("severity", "HIGH".into())],
            )
            .await
            .unwrap();
        assert_eq!(id, "m-1");
        assert_eq!(rule.num_calls(), 1);
    }
}
