//! Undo: what putting a fix back would do, or why it must not. An undo is a change like
//! any other: `redress undo` plans it and asks for approval; the executor, which alone
//! holds remediation rights, plans it again from what it reads just before acting and
//! runs it only if the new plan is the approved one. While the undo stands, an
//! exception keeps the finding from being fixed again.
//!
//! Planning compares the resource now with the state the fix left. If someone changed it
//! since, putting the old state back would silently undo their change too, so the undo
//! is refused with what differs, unless the request says `force`.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::atoms::{self, Atom};
use super::item::{self, AttrValue, Item};
use super::model::{
    permissions, rfc3339, Actor, Change, EntryAction, EntryId, LedgerEntry, ParameterVersion,
    Principal, Settings, UndoOf,
};
use super::status::Status;
use crate::catalog::Catalog;
use crate::ingress::Permission;

/// The resource as the executor (or the CLI, for a dry run) read it just now, in the
/// shape of the entry's change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A security group's ingress permissions; `None`: the group no longer exists.
    Ingress(Option<Vec<Permission>>),
    /// A parameter's current version (`live`, `None`: absent) and, for a deleted one,
    /// its quarantine copy (`copy`, `None`: absent or not read).
    Parameter {
        /// The parameter itself.
        live: Option<ParameterVersion>,
        /// The quarantine copy the entry names.
        copy: Option<ParameterVersion>,
    },
    /// The settings a runbook's inverse restores; `None`: the resource is gone.
    Settings(Option<Settings>),
}

/// What an undo will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UndoPlan {
    /// `AuthorizeSecurityGroupIngress` with exactly these permissions (the revoked ones
    /// not present now).
    AuthorizeIngress {
        /// The security group.
        group_id: String,
        /// The permissions to authorize.
        #[serde(with = "permissions")]
        permissions: Vec<Permission>,
    },
    /// Read `NAME:VERSION` and write its value back as a new version, with its type and
    /// key.
    RestoreParameterVersion {
        /// The parameter.
        name: String,
        /// The version to bring back.
        version: u64,
        /// Its value type.
        value_type: String,
        /// Its KMS key, for a SecureString.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
    },
    /// Delete a parameter the fix created, through the same keep-a-copy path as
    /// `delete_unauthorized_parameter`, so even a forced undo loses no value.
    DeleteParameter {
        /// The parameter.
        name: String,
    },
    /// Write the quarantine copy's value back under the deleted parameter's name, with
    /// the deleted version's type and key.
    CreateParameterFromCopy {
        /// The parameter.
        name: String,
        /// The quarantine copy.
        copy: String,
        /// The deleted version's value type.
        value_type: String,
        /// Its KMS key, for a SecureString.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
        /// A parameter of that name exists again (a forced undo overwrites it).
        overwrite: bool,
    },
    /// The catalog's inverse of a runbook, with the settings read before the fix.
    RunbookInverse {
        /// The runbook whose change is put back.
        document: String,
        /// The inverse call, as the catalog states it.
        inverse: String,
        /// The settings to restore.
        restore: Settings,
    },
}

impl UndoPlan {
    /// One line for people (dry runs, approval requests).
    pub fn describe(&self) -> String {
        match self {
            UndoPlan::AuthorizeIngress {
                group_id,
                permissions,
            } => format!(
                "authorize {} on {group_id} again",
                atoms::describe(permissions)
            ),
            UndoPlan::RestoreParameterVersion {
                name,
                version,
                value_type,
                key_id,
            } => format!(
                "put {name} back to {}",
                ParameterVersion {
                    version: *version,
                    value_type: value_type.clone(),
                    key_id: key_id.clone(),
                }
                .describe()
            ),
            UndoPlan::DeleteParameter { name } => format!(
                "delete {name}, keeping a copy under {}",
                crate::policy::QUARANTINE_PREFIX
            ),
            UndoPlan::CreateParameterFromCopy {
                name,
                copy,
                value_type,
                overwrite,
                ..
            } => format!(
                "{} {name} ({value_type}) from its copy {copy}",
                if *overwrite { "overwrite" } else { "create" }
            ),
            UndoPlan::RunbookInverse {
                document,
                inverse,
                restore,
            } => {
                let settings: Vec<String> =
                    restore.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "put back the change of {document}: {inverse} ({})",
                    settings.join(", ")
                )
            }
        }
    }
}

