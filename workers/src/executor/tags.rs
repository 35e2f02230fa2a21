//! The `redress:exempt` tag on EC2 resources: the owner's way to keep redress away from a
//! resource without editing the policy.

use redress::retry::AwsError;

/// The tag key and the value that exempts.
pub const EXEMPT_TAG: (&str, &str) = ("redress:exempt", "true");

/// EC2 resource tags.
#[derive(Clone, Debug)]
pub struct Tags {
    client: aws_sdk_ec2::Client,
}

impl Tags {
    /// Wraps an EC2 client.
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        Tags { client }
    }

    /// Whether the resource carries `redress:exempt=true` (value compared without case).
    pub async fn exempt(&self, resource_id: &str) -> Result<bool, AwsError> {
        let filter = |name: &str, value: &str| {
            aws_sdk_ec2::types::Filter::builder()
                .name(name)
                .values(value)
                .build()
        };
        let out = self
            .client
            .describe_tags()
            .filters(filter("resource-id", resource_id))
            .filters(filter("key", EXEMPT_TAG.0))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeTags", e))?;
        Ok(exempt(out.tags().iter().map(|t| {
            (t.key().unwrap_or_default(), t.value().unwrap_or_default())
        })))
    }
}

/// Whether these (key, value) tags include `redress:exempt=true` (value without case).
pub fn exempt<'a>(mut tags: impl Iterator<Item = (&'a str, &'a str)>) -> bool {
    tags.any(|(k, v)| k == EXEMPT_TAG.0 && v.eq_ignore_ascii_case(EXEMPT_TAG.1))
}

/// Whether the tag applies to this resource type (EC2 resources carry tags EC2 can read).
pub fn taggable(resource_type: &str) -> bool {
    resource_type.starts_with("AWS::EC2::")
}
