//! Messages between the workers: tasks (router or approver → executor) and approval
//! requests (router → approvers). A task names a policy rule and a finding, never an
//! action: the executor re-derives the action from its own policy.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::event::ComplianceEvent;
use crate::ledger::{EntryId, Principal, UndoPlan};
use crate::policy::{Facts, RenderedAction, Severity};

/// Version of the message formats below. Version 2 added the approval's action digest
/// and policy version and the request's `returned` note; version 3 the finding's Config
/// rule ARN, the task's closure check and the moot notice's Config rule. Every new field
/// is optional, so messages of versions 1 and 2 still on the queues after an upgrade are
/// read as they are (an approval without a digest is refused and its request put back
/// for a fresh decision).
pub const MESSAGE_VERSION: u32 = 3;

/// The facts of one evaluation that a remediation needs, copied from the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// Event id (EventBridge id or SNS message id).
    pub event_id: String,
    /// Config rule name.
    pub config_rule_name: String,
    /// The Config rule's ARN, when the event carried one: policy rules may pin it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_rule_arn: Option<String>,
    /// Resource id.
    pub resource_id: String,
    /// Resource type.
    pub resource_type: String,
    /// Account of the resource.
    pub account_id: String,
    /// Region of the resource.
    pub region: String,
    /// Compliance reported by the event.
    pub compliance: String,
    /// The rule's annotation, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
    /// When Config recorded the evaluation; with rule and resource it identifies it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_time: Option<String>,
}

impl Finding {
    /// Copies the facts out of a validated event.
    pub fn from_event(e: &ComplianceEvent) -> Finding {
        Finding {
            event_id: e.event_id.clone(),
            config_rule_name: e.detail.config_rule_name.clone(),
            config_rule_arn: e.detail.config_rule_arn.clone(),
            resource_id: e.detail.resource_id.clone(),
            resource_type: e.detail.resource_type.clone(),
            account_id: e.detail.aws_account_id.clone(),
            region: e.detail.aws_region.clone(),
            compliance: e.compliance().as_str().to_string(),
            annotation: e.annotation().map(str::to_string),
            evaluation_time: e.evaluation_time().map(str::to_string),
        }
    }

    /// Re-checks the identifiers: a task may have been written by anyone who can send
    /// to the queue, so it gets the same scrutiny as an event.
    pub fn validate(&self) -> Result<(), String> {
        use crate::validate as v;
        let field = |name: &str, r: Result<(), String>| r.map_err(|m| format!("{name}: {m}"));
        field(
            "resource_id",
            v::resource_id(&self.resource_type, &self.resource_id),
        )?;
        field("resource_type", v::resource_type(&self.resource_type))?;
        field("account_id", v::account(&self.account_id))?;
        field("region", v::region(&self.region))?;
        field("config_rule_name", v::rule_name(&self.config_rule_name))?;
        if let Some(arn) = &self.config_rule_arn {
            field(
                "config_rule_arn",
                v::rule_arn(arn, &self.account_id, &self.region),
            )?;
        }
        Ok(())
    }

    /// What a policy rule is matched against.
    pub fn subject(&self) -> crate::policy::Subject<'_> {
        crate::policy::Subject {
            config_rule_name: &self.config_rule_name,
            resource_type: &self.resource_type,
            config_rule_arn: self.config_rule_arn.as_deref(),
            annotation: self.annotation.as_deref(),
        }
    }

    /// Placeholder values for this finding.
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            resource_id: &self.resource_id,
            resource_type: &self.resource_type,
            account_id: &self.account_id,
            region: &self.region,
            rule_name: &self.config_rule_name,
        }
    }

    /// SHA-256 over what identifies this evaluation under a policy rule. The event id
    /// only stands in when Config gave no evaluation time, so the same evaluation
    /// delivered through EventBridge and through SNS has one identity.
    fn identity(&self, rule_id: &str, generation: u32) -> [u8; 32] {
        let when = match &self.evaluation_time {
            Some(t) => format!("at:{t}"),
            None => format!("event:{}", self.event_id),
        };
        let text = [
            "redress/v1",
            rule_id,
            &self.config_rule_name,
            &self.account_id,
            &self.region,
            &self.resource_type,
            &self.resource_id,
            &when,
            &generation.to_string(),
        ]
        .join("\u{1f}");
        Sha256::digest(text.as_bytes()).into()
    }
}

/// Work for the executor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Format version ([`MESSAGE_VERSION`]).
    pub version: u32,
    /// Policy rule id; the executor looks up the action itself.
    pub rule_id: String,
    /// Severity the router assigned (informational; the executor uses its own policy).
    pub severity: Severity,
    /// The finding to fix.
    pub finding: Finding,
    /// Incremented when an operator replays the task, so a deliberate retry gets a fresh
    /// SSM idempotency token while redeliveries keep the old one.
    #[serde(default)]
    pub generation: u32,
    /// When the router created the task.
    pub created_at: String,
    /// Who approved it, for rules that need approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Made by a router in dry-run mode: any executor only decides and audits it, so a
    /// dry run stays a dry run even when the executor is not in dry-run mode.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Set on a closure check: the finding was fixed and the executor asks Config
    /// whether it agrees; such a task never changes anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closure: Option<Closure>,
    /// Set on an undo (`redress undo`): put back what a ledger entry's fix changed. Only
    /// an approved task may carry one, and the executor plans the undo again from the
    /// ledger and the resource before acting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<UndoTask>,
}

