//! What an action would change, read when the approval request is made, so an approver
//! decides without opening the console. Best effort: a failed read is shown as such.

use redress::ingress::world_open;
use redress::message::Finding;
use redress::policy::{Fix, RenderedAction};

use crate::aws::ec2::SecurityGroups;

/// Lines describing the change, e.g. `revoke tcp 22 from 0.0.0.0/0`.
pub async fn preview(
    action: &RenderedAction,
    finding: &Finding,
    groups: &SecurityGroups,
) -> Vec<String> {
    match action {
        RenderedAction::Fix(Fix::RevokePublicIngress { ports }) => {
            match groups.ingress(&finding.resource_id).await {
                Ok(perms) => {
                    let open = world_open(&perms, ports.as_deref());
                    if open.is_empty() {
                        vec!["nothing is open to the world on those ports now (would end already_compliant)".into()]
                    } else {
                        open.iter()
                            .map(|p| format!("revoke {}", p.describe()))
                            .collect()
                    }
                }
                Err(e) => vec![format!("current ingress could not be read: {e}")],
            }
        }
        RenderedAction::Fix(Fix::RestoreParameterBaseline {
            baseline_prefix,
            current_prefix,
        }) => {
            let rest = finding
                .resource_id
                .strip_prefix(current_prefix.as_str())
                .unwrap_or(&finding.resource_id);
            vec![format!(
                "set {} to the value of {baseline_prefix}{rest}",
                finding.resource_id
            )]
        }
        RenderedAction::Runbook(r) => {
            let mut lines = vec![format!("start SSM Automation {}", r.document)];
            lines.extend(
                r.parameters
                    .iter()
                    .map(|(k, v)| format!("  {k} = {}", v.join(", "))),
            );
            if let Some(role) = &r.assume_role {
                lines.push(format!("  AutomationAssumeRole = {role}"));
            }
            lines
        }
    }
}
