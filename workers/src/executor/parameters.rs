//! The parameter fixes of the baseline model, over the Parameter Store seam
//! ([`Parameters`]): restore a drifted parameter, create a missing one, delete an
//! unauthorized one (after keeping a copy). Each re-reads both sides first: the finding
//! may be stale, and the fix must still be the right one for what is there now.

use crate::aws::ssm::{Created, Parameters, Read};
use redress::audit::Outcome;
use redress::ledger::{Change, ParameterVersion};
use redress::parameter_path::counterpart;
use redress::policy::QUARANTINE_PREFIX;

use super::outcome::{Done, FixError, FixResult};

/// Parameter Store's deepest hierarchy (levels of a name).
const MAX_DEPTH: usize = 15;
/// Parameter Store's longest name (characters, from the first `/`).
const MAX_NAME: usize = 1011;

/// The baseline's name of the parameter `name`; a permanent failure when `name` is
/// not under `current_prefix`.
fn baseline_of(
    name: &str,
    baseline_prefix: &str,
    current_prefix: &str,
) -> Result<String, FixError> {
    counterpart(current_prefix, baseline_prefix, name).map_err(FixError::permanent)
}

/// The baseline of `name` (its name and what it holds); a permanent failure when there
/// is none.
async fn baseline(
    params: &Parameters,
    name: &str,
    baseline_prefix: &str,
    current_prefix: &str,
) -> Result<(String, Read), FixError> {
    let baseline_name = baseline_of(name, baseline_prefix, current_prefix)?;
    match params.get(&baseline_name).await? {
        Some(b) => Ok((baseline_name, b)),
        None => Err(FixError::permanent(format!(
            "no baseline: parameter {baseline_name} does not exist"
        ))),
    }
}

/// The KMS key a copy of `read` (the parameter `name`) must be written with: its own,
/// for a SecureString.
pub(super) async fn key_of(
    params: &Parameters,
    name: &str,
    read: &Read,
) -> Result<Option<String>, FixError> {
    match read.kind.as_str() {
        "SecureString" => Ok(params.key_id(name).await?),
        _ => Ok(None),
    }
}

/// A fix's result without a change to record.
fn done(outcome: Outcome, detail: String) -> FixResult {
    Ok(Done {
        outcome,
        execution_id: None,
        detail,
        change: None,
    })
}

/// The ledger's description of the version `read` (with its KMS key, for a
/// SecureString), never its value.
pub(super) fn version_of(read: &Read, key_id: Option<String>) -> ParameterVersion {
    ParameterVersion {
        version: u64::try_from(read.version).unwrap_or_default(),
        value_type: read.kind.clone(),
        key_id,
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
    let (baseline_name, baseline) = baseline(params, name, baseline_prefix, current_prefix).await?;
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
        return done(
            Outcome::AlreadyCompliant,
            format!("{name} already equals {baseline_name}"),
        );
    }
    // What an undo needs of the version replaced: its number, type and key (never its
    // value: Parameter Store keeps it, readable as NAME:VERSION).
    let before = version_of(&current, key_of(params, name, &current).await?);
    let key_id = key_of(params, &baseline_name, &baseline).await?;
    let version = params
        .put(name, &baseline.value, &baseline.kind, key_id.clone())
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
        return done(
            Outcome::AlreadyCompliant,
            format!(
                "{name} was restored by someone else first (our write, version {version}, repeated the baseline value)"
            ),
        );
    }
    match params.get(name).await? {
        Some(now) if now.value == baseline.value => Ok(Done::succeeded(
            format!("{name} restored from {baseline_name}"),
            Change::RestoreParameter {
                name: name.to_string(),
                before,
                after: Some(ParameterVersion {
                    version: u64::try_from(version).unwrap_or_default(),
                    value_type: baseline.kind.clone(),
                    key_id,
                }),
            },
        )),
        _ => Err(FixError::permanent(format!(
            "{name} does not hold the baseline value after writing it"
        ))),
    }
}

/// Creates the missing parameter `name` from its baseline, with the baseline's type and
/// KMS key. One that exists by now is left alone: holding the baseline value, the
/// finding is already closed; holding another, it is drift, not a missing parameter.
pub async fn create_from_baseline(
    params: &Parameters,
    name: &str,
    baseline_prefix: &str,
    current_prefix: &str,
) -> FixResult {
    let (baseline_name, baseline) = baseline(params, name, baseline_prefix, current_prefix).await?;
    let key_id = key_of(params, &baseline_name, &baseline).await?;
    let created = params
        .create(name, &baseline.value, &baseline.kind, key_id.clone())
        .await?;
    let now = params.get(name).await?;
    match (created, now) {
        (Created::Created, Some(now)) if same(&now, &baseline) => Ok(Done::succeeded(
            format!("{name} created from {baseline_name} ({})", baseline.kind),
            Change::CreateParameter {
                name: name.to_string(),
                source: baseline_name.clone(),
                after: Some(version_of(&now, key_id)),
            },
        )),
        (Created::Exists, Some(now)) if same(&now, &baseline) => done(
            Outcome::AlreadyCompliant,
            format!("{name} exists already and equals {baseline_name}"),
        ),
        (Created::Exists, Some(_)) => Err(FixError::refused(format!(
            "{name} exists now with another value or type than {baseline_name}: it is no longer missing, and redress does not overwrite it under this rule (its next evaluation reports it as drifted)"
        ))),
        _ => Err(FixError::permanent(format!(
            "{name} does not hold the baseline value after creating it"
        ))),
    }
}