/// Why an undo is not planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request itself is unusable.
    #[error("{0}")]
    Request(String),
    /// The entry is itself an undo.
    #[error("this entry undid {0}; to have the fix again, let the exception lapse (or remove it) and the policy fixes the finding")]
    UndoOfUndo(EntryId),
    /// The entry's change does not stand (never made, failed, undone, still waiting).
    #[error("the entry is {0}: there is no change of redress's to put back")]
    Status(Status),
    /// The entry records no state to put back.
    #[error("the entry records no state before the change, so there is nothing to put back from")]
    NoChangeRecorded,
    /// The resource changed since the fix (overridable with `force`).
    #[error("the resource changed since the fix ({0}); nothing was done (--force to put the recorded state back anyway)")]
    Changed(String),
    /// The state the fix left was not recorded, so a change since cannot be ruled out
    /// (overridable with `force`).
    #[error("the ledger holds no state after the fix ({0}), so a change since cannot be ruled out; nothing was done (--force to put the recorded state back anyway)")]
    AfterUnknown(String),
    /// The resource is gone.
    #[error("{0} no longer exists; nothing to put back into")]
    Gone(String),
    /// What the undo would put back is already there.
    #[error("nothing to put back: {0}")]
    NothingToPutBack(String),
    /// The quarantine copy of a deleted parameter is gone.
    #[error(
        "the quarantine copy {0} no longer exists, so the deleted parameter cannot be put back"
    )]
    CopyMissing(String),
    /// The runbook is not in the catalog.
    #[error("runbook {0} is not in the catalog, so its inverse is unknown")]
    UnknownDocument(String),
    /// The catalog knows no inverse for the runbook.
    #[error("runbook {document} cannot be undone: {why}")]
    NoInverse {
        /// The runbook.
        document: String,
        /// The catalog's `undo_note`.
        why: String,
    },
    /// The fix did not record what the inverse needs.
    #[error("the fix did not record {0}, which its inverse needs")]
    BeforeNotRecorded(String),
    /// The observation does not fit the change (a wiring mistake).
    #[error("read a {observed} to undo a {change} change")]
    WrongObservation {
        /// The change's kind.
        change: &'static str,
        /// What was read.
        observed: &'static str,
    },
}

impl Refusal {
    /// Whether `force` overrides it: only doubts about changes since the fix do.
    pub fn force_overrides(&self) -> bool {
        matches!(self, Refusal::Changed(_) | Refusal::AfterUnknown(_))
    }
}

