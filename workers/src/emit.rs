//! `redress emit`: report an evaluation to AWS Config, as a Config rule does
//! (`PutEvaluations`), so a finding takes the path a real one takes: Config records it
//! and, when the resource's compliance changes, puts the compliance-change event on the
//! default event bus, whose rule delivers it to the events queue. For the local stack
//! (where a result token is the rule's name) and for trying a policy end to end; on AWS,
//! only a rule's own invocation holds a token Config accepts.

use crate::aws::compliance::Compliance;
use crate::aws::Clients;

use crate::cli::{EmitArgs, Global};
use crate::error::{CliError, CliResult};

/// Validates the arguments as the router would, then reports the evaluation.
pub async fn emit(_global: &Global, args: &EmitArgs) -> CliResult {
    use redress::validate;
    validate::rule_name(&args.rule).map_err(|m| CliError::input(format!("--rule: {m}")))?;
    validate::resource_type(&args.resource_type)
        .map_err(|m| CliError::input(format!("--resource-type: {m}")))?;
    validate::resource_id(&args.resource_type, &args.resource)
        .map_err(|m| CliError::input(format!("--resource: {m}")))?;
    // The three a rule may report, as static names (Evaluation holds them so).
    let Some(compliance_type) = ["COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE"]
        .into_iter()
        .find(|c| *c == args.compliance)
    else {
        return Err(CliError::input(format!(
            "--compliance {:?}: a rule reports COMPLIANT, NON_COMPLIANT or NOT_APPLICABLE",
            args.compliance
        )));
    };
    if args
        .annotation
        .as_ref()
        .is_some_and(|a| a.chars().count() > 256)
    {
        return Err(CliError::input(
            "--annotation: at most 256 characters, as Config allows",
        ));
    }
    let config = crate::aws::load().await;
    let clients = Clients::new(&config);
    let compliance = Compliance::new(clients.config.clone());
    if compliance.rule(&args.rule).await?.is_none() {
        return Err(CliError::input(format!(
            "no Config rule {} in this account and region: create it first (PutConfigRule; \
             `aws configservice put-config-rule`), then report its evaluations",
            args.rule
        )));
    }
    let before = compliance
        .current(&args.rule, &args.resource_type, &args.resource)
        .await?
        .map(|e| e.compliance);
    compliance
        .put_evaluation(
            &args.rule,
            &redress::evaluate::Evaluation {
                resource_type: args.resource_type.clone(),
                resource_id: args.resource.clone(),
                compliance: compliance_type,
                annotation: args.annotation.clone(),
            },
        )
        .await
        .map_err(|e| {
            CliError::failed(format!(
                "{e} (on AWS only a Config rule's own invocation can put evaluations; `redress emit` is for the local stack)"
            ))
        })?;
    let what = format!(
        "{} {} {} {}",
        args.compliance, args.rule, args.resource_type, args.resource
    );
    if before.as_deref() == Some(args.compliance.as_str()) {
        println!(
            "evaluated {what}: Config already held {}, so it sent no event (it sends one only when compliance changes; `redress sweep` finds it)",
            args.compliance
        );
    } else {
        println!(
            "evaluated {what}: Config puts the compliance-change event on the default event bus"
        );
    }
    Ok(())
}