/// An undo as requested and shown to the approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndoTask {
    /// The ledger entry whose change is put back.
    pub entry: EntryId,
    /// What the undo does, as planned when it was requested.
    pub plan: UndoPlan,
    /// Why (required).
    pub reason: String,
    /// Until when the finding is left alone (RFC 3339).
    pub until: String,
    /// Put the recorded state back even if the resource changed since the fix.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// When it was requested (RFC 3339).
    pub requested_at: String,
    /// Who asked, as STS told `redress undo`; `approvals approve` checks it against the
    /// SenderId SQS stamped on the request before anyone can approve it.
    pub requested_by: Principal,
}

impl UndoTask {
    /// SHA-256 (hex) of the undo's canonical JSON: what an approval of it is bound to
    /// (entry, plan, reason, expiry, force, requester).
    pub fn digest(&self) -> String {
        let json = serde_json::to_string(self).expect("an undo serialises");
        Sha256::digest(json.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The ledger id the undo's own entry gets.
    pub fn entry_id(&self) -> EntryId {
        let at = crate::time::parse_rfc3339(&self.requested_at).unwrap_or(std::time::UNIX_EPOCH);
        EntryId::for_undo(&self.entry, at)
    }

    /// When the exception ends, if `until` is a time.
    pub fn until_time(&self) -> Option<std::time::SystemTime> {
        crate::time::parse_rfc3339(&self.until)
    }
}

/// A fix waiting for Config to confirm it (`awaiting_verification`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Closure {
    /// When the fix finished (RFC 3339). The executor never believes a time later than
    /// when SQS says the check was sent.
    pub fixed_at: String,
    /// The fix's SSM Automation execution, where one exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_id: Option<String>,
    /// Who approved the fix, as verified when it ran (for the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Checks made so far; the next waits twice as long as the last.
    pub checks: u32,
}

/// A person's approval, recorded by `redress approvals approve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approval request approved.
    pub request_id: String,
    /// The approver's ARN, from STS (never typed by the approver).
    pub approved_by: String,
    /// The approver's STS UserId; SQS stamps the same id as the sender of the task
    /// message, which lets the executor check who really sent it.
    pub approver_user_id: String,
    /// When.
    pub approved_at: String,
    /// Why, if the approver said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Digest of the action the approver was shown ([`RenderedAction::digest`]); the
    /// executor runs the approval only if its own policy renders the same action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_digest: Option<String>,
    /// Version of the policy the request was made under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
}

impl Task {
    /// A new task for a finding under a rule.
    pub fn new(rule_id: &str, severity: Severity, finding: Finding) -> Task {
        Task {
            version: MESSAGE_VERSION,
            rule_id: rule_id.to_string(),
            severity,
            finding,
            generation: 0,
            created_at: crate::time::now_rfc3339(),
            approval: None,
            dry_run: false,
            closure: None,
            undo: None,
        }
    }

    /// SSM `ClientToken`: a UUID-shaped digest of the finding's identity, so the same
    /// event always starts at most one execution.
    pub fn client_token(&self) -> String {
        let h = self.finding.identity(&self.rule_id, self.generation);
        let hex: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
        // Shape as a version-5-style UUID, the format SSM requires.
        format!(
            "{}-{}-5{}-a{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        )
    }

    /// Short, stable id of the approval request for this task; an undo's is its own
    /// (derived from the undo's ledger id), so it never stands for the fix's request.
    pub fn approval_id(&self) -> String {
        if let Some(u) = &self.undo {
            let id = u.entry_id();
            let hex = id.as_str().trim_start_matches("le-");
            return format!("ap-{}", &hex[..10]);
        }
        let h = self.finding.identity(&self.rule_id, self.generation);
        let hex: String = h[..5].iter().map(|b| format!("{b:02x}")).collect();
        format!("ap-{hex}")
    }

    /// The digest an approval of this task must carry: the undo's, or the action's.
    pub fn approval_digest(&self, action: &RenderedAction) -> String {
        match &self.undo {
            Some(u) => u.digest(),
            None => action.digest(),
        }
    }
}

/// A request for a person to approve a task (on the approvals queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    /// Format version ([`MESSAGE_VERSION`]).
    pub version: u32,
    /// Short, stable id for the command line (`ap-` and 10 hex digits).
    pub id: String,
    /// The task that runs once approved.
    pub task: Task,
    /// What the policy would do, rendered for this resource.
    pub proposed_action: RenderedAction,
    /// What the action would change, as read when the request was made (e.g. which
    /// ingress permissions would be revoked).
    #[serde(default)]
    pub preview: Vec<String>,
    /// When the request was made.
    pub requested_at: String,
    /// After this it expires unacted.
    pub expires_at: String,
    /// Version of the policy that rendered `proposed_action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// Set when an earlier approval of this request did not run and the executor put the
    /// request back (kill switch on, approval refused, action changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned: Option<Returned>,
}

