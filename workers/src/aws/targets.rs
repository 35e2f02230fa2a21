//! The one client factory: where a task acts, the executor's own account and region or
//! another one reached by assuming the policy's `[accounts] role` there (through the
//! SDK's `AssumeRoleProvider`, which caches and renews the credentials). Clients are
//! built once per (account, region).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::sts::AssumeRoleProvider;
use aws_config::SdkConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use super::compliance::Compliance;
use super::config::ConfigRules;
use super::ec2::{SecurityGroups, Tags};
use super::retry::{AwsError, ErrorClass};
use super::ssm::{Automation, Parameters};

/// How long assumed credentials are asked for (the provider renews them before expiry).
const SESSION: Duration = Duration::from_secs(3600);

/// Every seam the executor acts through, for one account and region.
#[derive(Debug)]
pub struct TargetClients {
    /// EC2 security groups.
    pub security_groups: SecurityGroups,
    /// EC2 tags (exemptions).
    pub tags: Tags,
    /// Parameter Store.
    pub parameters: Parameters,
    /// SSM Automation.
    pub automation: Automation,
    /// AWS Config re-evaluation.
    pub config_rules: ConfigRules,
    /// AWS Config results (the checks before and after a fix).
    pub compliance: Compliance,
}

/// Runbook polling settings, the same for every target.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// First interval between status polls.
    pub interval: Duration,
    /// Longest a runbook may run.
    pub timeout: Duration,
}

impl TargetClients {
    /// Builds the seams from one SDK configuration.
    pub fn new(config: &SdkConfig, polling: Polling) -> TargetClients {
        let ec2 = aws_sdk_ec2::Client::new(config);
        let ssm = aws_sdk_ssm::Client::new(config);
        let config_client = aws_sdk_config::Client::new(config);
        TargetClients {
            security_groups: SecurityGroups::new(ec2.clone()),
            tags: Tags::new(ec2),
            parameters: Parameters::new(ssm.clone()),
            automation: Automation::new(ssm, polling.interval, polling.timeout),
            config_rules: ConfigRules::new(config_client.clone()),
            compliance: Compliance::new(config_client),
        }
    }
}

/// Where one target's seams are built, once.
type Cell = tokio::sync::OnceCell<Arc<TargetClients>>;

/// The seams for each (account, region) the executor acts in.
pub struct Targets {
    /// The credentials' own account.
    pub account: String,
    /// The configuration's region.
    pub region: String,
    home: Arc<TargetClients>,
    role_template: Option<String>,
    base: SdkConfig,
    polling: Polling,
    /// One cell per (account, region): the map's lock is held only to find the cell, so
    /// no lock is held across the STS call, and concurrent tasks for one target wait on
    /// one assumption instead of each making their own.
    cache: std::sync::Mutex<HashMap<(String, String), Arc<Cell>>>,
    /// STS session name in other accounts (CloudTrail shows who acted).
    session_name: &'static str,
    /// A session policy narrowing what the assumed role may do, when set.
    session_policy: Option<&'static str>,
}

/// A session policy that leaves an assumed role only Config's reads: `redress sweep`
/// borrows the member role the executor uses, and must not carry its remediation rights.
const CONFIG_READS_ONLY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["config:Describe*","config:Get*","config:List*","config:BatchGet*"],"Resource":"*"}]}"#;

impl Targets {
    /// Targets from the executor's own configuration; `role_template` is the policy's
    /// `[accounts] role` (`None`: only the own account).
    pub fn new(
        base: SdkConfig,
        account: String,
        region: String,
        role_template: Option<String>,
        polling: Polling,
    ) -> Targets {
        Targets {
            home: Arc::new(TargetClients::new(&base, polling)),
            account,
            region,
            role_template,
            base,
            polling,
            cache: Default::default(),
            session_name: "redress-executor",
            session_policy: None,
        }
    }

    /// The same targets for reading Config only (`redress sweep`): sessions in other
    /// accounts are named `redress-sweep` and limited by a session policy to Config's
    /// reads, whatever the role allows.
    pub fn config_reads_only(mut self) -> Targets {
        self.session_name = "redress-sweep";
        self.session_policy = Some(CONFIG_READS_ONLY);
        self
    }

    /// Why a finding in this account cannot be reached, if it cannot (checked before
    /// anything runs).
    pub fn unreachable(&self, account: &str) -> Option<String> {
        (account != self.account && self.role_template.is_none()).then(|| {
            format!(
                "finding is in account {account} but this executor acts in {} and the policy has no [accounts] role to assume there",
                self.account
            )
        })
    }

    /// The seams for an account and region: the own ones, or clients for that region,
    /// with credentials from assuming the role in that account when it is another one.
    /// A role that cannot be assumed is an error of `sts:AssumeRole` (access denied, the
    /// usual answer for a missing role, is permanent); it is tried again next time.
    pub async fn seams(&self, account: &str, region: &str) -> Result<Arc<TargetClients>, AwsError> {
        if account == self.account && region == self.region {
            return Ok(self.home.clone());
        }
        let cell = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .entry((account.to_string(), region.to_string()))
                .or_default()
                .clone()
        };
        cell.get_or_try_init(|| self.build(account, region))
            .await
            .cloned()
    }

    async fn build(&self, account: &str, region: &str) -> Result<Arc<TargetClients>, AwsError> {
        let mut config = self
            .base
            .to_builder()
            .region(aws_config::Region::new(region.to_string()));
        if account != self.account {
            let role = self
                .role_template
                .as_ref()
                .map(|t| t.replace("{account_id}", account))
                .ok_or_else(|| {
                    AwsError::permanent(
                        "sts:AssumeRole",
                        format!("no [accounts] role in the policy to reach account {account}"),
                    )
                })?;
            // The SDK's provider assumes the role and renews the credentials before they
            // expire, so a long runbook poll never runs on expired ones.
            let mut builder = AssumeRoleProvider::builder(&role)
                .session_name(self.session_name)
                .session_length(SESSION)
                .configure(&self.base);
            if let Some(policy) = self.session_policy {
                builder = builder.policy(policy);
            }
            let provider = builder.build().await;
            // Assume once now: a role that cannot be assumed is a clear error before
            // anything runs, not a failure halfway through a fix.
            provider
                .provide_credentials()
                .await
                .map_err(|e| assume_error(&role, &e))?;
            tracing::info!(%role, account, "assumed role for a cross-account finding");
            config = config.credentials_provider(SharedCredentialsProvider::new(provider));
        }
        Ok(Arc::new(TargetClients::new(&config.build(), self.polling)))
    }
}

/// The STS error inside a credentials error, classified like any other AWS error.
fn assume_error(role: &str, e: &CredentialsError) -> AwsError {
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::SdkError;
    use aws_smithy_types::error::metadata::ProvideErrorMetadata;
    let sts = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>());
    let (code, class) = match sts {
        Some(SdkError::ServiceError(se)) => {
            let code = se.err().code().unwrap_or("Unknown").to_string();
            let class = super::retry::classify_code(Some(&code), Some(se.raw().status().as_u16()));
            (code, class)
        }
        Some(_) | None if matches!(e, CredentialsError::InvalidConfiguration(_)) => {
            ("InvalidConfiguration".to_string(), ErrorClass::Permanent)
        }
        _ => ("CredentialsError".to_string(), ErrorClass::Transient),
    };
    AwsError {
        operation: "sts:AssumeRole",
        message: format!(
            "cannot assume {role}: {code}: {}",
            aws_smithy_types::error::display::DisplayErrorContext(e)
        ),
        code,
        class,
    }
}
