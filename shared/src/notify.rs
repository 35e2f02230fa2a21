//! Notifications for people: what a settled verdict tells the notification topic.
//!
//! Pure: the settler hands over what it settled (the outcome records, the guard notes,
//! the approval requests it sent, whether the message was dead-lettered) and
//! [`notifications`] returns at most one message per thing a person must hear about:
//! a new approval request, a fix that failed or a message that was dead-lettered, a
//! guard tripped or reset, and a finding still non-compliant after its fix. The SNS call
//! is the edge's (`workers/src/aws/sns.rs`).
//!
//! Each message carries three String attributes for SNS subscription filter policies
//! ([`ATTRIBUTES`]: `severity`, `kind`, `account`) and a body in the custom-notification
//! JSON format of AWS Chatbot (Amazon Q Developer in chat applications), which renders
//! it in Slack or Microsoft Teams: `version` "1.0", `source` "custom", `content`
//! {`textType`, `title`, `description`, `nextSteps`, `keywords`} and `metadata`
//! {`threadId`, `summary`, `eventType`, `relatedResources`, `enableCustomActions`,
//! `additionalContext`}. See "Custom notifications using Amazon Q Developer in chat
//! applications", <https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html>
//! (event schema and parameter details: `version` and `source` are required and fixed,
//! `client-markdown` is the only `textType`).
//!
//! Never a secret: a message names resources, rules and actions (the approval preview
//! names parameters, never their values); text from events or AWS errors is cleaned of
//! control characters, kept off markdown and mentions, and cut short.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{AuditDecision, AuditRecord, Outcome};
use crate::message::ApprovalRequest;

/// `version` of every message (the schema's only version).
pub const SCHEMA_VERSION: &str = "1.0";
/// `source` of every custom notification.
pub const SOURCE: &str = "custom";
/// `content.textType`: rendered in the chat platform's own markdown.
pub const TEXT_TYPE: &str = "client-markdown";
/// The message attributes every notification carries, for subscription filters.
pub const ATTRIBUTES: [&str; 3] = ["severity", "kind", "account"];
/// Longest title redress writes (a chat card's heading; one line in Slack).
pub const TITLE_MAX: usize = 250;
/// Longest description redress writes: well under SNS's 256 KB message limit, and
/// short enough that Slack and Teams show it whole.
pub const DESCRIPTION_MAX: usize = 4000;
/// Most next steps and keywords per message (a card stays readable).
pub const LIST_MAX: usize = 8;
/// Longest piece of untrusted text (an annotation, an error) quoted in a message.
const QUOTE_MAX: usize = 300;
/// `account` of a message about the whole executor (a guard), not one account.
pub const ALL_ACCOUNTS: &str = "all";
/// `severity` when no policy rule gave one (a message no rule matched).
pub const UNKNOWN_SEVERITY: &str = "UNKNOWN";

/// What a notification is about: its `kind` attribute and `metadata.eventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A finding waits for a person's approval.
    ApprovalRequest,
    /// A fix ran, or was attempted, and failed.
    FixFailed,
    /// A message could not be used and went to a dead-letter queue.
    DeadLettered,
    /// A guard stopped automatic fixes (kill switch, breaker, rate cap).
    GuardTripped,
    /// A guard let automatic fixes run again.
    GuardReset,
    /// A fix ran but Config still reports the finding.
    StillNonCompliant,
}

impl Kind {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ApprovalRequest => "approval_request",
            Kind::FixFailed => "fix_failed",
            Kind::DeadLettered => "dead_lettered",
            Kind::GuardTripped => "guard_tripped",
            Kind::GuardReset => "guard_reset",
            Kind::StillNonCompliant => "still_non_compliant",
        }
    }
}

/// One message for the topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// What it is about.
    pub kind: Kind,
    /// `LOW` … `CRITICAL` (the finding's), or [`UNKNOWN_SEVERITY`].
    pub severity: String,
    /// The finding's account, or [`ALL_ACCOUNTS`].
    pub account: String,
    /// The body.
    pub body: ChatbotMessage,
}

impl Notification {
    /// The message attributes, in [`ATTRIBUTES`] order (all String).
    pub fn attributes(&self) -> [(&'static str, String); 3] {
        [
            ("severity", self.severity.clone()),
            ("kind", self.kind.as_str().to_string()),
            ("account", self.account.clone()),
        ]
    }

    /// The body as published.
    pub fn body_json(&self) -> String {
        // Plain strings, lists and maps: serialising cannot fail.
        serde_json::to_string(&self.body).expect("a notification serialises")
    }
}

/// An AWS Chatbot custom notification (see the module documentation for the source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatbotMessage {
    /// Always [`SCHEMA_VERSION`].
    pub version: String,
    /// Always [`SOURCE`].
    pub source: String,
    /// Event identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What the chat card shows.
    pub content: Content,
    /// Threading and context.
    #[serde(default)]
    pub metadata: Metadata,
}

