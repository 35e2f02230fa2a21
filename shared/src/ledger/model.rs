//! The ledger entry: which finding, what was done and by whom, the state before and
//! after, the times, the status and the lease. Times are kept to the second, in RFC 3339
//! (fixed width, so stored times sort as text and a condition can compare them).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::atoms;
use super::status::{InvalidTransition, Status};
use super::undo::UndoPlan;
use crate::ingress::Permission;
use crate::message::{Finding, Task};
use crate::policy::{RenderedAction, Severity};

/// Version of the entry layout below. Readers accept fields they do not know (entries
/// are written by redress alone, and during a rolling upgrade an older `history` must
/// read what a newer executor wrote).
pub const LEDGER_VERSION: u32 = 1;

/// `t` truncated to the second: what the ledger stores, so an entry read back equals the
/// one written.
pub fn second(t: SystemTime) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs())
}

/// Serde for times as RFC 3339 to the second.
pub(crate) mod rfc3339 {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::SystemTime;

    /// Writes `t` as RFC 3339 to the second.
    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::time::format_rfc3339(*t))
    }

    /// Reads an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        crate::time::parse_rfc3339(&text)
            .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }

    /// The same for optional times.
    pub mod option {
        use super::*;

        /// Writes a time, or null.
        pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        /// Reads a time, or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<SystemTime>, D::Error> {
            #[derive(serde::Deserialize)]
            struct At(#[serde(with = "super")] SystemTime);
            Ok(Option::<At>::deserialize(d)?.map(|At(t)| t))
        }
    }
}

/// Serde for the project's ingress permissions (which carry no serde derives of their
/// own): a remote definition, checked field by field against
/// [`crate::ingress::Permission`] by the compiler.
pub(super) mod permissions {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::ingress::Permission;

    #[derive(Serialize, Deserialize)]
    #[serde(remote = "Permission")]
    struct PermissionDef {
        protocol: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from_port: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to_port: Option<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ipv4: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ipv6: Vec<String>,
    }

    struct Ser<'a>(&'a Permission);

    impl Serialize for Ser<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            PermissionDef::serialize(self.0, s)
        }
    }

    #[derive(Deserialize)]
    struct De(#[serde(with = "PermissionDef")] Permission);

    /// Writes the permissions as a list.
    pub fn serialize<S: Serializer>(v: &[Permission], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(Ser))
    }

    /// Reads a list of permissions.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Permission>, D::Error> {
        Ok(Vec::<De>::deserialize(d)?
            .into_iter()
            .map(|De(p)| p)
            .collect())
    }
}

/// A ledger entry's id: `le-` and 20 hex digits (80 bits of a digest, so ids of a
/// fleet's lifetime of findings do not collide).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntryId(String);

const ID_PREFIX: &str = "le-";
const ID_HEX: usize = 20;

impl EntryId {
    /// The entry of a task: derived from the evaluation's identity (as its SSM client
    /// token is), so every delivery of the same finding, and its approval request and
    /// approved task, name one entry, while an operator's replay (a new generation)
    /// names a new one.
    pub fn for_task(task: &Task) -> EntryId {
        EntryId::digest(&["redress/ledger/v1", &task.client_token()])
    }

    /// The entry of an undo of `original` requested at `requested_at`.
    pub fn for_undo(original: &EntryId, requested_at: SystemTime) -> EntryId {
        EntryId::digest(&[
            "redress/ledger/undo/v1",
            original.as_str(),
            &crate::time::format_rfc3339(requested_at),
        ])
    }

    fn digest(parts: &[&str]) -> EntryId {
        let h = Sha256::digest(parts.join("\u{1f}").as_bytes());
        let hex: String = h[..ID_HEX / 2].iter().map(|b| format!("{b:02x}")).collect();
        EntryId(format!("{ID_PREFIX}{hex}"))
    }

