//! Who may approve, decided from identities AWS asserts, never from a message body.
//!
//! The policy's `[approvals] approvers` lists IAM principals ([`ApproverSpec`]). The
//! approvals CLI checks its caller (STS `GetCallerIdentity`) against them to refuse early;
//! the executor checks the SQS `SenderId` of an approved task, which SQS stamps with the
//! sender's STS `UserId` (`AIDA…` for a user, `AROA…:SESSION` for a role session). A
//! SenderId carries only unique ids, so user and role ARNs are resolved to their unique
//! ids once, when the executor loads the policy ([`Approvers::resolve`] takes the answers
//! of IAM `GetUser`/`GetRole`); a principal deleted and re-created under the same name has
//! a new id and gets no rights until the policy is loaded again.
//!
//! Threat model: `docs/threat-model.md`. A stronger binding (a signature over the
//! approval) would be one more check in [`Approvers::verify`]'s caller, not a new path.

use std::collections::BTreeMap;

/// One entry of `approvers`, as written in the policy.
#[derive(Debug, Clone)]
pub enum ApproverSpec {
    /// `arn:aws:iam::ACCOUNT:user/[PATH/]NAME`.
    User(PrincipalArn),
    /// `arn:aws:iam::ACCOUNT:role/[PATH/]NAME`: any session of the role.
    Role(PrincipalArn),
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION-GLOB`: sessions of ROLE whose name
    /// matches the glob.
    AssumedRole {
        /// The role (its IAM ARN's path is unknown from this form, so only the name).
        role: PrincipalArn,
        /// The session-name glob as written.
        session: String,
        /// Compiled glob.
        matcher: globset::GlobMatcher,
    },
    /// A unique id: `AIDA…` (a user) or `AROA…` (any session of a role).
    UniqueId(String),
}

/// A user or role ARN taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalArn {
    /// The ARN as written.
    pub arn: String,
    /// Partition (`aws`, `aws-cn`, ...).
    pub partition: String,
    /// 12-digit account.
    pub account: String,
    /// The name (last path segment).
    pub name: String,
}

fn account(s: &str) -> Result<String, String> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(format!("account {s:?} must be 12 digits (no wildcards)"))
    }
}

fn name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

fn unique_id_ok(id: &str, prefix: &str) -> bool {
    id.starts_with(prefix)
        && (16..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl ApproverSpec {
    /// Parses one entry. Globs are allowed only in an assumed-role session name: any
    /// other wildcard would let principals nobody named approve.
    pub fn parse(s: &str) -> Result<ApproverSpec, String> {
        if unique_id_ok(s, "AIDA") || unique_id_ok(s, "AROA") {
            return Ok(ApproverSpec::UniqueId(s.to_string()));
        }
        let parts: Vec<&str> = s.splitn(6, ':').collect();
        let [arn, partition, service, region, acct, resource] = parts[..] else {
            return Err(format!(
                "{s:?} is neither an IAM user or role ARN, an assumed-role ARN nor a unique id (AIDA…, AROA…)"
            ));
        };
        if arn != "arn" || !partition.starts_with("aws") || !region.is_empty() {
            return Err(format!("{s:?} is not an IAM or STS ARN"));
        }
        let account = account(acct).map_err(|e| format!("{s:?}: {e}"))?;
        let principal = |name: &str| -> Result<PrincipalArn, String> {
            if !name_ok(name) {
                return Err(format!(
                    "{s:?}: {name:?} is not an IAM name (wildcards are allowed only in an assumed-role session name)"
                ));
            }
            Ok(PrincipalArn {
                arn: s.to_string(),
                partition: partition.to_string(),
                account: account.clone(),
                name: name.to_string(),
            })
        };
        match service {
            "iam" => {
                let (kind, path) = resource.split_once('/').ok_or_else(|| {
                    format!("{s:?}: expected user/NAME or role/NAME after the account")
                })?;
                let name = path.rsplit('/').next().unwrap_or_default();
                match kind {
                    "user" => Ok(ApproverSpec::User(principal(name)?)),
                    "role" => Ok(ApproverSpec::Role(principal(name)?)),
                    other => Err(format!(
                        "{s:?}: {other:?} cannot approve; name a user or a role"
                    )),
                }
            }
            "sts" => {
                let rest = resource.strip_prefix("assumed-role/").ok_or_else(|| {
                    format!("{s:?}: an STS approver must be assumed-role/ROLE/SESSION-GLOB")
                })?;
                let (role, session) = rest
                    .split_once('/')
                    .ok_or_else(|| format!("{s:?}: expected assumed-role/ROLE/SESSION-GLOB"))?;
                if session.is_empty() {
                    return Err(format!("{s:?}: the session glob is empty"));
                }
                let matcher = globset::Glob::new(session)
                    .map_err(|e| format!("{s:?}: session glob: {e}"))?
                    .compile_matcher();
                let mut role = principal(role)?;
                role.arn = format!("arn:{partition}:iam::{account}:role/{}", role.name);
                Ok(ApproverSpec::AssumedRole {
                    role,
                    session: session.to_string(),
                    matcher,
                })
            }
            other => Err(format!(
                "{s:?}: service {other:?}; approvers are IAM users, roles or assumed-role sessions"
            )),
        }
    }

    /// The IAM principal whose unique id the executor must look up, if any.
    pub fn to_resolve(&self) -> Option<(PrincipalKind, &PrincipalArn)> {
        match self {
            ApproverSpec::User(p) => Some((PrincipalKind::User, p)),
            ApproverSpec::Role(p) | ApproverSpec::AssumedRole { role: p, .. } => {
                Some((PrincipalKind::Role, p))
            }
            ApproverSpec::UniqueId(_) => None,
        }
    }

    /// Whether the caller STS describes (its `UserId` and `Arn`) is this approver. Used
    /// by the CLI to refuse early; the executor's check is [`Approvers::verify`].
    pub fn admits_caller(&self, user_id: &str, arn: &str) -> bool {
        let caller = Caller::parse(user_id);
        match self {
            ApproverSpec::UniqueId(id) => caller.principal_id() == id,
            ApproverSpec::User(p) => caller.session().is_none() && arn == p.arn,
            ApproverSpec::Role(p) => session_of(arn, p).is_some(),
            ApproverSpec::AssumedRole { role, matcher, .. } => {
                session_of(arn, role).is_some_and(|s| matcher.is_match(s))
            }
        }
    }
}

/// The session name of an `assumed-role` ARN of this role, if it is one.
fn session_of<'a>(arn: &'a str, role: &PrincipalArn) -> Option<&'a str> {
    let prefix = format!(
        "arn:{}:sts::{}:assumed-role/{}/",
        role.partition, role.account, role.name
    );
    arn.strip_prefix(&prefix)
}

/// User or role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An IAM user (`iam:GetUser`).
    User,
    /// An IAM role (`iam:GetRole`).
    Role,
}

/// A sender as SQS asserts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller<'a> {
    /// `AIDA…` (or any id without a session).
    Principal(&'a str),
    /// `AROA…:SESSION`.
    Session(&'a str, &'a str),
}

impl<'a> Caller<'a> {
    fn parse(sender_id: &'a str) -> Caller<'a> {
        match sender_id.split_once(':') {
            Some((id, session)) => Caller::Session(id, session),
            None => Caller::Principal(sender_id),
        }
    }
    fn principal_id(&self) -> &'a str {
        match self {
            Caller::Principal(id) | Caller::Session(id, _) => id,
        }
    }
    fn session(&self) -> Option<&'a str> {
        match self {
            Caller::Session(_, s) => Some(s),
            Caller::Principal(_) => None,
        }
    }
}

/// An approver as verified from a SenderId.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The principal's ARN (for a role session, `arn:aws:sts::…:assumed-role/ROLE/SESSION`),
    /// when the policy named it by ARN; `None` for an approver listed by unique id only.
    pub arn: Option<String>,
    /// The SenderId itself (`AIDA…` or `AROA…:SESSION`).
    pub unique_id: String,
}

impl Verified {
    /// The audit `actor`: the ARN when known, else the unique id.
    pub fn actor(&self) -> String {
        self.arn.clone().unwrap_or_else(|| self.unique_id.clone())
    }
}

/// The approvers with their unique ids, as the executor checks them.
#[derive(Debug, Clone, Default)]
pub struct Approvers {
    /// No approvers listed: any sender IAM lets write to the tasks queue may approve.
    open: bool,
    /// (spec, unique id when resolved). An unresolved ARN admits nobody.
    entries: Vec<(ApproverSpec, Option<String>)>,
}

impl Approvers {
    /// Binds each spec to the unique id IAM returned for its ARN (`ids`, keyed by the ARN
    /// the lookup was for; a principal IAM does not know is absent and admits nobody).
    pub fn resolve(specs: &[ApproverSpec], ids: &BTreeMap<String, String>) -> Approvers {
        Approvers {
            open: specs.is_empty(),
            entries: specs
                .iter()
                .map(|s| {
                    let id = match s {
                        ApproverSpec::UniqueId(id) => Some(id.clone()),
                        other => other
                            .to_resolve()
                            .and_then(|(_, p)| ids.get(&p.arn).cloned()),
                    };
                    (s.clone(), id)
                })
                .collect(),
        }
    }

    /// Whether the policy lists no approvers (anyone the queue admits may approve).
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Who sent an approved task, if the policy lets that sender approve. `sender_id` is
    /// SQS's SenderId attribute: the only identity here that AWS vouches for.
    pub fn verify(&self, sender_id: Option<&str>) -> Result<Verified, String> {
        let Some(sender) = sender_id.filter(|s| !s.is_empty()) else {
            return Err("the message carries no SenderId, so its sender is unknown".into());
        };
        let caller = Caller::parse(sender);
        let verified = |arn: Option<String>| Verified {
            arn,
            unique_id: sender.to_string(),
        };
        if self.open {
            return Ok(verified(None));
        }
        for (spec, id) in &self.entries {
            let Some(id) = id else { continue };
            if caller.principal_id() != id {
                continue;
            }
            match (spec, caller) {
                (ApproverSpec::UniqueId(_), _) => return Ok(verified(None)),
                (ApproverSpec::User(p), Caller::Principal(_)) => {
                    return Ok(verified(Some(p.arn.clone())))
                }
                (ApproverSpec::Role(p), Caller::Session(_, s)) => {
                    return Ok(verified(Some(assumed_role_arn(p, s))))
                }
                (ApproverSpec::AssumedRole { role, matcher, .. }, Caller::Session(_, s))
                    if matcher.is_match(s) =>
                {
                    return Ok(verified(Some(assumed_role_arn(role, s))))
                }
                _ => {}
            }
        }
        Err(format!(
            "sender {sender} is not on the policy's approvers list"
        ))
    }
}

fn assumed_role_arn(role: &PrincipalArn, session: &str) -> String {
    format!(
        "arn:{}:sts::{}:assumed-role/{}/{session}",
        role.partition, role.account, role.name
    )
}

/// Whether a message's SQS SenderId is the same principal as `own` (a process's STS
/// UserId): an IAM user's id must be equal; for a role (`AROA…:SESSION`) the role's
/// unique id must be, whatever the session (every task of a service has its own).
pub fn same_principal(sender_id: &str, own: &str) -> bool {
    let principal = |id: &str| id.split(':').next().unwrap_or_default().to_string();
    !own.is_empty() && principal(sender_id) == principal(own)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
    const ALICE_ID: &str = "AIDAALICE0000000000001";
    const ROLE_ID: &str = "AROASECOPS000000000001";

    fn specs(list: &[&str]) -> Vec<ApproverSpec> {
        list.iter()
            .map(|s| ApproverSpec::parse(s).unwrap())
            .collect()
    }

    fn ids() -> BTreeMap<String, String> {
        BTreeMap::from([
            (ALICE.to_string(), ALICE_ID.to_string()),
            (
                "arn:aws:iam::123456789012:role/SecOps".to_string(),
                ROLE_ID.to_string(),
            ),
        ])
    }

    #[test]
    fn parses_each_form_and_rejects_wildcards_outside_sessions() {
        assert!(
            matches!(ApproverSpec::parse(ALICE), Ok(ApproverSpec::User(p)) if p.name == "alice")
        );
        assert!(matches!(
            ApproverSpec::parse("arn:aws:iam::123456789012:role/team/SecOps"),
            Ok(ApproverSpec::Role(p)) if p.name == "SecOps"
        ));
        assert!(matches!(
            ApproverSpec::parse("arn:aws:sts::123456789012:assumed-role/SecOps/*@example.com"),
            Ok(ApproverSpec::AssumedRole { .. })
        ));
        assert!(matches!(
            ApproverSpec::parse(ALICE_ID),
            Ok(ApproverSpec::UniqueId(_))
        ));
        for bad in [
            "arn:aws:sts::*:assumed-role/SecOps/*",
            "arn:aws:iam::123456789012:user/*",
            "arn:aws:iam::123456789012:group/admins",
            "arn:aws:sts::123456789012:user/alice",
            "alice",
            "arn:aws:s3:::bucket",
        ] {
            assert!(ApproverSpec::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_user_is_verified_by_unique_id_not_by_name() {
        let a = Approvers::resolve(&specs(&[ALICE]), &ids());
        let v = a.verify(Some(ALICE_ID)).unwrap();
        assert_eq!(v.arn.as_deref(), Some(ALICE));
        assert_eq!(v.unique_id, ALICE_ID);
        // mallory, or a re-created alice with a new id: refused.
        assert!(a.verify(Some("AIDAMALLORY000000000001")).is_err());
        assert!(a.verify(None).is_err());
        // A role session with alice's id as its role part is not alice.
        assert!(a.verify(Some(&format!("{ALICE_ID}:x"))).is_err());
    }

    #[test]
    fn unresolved_principals_admit_nobody() {
        let a = Approvers::resolve(&specs(&[ALICE]), &BTreeMap::new());
        assert!(a.verify(Some(ALICE_ID)).is_err());
    }

    #[test]
    fn role_sessions_match_the_role_id_and_session_glob() {
        let a = Approvers::resolve(
            &specs(&["arn:aws:sts::123456789012:assumed-role/SecOps/*@example.com"]),
            &ids(),
        );
        let v = a
            .verify(Some(&format!("{ROLE_ID}:bob@example.com")))
            .unwrap();
        assert_eq!(
            v.arn.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/SecOps/bob@example.com")
        );
        assert!(a.verify(Some(&format!("{ROLE_ID}:bob@evil.com"))).is_err());
        assert!(a.verify(Some(ROLE_ID)).is_err());
        let any = Approvers::resolve(&specs(&["arn:aws:iam::123456789012:role/SecOps"]), &ids());
        assert!(any.verify(Some(&format!("{ROLE_ID}:anyone"))).is_ok());
    }

    #[test]
    fn an_empty_list_admits_any_sender_but_still_needs_one() {
        let a = Approvers::resolve(&[], &BTreeMap::new());
        let v = a.verify(Some("AIDAANYONE00000000001")).unwrap();
        assert_eq!(v.arn, None);
        assert_eq!(v.actor(), "AIDAANYONE00000000001");
        assert!(a.verify(None).is_err());
    }

    #[test]
    fn the_cli_check_uses_the_callers_sts_identity() {
        let [alice, secops, id] = &specs(&[
            ALICE,
            "arn:aws:sts::123456789012:assumed-role/SecOps/ops-*",
            "AROASECOPS000000000001",
        ])[..] else {
            unreachable!()
        };
        assert!(alice.admits_caller(ALICE_ID, ALICE));
        assert!(!alice.admits_caller(
            "AIDAX0000000000000001",
            "arn:aws:iam::123456789012:user/mallory"
        ));
        assert!(secops.admits_caller(
            "AROAX:ops-bob",
            "arn:aws:sts::123456789012:assumed-role/SecOps/ops-bob"
        ));
        assert!(!secops.admits_caller(
            "AROAX:dev-bob",
            "arn:aws:sts::123456789012:assumed-role/SecOps/dev-bob"
        ));
        assert!(id.admits_caller("AROASECOPS000000000001:x", "arn:whatever"));
    }

    #[test]
    fn the_same_principal_is_the_same_user_or_role_whatever_the_session() {
        assert!(same_principal(
            "AIDAEXAMPLE1234567890",
            "AIDAEXAMPLE1234567890"
        ));
        assert!(same_principal(
            "AROAEXECUTOR123456789:task-1",
            "AROAEXECUTOR123456789:task-2"
        ));
        assert!(!same_principal(
            "AROAROUTER1234567890:task-1",
            "AROAEXECUTOR123456789:task-1"
        ));
        assert!(!same_principal("AIDAOTHER", "AIDAEXAMPLE1234567890"));
        assert!(!same_principal("", ""));
    }
}