/// `content` of a custom notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Content {
    /// Always [`TEXT_TYPE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_type: Option<String>,
    /// Heading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Body (markdown); the one content field the schema requires.
    pub description: String,
    /// What to do next, shown as a list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_steps: Vec<String>,
    /// Tags shown on the card.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

/// `metadata` of a custom notification.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    /// Groups the messages about one finding in one chat thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    /// One line, for push notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The [`Kind`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The resource and Config rule concerned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_resources: Vec<String>,
    /// Off: an approval is given with `redress approvals approve`, as an identity AWS
    /// verifies, never by a chat button.
    #[serde(default)]
    pub enable_custom_actions: bool,
    /// The facts as key/value pairs (approval id, rule, resource, account, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_context: BTreeMap<String, String>,
}

impl ChatbotMessage {
    /// Parses a body strictly (no field the schema does not have) and checks it.
    pub fn parse(json: &str) -> Result<ChatbotMessage, String> {
        let m: ChatbotMessage = serde_json::from_str(json).map_err(|e| e.to_string())?;
        m.check()?;
        Ok(m)
    }

    /// Checks the schema's fixed and required fields and redress's length limits.
    pub fn check(&self) -> Result<(), String> {
        if self.version != SCHEMA_VERSION {
            return Err(format!("version must be {SCHEMA_VERSION}"));
        }
        if self.source != SOURCE {
            return Err(format!("source must be {SOURCE}"));
        }
        let c = &self.content;
        if c.text_type.as_deref().is_some_and(|t| t != TEXT_TYPE) {
            return Err(format!("textType must be {TEXT_TYPE}"));
        }
        if c.description.trim().is_empty() {
            return Err("content.description is required".into());
        }
        if c.description.chars().count() > DESCRIPTION_MAX {
            return Err(format!("description longer than {DESCRIPTION_MAX}"));
        }
        if c.title
            .as_ref()
            .is_some_and(|t| t.chars().count() > TITLE_MAX)
        {
            return Err(format!("title longer than {TITLE_MAX}"));
        }
        if c.next_steps.len() > LIST_MAX || c.keywords.len() > LIST_MAX {
            return Err(format!("more than {LIST_MAX} next steps or keywords"));
        }
        Ok(())
    }
}

/// What the settler settled for one message.
#[derive(Debug, Clone, Copy)]
pub struct Settlement<'a> {
    /// `router` or `executor`.
    pub worker: &'a str,
    /// Whether its outcome is durable (sent, acknowledged); otherwise it comes back,
    /// and only its guard notes are told.
    pub durable: bool,
    /// Its outcome records.
    pub records: &'a [AuditRecord],
    /// Facts observed while deciding (guard trips and resets).
    pub notes: &'a [AuditRecord],
    /// The approval requests it sent to the approvals queue.
    pub requests: &'a [ApprovalRequest],
    /// Set when it was dead-lettered: the class and the reason.
    pub dead_lettered: Option<(&'a str, &'a str)>,
}

/// The messages one settled verdict gives rise to, at most one per subject:
/// - each guard trip or reset in its notes, durable or not;
/// - once durable: each approval request it sent (a still-non-compliant record about
///   the same finding makes it a [`Kind::StillNonCompliant`] message that carries the
///   request); a still-non-compliant record with no request; and one failure message,
///   [`Kind::FixFailed`] when a record says a fix failed, else [`Kind::DeadLettered`]
///   when the message was dead-lettered without a request being put back (a request
///   put back is the message people act on). Dry runs are never told.
pub fn notifications(s: &Settlement<'_>) -> Vec<Notification> {
    let mut out: Vec<Notification> = s.notes.iter().filter_map(guard).collect();
    if !s.durable {
        return out;
    }
    let live = |r: &&AuditRecord| !r.dry_run;
    let still: Vec<&AuditRecord> = s
        .records
        .iter()
        .filter(live)
        .filter(|r| r.decision == AuditDecision::StillNonCompliant)
        .collect();
    for request in s.requests {
        let f = &request.task.finding;
        let about = still.iter().copied().find(|r| {
            r.resource_id.as_deref() == Some(f.resource_id.as_str())
                && r.account.as_deref() == Some(f.account_id.as_str())
        });
        let why = s
            .records
            .iter()
            .filter(live)
            .find(|r| {
                r.decision == AuditDecision::ApprovalRequested
                    && r.resource_id.as_deref() == Some(f.resource_id.as_str())
            })
            .and_then(|r| r.reason.as_deref());
        out.push(approval(request, why, about));
    }
    for r in still {
        let told = s.requests.iter().any(|q| {
            r.resource_id.as_deref() == Some(q.task.finding.resource_id.as_str())
                && r.account.as_deref() == Some(q.task.finding.account_id.as_str())
        });
        if !told {
            out.push(still_non_compliant(r));
        }
    }
    let failed = s
        .records
        .iter()
        .filter(live)
        .find(|r| r.outcome == Some(Outcome::Failed));
    match (failed, s.dead_lettered) {
        (Some(r), dead) => out.push(failure(Kind::FixFailed, s.worker, r, dead)),
        (None, Some(dead)) if s.requests.is_empty() => {
            let about = s.records.iter().find(|r| r.resource_id.is_some());
            out.push(dead_letter(s.worker, about, dead));
        }
        _ => {}
    }
    out
}

