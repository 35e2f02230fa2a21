//! `restore_parameter_baseline`: the Parameter Store seam and the fix.

use aws_sdk_ssm::types::ParameterType;
use redress::audit::Outcome;
use crate::aws::retry::AwsError;

use super::outcome::{Done, FixError, FixResult};

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
    pub kind: ParameterType,
    /// Version of the value read.
    pub version: i64,
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
            Ok(out) => Ok(out.parameter().map(|p| Read {
                value: p.value().unwrap_or_default().to_string(),
                kind: p.r#type().cloned().unwrap_or(ParameterType::String),
                version: p.version(),
            })),
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
            .and_then(|p| p.key_id().map(str::to_string)))
    }

    /// Overwrites the parameter's value with this type (and KMS key, for a
    /// SecureString); returns the new version.
    pub async fn put(
        &self,
        name: &str,
        value: &str,
        kind: ParameterType,
        key_id: Option<String>,
    ) -> Result<i64, AwsError> {
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .set_key_id(key_id)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:PutParameter", e))?;
        Ok(out.version())
    }
}

/// Sets `current_prefix/NAME` to the value of `baseline_prefix/NAME`, with the
/// baseline's type and KMS key. A current parameter of another type is refused: writing
/// a SecureString baseline into a String would publish the secret to whoever can read
/// the String (and the reverse would silently change what the owner chose).
pub async fn restore_baseline(
    params: &Parameters,
    name: &str,
    baseline_prefix: &str,
    current_prefix: &str,
) -> FixResult {
    let Some(rest) = name.strip_prefix(current_prefix) else {
        return Err(FixError::permanent(format!(
            "parameter {name} is not under current_prefix {current_prefix}"
        )));
    };
    let baseline_name = format!("{baseline_prefix}{rest}");
    let Some(baseline) = params.get(&baseline_name).await? else {
        return Err(FixError::permanent(format!(
            "no baseline: parameter {baseline_name} does not exist"
        )));
    };
    let Some(current) = params.get(name).await? else {
        return Err(FixError::permanent(format!(
            "parameter {name} does not exist"
        )));
    };
    if current.kind != baseline.kind {
        return Err(FixError::refused(format!(
            "{name} is a {} parameter but its baseline {baseline_name} is a {}: redress does not change a parameter's type (a SecureString value written into a String would be readable as plain text); fix the type by hand",
            current.kind.as_str(),
            baseline.kind.as_str()
        )));
    }
    if current.value == baseline.value {
        return Ok(Done {
            outcome: Outcome::AlreadyCompliant,
            execution_id: None,
            detail: format!("{name} already equals {baseline_name}"),
        });
    }
    let key_id = match baseline.kind {
        ParameterType::SecureString => params.key_id(&baseline_name).await?,
        _ => None,
    };
    let version = params
        .put(name, &baseline.value, baseline.kind.clone(), key_id)
        .await?;
    // Another executor (a duplicate task elsewhere) may have restored it between our read
    // and our write: then the version we replaced already held the baseline, our write
    // changed nothing, and only the other one counts as the remediation. Our write made
    // the version right after the one we read unless someone wrote in between.
    let replaced = match version {
        v if v > current.version + 1 => params.get(&format!("{name}:{}", v - 1)).await?,
        _ => None,
    };
    if replaced.is_some_and(|before| before.value == baseline.value) {
        return Ok(Done {
            outcome: Outcome::AlreadyCompliant,
            execution_id: None,
            detail: format!(
                "{name} was restored by someone else first (our write, version {version}, repeated the baseline value)"
            ),
        });
    }
    match params.get(name).await? {
        Some(now) if now.value == baseline.value => Ok(Done {
            outcome: Outcome::Succeeded,
            execution_id: None,
            detail: format!("{name} restored from {baseline_name}"),
        }),
        _ => Err(FixError::permanent(format!(
            "{name} does not hold the baseline value after writing it"
        ))),
    }
}
