//! Where a task acts: the executor's own account and region, or another one reached by
//! assuming the policy's `[accounts] role` there. Clients are built once per (account,
//! region) and kept until the assumed credentials near their expiry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use crate::aws::retry::AwsError;

use super::{Automation, ConfigRules, Parameters, SecurityGroups, Tags};

/// Renew assumed credentials when less than this is left beyond the longest a task may
/// take (the runbook timeout), so they cannot expire in the middle of one.
const RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);
/// How long assumed credentials are asked for.
const SESSION_SECONDS: i32 = 3600;

/// Every seam the executor acts through, for one account and region.
#[derive(Debug)]
pub struct Seams {
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
}

/// Runbook polling settings, the same for every target.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// First interval between status polls.
    pub interval: Duration,
    /// Longest a runbook may run.
    pub timeout: Duration,
}

impl Seams {
    /// Builds the seams from one SDK configuration.
    pub fn new(config: &SdkConfig, polling: Polling) -> Seams {
        let ec2 = aws_sdk_ec2::Client::new(config);
        let ssm = aws_sdk_ssm::Client::new(config);
        Seams {
            security_groups: SecurityGroups::new(ec2.clone()),
            tags: Tags::new(ec2),
            parameters: Parameters::new(ssm.clone()),
            automation: Automation::new(ssm, polling.interval, polling.timeout),
            config_rules: ConfigRules::new(aws_sdk_config::Client::new(config)),
        }
    }
}

type Cached = (Arc<Seams>, Option<SystemTime>);

/// The seams for each (account, region) the executor acts in.
pub struct Targets {
    /// The credentials' own account.
    pub account: String,
    /// The configuration's region.
    pub region: String,
    home: Arc<Seams>,
    role_template: Option<String>,
    base: SdkConfig,
    sts: aws_sdk_sts::Client,
    polling: Polling,
    cache: tokio::sync::Mutex<HashMap<(String, String), Cached>>,
}

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
            home: Arc::new(Seams::new(&base, polling)),
            sts: aws_sdk_sts::Client::new(&base),
            account,
            region,
            role_template,
            base,
            polling,
            cache: Default::default(),
        }
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
    /// usual answer for a missing role, is permanent).
    pub async fn seams(&self, account: &str, region: &str) -> Result<Arc<Seams>, AwsError> {
        if account == self.account && region == self.region {
            return Ok(self.home.clone());
        }
        let key = (account.to_string(), region.to_string());
        let mut cache = self.cache.lock().await;
        if let Some((seams, expiry)) = cache.get(&key) {
            let renew_before = self.polling.timeout + RENEW_MARGIN;
            let fresh = expiry.is_none_or(|e| {
                SystemTime::now()
                    .checked_add(renew_before)
                    .is_some_and(|t| t < e)
            });
            if fresh {
                return Ok(seams.clone());
            }
        }
        let mut config = self
            .base
            .to_builder()
            .region(aws_config::Region::new(region.to_string()));
        let mut expiry = None;
        if account != self.account {
            let (creds, until) = self.assume(account).await?;
            config = config.credentials_provider(SharedCredentialsProvider::new(creds));
            expiry = until;
        }
        let seams = Arc::new(Seams::new(&config.build(), self.polling));
        cache.insert(key, (seams.clone(), expiry));
        Ok(seams)
    }

    async fn assume(&self, account: &str) -> Result<(Credentials, Option<SystemTime>), AwsError> {
        let Some(role) = self
            .role_template
            .as_ref()
            .map(|t| t.replace("{account_id}", account))
        else {
            return Err(AwsError::permanent(
                "sts:AssumeRole",
                format!("no [accounts] role in the policy to reach account {account}"),
            ));
        };
        let out = self
            .sts
            .assume_role()
            .role_arn(&role)
            .role_session_name("redress-executor")
            .duration_seconds(SESSION_SECONDS)
            .send()
            .await
            .map_err(|e| {
                let mut e = AwsError::from_sdk("sts:AssumeRole", e);
                e.message = format!("cannot assume {role}: {}", e.message);
                e
            })?;
        let c = out.credentials().ok_or_else(|| {
            AwsError::permanent("sts:AssumeRole", format!("{role}: no credentials returned"))
        })?;
        let until = SystemTime::try_from(*c.expiration()).ok();
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            until,
            "redress-assume-role",
        );
        tracing::info!(%role, account, "assumed role for a cross-account finding");
        Ok((creds, until))
    }
}
