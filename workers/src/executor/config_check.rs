//! Asking AWS Config, in the finding's account and region, what it holds now for the
//! finding's rule and resource: the executor's evidence before a fix and after it.

use redress::message::Finding;
use redress::policy::{Action, Policy, Rule};
use redress::verify::{parameter_scope, Current};

use crate::aws::compliance::Compliance;
use crate::aws::retry::AwsError;

/// Config's current result for the finding. When a policy rule pins trusted rule ARNs
/// for this name, or Config has no result, the rule itself is looked up too: a rule of
/// the same name but another ARN is not the rule the policy trusts, the live ARN decides
/// which policy rule Config's result falls under, and a missing rule is told apart from a
/// missing evaluation. For a parameter fix the rule is always looked up: its input
/// parameters must put the parameter in its scope ([`parameter_scope`]).
pub async fn current(
    config: &Compliance,
    policy: &Policy,
    rule: &Rule,
    f: &Finding,
) -> Result<Current, AwsError> {
    let result = config
        .current(&f.config_rule_name, &f.resource_type, &f.resource_id)
        .await?;
    let pinned = policy
        .rules
        .iter()
        .any(|r| r.config_rule_arn.is_some() && r.names(&f.config_rule_name));
    let prefixes = match &rule.action {
        Action::Fix(fix) => fix.parameter_prefixes(),
        Action::Runbook(_) => None,
    };
    let mut live_arn = None;
    if pinned || result.is_none() || prefixes.is_some() {
        let Some(found) = config.rule(&f.config_rule_name).await? else {
            return Ok(Current::NoRule);
        };
        if let Some(prefixes) = prefixes {
            let scope = parameter_scope(
                &found.name,
                found.input_parameters.as_deref(),
                prefixes,
                &f.resource_id,
            );
            if let Err(why) = scope {
                return Ok(Current::OutOfScope(why));
            }
        }
        let arn = found.arn.unwrap_or_default();
        // Neither a rule the policy does not trust, nor one other than the event named.
        let claimed = f.config_rule_arn.as_deref().is_some_and(|c| c != arn);
        if !rule.trusts_arn(&arn) || claimed {
            return Ok(Current::UntrustedArn(arn));
        }
        live_arn = Some(arn);
    }
    Ok(match result {
        Some(e) => Current::Result {
            compliance: e.compliance,
            annotation: e.annotation,
            arn: live_arn,
        },
        None => Current::NoEvaluation,
    })
}
