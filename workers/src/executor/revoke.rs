//! `revoke_public_ingress`: the fix, over the EC2 seam ([`SecurityGroups`]). Which
//! permissions to revoke is decided by the pure [`redress::ingress::world_open`].

use crate::aws::ec2::SecurityGroups;
use redress::ingress::{world_open, Permission};
use redress::ledger::Change;

use super::outcome::{Done, FixError, FixResult};

/// Revokes world-open ingress covering `ports`; checks before (nothing to do →
/// `already_compliant`) and after (still open → failure). `before` is the group's ingress
/// if the caller has just read it (under the resource's lock), saving a second read. A
/// revoke reports the ingress before and exactly the permissions revoked.
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
        return Ok(Done::already_compliant(
            "no world-open ingress on those ports",
        ));
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
            // Not necessarily someone else: when the SDK retried our own revoke after
            // losing its answer, the retry finds it gone too.
            return Ok(Done::already_compliant(format!(
                "no longer open when revoking ({why}): revoked by someone else, or by an earlier attempt of this call whose answer was lost"
            )));
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
    let detail = format!("revoked {}", describe(&open));
    Ok(Done::succeeded(
        detail,
        Change::RevokeIngress {
            group_id: group_id.to_string(),
            before,
            revoked: open,
        },
    ))
}

/// `tcp 22 from 0.0.0.0/0; ...`
pub fn describe(perms: &[Permission]) -> String {
    perms
        .iter()
        .map(Permission::describe)
        .collect::<Vec<_>>()
        .join("; ")
}