    /// Parses an id given on the command line.
    pub fn parse(text: &str) -> Result<EntryId, String> {
        let well_formed = text.strip_prefix(ID_PREFIX).is_some_and(|hex| {
            hex.len() == ID_HEX && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if !well_formed {
            return Err(format!(
                "{text:?} is not a ledger entry id (le- and {ID_HEX} lowercase hex digits)"
            ));
        }
        Ok(EntryId(text.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EntryId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        EntryId::parse(&s)
    }
}

impl From<EntryId> for String {
    fn from(id: EntryId) -> String {
        id.0
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A principal as AWS verified it (SQS `SenderId`, STS), never as a message claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// ARN (from STS `GetCallerIdentity`).
    pub arn: String,
    /// Unique id (`AIDA…`, `AROA…:SESSION`).
    pub user_id: String,
}

/// Who acted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The pipeline, under the policy, without a person.
    Automatic,
    /// A person approved the fix.
    Approved {
        /// The approver.
        approver: Principal,
        /// When they approved.
        #[serde(with = "rfc3339")]
        approved_at: SystemTime,
    },
    /// A person asked for an undo (and, once approved, another or the same person
    /// approved it).
    Undo {
        /// Who asked.
        requested_by: Principal,
        /// Who approved, once someone has.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approver: Option<Principal>,
    },
}

impl Actor {
    /// Who made the change happen, for tables: `automatic` or the approver's ARN.
    pub fn label(&self) -> String {
        match self {
            Actor::Automatic => "automatic".into(),
            Actor::Approved { approver, .. } => approver.arn.clone(),
            Actor::Undo {
                approver: Some(a), ..
            } => a.arn.clone(),
            Actor::Undo { approver: None, .. } => "not yet approved".into(),
        }
    }
}

/// One version of a parameter, without its value (see the module's note on secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParameterVersion {
    /// Parameter Store's version number; `NAME:VERSION` reads it back.
    pub version: u64,
    /// `String`, `StringList`, `SecureString` (a string: AWS may add types).
    pub value_type: String,
    /// The KMS key of a SecureString.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl ParameterVersion {
    /// `version 4 (SecureString, key alias/aws/ssm)`.
    pub fn describe(&self) -> String {
        match &self.key_id {
            Some(k) => format!("version {} ({}, key {k})", self.version, self.value_type),
            None => format!("version {} ({})", self.version, self.value_type),
        }
    }
}

/// Settings a runbook's inverse needs, as read before (or after) the change: what the
/// catalog's `needs_before` names, flattened to name → value (e.g. `SSEAlgorithm` →
/// `AES256`). Configuration only, never secret values.
pub type Settings = BTreeMap<String, String>;

fn describe_settings(s: &Option<Settings>) -> String {
    match s {
        None => "not recorded".into(),
        Some(s) if s.is_empty() => "none".into(),
        Some(s) => s
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// What a change did, per kind of fix: exactly what is needed to put it back, and what
/// the resource looked like after (to tell whether someone changed it since). Fields
/// known only after the change are `Option`: the intent is written before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// `revoke_public_ingress`: the group's ingress before, and what was revoked. The
    /// ingress after is `before` less `revoked` ([`Change::ingress_after`]).
    RevokeIngress {
        /// The security group.
        group_id: String,
        /// Its ingress permissions when read before the change.
        #[serde(with = "permissions")]
        before: Vec<Permission>,
        /// Exactly the permissions revoked.
        #[serde(with = "permissions")]
        revoked: Vec<Permission>,
    },
    /// The undo of a revoke: the permissions authorized again.
    AuthorizeIngress {
        /// The security group.
        group_id: String,
        /// Its ingress permissions when read before the undo.
        #[serde(with = "permissions")]
        before: Vec<Permission>,
        /// Exactly the permissions authorized.
        #[serde(with = "permissions")]
        authorized: Vec<Permission>,
    },
    /// `restore_parameter_baseline`, or the undo of one (back to an earlier version).
    RestoreParameter {
        /// The parameter.
        name: String,
        /// The version that was replaced.
        before: ParameterVersion,
        /// The version written.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<ParameterVersion>,
    },
    /// `create_parameter_from_baseline`, or the undo of a delete (from its quarantine
    /// copy).
    CreateParameter {
        /// The parameter.
        name: String,
        /// Where the value came from: the baseline's name or the quarantine copy's.
        source: String,
        /// The version created.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<ParameterVersion>,
    },
    /// `delete_unauthorized_parameter`, or the undo of a create.
    DeleteParameter {
        /// The parameter.
        name: String,
        /// The version deleted.
        before: ParameterVersion,
        /// The copy kept under the quarantine prefix (a deletion erases every version).
        quarantine_copy: String,
    },
    /// An SSM Automation runbook.
    Runbook {
        /// Document name.
        document: String,
        /// The parameters it was started with.
        inputs: BTreeMap<String, Vec<String>>,
        /// What the catalog's `needs_before` names, read before the change; without it
        /// the change cannot be undone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<Settings>,
        /// The same settings read after the change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Settings>,
    },
    /// The undo of a runbook: the catalog's inverse call.
    RunbookInverse {
        /// The document whose change was put back.
        document: String,
        /// The inverse, as the catalog states it.
        inverse: String,
        /// The settings restored.
        restored: Settings,
    },
}

impl Change {
    /// The ingress a revoke or authorize left: `before` less `revoked`, or plus
    /// `authorized`. `None` for other kinds.
    pub fn ingress_after(&self) -> Option<Vec<Permission>> {
        match self {
            Change::RevokeIngress {
                before, revoked, ..
            } => {
                let revoked = atoms::atoms(revoked);
                let left = atoms::atoms(before)
                    .into_iter()
                    .filter(|a| !revoked.contains(a))
                    .collect();
                Some(atoms::permissions(&left))
            }
            Change::AuthorizeIngress {
                before, authorized, ..
            } => {
                let mut all = atoms::atoms(before);
                all.extend(atoms::atoms(authorized));
                Some(atoms::permissions(&all))
            }
            _ => None,
        }
    }

    /// One line: what changed.
    pub fn describe(&self) -> String {
        match self {
            Change::RevokeIngress {
                group_id, revoked, ..
            } => format!("revoked {} on {group_id}", atoms::describe(revoked)),
            Change::AuthorizeIngress {
                group_id,
                authorized,
                ..
            } => format!("authorized {} on {group_id}", atoms::describe(authorized)),
            Change::RestoreParameter { name, before, .. } => {
                format!("overwrote {name} {}", before.describe())
            }
            Change::CreateParameter { name, source, .. } => {
                format!("created {name} from {source}")
            }
            Change::DeleteParameter {
                name,
                quarantine_copy,
                ..
            } => format!("deleted {name} (copy kept as {quarantine_copy})"),
            Change::Runbook { document, .. } => format!("ran {document}"),
            Change::RunbookInverse {
                document, inverse, ..
            } => format!("put back the change of {document}: {inverse}"),
        }
    }

    /// The state before, for people and the evidence export.
    pub fn before_summary(&self) -> String {
        match self {
            Change::RevokeIngress { before, .. } | Change::AuthorizeIngress { before, .. } => {
                atoms::describe(before)
            }
            Change::RestoreParameter { before, .. } | Change::DeleteParameter { before, .. } => {
                before.describe()
            }
            Change::CreateParameter { .. } => "absent".into(),
            Change::Runbook { before, .. } => describe_settings(before),
            Change::RunbookInverse { .. } => "not recorded".into(),
        }
    }

    /// The state after, for people and the evidence export.
    pub fn after_summary(&self) -> String {
        let version = |v: &Option<ParameterVersion>| match v {
            Some(v) => v.describe(),
            None => "not recorded".into(),
        };
        match self {
            Change::RevokeIngress { .. } | Change::AuthorizeIngress { .. } => {
                atoms::describe(&self.ingress_after().unwrap_or_default())
            }
            Change::RestoreParameter { after, .. } | Change::CreateParameter { after, .. } => {
                version(after)
            }
            Change::DeleteParameter {
                quarantine_copy, ..
            } => format!("absent (copy kept as {quarantine_copy})"),
            Change::Runbook { after, .. } => describe_settings(after),
            Change::RunbookInverse { restored, .. } => describe_settings(&Some(restored.clone())),
        }
    }
}

/// Who holds the right to act on an entry, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The executor's id (unique per process; the wiring picks it).
    pub holder: String,
    /// When the lease lapses unless renewed.
    #[serde(with = "rfc3339")]
    pub expires_at: SystemTime,
}

/// When things happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Times {
    /// When the entry was made: the router's or executor's decision. Index sort key.
    #[serde(with = "rfc3339")]
    pub decided_at: SystemTime,
    /// The last write.
    #[serde(with = "rfc3339")]
    pub updated_at: SystemTime,
    /// When the change ended (succeeded or failed).
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub fixed_at: Option<SystemTime>,
    /// When Config confirmed it.
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub verified_at: Option<SystemTime>,
}

/// What an undo entry puts back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoOf {
    /// The entry whose change is put back.
    pub entry: EntryId,
    /// What will be done, as planned when the undo was asked for.
    pub plan: UndoPlan,
    /// Why, as the requester said.
    pub reason: String,
    /// The exception for the finding lasts until then, so the next evaluation does not
    /// fix it again.
    #[serde(with = "rfc3339")]
    pub until: SystemTime,
    /// Asked to act even though the resource changed since the fix.
    #[serde(default)]
    pub force: bool,
}

/// What an entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryAction {
    /// A fix the policy rendered for the finding.
    Remediate(RenderedAction),
    /// The undo of an earlier entry.
    Undo(UndoOf),
}