impl ApprovalRequest {
    /// What approving it does, in one line: the fix, or for an undo what it puts back.
    pub fn describe_action(&self) -> String {
        match &self.task.undo {
            Some(u) => format!(
                "UNDO of {} (fix: {}): {}; then leave the finding alone until {}",
                u.entry,
                self.proposed_action.describe(),
                u.plan.describe(),
                u.until
            ),
            None => self.proposed_action.describe(),
        }
    }

    /// The label for audit records: `undo` or the action's.
    pub fn label(&self) -> String {
        match &self.task.undo {
            Some(_) => format!("undo {}", self.proposed_action.label()),
            None => self.proposed_action.label(),
        }
    }

    /// The digest an approval of this request carries ([`Task::approval_digest`]).
    pub fn digest(&self) -> String {
        self.task.approval_digest(&self.proposed_action)
    }
}

/// Why an approved request came back to the approvals queue, and whose approval it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Returned {
    /// What stopped it, e.g. `held: kill switch /redress/kill-switch is on`.
    pub why: String,
    /// The earlier approver as AWS verified them (ARN or unique id), when verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
    /// When the earlier approval was given, as the approval said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
    /// When the executor put it back.
    pub at: String,
}

/// A note that a resource with a pending request became compliant (the request is moot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MootNotice {
    /// Policy rule of the pending request.
    pub rule_id: String,
    /// Account of the resource.
    pub account_id: String,
    /// Region of the resource.
    pub region: String,
    /// The resource.
    pub resource_id: String,
    /// The COMPLIANT event.
    pub event_id: String,
    /// When the router saw it.
    pub seen_at: String,
    /// The Config rule that reported COMPLIANT (absent in notices of version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_rule_name: Option<String>,
    /// Its ARN, when the event carried one: a request whose finding names an ARN is
    /// mooted only by the same rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_rule_arn: Option<String>,
}

/// What the approvals queue holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApprovalsMessage {
    /// A request waiting for a person.
    Request(Box<ApprovalRequest>),
    /// A resource became compliant.
    Moot(MootNotice),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_message;

    fn finding(name: &str) -> Finding {
        let path = format!(
            "{}/../tests/fixtures/events/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        Finding::from_event(&parse_message(&std::fs::read_to_string(path).unwrap()).unwrap())
    }

    #[test]
    fn same_evaluation_same_token_whatever_the_delivery() {
        let eb = Task::new(
            "ssh",
            Severity::High,
            finding("sg-ssh-open-noncompliant.json"),
        );
        let sns = Task::new(
            "ssh",
            Severity::High,
            finding("sns-wrapped-compliance-change.json"),
        );
        assert_eq!(eb.client_token(), sns.client_token());
        let token = eb.client_token();
        assert_eq!(token.len(), 36);
        assert_eq!(token.matches('-').count(), 4);
        assert!(token.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn other_rule_resource_or_generation_changes_the_token() {
        let a = Task::new(
            "ssh",
            Severity::High,
            finding("sg-ssh-open-noncompliant.json"),
        );
        let mut b = a.clone();
        b.rule_id = "other".into();
        let mut c = a.clone();
        c.finding.resource_id = "sg-0000000000000001".into();
        let mut d = a.clone();
        d.generation = 1;
        for other in [b, c, d] {
            assert_ne!(a.client_token(), other.client_token());
        }
        assert!(a.approval_id().starts_with("ap-") && a.approval_id().len() == 13);
    }

    #[test]
    fn task_round_trips_and_rejects_unknown_fields() {
        let t = Task::new(
            "ssh",
            Severity::High,
            finding("sg-ssh-open-noncompliant.json"),
        );
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Task>(&json).unwrap(), t);
        let forged = json.replacen("{", "{\"runbook\":\"AWS-RunShellScript\",", 1);
        assert!(serde_json::from_str::<Task>(&forged).is_err());
    }

    #[test]
    fn approvals_messages_are_tagged_and_strict() {
        let notice = ApprovalsMessage::Moot(MootNotice {
            config_rule_name: None,
            config_rule_arn: None,
            rule_id: "r".into(),
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            resource_id: "sg-1".into(),
            event_id: "e".into(),
            seen_at: "2026-11-02T09:14:03Z".into(),
        });
        let json = serde_json::to_string(&notice).unwrap();
        assert!(json.contains("\"kind\":\"moot\""));
        assert_eq!(
            serde_json::from_str::<ApprovalsMessage>(&json).unwrap(),
            notice
        );
        let extra = json.replacen('{', "{\"x\":1,", 1);
        assert!(serde_json::from_str::<ApprovalsMessage>(&extra).is_err());
    }

    #[test]
    fn finding_validation_catches_forged_ids() {
        let mut f = finding("sg-ssh-open-noncompliant.json");
        assert!(f.validate().is_ok());
        f.resource_id = "sg-1; rm -rf /".into();
        assert!(f.validate().unwrap_err().starts_with("resource_id"));
    }
}