/// Plans the undo of `entry`, given the resource as read now.
pub fn plan_undo(
    entry: &LedgerEntry,
    current: &Observed,
    catalog: &Catalog,
    force: bool,
) -> Result<UndoPlan, Refusal> {
    if let Some(u) = entry.action.undo() {
        return Err(Refusal::UndoOfUndo(u.entry.clone()));
    }
    if !entry.status.is_undoable() {
        return Err(Refusal::Status(entry.status));
    }
    let change = entry.change.as_ref().ok_or(Refusal::NoChangeRecorded)?;
    // Doubts about changes since the fix stop the undo unless forced.
    let unless_forced = |r: Refusal| if force { Ok(()) } else { Err(r) };
    match (change, current) {
        (
            Change::RevokeIngress {
                group_id, revoked, ..
            },
            Observed::Ingress(now),
        ) => {
            let now = atoms::atoms(
                now.as_deref()
                    .ok_or_else(|| Refusal::Gone(format!("security group {group_id}")))?,
            );
            let left = atoms::atoms(&change.ingress_after().unwrap_or_default());
            if now != left {
                unless_forced(Refusal::Changed(ingress_difference(&left, &now)))?;
            }
            let missing: BTreeSet<Atom> = atoms::atoms(revoked).difference(&now).cloned().collect();
            if missing.is_empty() {
                return Err(Refusal::NothingToPutBack(format!(
                    "{group_id} has every revoked permission again"
                )));
            }
            Ok(UndoPlan::AuthorizeIngress {
                group_id: group_id.clone(),
                permissions: atoms::permissions(&missing),
            })
        }
        (
            Change::RestoreParameter {
                name,
                before,
                after,
            },
            Observed::Parameter { live, .. },
        ) => {
            // A deleted parameter's history went with it: nothing to read back.
            let live = live
                .as_ref()
                .ok_or_else(|| Refusal::Gone(format!("parameter {name}")))?;
            same_version(name, after.as_ref(), live).or_else(unless_forced)?;
            Ok(UndoPlan::RestoreParameterVersion {
                name: name.clone(),
                version: before.version,
                value_type: before.value_type.clone(),
                key_id: before.key_id.clone(),
            })
        }
        (Change::CreateParameter { name, after, .. }, Observed::Parameter { live, .. }) => {
            let live = live
                .as_ref()
                .ok_or_else(|| Refusal::NothingToPutBack(format!("{name} is already absent")))?;
            same_version(name, after.as_ref(), live).or_else(unless_forced)?;
            Ok(UndoPlan::DeleteParameter { name: name.clone() })
        }
        (
            Change::DeleteParameter {
                name,
                before,
                quarantine_copy,
            },
            Observed::Parameter { live, copy },
        ) => {
            if copy.is_none() {
                return Err(Refusal::CopyMissing(quarantine_copy.clone()));
            }
            if let Some(live) = live {
                unless_forced(Refusal::Changed(format!(
                    "{name} exists again, at {}",
                    live.describe()
                )))?;
            }
            Ok(UndoPlan::CreateParameterFromCopy {
                name: name.clone(),
                copy: quarantine_copy.clone(),
                value_type: before.value_type.clone(),
                key_id: before.key_id.clone(),
                overwrite: live.is_some(),
            })
        }
        (
            Change::Runbook {
                document,
                before,
                after,
                ..
            },
            Observed::Settings(now),
        ) => {
            let doc = catalog
                .get(document)
                .ok_or_else(|| Refusal::UnknownDocument(document.clone()))?;
            let inverse = doc.undo.as_ref().ok_or_else(|| Refusal::NoInverse {
                document: document.clone(),
                why: doc
                    .undo_note
                    .clone()
                    .unwrap_or_else(|| "the catalog knows no inverse".into()),
            })?;
            let restore = before
                .clone()
                .ok_or_else(|| Refusal::BeforeNotRecorded(inverse.needs_before.clone()))?;
            let now = now.as_ref().ok_or_else(|| {
                Refusal::Gone(format!(
                    "{} {}",
                    entry.finding.resource_type, entry.finding.resource_id
                ))
            })?;
            match after {
                Some(after) if after == now => {}
                Some(after) => unless_forced(Refusal::Changed(settings_difference(after, now)))?,
                None => unless_forced(Refusal::AfterUnknown(inverse.needs_before.clone()))?,
            }
            Ok(UndoPlan::RunbookInverse {
                document: document.clone(),
                inverse: inverse.inverse.clone(),
                restore,
            })
        }
        (change, observed) => Err(Refusal::WrongObservation {
            change: change_kind(change),
            observed: observed_kind(observed),
        }),
    }
}

/// Every write bumps a parameter's version, so the version alone tells whether anyone
/// wrote since the fix.
fn same_version(
    name: &str,
    after: Option<&ParameterVersion>,
    live: &ParameterVersion,
) -> Result<(), Refusal> {
    match after {
        None => Err(Refusal::AfterUnknown(format!(
            "the version of {name} the fix wrote"
        ))),
        Some(after) if after.version == live.version => Ok(()),
        Some(after) => Err(Refusal::Changed(format!(
            "{name} is at {}, not the fix's {}",
            live.describe(),
            after.describe()
        ))),
    }
}

