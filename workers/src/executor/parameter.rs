//! `restore_parameter_baseline`: the Parameter Store seam and the fix.

use aws_sdk_ssm::types::ParameterType;
use redress::audit::Outcome;
use redress::retry::AwsError;

use super::outcome::{Done, FixError, FixResult};

/// Parameter Store, through SSM.
#[derive(Clone, Debug)]
pub struct Parameters {
    client: aws_sdk_ssm::Client,
}

impl Parameters {
    /// Wraps an SSM client.
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Parameters { client }
    }

    /// The parameter's value, type and version; `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<(String, ParameterType, i64)>, AwsError> {
        match self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => Ok(out.parameter().map(|p| {
                (
                    p.value().unwrap_or_default().to_string(),
                    p.r#type().cloned().unwrap_or(ParameterType::String),
                    p.version(),
                )
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

    /// Overwrites the parameter's value, keeping its type; returns the new version.
    pub async fn put(&self, name: &str, value: &str, kind: ParameterType) -> Result<i64, AwsError> {
        let out = self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(kind)
            .overwrite(true)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("ssm:PutParameter", e))?;
        Ok(out.version())
    }
}

/// Sets `current_prefix/NAME` to the value of `baseline_prefix/NAME`.
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
    let Some((baseline, _, _)) = params.get(&baseline_name).await? else {
        return Err(FixError::permanent(format!(
            "no baseline: parameter {baseline_name} does not exist"
        )));
    };
    let Some((current, kind, read_version)) = params.get(name).await? else {
        return Err(FixError::permanent(format!(
            "parameter {name} does not exist"
        )));
    };
    if current == baseline {
        return Ok(Done {
            outcome: Outcome::AlreadyCompliant,
            execution_id: None,
            detail: format!("{name} already equals {baseline_name}"),
        });
    }
    let version = params.put(name, &baseline, kind).await?;
    // Another executor (a duplicate task elsewhere) may have restored it between our read
    // and our write: then the version we replaced already held the baseline, our write
    // changed nothing, and only the other one counts as the remediation. Our write made
    // the version right after the one we read unless someone wrote in between.
    let replaced = match version {
        v if v > read_version + 1 => params.get(&format!("{name}:{}", v - 1)).await?,
        _ => None,
    };
    if replaced.is_some_and(|(before, _, _)| before == baseline) {
        return Ok(Done {
            outcome: Outcome::AlreadyCompliant,
            execution_id: None,
            detail: format!(
                "{name} was restored by someone else first (our write, version {version}, repeated the baseline value)"
            ),
        });
    }
    match params.get(name).await? {
        Some((now, _, _)) if now == baseline => Ok(Done {
            outcome: Outcome::Succeeded,
            execution_id: None,
            detail: format!("{name} restored from {baseline_name}"),
        }),
        _ => Err(FixError::permanent(format!(
            "{name} does not hold the baseline value after writing it"
        ))),
    }
}
