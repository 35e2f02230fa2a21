//! Test fixtures shared by the workers' unit tests.

use redress::message::Finding;

/// A NON_COMPLIANT finding of `restricted-ssh` on a security group of 123456789012 in
/// us-east-1, evaluated at `evaluation_time` (RFC 3339).
pub fn ssh_finding(evaluation_time: &str) -> Finding {
    Finding {
        event_id: "e-1".into(),
        config_rule_name: "restricted-ssh".into(),
        config_rule_arn: None,
        resource_id: "sg-0123456789abcdef0".into(),
        resource_type: "AWS::EC2::SecurityGroup".into(),
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        compliance: "NON_COMPLIANT".into(),
        annotation: None,
        evaluation_time: Some(evaluation_time.into()),
    }
}

/// An executor for unit tests: `policy` (TOML), its queues on `sqs` under `queues` (a
/// URL prefix), its own account 111122223333 in eu-west-1, no ledger, and every other
/// AWS call answered by `http` (no network).
pub fn executor(
    policy: &str,
    sqs: &aws_sdk_sqs::Client,
    queues: &str,
    http: aws_smithy_runtime_api::client::http::SharedHttpConnector,
) -> crate::executor::Executor {
    use crate::aws::sqs::Queue;
    use crate::executor::{
        Executor, FinishedTasks, Guards, KeyedLocks, Ledger, Polling, Reevaluator, Targets,
    };
    use std::sync::Arc;
    use std::time::Duration;

    let policy = Arc::new(redress::policy::Policy::from_toml(policy, "p").unwrap());
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKID", "SECRET", None, None, "test"),
            ),
        )
        .http_client(aws_smithy_runtime_api::client::http::http_client_fn(
            move |_, _| http.clone(),
        ))
        .build();
    let polling = Polling {
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(3600),
    };
    Executor {
        targets: Targets::new(
            config.clone(),
            "111122223333".into(),
            "eu-west-1".into(),
            None,
            polling,
        ),
        guards: Guards::new(
            &policy.limits,
            crate::aws::ssm::Parameters::new(aws_sdk_ssm::Client::new(&config)),
        ),
        approvers: redress::approver::Approvers::resolve(&[], &Default::default()),
        recent: FinishedTasks::new(100, Duration::from_secs(60)),
        reevaluator: Reevaluator::start(Duration::from_millis(10)),
        approvals: Queue::at(sqs, &format!("{queues}/redress-approvals")),
        tasks: Queue::at(sqs, &format!("{queues}/redress-tasks")),
        own_id: None,
        policy,
        dry_run: false,
        max_attempts: 5,
        locks: KeyedLocks::default(),
        shutdown: tokio::sync::watch::channel(false).1,
        ledger: Ledger::off(),
    }
}