impl EntryAction {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            EntryAction::Remediate(a) => a.describe(),
            EntryAction::Undo(u) => format!("undo {}: {}", u.entry, u.plan.describe()),
        }
    }

    /// The undo, for undo entries.
    pub fn undo(&self) -> Option<&UndoOf> {
        match self {
            EntryAction::Undo(u) => Some(u),
            EntryAction::Remediate(_) => None,
        }
    }
}

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Layout version ([`LEDGER_VERSION`]).
    pub version: u32,
    /// The entry's id.
    pub id: EntryId,
    /// Policy rule id.
    pub rule_id: String,
    /// The rule's severity when the entry was made.
    pub severity: Severity,
    /// The finding: Config rule name and ARN, account, region, resource, evaluation time.
    pub finding: Finding,
    /// The fix or the undo.
    pub action: EntryAction,
    /// Who acted; `None` while a fix waits for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// Where it stands.
    pub status: Status,
    /// State before and after; `None` until the executor has read the state before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
    /// When things happened.
    pub times: Times,
    /// The SSM Automation execution, where one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// Why (skip reason, error, refusal), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Held while `intent`; cleared by the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// The approval request (`ap-…`) for entries that needed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_request: Option<String>,
    /// Version of the policy the action was rendered under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Who approved the request (the ARN STS verified), written by `approvals approve`
    /// while the entry waits for an executor to claim it (see
    /// [`super::reconcile::APPROVER_ATTRIBUTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When the request was approved.
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub approved_at: Option<SystemTime>,
    /// A decision on a waiting request (`rejected`, `expired`, `skipped` for moot) as
    /// approvers and the sweep record it: beside the status, which they may not write
    /// (IAM limits attribute names, not values), and read as the status only while the
    /// entry waits ([`LedgerEntry::from_item`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Status>,
    /// Why, with the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_reason: Option<String>,
}