/// The facts of a finding as a message needs them.
struct About<'a> {
    rule: Option<&'a str>,
    config_rule: Option<&'a str>,
    config_rule_arn: Option<&'a str>,
    resource_id: Option<&'a str>,
    resource_type: Option<&'a str>,
    account: Option<&'a str>,
    region: Option<&'a str>,
    severity: String,
}

impl<'a> About<'a> {
    fn of_record(r: &'a AuditRecord) -> About<'a> {
        About {
            rule: r.rule.as_deref(),
            config_rule: r.config_rule.as_deref(),
            config_rule_arn: r.config_rule_arn.as_deref(),
            resource_id: r.resource_id.as_deref(),
            resource_type: r.resource_type.as_deref(),
            account: r.account.as_deref(),
            region: r.region.as_deref(),
            severity: r
                .severity
                .map_or_else(|| UNKNOWN_SEVERITY.to_string(), |s| s.to_string()),
        }
    }

    /// A message with no finding (unreadable input).
    fn unknown() -> About<'a> {
        About {
            rule: None,
            config_rule: None,
            config_rule_arn: None,
            resource_id: None,
            resource_type: None,
            account: None,
            region: None,
            severity: UNKNOWN_SEVERITY.into(),
        }
    }

    fn of_request(q: &'a ApprovalRequest) -> About<'a> {
        let f = &q.task.finding;
        About {
            rule: Some(&q.task.rule_id),
            config_rule: Some(&f.config_rule_name),
            config_rule_arn: f.config_rule_arn.as_deref(),
            resource_id: Some(&f.resource_id),
            resource_type: Some(&f.resource_type),
            account: Some(&f.account_id),
            region: Some(&f.region),
            severity: q.task.severity.to_string(),
        }
    }

    /// `` `sg-1` (AWS::EC2::SecurityGroup, account 111122223333, eu-west-1) ``.
    fn resource_line(&self) -> String {
        let id = self.resource_id.map_or("(unknown resource)".into(), quote);
        let mut facts: Vec<String> = Vec::new();
        if let Some(t) = self.resource_type {
            facts.push(quote(t));
        }
        if let Some(a) = self.account {
            facts.push(format!("account {}", quote(a)));
        }
        if let Some(r) = self.region {
            facts.push(quote(r));
        }
        if facts.is_empty() {
            id
        } else {
            format!("{id} ({})", facts.join(", "))
        }
    }

    /// Console links to the resource and to the Config rule, where known.
    fn links(&self) -> Vec<String> {
        let Some(region) = self.region.filter(|r| safe_region(r)) else {
            return Vec::new();
        };
        let base = console(region);
        let mut out = Vec::new();
        if let (Some(id), Some(ty)) = (self.resource_id, self.resource_type) {
            out.push(format!(
                "Resource in the console: {base}/config/home?region={region}#/resources/details?resourceId={}&resourceType={}",
                encode(id),
                encode(ty)
            ));
        }
        if let Some(rule) = self.config_rule {
            out.push(format!(
                "Config rule in the console: {base}/config/home?region={region}#/rules/details?configRuleName={}",
                encode(rule)
            ));
        }
        out
    }

    /// Stable per finding, so its request, failure and re-check share one chat thread.
    fn thread(&self) -> Option<String> {
        let id = self.resource_id?;
        let key = [
            self.account.unwrap_or_default(),
            self.region.unwrap_or_default(),
            self.rule.unwrap_or_default(),
            id,
        ]
        .join("\u{1f}");
        let h = Sha256::digest(key.as_bytes());
        Some(format!(
            "redress-{}",
            h[..8]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ))
    }

    fn context(&self, kind: Kind) -> BTreeMap<String, String> {
        let mut c = BTreeMap::new();
        c.insert("kind".into(), kind.as_str().into());
        c.insert("severity".into(), self.severity.clone());
        for (k, v) in [
            ("rule", self.rule),
            ("configRule", self.config_rule),
            ("resourceId", self.resource_id),
            ("resourceType", self.resource_type),
            ("account", self.account),
            ("region", self.region),
        ] {
            if let Some(v) = v {
                c.insert(k.into(), short(v));
            }
        }
        c
    }

    fn related(&self) -> Vec<String> {
        [self.resource_id, self.config_rule_arn]
            .into_iter()
            .flatten()
            .map(short)
            .collect()
    }

    /// A notification about this finding.
    fn message(
        &self,
        kind: Kind,
        id: Option<String>,
        title: String,
        description: String,
        mut next_steps: Vec<String>,
        extra: &[(&str, String)],
    ) -> Notification {
        next_steps.extend(self.links());
        let mut context = self.context(kind);
        for (k, v) in extra {
            context.insert((*k).into(), v.clone());
        }
        let keywords = [Some(self.severity.as_str()), Some(kind.as_str()), self.rule]
            .into_iter()
            .flatten()
            .map(short)
            .collect();
        Notification {
            kind,
            severity: self.severity.clone(),
            account: self.account.map_or_else(|| ALL_ACCOUNTS.to_string(), short),
            body: chatbot(
                kind,
                id,
                title,
                description,
                next_steps,
                keywords,
                self.thread(),
                self.related(),
                context,
            ),
        }
    }
}

#[allow(clippy::too_many_arguments)] // one field each of the schema
fn chatbot(
    kind: Kind,
    id: Option<String>,
    title: String,
    description: String,
    next_steps: Vec<String>,
    keywords: Vec<String>,
    thread: Option<String>,
    related: Vec<String>,
    context: BTreeMap<String, String>,
) -> ChatbotMessage {
    let title = cut(&title, TITLE_MAX);
    ChatbotMessage {
        version: SCHEMA_VERSION.into(),
        source: SOURCE.into(),
        id,
        content: Content {
            text_type: Some(TEXT_TYPE.into()),
            title: Some(title.clone()),
            description: cut(&description, DESCRIPTION_MAX),
            next_steps: next_steps.into_iter().take(LIST_MAX).collect(),
            keywords: keywords.into_iter().take(LIST_MAX).collect(),
        },
        metadata: Metadata {
            thread_id: thread,
            summary: Some(title),
            event_type: Some(kind.as_str().into()),
            related_resources: related,
            enable_custom_actions: false,
            additional_context: context,
        },
    }
}

/// A new approval request (or, with `still`, the request made because a fix did not
/// hold). `why`: the reason recorded with the request (a guard stopped the fix, ...).
fn approval(q: &ApprovalRequest, why: Option<&str>, still: Option<&AuditRecord>) -> Notification {
    let about = About::of_request(q);
    let f = &q.task.finding;
    let action = q.describe_action();
    let mut d = vec![
        format!("*What:* {} on {}", quote(&action), about.resource_line()),
        format!(
            "*Why:* Config rule {} reports it {}{}; policy rule {} ({}) needs a person to approve the fix",
            quote(&f.config_rule_name),
            quote(&f.compliance),
            f.annotation
                .as_deref()
                .map(|a| format!(": {}", quote(a)))
                .unwrap_or_default(),
            quote(&q.task.rule_id),
            about.severity,
        ),
    ];
    if let Some(why) = why.and_then(|w| held_because(w, &q.id)) {
        d.push(format!("*Held because:* {}", quote(&why)));
    }
    if let Some(r) = &q.returned {
        d.push(format!(
            "*Returned:* an earlier approval did not run: {}",
            quote(&r.why)
        ));
    }
    if let Some(r) = still {
        d.push(format!(
            "*Fix did not hold:* {}",
            quote(
                r.reason
                    .as_deref()
                    .unwrap_or("Config still reports the finding")
            )
        ));
    }
    for line in q.preview.iter().take(5) {
        d.push(format!("*Would change:* {}", quote(line)));
    }
    d.push(format!("*Expires:* {}", quote(&q.expires_at)));
    let steps = vec![
        format!("Inspect: `redress approvals show {}`", plain(&q.id)),
        format!(
            "Decide: `redress approvals approve {id} --reason TEXT` or `redress approvals reject {id} --reason TEXT`",
            id = plain(&q.id)
        ),
    ];
    let (kind, title) = match still {
        Some(_) => (
            Kind::StillNonCompliant,
            format!(
                "[{}] Still non-compliant after its fix, approval needed: {}",
                about.severity,
                plain_resource(&f.resource_id)
            ),
        ),
        None => (
            Kind::ApprovalRequest,
            format!(
                "[{}] Approval needed: {} on {}",
                about.severity,
                plain(&q.label()),
                plain_resource(&f.resource_id)
            ),
        ),
    };
    about.message(
        kind,
        Some(q.id.clone()),
        title,
        d.join("\n"),
        steps,
        &[
            ("approvalId", plain(&q.id)),
            ("expiresAt", plain(&q.expires_at)),
        ],
    )
}

/// A fix that ran and Config does not confirm, with no request in the same verdict.
fn still_non_compliant(r: &AuditRecord) -> Notification {
    let about = About::of_record(r);
    let mut d = vec![format!("*Resource:* {}", about.resource_line())];
    if let Some(a) = &r.action {
        d.push(format!("*Fix that ran:* {}", quote(a)));
    }
    d.push(format!(
        "*Config says:* {}",
        quote(r.reason.as_deref().unwrap_or("still NON_COMPLIANT"))
    ));
    about.message(
        Kind::StillNonCompliant,
        r.event_id.as_deref().map(short),
        format!(
            "[{}] Still non-compliant after its fix: {}",
            about.severity,
            r.resource_id
                .as_deref()
                .map_or("a resource".into(), plain_resource)
        ),
        d.join("\n"),
        vec!["Pending requests: `redress approvals list`".into()],
        &[],
    )
}

/// The queue name the DLQ commands take for a worker's dead letters.
fn dlq_of(worker: &str) -> &'static str {
    if worker == "router" {
        "events"
    } else {
        "tasks"
    }
}