fn ingress_difference(left: &BTreeSet<Atom>, now: &BTreeSet<Atom>) -> String {
    let part = |label: &str, atoms: BTreeSet<Atom>| {
        (!atoms.is_empty())
            .then(|| format!("{label}: {}", atoms::describe(&atoms::permissions(&atoms))))
    };
    [
        part("added since", now.difference(left).cloned().collect()),
        part("removed since", left.difference(now).cloned().collect()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join("; ")
}

fn settings_difference(after: &Settings, now: &Settings) -> String {
    let keys: BTreeSet<&String> = after.keys().chain(now.keys()).collect();
    keys.into_iter()
        .filter(|k| after.get(*k) != now.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.map_or("(none)".to_string(), Clone::clone);
            format!(
                "{k} is {} (the fix left {})",
                show(now.get(k)),
                show(after.get(k))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn change_kind(c: &Change) -> &'static str {
    match c {
        Change::RevokeIngress { .. } => "revoke_ingress",
        Change::AuthorizeIngress { .. } => "authorize_ingress",
        Change::RestoreParameter { .. } => "restore_parameter",
        Change::CreateParameter { .. } => "create_parameter",
        Change::DeleteParameter { .. } => "delete_parameter",
        Change::Runbook { .. } => "runbook",
        Change::RunbookInverse { .. } => "runbook_inverse",
    }
}

fn observed_kind(o: &Observed) -> &'static str {
    match o {
        Observed::Ingress(_) => "security group's ingress",
        Observed::Parameter { .. } => "parameter",
        Observed::Settings(_) => "runbook's settings",
    }
}

/// The longest an undo's exception may last.
pub const MAX_UNDO_EXCEPTION: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

/// What `redress undo ENTRY --reason TEXT --until DATE [--force]` asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoRequest {
    /// Why (required: auditors ask).
    pub reason: String,
    /// When the exception ends and the policy may fix the finding again.
    pub until: SystemTime,
    /// Put the recorded state back even if the resource changed since.
    pub force: bool,
    /// Who asks, as AWS verified them.
    pub requested_by: Principal,
}

impl UndoRequest {
    /// Refuses a request without a reason, or whose exception would already be over (the
    /// next evaluation would fix the finding again at once).
    pub fn check(&self, now: SystemTime) -> Result<(), Refusal> {
        if self.reason.trim().is_empty() {
            return Err(Refusal::Request("an undo needs a reason".into()));
        }
        if self.until <= now {
            return Err(Refusal::Request(format!(
                "--until {} is not in the future: the next evaluation would fix the finding again at once",
                crate::time::format_rfc3339(self.until)
            )));
        }
        // An undo is a pause, not an exemption: a finding to leave alone for good belongs
        // in the policy's [[exception]]s, reviewed like the rest of the policy.
        if self.until.duration_since(now).unwrap_or_default() > MAX_UNDO_EXCEPTION {
            return Err(Refusal::Request(format!(
                "--until {} is more than {} days away: an undo leaves a finding alone for at most {} days (a lasting exemption belongs in the policy's [[exception]]s)",
                crate::time::format_rfc3339(self.until),
                MAX_UNDO_EXCEPTION.as_secs() / 86_400,
                MAX_UNDO_EXCEPTION.as_secs() / 86_400
            )));
        }
        Ok(())
    }
}

/// The entry of an undo request: waiting for approval, under the original's finding and
/// rule, with the plan the approver is shown.
pub fn undo_entry(
    original: &LedgerEntry,
    plan: UndoPlan,
    request: &UndoRequest,
    now: SystemTime,
) -> Result<LedgerEntry, Refusal> {
    request.check(now)?;
    let mut e = LedgerEntry::new(
        EntryId::for_undo(&original.id, now),
        &original.rule_id,
        original.severity,
        original.finding.clone(),
        EntryAction::Undo(UndoOf {
            entry: original.id.clone(),
            plan,
            reason: request.reason.clone(),
            until: super::model::second(request.until),
            force: request.force,
        }),
        Status::AwaitingApproval,
        now,
    )
    .expect("awaiting_approval is an initial status");
    e.actor = Some(Actor::Undo {
        requested_by: request.requested_by.clone(),
        approver: None,
    });
    Ok(e)
}

/// The approval request for an undo the executor recorded: the fix it puts back, the
/// plan, the reason, the end of the exception, and whether it is forced. `task` carries
/// the undo, its requester as SQS asserted to the executor.
pub fn approval_request(
    original: &LedgerEntry,
    action: &crate::policy::RenderedAction,
    task: crate::message::Task,
    ttl: std::time::Duration,
    policy_version: &str,
    now: SystemTime,
) -> Option<crate::message::ApprovalRequest> {
    let u = task.undo.clone()?;
    let preview = [
        Some(format!("undo: {}", u.plan.describe())),
        original
            .change
            .as_ref()
            .map(|c| format!("the fix changed: {}", c.describe())),
        Some(format!("reason: {}", u.reason)),
        Some(format!(
            "asked by {} ({})",
            u.requested_by.arn, u.requested_by.user_id
        )),
        Some(format!(
            "then the finding is left alone until {} (an exception in the ledger)",
            u.until
        )),
        u.force.then(|| {
            "forced: the resource changed since the fix, and the recorded state is put back anyway"
                .to_string()
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    Some(crate::message::ApprovalRequest {
        version: crate::message::MESSAGE_VERSION,
        id: task.approval_id(),
        preview,
        proposed_action: action.clone(),
        requested_at: crate::time::format_rfc3339(now),
        expires_at: crate::time::format_rfc3339(now + ttl),
        policy_version: Some(policy_version.to_string()),
        returned: None,
        task,
    })
}

/// The exception an undo records: the finding (policy rule and resource) is left alone
/// until `until`, so the next evaluation does not fix it again. The executor writes it
/// just before the undo's change (the change makes Config evaluate again) and removes it
/// if the undo fails. It covers the undone rule only: another rule whose fix overlaps
/// (a wider port range) still applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoException {
    /// Policy rule id.
    pub rule_id: String,
    /// Account of the resource.
    pub account: String,
    /// Region of the resource.
    pub region: String,
    /// Resource type.
    pub resource_type: String,
    /// Resource id.
    pub resource_id: String,
    /// When it ends.
    #[serde(with = "rfc3339")]
    pub until: SystemTime,
    /// Why, as the undo's requester said.
    pub reason: String,
    /// The entry whose fix was undone.
    pub undone: EntryId,
    /// The undo's entry.
    pub undo: EntryId,
    /// Who asked.
    pub requested_by: Principal,
}

impl UndoException {
    /// The exception of an undo entry (`None` for other entries).
    pub fn of(undo_entry: &LedgerEntry) -> Option<UndoException> {
        let u = undo_entry.action.undo()?;
        let requested_by = match &undo_entry.actor {
            Some(Actor::Undo { requested_by, .. }) => requested_by.clone(),
            _ => return None,
        };
        let f = &undo_entry.finding;
        Some(UndoException {
            rule_id: undo_entry.rule_id.clone(),
            account: f.account_id.clone(),
            region: f.region.clone(),
            resource_type: f.resource_type.clone(),
            resource_id: f.resource_id.clone(),
            until: u.until,
            reason: u.reason.clone(),
            undone: u.entry.clone(),
            undo: undo_entry.id.clone(),
            requested_by,
        })
    }

    /// Whether it covers this finding at `now`.
    pub fn applies(
        &self,
        rule_id: &str,
        account: &str,
        region: &str,
        resource_id: &str,
        now: SystemTime,
    ) -> bool {
        now < self.until
            && self.rule_id == rule_id
            && self.account == account
            && self.region == region
            && self.resource_id == resource_id
    }

    /// Its item id: one per finding, so the executor finds it with one read and a newer
    /// undo of the same finding replaces it.
    pub fn key(&self) -> String {
        exception_key(
            &self.rule_id,
            &self.account,
            &self.region,
            &self.resource_id,
        )
    }

    /// As an item, expiring (TTL) when it ends.
    pub fn to_item(&self) -> Item {
        let mut i = item::to_item(self);
        i.insert(item::ID.into(), AttrValue::S(self.key()));
        i.insert(
            item::TTL.into(),
            AttrValue::N(item::epoch(self.until).to_string()),
        );
        i
    }

    /// From an item.
    pub fn from_item(i: &Item) -> Result<UndoException, item::ItemError> {
        item::from_item(i)
    }

    /// `undone le-… until 2027-01-31T00:00:00Z: REASON (asked by ARN)`.
    pub fn describe(&self) -> String {
        format!(
            "undone {} until {}: {} (asked by {})",
            self.undone,
            crate::time::format_rfc3339(self.until),
            self.reason,
            self.requested_by.arn
        )
    }
}

/// The item id of the exception for a finding: `ex#ACCOUNT#REGION#RULE#RESOURCE`
/// (`#` appears in none of them).
pub fn exception_key(rule_id: &str, account: &str, region: &str, resource_id: &str) -> String {
    format!("ex#{account}#{region}#{rule_id}#{resource_id}")
}

/// Exceptions of carried-out undos that still hold at `now`, soonest to end first.
pub fn exceptions_in_force(entries: &[LedgerEntry], now: SystemTime) -> Vec<UndoException> {
    let mut out: Vec<UndoException> = entries
        .iter()
        .filter(|e| e.status == Status::Succeeded)
        .filter_map(UndoException::of)
        .filter(|x| now < x.until)
        .collect();
    out.sort_by(|a, b| a.until.cmp(&b.until).then_with(|| a.key().cmp(&b.key())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::model::tests::{private, revoke_entry, t, world};
    use crate::policy::{RenderedAction, RenderedRunbook};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn catalog() -> &'static Catalog {
        Catalog::shipped()
    }

    fn group(perms: Vec<Permission>) -> Observed {
        Observed::Ingress(Some(perms))
    }

    fn version(v: u64) -> ParameterVersion {
        ParameterVersion {
            version: v,
            value_type: "SecureString".into(),
            key_id: Some("alias/payments".into()),
        }
    }

    fn with_change(change: Change) -> LedgerEntry {
        LedgerEntry {
            change: Some(change),
            ..revoke_entry()
        }
    }

    fn parameter(live: Option<u64>, copy: bool) -> Observed {
        Observed::Parameter {
            live: live.map(version),
            copy: copy.then(|| version(3)),
        }
    }

    #[test]
    fn a_revoke_is_undone_by_exactly_the_revoked_permissions() {
        let e = revoke_entry();
        let plan = plan_undo(&e, &group(vec![private(443)]), catalog(), false).unwrap();
        assert_eq!(
            plan,
            UndoPlan::AuthorizeIngress {
                group_id: "sg-0123456789abcdef0".into(),
                permissions: vec![world(22)],
            }
        );
        assert_eq!(
            plan.describe(),
            "authorize tcp 22 from 0.0.0.0/0 on sg-0123456789abcdef0 again"
        );
    }

    #[test]
    fn a_changed_group_is_refused_with_what_changed_unless_forced() {
        let e = revoke_entry();
        let now = group(vec![private(443), private(80)]);
        let refused = plan_undo(&e, &now, catalog(), false).unwrap_err();
        assert_eq!(
            refused,
            Refusal::Changed("added since: tcp 80 from 10.0.0.0/8".into())
        );
        assert!(refused.force_overrides());
        assert!(refused.to_string().contains("--force"), "{refused}");
        let forced = plan_undo(&e, &now, catalog(), true).unwrap();
        assert!(
            matches!(forced, UndoPlan::AuthorizeIngress { ref permissions, .. } if *permissions == vec![world(22)])
        );
        // Forced, but the revoked permission is back already: nothing to do.
        let back = group(vec![world(22), private(443)]);
        assert!(matches!(
            plan_undo(&e, &back, catalog(), true),
            Err(Refusal::NothingToPutBack(_))
        ));
        // A deleted group: even force cannot help.
        assert!(matches!(
            plan_undo(&e, &Observed::Ingress(None), catalog(), true),
            Err(Refusal::Gone(_))
        ));
    }

    #[test]
    fn a_restore_is_undone_from_the_previous_version_with_its_type_and_key() {
        let e = with_change(Change::RestoreParameter {
            name: "/payments/current/db".into(),
            before: version(3),
            after: Some(version(4)),
        });
        assert_eq!(
            plan_undo(&e, &parameter(Some(4), false), catalog(), false),
            Ok(UndoPlan::RestoreParameterVersion {
                name: "/payments/current/db".into(),
                version: 3,
                value_type: "SecureString".into(),
                key_id: Some("alias/payments".into()),
            })
        );
        let refused = plan_undo(&e, &parameter(Some(5), false), catalog(), false).unwrap_err();
        assert!(
            matches!(&refused, Refusal::Changed(w) if w.contains("is at version 5") && w.contains("fix's version 4")),
            "{refused}"
        );
        assert!(plan_undo(&e, &parameter(Some(5), false), catalog(), true).is_ok());
        assert!(matches!(
            plan_undo(&e, &parameter(None, false), catalog(), true),
            Err(Refusal::Gone(_))
        ));
        // A crash before the outcome: the version written is unknown.
        let unknown = with_change(Change::RestoreParameter {
            name: "/payments/current/db".into(),
            before: version(3),
            after: None,
        });
        let refused =
            plan_undo(&unknown, &parameter(Some(4), false), catalog(), false).unwrap_err();
        assert!(matches!(refused, Refusal::AfterUnknown(_)));
        assert!(refused.force_overrides());
    }

    #[test]
    fn a_create_is_undone_by_a_delete_and_a_delete_from_its_copy() {
        let created = with_change(Change::CreateParameter {
            name: "/p/current/x".into(),
            source: "/p/approved/x".into(),
            after: Some(version(1)),
        });
        assert_eq!(
            plan_undo(&created, &parameter(Some(1), false), catalog(), false),
            Ok(UndoPlan::DeleteParameter {
                name: "/p/current/x".into()
            })
        );
        assert!(matches!(
            plan_undo(&created, &parameter(Some(2), false), catalog(), false),
            Err(Refusal::Changed(_))
        ));
        assert!(matches!(
            plan_undo(&created, &parameter(None, false), catalog(), false),
            Err(Refusal::NothingToPutBack(_))
        ));

        let deleted = with_change(Change::DeleteParameter {
            name: "/p/current/x".into(),
            before: version(3),
            quarantine_copy: "/redress/quarantine/p/current/x/1-v3".into(),
        });
        let plan = plan_undo(&deleted, &parameter(None, true), catalog(), false).unwrap();
        assert_eq!(
            plan,
            UndoPlan::CreateParameterFromCopy {
                name: "/p/current/x".into(),
                copy: "/redress/quarantine/p/current/x/1-v3".into(),
                value_type: "SecureString".into(),
                key_id: Some("alias/payments".into()),
                overwrite: false,
            }
        );
        assert!(matches!(
            plan_undo(&deleted, &parameter(Some(1), true), catalog(), false),
            Err(Refusal::Changed(w)) if w.contains("exists again")
        ));
        assert!(matches!(
            plan_undo(&deleted, &parameter(Some(1), true), catalog(), true),
            Ok(UndoPlan::CreateParameterFromCopy {
                overwrite: true,
                ..
            })
        ));
        assert_eq!(
            plan_undo(&deleted, &parameter(None, false), catalog(), true),
            Err(Refusal::CopyMissing(
                "/redress/quarantine/p/current/x/1-v3".into()
            ))
        );
    }

    fn runbook(document: &str, before: Option<Settings>, after: Option<Settings>) -> LedgerEntry {
        let mut e = with_change(Change::Runbook {
            document: document.into(),
            inputs: BTreeMap::from([("BucketName".into(), vec!["b".into()])]),
            before,
            after,
        });
        e.action = EntryAction::Remediate(RenderedAction::Runbook(RenderedRunbook {
            document: document.into(),
            parameters: BTreeMap::new(),
            assume_role: None,
        }));
        e
    }

    fn settings(v: &str) -> Settings {
        BTreeMap::from([("SSEAlgorithm".to_string(), v.to_string())])
    }

    #[test]
    fn a_runbook_is_undone_only_where_the_catalog_knows_the_inverse() {
        let doc = "AWS-EnableS3BucketEncryption";
        let inverse = catalog().get(doc).unwrap().undo.clone().unwrap();
        let e = runbook(doc, Some(settings("none")), Some(settings("AES256")));
        let now = Observed::Settings(Some(settings("AES256")));
        assert_eq!(
            plan_undo(&e, &now, catalog(), false),
            Ok(UndoPlan::RunbookInverse {
                document: doc.into(),
                inverse: inverse.inverse.clone(),
                restore: settings("none"),
            })
        );
        let changed = Observed::Settings(Some(settings("aws:kms")));
        assert_eq!(
            plan_undo(&e, &changed, catalog(), false),
            Err(Refusal::Changed(
                "SSEAlgorithm is aws:kms (the fix left AES256)".into()
            ))
        );
        // Without the state before, the inverse has nothing to restore, forced or not.
        let blind = runbook(doc, None, Some(settings("AES256")));
        assert_eq!(
            plan_undo(&blind, &now, catalog(), true),
            Err(Refusal::BeforeNotRecorded(inverse.needs_before))
        );
        // The catalog says why some changes cannot come back.
        let versioning = runbook("AWS-ConfigureS3BucketVersioning", Some(settings("x")), None);
        let refused = plan_undo(&versioning, &now, catalog(), true).unwrap_err();
        assert!(
            matches!(&refused, Refusal::NoInverse { why, .. } if why.contains("suspended")),
            "{refused}"
        );
        assert!(!refused.force_overrides());
        assert_eq!(
            plan_undo(&runbook("Acme-Custom", None, None), &now, catalog(), true),
            Err(Refusal::UnknownDocument("Acme-Custom".into()))
        );
    }

    #[test]
    fn only_a_standing_fix_of_redress_is_undone() {
        let mut failed = revoke_entry();
        failed.status = Status::Failed;
        let now = group(vec![private(443)]);
        assert_eq!(
            plan_undo(&failed, &now, catalog(), true),
            Err(Refusal::Status(Status::Failed))
        );
        let mut blank = revoke_entry();
        blank.change = None;
        assert_eq!(
            plan_undo(&blank, &now, catalog(), true),
            Err(Refusal::NoChangeRecorded)
        );
        assert!(matches!(
            plan_undo(&revoke_entry(), &parameter(Some(1), false), catalog(), true),
            Err(Refusal::WrongObservation {
                change: "revoke_ingress",
                ..
            })
        ));
        let undo = undo_entry(
            &revoke_entry(),
            plan_undo(&revoke_entry(), &now, catalog(), false).unwrap(),
            &request(t(86_400)),
            t(100),
        )
        .unwrap();
        let mut done = undo.clone();
        done.status = Status::Succeeded;
        assert_eq!(
            plan_undo(&done, &now, catalog(), true),
            Err(Refusal::UndoOfUndo(revoke_entry().id))
        );
    }

    fn request(until: SystemTime) -> UndoRequest {
        UndoRequest {
            reason: "breaks the bastion, SEC-42".into(),
            until,
            force: false,
            requested_by: Principal {
                arn: "arn:aws:iam::111122223333:user/alice".into(),
                user_id: "AIDAEXAMPLE".into(),
            },
        }
    }

    #[test]
    fn an_undo_request_waits_for_approval_and_records_its_exception() {
        let original = revoke_entry();
        let plan = plan_undo(&original, &group(vec![private(443)]), catalog(), false).unwrap();
        let e = undo_entry(&original, plan.clone(), &request(t(86_400)), t(100)).unwrap();
        assert_eq!(e.status, Status::AwaitingApproval);
        assert_eq!(e.id, EntryId::for_undo(&original.id, t(100)));
        assert!(e.is_undo());
        assert_eq!(e.action.undo().unwrap().plan, plan);
        // Not in force before the undo is carried out.
        assert!(exceptions_in_force(std::slice::from_ref(&e), t(200)).is_empty());
        let mut done = e.clone();
        done.status = Status::Succeeded;
        let x = exceptions_in_force(&[original.clone(), done], t(200));
        assert_eq!(x.len(), 1);
        let x = &x[0];
        assert_eq!(x.undone, original.id);
        let f = &original.finding;
        assert!(x.applies("ssh", &f.account_id, &f.region, &f.resource_id, t(86_399)));
        assert!(!x.applies("ssh", &f.account_id, &f.region, &f.resource_id, t(86_400)));
        assert!(!x.applies("other", &f.account_id, &f.region, &f.resource_id, t(200)));
        assert_eq!(
            x.key(),
            "ex#111122223333#eu-west-1#ssh#sg-0123456789abcdef0"
        );
        let item = x.to_item();
        assert_eq!(item[item::ID].as_s(), Some(x.key().as_str()));
        assert_eq!(
            item[item::TTL],
            AttrValue::N(item::epoch(t(86_400)).to_string())
        );
        assert_eq!(&UndoException::from_item(&item).unwrap(), x);
    }

    #[test]
    fn an_undo_needs_a_reason_and_a_future_end() {
        let original = revoke_entry();
        let plan = UndoPlan::DeleteParameter { name: "/x".into() };
        let past = undo_entry(&original, plan.clone(), &request(t(100)), t(100));
        assert!(matches!(past, Err(Refusal::Request(w)) if w.contains("not in the future")));
        let mut blank = request(t(100) + Duration::from_secs(60));
        blank.reason = "  ".into();
        assert_eq!(
            undo_entry(&original, plan.clone(), &blank, t(100)),
            Err(Refusal::Request("an undo needs a reason".into()))
        );
        // At most MAX_UNDO_EXCEPTION: a lasting exemption belongs in the policy.
        let longest = request(t(100) + MAX_UNDO_EXCEPTION);
        assert!(undo_entry(&original, plan.clone(), &longest, t(100)).is_ok());
        let forever = request(t(100) + MAX_UNDO_EXCEPTION + Duration::from_secs(1));
        assert!(matches!(
            undo_entry(&original, plan, &forever, t(100)),
            Err(Refusal::Request(w)) if w.contains("at most 90 days")
        ));
    }
}