impl LedgerEntry {
    /// A new entry; `status` must be one an entry may start in
    /// ([`Status::is_initial`]).
    pub fn new(
        id: EntryId,
        rule_id: &str,
        severity: Severity,
        finding: Finding,
        action: EntryAction,
        status: Status,
        now: SystemTime,
    ) -> Result<LedgerEntry, InvalidTransition> {
        Status::check(None, status)?;
        let now = second(now);
        Ok(LedgerEntry {
            version: LEDGER_VERSION,
            id,
            rule_id: rule_id.to_string(),
            severity,
            finding,
            action,
            actor: None,
            status,
            change: None,
            times: Times {
                decided_at: now,
                updated_at: now,
                fixed_at: None,
                verified_at: None,
            },
            execution_id: None,
            reason: None,
            lease: None,
            approval_request: None,
            policy_version: None,
            approved_by: None,
            approved_at: None,
            decision: None,
            decision_reason: None,
        })
    }

    /// A new entry for a task's fix.
    pub fn for_task(
        task: &Task,
        action: RenderedAction,
        status: Status,
        now: SystemTime,
    ) -> Result<LedgerEntry, InvalidTransition> {
        LedgerEntry::new(
            EntryId::for_task(task),
            &task.rule_id,
            task.severity,
            task.finding.clone(),
            EntryAction::Remediate(action),
            status,
            now,
        )
    }

