//! What an undo reads of a resource and writes to it: [`observe`] reads the resource in
//! the shape of the change an entry recorded (never a parameter's value), and [`apply`]
//! carries out a plan. The executor's undo (`super::undo`) and `redress undo` plan from
//! the same reading.

use redress::catalog::Catalog;
use redress::ledger::{atoms, Change, Observed, ParameterVersion, UndoPlan};

use crate::aws::ssm::{Created, Parameters};
use crate::aws::targets::TargetClients;

use super::outcome::{Done, FixError, FixResult};
use super::parameters;

/// The resource as it is now, in the shape of `change` (what [`plan_undo`] compares with
/// the state the fix left). Never reads a parameter's value into the result.
pub async fn observe(seams: &TargetClients, change: &Change) -> Result<Observed, FixError> {
    let params = &seams.parameters;
    match change {
        Change::RevokeIngress { group_id, .. } | Change::AuthorizeIngress { group_id, .. } => {
            match seams.security_groups.ingress(group_id).await {
                Ok(p) => Ok(Observed::Ingress(Some(p))),
                Err(e) if e.code == "InvalidGroup.NotFound" => Ok(Observed::Ingress(None)),
                Err(e) => Err(e.into()),
            }
        }
        Change::RestoreParameter { name, .. } | Change::CreateParameter { name, .. } => {
            Ok(Observed::Parameter {
                live: version(params, name).await?,
                copy: None,
            })
        }
        Change::DeleteParameter {
            name,
            quarantine_copy,
            ..
        } => Ok(Observed::Parameter {
            live: version(params, name).await?,
            copy: version(params, quarantine_copy).await?,
        }),
        Change::Runbook { document, .. } => {
            match Catalog::shipped().get(document).map(|d| d.undo.is_some()) {
                // The plan refuses with the catalog's reason before it looks at settings.
                None | Some(false) => Ok(Observed::Settings(None)),
                Some(true) => Err(FixError::refused(format!(
                    "undoing {document} is not built yet: redress cannot read its settings back to check them; put it back by hand"
                ))),
            }
        }
        // An undo's own entry: the plan refuses an undo of an undo first.
        Change::RunbookInverse { .. } => Ok(Observed::Settings(None)),
    }
}

/// A parameter's current version, type and key, never its value (nothing is decrypted);
/// `None` when absent.
async fn version(params: &Parameters, name: &str) -> Result<Option<ParameterVersion>, FixError> {
    Ok(params.metadata(name).await?.map(|m| ParameterVersion {
        version: u64::try_from(m.version).unwrap_or_default(),
        value_type: m.kind,
        key_id: m.key_id,
    }))
}

/// Carries out `plan`; returns what it changed, for the undo's ledger entry.
pub async fn apply(seams: &TargetClients, plan: &UndoPlan) -> FixResult {
    let params = &seams.parameters;
    match plan {
        UndoPlan::AuthorizeIngress {
            group_id,
            permissions,
        } => {
            let before = seams.security_groups.ingress(group_id).await?;
            seams
                .security_groups
                .authorize(group_id, permissions)
                .await?;
            Ok(Done::succeeded(
                format!(
                    "authorized {} on {group_id} again",
                    atoms::describe(permissions)
                ),
                Change::AuthorizeIngress {
                    group_id: group_id.clone(),
                    before,
                    authorized: permissions.clone(),
                },
            ))
        }
        UndoPlan::RestoreParameterVersion {
            name,
            version,
            value_type,
            key_id,
        } => {
            let Some(old) = params.get(&format!("{name}:{version}")).await? else {
                return Err(FixError::permanent(format!(
                    "version {version} of {name} is no longer in Parameter Store (it keeps the last 100 versions); nothing was changed"
                )));
            };
            let Some(current) = params.get(name).await? else {
                return Err(FixError::refused(format!(
                    "{name} no longer exists; nothing was changed"
                )));
            };
            // A value never changes type on its way back (a SecureString's value written
            // into a String would be readable as plain text).
            for (what, kind) in [("version", &old.kind), ("current parameter", &current.kind)] {
                if kind != value_type {
                    return Err(FixError::refused(format!(
                        "{name}'s {what} is a {kind}, not the recorded {value_type}: redress does not change a parameter's type; nothing was changed"
                    )));
                }
            }
            let before =
                parameters::version_of(&current, parameters::key_of(params, name, &current).await?);
            let written = params
                .put(name, &old.value, value_type, key_id.clone())
                .await?;
            Ok(Done::succeeded(
                format!("{name} put back to version {version}'s value ({value_type}), now version {written}"),
                Change::RestoreParameter {
                    name: name.clone(),
                    before,
                    after: Some(ParameterVersion {
                        version: u64::try_from(written).unwrap_or_default(),
                        value_type: value_type.clone(),
                        key_id: key_id.clone(),
                    }),
                },
            ))
        }
        UndoPlan::CreateParameterFromCopy {
            name,
            copy,
            value_type,
            key_id,
            overwrite,
        } => {
            // Only redress's own copies are put back: a ledger entry naming any other
            // parameter would copy its value under this name.
            if !copy.starts_with(redress::policy::QUARANTINE_PREFIX) {
                return Err(FixError::refused(format!(
                    "{copy} is not under {}: redress puts back only its own quarantine copies; nothing was changed",
                    redress::policy::QUARANTINE_PREFIX
                )));
            }
            let Some(kept) = params.get(copy).await? else {
                return Err(FixError::refused(format!(
                    "the quarantine copy {copy} no longer exists; nothing was changed"
                )));
            };
            if kept.kind != *value_type {
                return Err(FixError::refused(format!(
                    "the copy {copy} is a {}, not the recorded {value_type}; nothing was changed",
                    kept.kind
                )));
            }
            let written = if *overwrite {
                params
                    .put(name, &kept.value, value_type, key_id.clone())
                    .await?
            } else {
                match params
                    .create(name, &kept.value, value_type, key_id.clone())
                    .await?
                {
                    Created::Created => 1,
                    Created::Exists => {
                        return Err(FixError::refused(format!(
                            "{name} exists again; the undo was approved without --force, so it is not overwritten"
                        )))
                    }
                }
            };
            Ok(Done::succeeded(
                format!("{name} created again from {copy} ({value_type})"),
                Change::CreateParameter {
                    name: name.clone(),
                    source: copy.clone(),
                    after: Some(ParameterVersion {
                        version: u64::try_from(written).unwrap_or_default(),
                        value_type: value_type.clone(),
                        key_id: key_id.clone(),
                    }),
                },
            ))
        }
        // Through the same keep-a-copy path as an unauthorized parameter's deletion, so
        // even a forced undo loses no value.
        UndoPlan::DeleteParameter { name } => parameters::keep_and_delete(params, name).await,
        UndoPlan::RunbookInverse { document, .. } => Err(FixError::refused(format!(
            "undoing {document} is not built yet; nothing was changed"
        ))),
    }
}
