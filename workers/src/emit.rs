//! `redress emit`: put a Config compliance-change event on the event bus, shaped as AWS
//! Config shapes it, for the local stack and for trying a policy end to end.

use crate::aws::Clients;
use redress::event::{
    COMPLIANCE_CHANGE_DETAIL_TYPE, COMPLIANCE_CHANGE_MESSAGE_TYPE, CONFIG_SOURCE,
};

use crate::cli::{EmitArgs, Global};
use crate::error::{CliError, CliResult};

/// The `detail` of a compliance-change event.
pub fn detail(args: &EmitArgs, account: &str, region: &str) -> serde_json::Value {
    let now = redress::time::now_rfc3339();
    let mut result = serde_json::json!({
        "evaluationResultIdentifier": {
            "evaluationResultQualifier": {
                "configRuleName": args.rule,
                "resourceType": args.resource_type,
                "resourceId": args.resource,
                "evaluationMode": "DETECTIVE",
            },
            "orderingTimestamp": now,
        },
        "complianceType": args.compliance,
        "resultRecordedTime": now,
        "configRuleInvokedTime": now,
    });
    if let Some(a) = &args.annotation {
        result["annotation"] = serde_json::Value::String(a.clone());
    }
    serde_json::json!({
        "resourceId": args.resource,
        "awsRegion": region,
        "awsAccountId": account,
        "configRuleName": args.rule,
        "recordVersion": "1.0",
        "configRuleARN": format!("arn:aws:config:{region}:{account}:config-rule/config-rule-redress"),
        "messageType": COMPLIANCE_CHANGE_MESSAGE_TYPE,
        "newEvaluationResult": result,
        "notificationCreationTime": now,
        "resourceType": args.resource_type,
    })
}

/// Validates the arguments as the router would, then puts the event.
pub async fn emit(global: &Global, args: &EmitArgs) -> CliResult {
    use redress::validate;
    validate::rule_name(&args.rule).map_err(|m| CliError::input(format!("--rule: {m}")))?;
    validate::resource_type(&args.resource_type)
        .map_err(|m| CliError::input(format!("--resource-type: {m}")))?;
    validate::resource_id(&args.resource_type, &args.resource)
        .map_err(|m| CliError::input(format!("--resource: {m}")))?;
    let config = crate::aws::load().await;
    let clients = Clients::new(&config);
    let region = config
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| CliError::input("no AWS region configured (set AWS_REGION)"))?;
    let account = crate::aws::caller_identity(&clients.sts).await?.account;
    let events = crate::aws::eventbridge::EventBridge::new(clients.eventbridge.clone());
    let detail = detail(args, &account, &region).to_string();
    let id = events
        .put_event(
            &global.event_bus,
            CONFIG_SOURCE,
            COMPLIANCE_CHANGE_DETAIL_TYPE,
            &detail,
        )
        .await?
        .map_err(|why| CliError::failed(format!("EventBridge refused the event: {why}")))?;
    println!(
        "emitted {} {} {} {} (event {})",
        args.compliance, args.rule, args.resource_type, args.resource, id
    );
    Ok(())
}
