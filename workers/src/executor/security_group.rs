//! `revoke_public_ingress`: the EC2 seam and the fix. Which permissions to revoke is
//! decided by the pure [`redress::ingress::world_open`].

use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range};
use redress::audit::Outcome;
use redress::ingress::{world_open, Permission};
use crate::aws::retry::AwsError;

use super::outcome::{Done, FixError, FixResult};

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
            .map(|p| Permission {
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
            })
            .collect();
        Ok((permissions, tags))
    }

    /// Revokes exactly these permissions (protocol, ports and sources). Returns false
    /// when EC2 reports some of them unknown (it answers so, without an error, for
    /// permissions that no longer exist: someone revoked them first).
    pub async fn revoke(
        &self,
        group_id: &str,
        permissions: &[Permission],
    ) -> Result<bool, AwsError> {
        let perms: Vec<IpPermission> = permissions
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
            .collect();
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
}

/// Revokes world-open ingress covering `ports`; checks before (nothing to do →
/// `already_compliant`) and after (still open → failure). `before` is the group's ingress
/// if the caller has just read it (under the resource's lock), saving a second read.
pub async fn revoke_public_ingress(
    groups: &SecurityGroups,
    group_id: &str,
    ports: Option<&[u16]>,
    before: Option<Vec<Permission>>,
) -> FixResult {
    let before = match before {
        Some(b) => b,
        None => groups.ingress(group_id).await?,
    };
    let open = world_open(&before, ports);
    if open.is_empty() {
        return Ok(Done {
            outcome: Outcome::AlreadyCompliant,
            execution_id: None,
            detail: "no world-open ingress on those ports".into(),
        });
    }
    let revoked = groups.revoke(group_id, &open).await;
    if !matches!(revoked, Ok(true)) {
        // Someone else (a person, a duplicate task) may have revoked it first: judge by
        // the state, not the answer.
        let now = groups.ingress(group_id).await?;
        if world_open(&now, ports).is_empty() {
            let why = match &revoked {
                Err(e) => e.code.clone(),
                Ok(_) => "UnknownIpPermissions".into(),
            };
            return Ok(Done {
                outcome: Outcome::AlreadyCompliant,
                execution_id: None,
                // Not necessarily someone else: when the SDK retried our own revoke after
                // losing its answer, the retry finds it gone too.
                detail: format!(
                    "no longer open when revoking ({why}): revoked by someone else, or by an earlier attempt of this call whose answer was lost"
                ),
            });
        }
        if let Err(e) = revoked {
            return Err(e.into());
        }
    }
    let after = groups.ingress(group_id).await?;
    let still = world_open(&after, ports);
    if !still.is_empty() {
        return Err(FixError::permanent(format!(
            "still open after revoke: {}",
            describe(&still)
        )));
    }
    Ok(Done {
        outcome: Outcome::Succeeded,
        execution_id: None,
        detail: format!("revoked {}", describe(&open)),
    })
}

/// `tcp 22 from 0.0.0.0/0; ...`
pub fn describe(perms: &[Permission]) -> String {
    perms
        .iter()
        .map(Permission::describe)
        .collect::<Vec<_>>()
        .join("; ")
}
