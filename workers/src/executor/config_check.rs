//! Asking AWS Config, in the finding's account and region, what it holds now for the
//! finding's rule and resource: the executor's evidence before a fix and after it.

use redress::message::Finding;
use redress::policy::Rule;
use redress::verify::Current;

use crate::aws::compliance::Compliance;
use crate::aws::retry::AwsError;

/// Config's current result for the finding. When the policy rule pins trusted rule
/// ARNs, or Config has no result, the rule itself is looked up too: a rule of the same
/// name but another ARN is not the rule the policy trusts, and a missing rule is told
/// apart from a missing evaluation.
pub async fn current(config: &Compliance, rule: &Rule, f: &Finding) -> Result<Current, AwsError> {
    let result = config
        .current(&f.config_rule_name, &f.resource_type, &f.resource_id)
        .await?;
    if rule.config_rule_arn.is_some() || result.is_none() {
        let Some(found) = config.rule(&f.config_rule_name).await? else {
            return Ok(Current::NoRule);
        };
        let arn = found.arn.unwrap_or_default();
        // Neither a rule the policy does not trust, nor one other than the event named.
        let claimed = f.config_rule_arn.as_deref().is_some_and(|c| c != arn);
        if !rule.trusts_arn(&arn) || claimed {
            return Ok(Current::UntrustedArn(arn));
        }
    }
    Ok(match result {
        Some(e) => Current::Result {
            compliance: e.compliance,
            annotation: e.annotation,
        },
        None => Current::NoEvaluation,
    })
}

/// How reasons name a finding: `Config rule R on TYPE ID`.
pub fn what(f: &Finding) -> String {
    format!(
        "Config rule {} on {} {}",
        f.config_rule_name, f.resource_type, f.resource_id
    )
}