/// Steps for a dead letter: inspect it, then replay it once the cause is fixed.
fn dlq_steps(worker: &str, resource: Option<&str>) -> Vec<String> {
    let q = dlq_of(worker);
    let mut steps = vec![format!("Inspect: `redress dlq list {q}`")];
    steps.push(match resource {
        Some(id) => format!(
            "Once the cause is fixed: `redress dlq replay {q} --resource {}`",
            plain(id)
        ),
        None => format!("Once the cause is fixed: `redress dlq replay {q}`"),
    });
    steps
}

/// A fix that failed: how, and where the message went.
fn failure(kind: Kind, worker: &str, r: &AuditRecord, dead: Option<(&str, &str)>) -> Notification {
    let about = About::of_record(r);
    let mut d = vec![format!("*Resource:* {}", about.resource_line())];
    if let Some(a) = &r.action {
        d.push(format!("*Fix:* {}", quote(a)));
    }
    d.push(format!(
        "*Error:* {}",
        quote(
            r.reason
                .as_deref()
                .or(dead.map(|(_, why)| why))
                .unwrap_or("not given")
        )
    ));
    if let Some(x) = &r.execution_id {
        d.push(format!("*Automation execution:* {}", quote(x)));
    }
    let steps = match dead {
        Some((class, _)) => {
            d.push(format!(
                "*Now:* dead-lettered ({}); nothing more is tried until someone replays it",
                plain(class)
            ));
            dlq_steps(worker, r.resource_id.as_deref())
        }
        None => vec!["History: `redress history --resource ID`".into()],
    };
    about.message(
        kind,
        r.event_id.as_deref().map(short),
        format!(
            "[{}] Fix failed: {} on {}",
            about.severity,
            r.action.as_deref().map_or("fix".into(), plain),
            r.resource_id
                .as_deref()
                .map_or("a resource".into(), plain_resource)
        ),
        d.join("\n"),
        steps,
        &[],
    )
}