/// Whether a parameter holds what its baseline holds: the same value and type.
fn same(a: &Read, b: &Read) -> bool {
    a.value == b.value && a.kind == b.kind
}

/// Where the copy of `name` at this version goes: under [`QUARANTINE_PREFIX`], the
/// parameter's own path, then its version and when it was written. The same state always
/// gets the same name (a retried delete finds its own copy); a parameter deleted and
/// created again gets another.
pub fn quarantine_name(name: &str, read: &Read) -> Result<String, String> {
    let copy = format!(
        "{}{}/{}-v{}",
        QUARANTINE_PREFIX.trim_end_matches('/'),
        name,
        read.modified,
        read.version
    );
    let depth = copy.matches('/').count();
    if depth > MAX_DEPTH || copy.len() > MAX_NAME {
        return Err(format!(
            "{name} is too long or too deep to keep a copy of under {QUARANTINE_PREFIX} (Parameter Store allows {MAX_DEPTH} levels and {MAX_NAME} characters); delete it by hand"
        ));
    }
    Ok(copy)
}

/// Deletes the unauthorized parameter `name` (one without a baseline), first copying its
/// value, type and KMS key under [`QUARANTINE_PREFIX`], since `DeleteParameter` erases
/// every version. Refused when it has a baseline by now, when the copy cannot be made
/// and read back equal, or when the parameter changed while the copy was made.
pub async fn delete_unauthorized(
    params: &Parameters,
    name: &str,
    baseline_prefix: &str,
    current_prefix: &str,
) -> FixResult {
    let baseline_name = baseline_of(name, baseline_prefix, current_prefix)?;
    if params.get(&baseline_name).await?.is_some() {
        return Err(FixError::refused(format!(
            "{name} has a baseline now ({baseline_name}): it is not unauthorized, and is not deleted"
        )));
    }
    keep_and_delete(params, name).await
}

/// Deletes `name` after copying its value, type and KMS key under
/// [`QUARANTINE_PREFIX`] and reading the copy back equal: the one way redress deletes a
/// parameter (an unauthorized one, or the undo of a create), so no value is ever lost.
pub(super) async fn keep_and_delete(params: &Parameters, name: &str) -> FixResult {
    let Some(current) = params.get(name).await? else {
        return done(
            Outcome::AlreadyCompliant,
            format!("{name} does not exist (deleted already)"),
        );
    };
    let copy = quarantine_name(name, &current).map_err(FixError::refused)?;
    let key_id = key_of(params, name, &current).await?;
    // A copy made by an earlier attempt has the same name; it must hold the same state.
    params
        .create(&copy, &current.value, &current.kind, key_id.clone())
        .await?;
    match params.get(&copy).await? {
        Some(kept) if same(&kept, &current) => {}
        _ => {
            return Err(FixError::refused(format!(
                "the copy {copy} does not hold {name}'s value and type; {name} is not deleted"
            )))
        }
    }
    // SSM has no conditional delete: read once more, so a write made while the copy was
    // being made is not erased unkept (a write in the last instant can still be). The
    // version alone cannot tell: a parameter deleted and created again is at 1 again.
    match params.get(name).await? {
        Some(again) if again.version == current.version && same(&again, &current) => {}
        Some(_) => {
            return Err(FixError::transient(format!(
                "{name} changed while its copy was made; trying again"
            )))
        }
        None => {
            return done(
                Outcome::AlreadyCompliant,
                format!("{name} was deleted by someone else (a copy is at {copy})"),
            )
        }
    }
    if params.delete(name).await? {
        Ok(Done::succeeded(
            format!("{name} deleted; its value, type and key are kept at {copy}"),
            Change::DeleteParameter {
                name: name.to_string(),
                before: version_of(&current, key_id),
                quarantine_copy: copy,
            },
        ))
    } else {
        done(
            Outcome::AlreadyCompliant,
            format!("{name} was deleted by someone else (a copy is at {copy})"),
        )
    }
}

#[cfg(test)]
#[path = "test_parameters.rs"]
mod tests;
