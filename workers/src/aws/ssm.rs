//! SSM: Parameter Store (read with decryption, the KMS key of a SecureString, read a
//! path, write, create, delete) and Automation (start with an idempotency token, poll an execution's status).

use std::time::Duration;

use super::retry::{AwsError, Poll};
use aws_sdk_ssm::types::ParameterType;
use redress::automation::{classify, StatusClass};
use redress::policy::RenderedRunbook;

/// The document parameter SSM uses for the role an automation assumes.
const ASSUME_ROLE_PARAMETER: &str = "AutomationAssumeRole";

/// SSM Automation.
#[derive(Clone, Debug)]
pub struct Automation {
    client: aws_sdk_ssm::Client,
    /// First poll interval; grows with backoff.
    pub poll_interval: Duration,
    /// Longest wait for a terminal status.
    pub timeout: Duration,
}

/// A terminal status and its failure message.
pub struct Finished {
    /// The terminal status, e.g. `Success`, `Failed`.
    pub status: String,
    /// The execution's failure message, if any.
    pub failure: Option<String>,
}

impl Automation {
    /// Wraps an SSM client.
    pub fn new(client: aws_sdk_ssm::Client, poll_interval: Duration, timeout: Duration) -> Self {
        Automation {
            client,
            poll_interval,
            timeout,
        }
    }

    /// Starts the runbook; the same `client_token` returns the same execution.
    pub async fn start(
        &self,
        runbook: &RenderedRunbook,
        client_token: &str,
    ) -> Result<String, AwsError> {
        let mut parameters = runbook.parameters.clone();
        if let Some(role) = &runbook.assume_role {
            parameters.insert(ASSUME_ROLE_PARAMETER.to_string(), vec![role.clone()]);
        }
        let out = self
            .client
            .start_automation_execution()
            .document_name(&runbook.document)
            .set_parameters(Some(parameters.into_iter().collect()))
            .client_token(client_token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:StartAutomationExecution", e))?;
        Ok(out
            .automation_execution_id()
            .unwrap_or_default()
            .to_string())
    }

    /// One poll: `Pending` while the execution runs, else its terminal status.
    pub async fn status(&self, execution_id: &str) -> Result<Poll<Finished>, AwsError> {
        let out = self
            .client
            .get_automation_execution()
            .automation_execution_id(execution_id)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:GetAutomationExecution", e))?;
        let exec = out.automation_execution();
        let status = exec
            .and_then(|e| e.automation_execution_status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        Ok(match classify(&status) {
            StatusClass::Running => Poll::Pending,
            _ => Poll::Done(Finished {
                status,
                failure: exec.and_then(|e| e.failure_message()).map(str::to_string),
            }),
        })
    }
}

/// Parameter Store, through SSM.
#[derive(Clone, Debug)]
pub struct Parameters {
    client: aws_sdk_ssm::Client,
}

/// A parameter as read: value, type, version.
pub struct Read {
    /// The value (decrypted). Never logged or audited.
    pub value: String,
    /// `String`, `StringList` or `SecureString`.
    pub kind: String,
    /// Version of the value read.
    pub version: i64,
    /// When that version was written (Unix seconds; 0 when SSM did not say).
    pub modified: i64,
}

/// A parameter's description: what identifies its value, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Its current version.
    pub version: i64,
    /// `String`, `StringList` or `SecureString`.
    pub kind: String,
    /// The KMS key of a SecureString.
    pub key_id: Option<String>,
}

/// What `create` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The parameter was created (version 1).
    Created,
    /// A parameter of that name exists already; nothing was written.
    Exists,
}

fn read(p: &aws_sdk_ssm::types::Parameter) -> Read {
    Read {
        value: p.value().unwrap_or_default().to_string(),
        kind: p
            .r#type()
            .map_or("String", ParameterType::as_str)
            .to_string(),
        version: p.version(),
        modified: p.last_modified_date().map_or(0, |d| d.secs()),
    }
}

impl Parameters {
    /// Wraps an SSM client.
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Parameters { client }
    }

    /// The parameter's value, type and version; `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<Read>, AwsError> {
        match self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => Ok(out.parameter().map(read)),
            Err(e) => {
                let e = AwsError::from_sdk("ssm:GetParameter", e);
                if e.code == "ParameterNotFound" {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// The KMS key of a SecureString parameter (GetParameter does not return it).
    pub async fn key_id(&self, name: &str) -> Result<Option<String>, AwsError> {
        Ok(self.metadata(name).await?.and_then(|m| m.key_id))
    }

    /// The parameter's version, type and KMS key without its value (DescribeParameters:
    /// nothing is decrypted, so reading it needs no right to the secret); `None` when it
    /// does not exist.
    pub async fn metadata(&self, name: &str) -> Result<Option<Metadata>, AwsError> {
        let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .values(name)
            .build()
            .expect("key is set");
        let out = self
            .client
            .describe_parameters()
            .parameter_filters(filter)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:DescribeParameters", e))?;
        Ok(out
            .parameters()
            .iter()
            .find(|p| p.name() == Some(name))
            .map(|p| Metadata {
                version: p.version(),
                kind: p
                    .r#type()
                    .map_or("String", ParameterType::as_str)
                    .to_string(),
                key_id: p.key_id().map(str::to_string),
            }))
    }

    /// Overwrites the parameter's value with this type (and KMS key, for a
    /// SecureString); returns the new version.
    pub async fn put(
        &self,
        name: &str,
        value: &str,
        kind: &str,
        key_id: Option<String>,
    ) -> Result<i64, AwsError> {
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::from(kind))
            .set_key_id(key_id)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:PutParameter", e))?;
        Ok(out.version())
    }

    /// Creates the parameter with this value, type and key, never overwriting: an
    /// existing one is left alone and reported.
    pub async fn create(
        &self,
        name: &str,
        value: &str,
        kind: &str,
        key_id: Option<String>,
    ) -> Result<Created, AwsError> {
        match self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::from(kind))
            .set_key_id(key_id)
            .overwrite(false)
            .send()
            .await
        {
            Ok(_) => Ok(Created::Created),
            Err(e) => {
                let e = AwsError::from_sdk("ssm:PutParameter", e);
                if e.code == "ParameterAlreadyExists" {
                    Ok(Created::Exists)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Deletes the parameter (every version); `false` when it did not exist.
    pub async fn delete(&self, name: &str) -> Result<bool, AwsError> {
        match self.client.delete_parameter().name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = AwsError::from_sdk("ssm:DeleteParameter", e);
                if e.code == "ParameterNotFound" {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Every parameter under `path` (recursively, decrypted), by name.
    pub async fn under(&self, path: &str) -> Result<Vec<(String, Read)>, AwsError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .get_parameters_by_path()
                .path(path)
                .recursive(true)
                .with_decryption(true)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("ssm:GetParametersByPath", e))?;
            found.extend(
                out.parameters()
                    .iter()
                    .filter_map(|p| Some((p.name()?.to_string(), read(p)))),
            );
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }
}
