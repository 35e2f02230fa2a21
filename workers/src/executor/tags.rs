//! The policy's exemption tag (`[exemptions] tag`, off unless set) on EC2 resources:
//! the owner's way to keep redress away from a resource without editing the policy.
//! Whoever can set the tag can switch redress off for a resource, so the policy must
//! name it and an SCP should reserve it (`infra/scp/`).

use crate::aws::retry::AwsError;

/// The tag value that exempts (compared without case).
pub const EXEMPT_VALUE: &str = "true";

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

    /// Whether the resource carries `KEY=true` (value compared without case).
    pub async fn exempt(&self, resource_id: &str, key: &str) -> Result<bool, AwsError> {
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
            .filters(filter("key", key))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeTags", e))?;
        Ok(exempt(
            out.tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
            key,
        ))
    }
}

/// Whether these (key, value) tags include `key=true` (value without case).
pub fn exempt<'a>(mut tags: impl Iterator<Item = (&'a str, &'a str)>, key: &str) -> bool {
    tags.any(|(k, v)| k == key && v.eq_ignore_ascii_case(EXEMPT_VALUE))
}

/// Whether the tag applies to this resource type (EC2 resources carry tags EC2 can read).
pub fn taggable(resource_type: &str) -> bool {
    resource_type.starts_with("AWS::EC2::")
}
