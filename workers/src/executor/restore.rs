//! `restore_parameter_baseline`: the fix, over the Parameter Store seam ([`Parameters`]).

use crate::aws::ssm::Parameters;
use redress::audit::Outcome;

use super::outcome::{Done, FixError, FixResult};

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
            current.kind, baseline.kind
        )));
    }
    if current.value == baseline.value {
        return Ok(Done {
            outcome: Outcome::AlreadyCompliant,
            execution_id: None,
            detail: format!("{name} already equals {baseline_name}"),
        });
    }
    let key_id = match baseline.kind.as_str() {
        "SecureString" => params.key_id(&baseline_name).await?,
        _ => None,
    };
    let version = params
        .put(name, &baseline.value, &baseline.kind, key_id)
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