/// A message dead-lettered without a failed fix (unusable input, a refusal).
fn dead_letter(worker: &str, r: Option<&AuditRecord>, (class, why): (&str, &str)) -> Notification {
    let about = r.map_or_else(About::unknown, About::of_record);
    let d = [
        format!("*Message:* {}", about.resource_line()),
        format!("*Class:* {}", plain(class)),
        format!("*Reason:* {}", quote(why)),
    ];
    about.message(
        Kind::DeadLettered,
        r.and_then(|r| r.event_id.as_deref()).map(short),
        format!(
            "[{}] Dead-lettered by the {}: {}",
            about.severity,
            plain(worker),
            about.resource_id.map_or("a message".into(), plain_resource)
        ),
        d.join("\n"),
        dlq_steps(worker, about.resource_id),
        &[],
    )
}

/// A guard trip or reset note as a message (other notes are not told).
fn guard(n: &AuditRecord) -> Option<Notification> {
    let (kind, severity, title, step) = match n.decision {
        AuditDecision::GuardTripped => (
            Kind::GuardTripped,
            "HIGH",
            "Guard tripped: automatic fixes are stopped",
            "Automatic fixes now wait for approval: `redress approvals list`",
        ),
        AuditDecision::GuardReset => (
            Kind::GuardReset,
            "LOW",
            "Guard reset: automatic fixes resume",
            "Nothing to do; fixes run as the policy says",
        ),
        _ => return None,
    };
    let reason = n.reason.as_deref().unwrap_or("not given");
    let mut context = BTreeMap::new();
    context.insert("kind".to_string(), kind.as_str().to_string());
    context.insert("worker".to_string(), plain(n.worker));
    Some(Notification {
        kind,
        severity: severity.into(),
        account: ALL_ACCOUNTS.into(),
        body: chatbot(
            kind,
            None,
            title.into(),
            format!(
                "*Guard:* {}\n*When:* {}",
                quote(reason),
                quote(&n.timestamp)
            ),
            vec![step.into()],
            vec![severity.into(), kind.as_str().into()],
            Some("redress-guards".into()),
            Vec::new(),
            context,
        ),
    })
}

