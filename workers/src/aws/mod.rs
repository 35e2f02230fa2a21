//! The AWS edge: client setup from the standard chain (`AWS_REGION`, `AWS_PROFILE`,
//! `AWS_ENDPOINT_URL`, ...), the SQS queue seam, and the one place SDK errors become
//! [`AwsError`]s with a retry verdict. Nothing here hard-codes an endpoint: the local
//! stack is just `AWS_ENDPOINT_URL=http://127.0.0.1:4599`.

pub mod compliance;
pub mod config;
pub mod custom_rules;
pub mod ec2;
pub mod eventbridge;
pub mod iam;
pub mod ledger;
pub mod ledger_counters;
mod ledger_decisions;
mod ledger_exceptions;
pub mod ledger_table;
pub mod redrive;
pub mod retry;
pub mod sns;
pub mod sqs;
pub mod ssm;
pub mod targets;

pub use retry::{AwsError, ErrorClass};

use aws_config::BehaviorVersion;
/// The shared SDK configuration (credentials chain, region, endpoint), handed around as
/// an opaque handle by code outside the edge.
pub use aws_config::SdkConfig;

/// Loads the shared SDK configuration.
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The clients redress uses, built once and shared (they are cheap to clone).
#[derive(Clone, Debug)]
pub struct Clients {
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// EventBridge.
    pub eventbridge: aws_sdk_eventbridge::Client,
    /// SSM (Parameter Store and Automation).
    pub ssm: aws_sdk_ssm::Client,
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
    /// STS (caller identity).
    pub sts: aws_sdk_sts::Client,
    /// AWS Config (re-evaluating a rule after a fix).
    pub config: aws_sdk_config::Client,
    /// DynamoDB (the remediation ledger).
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SNS (notifications for people).
    pub sns: aws_sdk_sns::Client,
}

impl Clients {
    /// Builds every client from one configuration.
    pub fn new(config: &SdkConfig) -> Clients {
        Clients {
            sqs: aws_sdk_sqs::Client::new(config),
            eventbridge: aws_sdk_eventbridge::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            config: aws_sdk_config::Client::new(config),
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
        }
    }
}

/// Who the credentials belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Account id.
    pub account: String,
    /// Principal ARN.
    pub arn: String,
    /// Unique id (`AIDA…`, or `AROA…:session` for a role); SQS stamps the same value as
    /// the SenderId of messages this principal sends.
    pub user_id: String,
}

/// The caller's identity, from `sts:GetCallerIdentity`.
pub async fn caller_identity(sts: &aws_sdk_sts::Client) -> Result<Identity, AwsError> {
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("sts:GetCallerIdentity", e))?;
    Ok(Identity {
        account: out.account().unwrap_or_default().to_string(),
        arn: out.arn().unwrap_or_default().to_string(),
        user_id: out.user_id().unwrap_or_default().to_string(),
    })
}
