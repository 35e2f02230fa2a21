//! Building an approval request for a task: the exact action the executor would run,
//! what it would change now, and when the request expires. Used by the router for rules
//! that need approval and by the executor for automatic fixes a guard stopped.

use redress::message::{ApprovalRequest, Task, MESSAGE_VERSION};
use redress::policy::Policy;

use super::preview;
use crate::executor::SecurityGroups;

/// The approval request for `task`, or why the rule's action cannot be rendered for it.
pub async fn approval_request(
    policy: &Policy,
    task: Task,
    groups: &SecurityGroups,
) -> Result<ApprovalRequest, String> {
    let rule = policy
        .rule(&task.rule_id)
        .ok_or_else(|| format!("rule {} is not in the policy", task.rule_id))?;
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
        task,
    })
}