/// What a request's audit reason says beyond its approval id (`rate cap reached;
/// approval id ap-…` → `rate cap reached`), if anything.
fn held_because(reason: &str, id: &str) -> Option<String> {
    let rest = reason
        .replace(&format!("; approval id {id}"), "")
        .replace(&format!("approval id {id}"), "");
    let rest = rest.trim().trim_end_matches(';').trim();
    (!rest.is_empty()).then(|| rest.to_string())
}

/// Untrusted text made inert for chat markdown and cut short: no control or bidi
/// characters, no backticks (it goes in a code span), no `<…>` (Slack's links and
/// `<!channel>` mentions), no `@` mentions.
fn plain(s: &str) -> String {
    let cleaned: String = crate::text::clean(s)
        .chars()
        .map(|c| match c {
            '`' => '\'',
            '<' => '‹',
            '>' => '›',
            '@' => '＠',
            '*' | '_' | '~' | '|' => '·',
            c => c,
        })
        .collect();
    cut(&cleaned, QUOTE_MAX)
}

/// Untrusted text in a code span (rendered literally).
fn quote(s: &str) -> String {
    format!("`{}`", plain(s))
}

/// A resource id for a title, cut shorter than other text (a long parameter path).
fn plain_resource(id: &str) -> String {
    plain(&cut(id, 80))
}

/// Untrusted text for attributes and context, without markdown concerns.
fn short(s: &str) -> String {
    cut(&crate::text::clean(s), QUOTE_MAX)
}

