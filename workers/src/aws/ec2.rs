//! EC2: security groups (ingress read and revoke) and resource tags. Converts between
//! the SDK's types and the domain's [`Permission`].

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range};
use redress::ingress::Permission;

use super::AwsError;

/// Security groups, through EC2.
#[derive(Clone, Debug)]
pub struct SecurityGroups {
    client: aws_sdk_ec2::Client,
}

impl SecurityGroups {
    /// Wraps an EC2 client.
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        SecurityGroups { client }
    }

    /// The group's ingress permissions.
    pub async fn ingress(&self, group_id: &str) -> Result<Vec<Permission>, AwsError> {
        Ok(self.describe(group_id).await?.0)
    }

    /// The group's ingress permissions and tags, in one call.
    pub async fn describe(
        &self,
        group_id: &str,
    ) -> Result<(Vec<Permission>, Vec<(String, String)>), AwsError> {
        let out = self
            .client
            .describe_security_groups()
            .group_ids(group_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:DescribeSecurityGroups", e))?;
        let tags = out
            .security_groups()
            .iter()
            .flat_map(|g| g.tags())
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let permissions = out
            .security_groups()
            .iter()
            .flat_map(|g| g.ip_permissions())
            .map(permission)
            .collect();
        Ok((permissions, tags))
    }

    /// Every security group of the account and region with its ingress permissions, all
    /// pages (a periodic evaluation).
    pub async fn all(&self) -> Result<Vec<(String, Vec<Permission>)>, AwsError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_security_groups()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ec2:DescribeSecurityGroups", e))?;
            found.extend(out.security_groups().iter().filter_map(|g| {
                Some((
                    g.group_id()?.to_string(),
                    g.ip_permissions().iter().map(permission).collect(),
                ))
            }));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }

    /// Revokes exactly these permissions (protocol, ports and sources). Returns false
    /// when EC2 reports some of them unknown (it answers so, without an error, for
    /// permissions that no longer exist: someone revoked them first).
    pub async fn revoke(
        &self,
        group_id: &str,
        permissions: &[Permission],
    ) -> Result<bool, AwsError> {
        let perms = ip_permissions(permissions);
        let out = self
            .client
            .revoke_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(perms))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:RevokeSecurityGroupIngress", e))?;
        Ok(out.unknown_ip_permissions().is_empty())
    }

    /// Authorizes exactly these permissions (an undo of a revoke). Permissions the group
    /// has already are an error in EC2 (`InvalidPermission.Duplicate`); the undo plans
    /// only missing ones.
    pub async fn authorize(
        &self,
        group_id: &str,
        permissions: &[Permission],
    ) -> Result<(), AwsError> {
        self.client
            .authorize_security_group_ingress()
            .group_id(group_id)
            .set_ip_permissions(Some(ip_permissions(permissions)))
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ec2:AuthorizeSecurityGroupIngress", e))?;
        Ok(())
    }
}

/// The SDK's form of domain permissions (protocol, ports and exact sources).
fn ip_permissions(permissions: &[Permission]) -> Vec<IpPermission> {
    permissions
        .iter()
        .map(|p| {
            IpPermission::builder()
                .ip_protocol(&p.protocol)
                .set_from_port(p.from_port)
                .set_to_port(p.to_port)
                .set_ip_ranges(Some(
                    p.ipv4
                        .iter()
                        .map(|c| IpRange::builder().cidr_ip(c).build())
                        .collect(),
                ))
                .set_ipv6_ranges(Some(
                    p.ipv6
                        .iter()
                        .map(|c| Ipv6Range::builder().cidr_ipv6(c).build())
                        .collect(),
                ))
                .build()
        })
        .collect()
}

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

    /// The resource's tags named `key` (with their values).
    pub async fn named(
        &self,
        resource_id: &str,
        key: &str,
    ) -> Result<Vec<(String, String)>, AwsError> {
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
        Ok(out
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }
}

/// The domain's view of one of EC2's ingress permissions.
fn permission(p: &IpPermission) -> Permission {
    Permission {
        protocol: p.ip_protocol().unwrap_or("-1").to_string(),
        from_port: p.from_port(),
        to_port: p.to_port(),
        ipv4: p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(str::to_string))
            .collect(),
        ipv6: p
            .ipv6_ranges()
            .iter()
            .filter_map(|r| r.cidr_ipv6().map(str::to_string))
            .collect(),
    }
}