    /// Moves to `to` if the status table allows it, stamping the times. Leaving
    /// `intent` releases the lease; entering it is [`super::lease::take`]'s business.
    pub fn advance(&mut self, to: Status, now: SystemTime) -> Result<(), InvalidTransition> {
        Status::check(Some(self.status), to)?;
        let now = second(now);
        self.status = to;
        self.times.updated_at = now;
        match to {
            Status::Succeeded | Status::Failed => self.times.fixed_at = Some(now),
            Status::Verified => self.times.verified_at = Some(now),
            _ => {}
        }
        if to != Status::Intent {
            self.lease = None;
        }
        Ok(())
    }

    /// When Config evaluated the finding, when it said.
    pub fn evaluated_at(&self) -> Option<SystemTime> {
        self.finding
            .evaluation_time
            .as_deref()
            .and_then(crate::time::parse_rfc3339)
    }

    /// From Config's evaluation to its confirmation of the fix: time to remediate.
    pub fn time_to_remediate(&self) -> Option<Duration> {
        let verified = self.times.verified_at?;
        Some(
            verified
                .duration_since(self.evaluated_at()?)
                .unwrap_or_default(),
        )
    }

    /// Whether the entry is an undo of another.
    pub fn is_undo(&self) -> bool {
        self.action.undo().is_some()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::Fix;

    pub fn t(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
    }

    pub fn finding() -> Finding {
        Finding {
            event_id: "e-1".into(),
            config_rule_name: "restricted-ssh".into(),
            config_rule_arn: Some(
                "arn:aws:config:eu-west-1:111122223333:config-rule/config-rule-abc123".into(),
            ),
            resource_id: "sg-0123456789abcdef0".into(),
            resource_type: "AWS::EC2::SecurityGroup".into(),
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            compliance: "NON_COMPLIANT".into(),
            annotation: None,
            evaluation_time: Some(crate::time::format_rfc3339(t(0))),
        }
    }

    pub fn world(port: i32) -> Permission {
        Permission {
            protocol: "tcp".into(),
            from_port: Some(port),
            to_port: Some(port),
            ipv4: vec!["0.0.0.0/0".into()],
            ipv6: vec![],
        }
    }

    pub fn private(port: i32) -> Permission {
        Permission {
            ipv4: vec!["10.0.0.0/8".into()],
            ..world(port)
        }
    }

    /// A revoke of port 22 that succeeded at t(60), with port 443 (private) left.
    pub fn revoke_entry() -> LedgerEntry {
        let task = Task::new("ssh", Severity::High, finding());
        let action = RenderedAction::Fix(Fix::RevokePublicIngress {
            ports: Some(vec![22]),
        });
        let mut e = LedgerEntry::for_task(&task, action, Status::Intent, t(10)).unwrap();
        e.actor = Some(Actor::Automatic);
        e.change = Some(Change::RevokeIngress {
            group_id: "sg-0123456789abcdef0".into(),
            before: vec![world(22), private(443)],
            revoked: vec![world(22)],
        });
        e.advance(Status::Succeeded, t(60)).unwrap();
        e
    }

    #[test]
    fn ids_are_stable_per_evaluation_and_parse_back() {
        let task = Task::new("ssh", Severity::High, finding());
        let a = EntryId::for_task(&task);
        let mut redelivered = task.clone();
        redelivered.created_at = "later".into();
        assert_eq!(a, EntryId::for_task(&redelivered));
        let mut replayed = task.clone();
        replayed.generation = 1;
        assert_ne!(a, EntryId::for_task(&replayed));
        assert_eq!(a.as_str().len(), 3 + 20);
        assert_eq!(EntryId::parse(a.as_str()), Ok(a.clone()));
        assert_ne!(EntryId::for_undo(&a, t(1)), EntryId::for_undo(&a, t(2)));
        for bad in [
            "",
            "le-",
            "ap-0123456789",
            "le-0123456789ABCDEF0123",
            "le-0123",
        ] {
            assert!(EntryId::parse(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<EntryId>("\"le-x\"").is_err());
    }

    #[test]
    fn an_entry_round_trips_through_json() {
        let e = revoke_entry();
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["status"], "succeeded");
        assert_eq!(json["change"]["kind"], "revoke_ingress");
        assert_eq!(json["change"]["revoked"][0]["from_port"], 22);
        assert_eq!(
            json["times"]["fixed_at"],
            crate::time::format_rfc3339(t(60))
        );
        assert_eq!(serde_json::from_value::<LedgerEntry>(json).unwrap(), e);
    }

    #[test]
    fn advance_stamps_times_and_releases_the_lease() {
        let mut e = revoke_entry();
        assert_eq!(e.times.fixed_at, Some(t(60)));
        e.advance(Status::Verified, t(600)).unwrap();
        assert_eq!(e.time_to_remediate(), Some(Duration::from_secs(600)));
        let err = e.advance(Status::Failed, t(601)).unwrap_err();
        assert_eq!(err.from, Some(Status::Verified));
        assert_eq!(e.status, Status::Verified, "a refused move changes nothing");
        assert!(LedgerEntry::for_task(
            &Task::new("ssh", Severity::High, finding()),
            RenderedAction::Fix(Fix::RevokePublicIngress { ports: None }),
            Status::Verified,
            t(0)
        )
        .is_err());
    }

    #[test]
    fn summaries_show_before_and_after_but_never_a_value() {
        let e = revoke_entry();
        let c = e.change.as_ref().unwrap();
        assert_eq!(
            c.before_summary(),
            "tcp 22 from 0.0.0.0/0; tcp 443 from 10.0.0.0/8"
        );
        assert_eq!(c.after_summary(), "tcp 443 from 10.0.0.0/8");
        assert_eq!(
            c.describe(),
            "revoked tcp 22 from 0.0.0.0/0 on sg-0123456789abcdef0"
        );
        let restore = Change::RestoreParameter {
            name: "/payments/current/db".into(),
            before: ParameterVersion {
                version: 3,
                value_type: "SecureString".into(),
                key_id: Some("alias/payments".into()),
            },
            after: None,
        };
        assert_eq!(
            restore.before_summary(),
            "version 3 (SecureString, key alias/payments)"
        );
        assert_eq!(restore.after_summary(), "not recorded");
        let json = serde_json::to_string(&restore).unwrap();
        assert!(!json.contains("value\""), "{json}");
    }
}