/// At most `max` characters, `…` marking a cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A region name fit for a URL (validated findings have one; a forged record may not).
fn safe_region(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The console's address for a region's partition.
fn console(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://{region}.console.amazonaws.cn")
    } else if region.starts_with("us-gov-") {
        format!("https://{region}.console.amazonaws-us-gov.com")
    } else {
        format!("https://{region}.console.aws.amazon.com")
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_message;
    use crate::message::{Finding, Task};
    use crate::policy::{Fix, RenderedAction, Severity};

    fn finding() -> Finding {
        let path = format!(
            "{}/../tests/fixtures/events/sg-ssh-open-noncompliant.json",
            env!("CARGO_MANIFEST_DIR")
        );
        Finding::from_event(&parse_message(&std::fs::read_to_string(path).unwrap()).unwrap())
    }

    fn request() -> ApprovalRequest {
        let task = Task::new("sg-open-admin-ports", Severity::High, finding());
        ApprovalRequest {
            version: crate::message::MESSAGE_VERSION,
            id: task.approval_id(),
            proposed_action: RenderedAction::Fix(Fix::RevokePublicIngress {
                ports: Some(vec![22]),
            }),
            preview: vec!["revoke tcp 22 from 0.0.0.0/0".into()],
            requested_at: "2026-11-02T09:14:03Z".into(),
            expires_at: "2026-11-09T09:14:03Z".into(),
            policy_version: None,
            returned: None,
            task,
        }
    }

    fn record(decision: AuditDecision) -> AuditRecord {
        AuditRecord::for_finding(
            "executor",
            &finding(),
            Some("sg-open-admin-ports"),
            Some(Severity::High),
            decision,
        )
    }

    fn settle<'a>(
        records: &'a [AuditRecord],
        notes: &'a [AuditRecord],
        requests: &'a [ApprovalRequest],
        dead: Option<(&'a str, &'a str)>,
    ) -> Vec<Notification> {
        notifications(&Settlement {
            worker: "executor",
            durable: true,
            records,
            notes,
            requests,
            dead_lettered: dead,
        })
    }

    /// The schema as documented, checked on the JSON itself rather than through the
    /// type that wrote it: the fixed fields, `content.description` present, every
    /// field one the schema names and of its type.
    fn assert_chatbot_schema(json: &str) {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let top: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        for k in &top {
            assert!(
                ["version", "source", "id", "content", "metadata"].contains(k),
                "{k}"
            );
        }
        assert_eq!(v["version"], "1.0");
        assert_eq!(v["source"], "custom");
        let c = v["content"].as_object().unwrap();
        for k in c.keys() {
            assert!(
                ["textType", "title", "description", "nextSteps", "keywords"].contains(&k.as_str()),
                "{k}"
            );
        }
        assert_eq!(c["textType"], "client-markdown");
        assert!(!c["description"].as_str().unwrap().is_empty());
        for list in ["nextSteps", "keywords"] {
            if let Some(l) = c.get(list) {
                assert!(l.as_array().unwrap().iter().all(|s| s.is_string()));
            }
        }
        let m = v["metadata"].as_object().unwrap();
        for k in m.keys() {
            assert!(
                [
                    "threadId",
                    "summary",
                    "eventType",
                    "relatedResources",
                    "enableCustomActions",
                    "additionalContext"
                ]
                .contains(&k.as_str()),
                "{k}"
            );
        }
        if let Some(ctx) = m.get("additionalContext") {
            assert!(ctx.as_object().unwrap().values().all(|s| s.is_string()));
        }
        ChatbotMessage::parse(json).unwrap();
    }

    #[test]
    fn an_approval_request_says_what_why_and_how_to_act() {
        let q = request();
        let mut r = record(AuditDecision::ApprovalRequested);
        r.reason = Some(format!("rate cap reached; approval id {}", q.id));
        let out = settle(&[r], &[], std::slice::from_ref(&q), None);
        assert_eq!(out.len(), 1);
        let n = &out[0];
        assert_eq!(n.kind, Kind::ApprovalRequest);
        assert_eq!(
            n.attributes(),
            [
                ("severity", "HIGH".to_string()),
                ("kind", "approval_request".to_string()),
                ("account", q.task.finding.account_id.clone()),
            ]
        );
        let json = n.body_json();
        assert_chatbot_schema(&json);
        let c = &n.body.content;
        assert!(c.title.as_deref().unwrap().contains("Approval needed"));
        assert!(c.description.contains("revoke_public_ingress") || c.description.contains("22"));
        assert!(c.description.contains("*Held because:* `rate cap reached`"));
        assert!(c.description.contains(&q.task.finding.config_rule_name));
        let show = format!("redress approvals show {}", q.id);
        assert!(c.next_steps.iter().any(|s| s.contains(&show)), "{c:?}");
        let region = &q.task.finding.region;
        assert!(c.next_steps.iter().any(|s| s.contains(&format!(
            "https://{region}.console.aws.amazon.com/config/home?region={region}#/resources/details?resourceId={}",
            q.task.finding.resource_id
        ))));
        assert!(c
            .next_steps
            .iter()
            .any(|s| s.contains("#/rules/details?configRuleName=")));
        assert_eq!(n.body.metadata.additional_context["approvalId"], q.id);
        assert!(!n.body.metadata.enable_custom_actions);
    }

    #[test]
    fn a_failed_fix_that_was_dead_lettered_is_one_message() {
        let mut r = record(AuditDecision::Remediate);
        r.outcome = Some(Outcome::Failed);
        r.action = Some("revoke_public_ingress".into());
        r.reason = Some("InvalidGroup.NotFound: the group does not exist".into());
        let out = settle(&[r], &[], &[], Some(("permanent", "InvalidGroup.NotFound")));
        assert_eq!(out.len(), 1);
        let n = &out[0];
        assert_eq!(n.kind, Kind::FixFailed);
        assert_eq!(n.attributes()[1].1, "fix_failed");
        assert_chatbot_schema(&n.body_json());
        assert!(n
            .body
            .content
            .description
            .contains("dead-lettered (permanent)"));
        assert!(n
            .body
            .content
            .next_steps
            .iter()
            .any(|s| s.contains("redress dlq list tasks")));
    }

    #[test]
    fn nothing_but_guard_notes_until_durable_and_never_a_dry_run() {
        let mut failed = record(AuditDecision::Remediate);
        failed.outcome = Some(Outcome::Failed);
        let trip = AuditRecord::bare("executor", AuditDecision::GuardTripped)
            .reason("circuit breaker opened");
        let out = notifications(&Settlement {
            worker: "executor",
            durable: false,
            records: std::slice::from_ref(&failed),
            notes: std::slice::from_ref(&trip),
            requests: &[],
            dead_lettered: None,
        });
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::GuardTripped);
        assert_eq!(out[0].account, ALL_ACCOUNTS);
        assert_eq!(out[0].severity, "HIGH");
        assert_chatbot_schema(&out[0].body_json());
        let mut dry = failed.clone();
        dry.dry_run = true;
        assert!(settle(&[dry], &[], &[], None).is_empty());
        let reset = AuditRecord::bare("executor", AuditDecision::GuardReset);
        assert_eq!(settle(&[], &[reset], &[], None)[0].kind, Kind::GuardReset);
    }

    #[test]
    fn a_refusal_put_back_as_a_request_is_told_once_as_the_request() {
        let q = request();
        let mut dead = record(AuditDecision::DeadLettered);
        dead.reason = Some("approver not allowed".into());
        let out = settle(
            &[dead],
            &[],
            std::slice::from_ref(&q),
            Some(("refused", "approver not allowed")),
        );
        assert_eq!(
            out.iter().map(|n| n.kind).collect::<Vec<_>>(),
            [Kind::ApprovalRequest]
        );
        let alone = settle(&[], &[], &[], Some(("invalid_input", "not JSON")));
        assert_eq!(alone[0].kind, Kind::DeadLettered);
        assert_eq!(alone[0].severity, UNKNOWN_SEVERITY);
        assert_chatbot_schema(&alone[0].body_json());
    }

    #[test]
    fn still_non_compliant_with_its_new_request_is_one_message() {
        let q = request();
        let mut still = record(AuditDecision::StillNonCompliant);
        still.reason = Some("Config reports NON_COMPLIANT at the deadline".into());
        let out = settle(
            &[record(AuditDecision::ApprovalRequested), still.clone()],
            &[],
            std::slice::from_ref(&q),
            None,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::StillNonCompliant);
        assert!(out[0].body.content.description.contains("Fix did not hold"));
        assert!(out[0]
            .body
            .content
            .next_steps
            .iter()
            .any(|s| s.contains("approvals show")));
        let alone = settle(&[still], &[], &[], None);
        assert_eq!(alone[0].kind, Kind::StillNonCompliant);
        assert_chatbot_schema(&alone[0].body_json());
        // One thread per finding: the request and the re-check land together.
        assert_eq!(
            out[0].body.metadata.thread_id,
            alone[0].body.metadata.thread_id
        );
    }

    #[test]
    fn hostile_text_is_inert_and_short() {
        let mut r = record(AuditDecision::Remediate);
        r.outcome = Some(Outcome::Failed);
        r.reason = Some(format!(
            "<!channel> `x` *bold* @here \u{1b}[2K\u{202e}{}",
            "a".repeat(20_000)
        ));
        let n = &settle(&[r], &[], &[], None)[0];
        let d = &n.body.content.description;
        assert!(!d.contains("<!channel>") && !d.contains("@here") && !d.contains('\u{1b}'));
        assert!(!d.contains("*bold*"));
        assert!(d.chars().count() < 1000, "{}", d.len());
        assert_chatbot_schema(&n.body_json());
    }

    #[test]
    fn the_check_enforces_the_schema_and_the_limits() {
        let good = settle(&[], &[], std::slice::from_ref(&request()), None)[0]
            .body
            .clone();
        assert!(good.check().is_ok());
        let mut m = good.clone();
        m.version = "2.0".into();
        assert!(m.check().is_err());
        let mut m = good.clone();
        m.source = "aws.config".into();
        assert!(m.check().is_err());
        let mut m = good.clone();
        m.content.description = " ".into();
        assert!(m.check().is_err());
        let mut m = good.clone();
        m.content.title = Some("t".repeat(TITLE_MAX + 1));
        assert!(m.check().is_err());
        let mut m = good.clone();
        m.content.description = "d".repeat(DESCRIPTION_MAX + 1);
        assert!(m.check().is_err());
        let unknown = good_json_with_extra(&good);
        assert!(ChatbotMessage::parse(&unknown).is_err());
        assert!(
            ChatbotMessage::parse(r#"{"version":"1.0","source":"custom","content":{}}"#).is_err()
        );
    }

    fn good_json_with_extra(m: &ChatbotMessage) -> String {
        let mut v = serde_json::to_value(m).unwrap();
        v["content"]["color"] = "red".into();
        v.to_string()
    }

    #[test]
    fn console_links_follow_the_partition_and_encode_ids() {
        assert_eq!(
            console("cn-north-1"),
            "https://cn-north-1.console.amazonaws.cn"
        );
        assert_eq!(
            console("us-gov-west-1"),
            "https://us-gov-west-1.console.amazonaws-us-gov.com"
        );
        assert_eq!(encode("/app/current/db url"), "%2Fapp%2Fcurrent%2Fdb%20url");
        let mut a = About::unknown();
        a.region = Some("eu-west-1#x");
        a.config_rule = Some("r");
        assert!(a.links().is_empty(), "a forged region makes no link");
    }
}
