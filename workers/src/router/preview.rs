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
        RenderedAction::Fix(fix @ Fix::RestoreParameterBaseline { .. })
        | RenderedAction::Fix(fix @ Fix::CreateParameterFromBaseline { .. })
        | RenderedAction::Fix(fix @ Fix::DeleteUnauthorizedParameter { .. }) => {
            vec![parameter_preview(fix, &finding.resource_id)]
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

/// A parameter fix in one line: names only, never a value.
fn parameter_preview(fix: &Fix, name: &str) -> String {
    let Some((baseline_prefix, current_prefix)) = fix.parameter_prefixes() else {
        return String::new();
    };
    let baseline = redress::parameter_path::counterpart(current_prefix, baseline_prefix, name)
        .unwrap_or_else(|e| format!("(none: {e})"));
    match fix {
        Fix::RestoreParameterBaseline { .. } => {
            format!("set {name} to the value of {baseline}")
        }
        Fix::CreateParameterFromBaseline { .. } => {
            format!("create {name} from {baseline} (the baseline's type and KMS key)")
        }
        _ => format!(
            "delete {name} (it has no baseline at {baseline}); its value, type and key are first copied under {}",
            redress::policy::QUARANTINE_PREFIX
        ),
    }
}
