//! Building an approval request for a task: the exact action the executor would run,
//! what it would change now, and when the request expires. Used by the router for rules
//! that need approval and by the executor for automatic fixes a guard stopped and for
//! approvals it put back.

use redress::message::{ApprovalRequest, Returned, Task, MESSAGE_VERSION};
use redress::policy::Policy;

use super::preview;
use crate::aws::ec2::SecurityGroups;

/// The approval request for `task`, or why the rule's action cannot be rendered for it.
/// Only the finding and rule are taken from the task: its approval is dropped (a request
/// is for a fresh decision), its severity comes from the policy and its dry-run mark is
/// cleared, so a request built from a forged task asks for exactly what the policy says.
pub async fn approval_request(
    policy: &Policy,
    mut task: Task,
    groups: &SecurityGroups,
    returned: Option<Returned>,
) -> Result<ApprovalRequest, String> {
    task.approval = None;
    task.dry_run = false;
    let rule = policy
        .rule(&task.rule_id)
        .ok_or_else(|| format!("rule {} is not in the policy", task.rule_id))?;
    task.severity = rule.severity;
    let proposed_action = rule
        .action
        .render(&task.finding.facts())
        .map_err(|e| format!("cannot render action of rule {}: {e}", rule.id))?;
    Ok(ApprovalRequest {
        version: MESSAGE_VERSION,
        id: task.approval_id(),
        preview: preview::preview(&proposed_action, &task.finding, groups).await,
        proposed_action,
        requested_at: redress::time::now_rfc3339(),
        expires_at: redress::time::rfc3339_after(policy.approvals.ttl),
        policy_version: Some(policy.version.clone()),
        returned,
        task,
    })
}
