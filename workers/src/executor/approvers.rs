//! Resolving the policy's approver ARNs to the unique ids SQS stamps as SenderId, once,
//! when the executor starts (`iam:GetUser`, `iam:GetRole`). Never re-resolved by name
//! while running: a principal deleted and re-created under the same name has a new id and
//! gets no rights until the policy is loaded again (the changed id is then logged).

use std::collections::BTreeMap;

use redress::approver::{Approvers, PrincipalKind};
use redress::policy::Policy;

use crate::aws::iam::{lookup, Iam};
use crate::aws::retry::AwsError;

/// Looks up the unique id of every approver the policy names by ARN. A principal IAM
/// does not know (or whose ARN, path included, differs) admits nobody and is logged;
/// any other IAM error stops start-up, since approvals could not be checked.
pub async fn resolve(iam: &Iam, policy: &Policy) -> Result<Approvers, AwsError> {
    let specs = &policy.approvals.approvers;
    if specs.is_empty() {
        tracing::warn!(
            "the policy lists no [approvals] approvers: any principal IAM lets send to the tasks queue can approve"
        );
    }
    let mut ids = BTreeMap::new();
    for (kind, principal) in specs.iter().filter_map(|s| s.to_resolve()) {
        if ids.contains_key(&principal.arn) {
            continue;
        }
        match lookup(iam, kind, &principal.name).await? {
            Some((arn, id))
                if arn == principal.arn
                    || kind == PrincipalKind::Role && same_role(&arn, &principal.arn) =>
            {
                tracing::info!(approver = %principal.arn, unique_id = %id, "approver resolved");
                ids.insert(principal.arn.clone(), id);
            }
            Some((arn, _)) => tracing::warn!(
                approver = %principal.arn,
                found = %arn,
                "approver not resolved: IAM has another principal of that name; it cannot approve"
            ),
            None => tracing::warn!(
                approver = %principal.arn,
                "approver not found in IAM; it cannot approve until it exists and the policy is reloaded"
            ),
        }
    }
    Ok(Approvers::resolve(specs, &ids))
}

/// An assumed-role approver names only the role, not its path: any path matches.
fn same_role(found: &str, wanted: &str) -> bool {
    let name = |arn: &str| arn.rsplit('/').next().map(str::to_string);
    let account = |arn: &str| arn.split(':').nth(4).map(str::to_string);
    name(found) == name(wanted) && account(found) == account(wanted)
}
