//! What `redress provision` needs to stand up redress's Config custom rules on the local
//! stack: a role for each rule's function, the function (a placeholder: the emulator
//! keeps it but never runs it; its environment names the `redress` binary, which the
//! local Config stand-in runs instead), and the rule itself (`PutConfigRule`, which the
//! emulator, like AWS, accepts only for a function that exists).

use aws_sdk_config::types::{
    ConfigRule, EventSource, MaximumExecutionFrequency, MessageType, Owner, Scope, Source,
    SourceDetail,
};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, Runtime};
use redress::evaluate::RuleKind;

use super::AwsError;

/// The environment variable naming the command the local Config stand-in runs for the
/// function (`<command> evaluate --invocation -`).
pub const LOCAL_HANDLER_VARIABLE: &str = "REDRESS_LOCAL_HANDLER";

/// An empty zip archive: the function's code, never run.
const EMPTY_ZIP: [u8; 22] = [
    0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Lambda may assume it (the trust a function's execution role needs).
const LAMBDA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// The clients provisioning a custom rule takes.
#[derive(Clone, Debug)]
pub struct CustomRules {
    iam: aws_sdk_iam::Client,
    lambda: aws_sdk_lambda::Client,
    config: aws_sdk_config::Client,
}

impl CustomRules {
    /// From the shared configuration.
    pub fn new(config: &aws_config::SdkConfig) -> CustomRules {
        CustomRules {
            iam: aws_sdk_iam::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            config: aws_sdk_config::Client::new(config),
        }
    }

    /// The function's execution role (created if missing); its ARN.
    pub async fn role(&self, name: &str) -> Result<String, AwsError> {
        match self.iam.get_role().role_name(name).send().await {
            Ok(out) => {
                if let Some(role) = out.role {
                    return Ok(role.arn);
                }
            }
            Err(e) => {
                let e = AwsError::from_sdk("iam:GetRole", e);
                if e.code != "NoSuchEntity" {
                    return Err(e);
                }
            }
        }
        let created = self
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(LAMBDA_TRUST)
            .description("redress evaluator (local stack)")
            .send()
            .await;
        match created {
            Ok(out) => out
                .role
                .map(|r| r.arn)
                .ok_or_else(|| AwsError::permanent("iam:CreateRole", "IAM returned no role")),
            // Another provision (tests run several at once) created it in between.
            Err(e) => {
                let e = AwsError::from_sdk("iam:CreateRole", e);
                if e.code != "EntityAlreadyExists" {
                    return Err(e);
                }
                let out = self
                    .iam
                    .get_role()
                    .role_name(name)
                    .send()
                    .await
                    .map_err(|e| AwsError::from_sdk("iam:GetRole", e))?;
                out.role
                    .map(|r| r.arn)
                    .ok_or_else(|| AwsError::permanent("iam:GetRole", "IAM returned no role"))
            }
        }
    }

    /// The placeholder function (created, or its environment brought up to date); its
    /// ARN.
    pub async fn function(
        &self,
        name: &str,
        role_arn: &str,
        handler_command: &str,
    ) -> Result<String, AwsError> {
        let environment = Environment::builder()
            .variables(LOCAL_HANDLER_VARIABLE, handler_command)
            .variables("REDRESS_LAMBDA_WORKER", "evaluator")
            .build();
        let created = self
            .lambda
            .create_function()
            .function_name(name)
            .runtime(Runtime::Providedal2023)
            .handler("bootstrap")
            .role(role_arn)
            .code(
                FunctionCode::builder()
                    .zip_file(Blob::new(EMPTY_ZIP.to_vec()))
                    .build(),
            )
            .environment(environment.clone())
            .send()
            .await;
        match created {
            Ok(out) => return Ok(out.function_arn.unwrap_or_default()),
            Err(e) => {
                let e = AwsError::from_sdk("lambda:CreateFunction", e);
                if e.code != "ResourceConflictException" {
                    return Err(e);
                }
            }
        }
        let out = self
            .lambda
            .update_function_configuration()
            .function_name(name)
            .environment(environment)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("lambda:UpdateFunctionConfiguration", e))?;
        Ok(out.function_arn.unwrap_or_default())
    }

    /// Creates or updates the Config rule `kind` names, bound to `function_arn`, with
    /// these input parameters (a JSON object of strings).
    pub async fn rule(
        &self,
        kind: RuleKind,
        function_arn: &str,
        input_parameters: &str,
    ) -> Result<(), AwsError> {
        const CALL: &str = "config:PutConfigRule";
        let detail = |message: MessageType| {
            let d = SourceDetail::builder()
                .event_source(EventSource::AwsConfig)
                .message_type(message);
            if kind.periodic() {
                d.maximum_execution_frequency(MaximumExecutionFrequency::TwentyFourHours)
            } else {
                d
            }
            .build()
        };
        let details = if kind.periodic() {
            vec![detail(MessageType::ScheduledNotification)]
        } else {
            vec![
                detail(MessageType::ConfigurationItemChangeNotification),
                detail(MessageType::OversizedConfigurationItemChangeNotification),
            ]
        };
        let source = Source::builder()
            .owner(Owner::CustomLambda)
            .source_identifier(function_arn)
            .set_source_details(Some(details))
            .build()
            .map_err(|e| AwsError::permanent(CALL, e.to_string()))?;
        let mut rule = ConfigRule::builder()
            .config_rule_name(kind.name())
            .source(source)
            .input_parameters(input_parameters);
        rule = if kind.periodic() {
            rule.maximum_execution_frequency(MaximumExecutionFrequency::TwentyFourHours)
        } else {
            rule.scope(
                Scope::builder()
                    .compliance_resource_types(kind.resource_type())
                    .build(),
            )
        };
        self.config
            .put_config_rule()
            .config_rule(rule.build())
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(CALL, e))?;
        Ok(())
    }
}
