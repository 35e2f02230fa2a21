//! The approvals board: what is pending, moot or expired, from the messages on the
//! approvals queue. Pure: the CLI reads the queue, this decides, the CLI acts.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::message::{ApprovalRequest, ApprovalsMessage, MootNotice};
use crate::time::parse_rfc3339;

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for a person.
    Pending,
    /// The resource became compliant after the request was made.
    Moot,
    /// Past its `expires_at`.
    Expired,
}

/// One request and every queue message that carries it (duplicates share an id).
#[derive(Debug, Clone)]
pub struct Entry<H> {
    /// The request (from its first copy).
    pub request: ApprovalRequest,
    /// Its status now.
    pub status: Status,
    /// Handles of every copy, so acting on it removes them all.
    pub copies: Vec<H>,
    /// Copies under this id ask for different things (another finding, rule, action or
    /// dry-run mark): someone who can write to the approvals queue forged one, so the
    /// request must not be approved until they are cleared (reject it and let the
    /// pipeline ask again).
    pub conflicting: bool,
}

/// What a copy asks for: everything but its timestamps, preview and `returned` note
/// (an undo's plan, reason, expiry and requester included).
#[allow(clippy::type_complexity)]
fn asks(
    r: &ApprovalRequest,
) -> (
    String,
    String,
    &crate::policy::RenderedAction,
    bool,
    u32,
    Option<&crate::message::UndoTask>,
) {
    let f = &r.task.finding;
    (
        r.task.rule_id.clone(),
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{}\u{1f}{:?}",
            f.config_rule_name,
            f.account_id,
            f.region,
            f.resource_type,
            f.resource_id,
            f.evaluation_time
        ),
        &r.proposed_action,
        r.task.dry_run,
        r.task.generation,
        r.task.undo.as_ref(),
    )
}

/// Everything on the approvals queue, sorted out.
#[derive(Debug, Clone)]
pub struct Board<H> {
    /// Requests, oldest first, one entry per id.
    pub entries: Vec<Entry<H>>,
    /// Moot notices with their handles.
    pub notices: Vec<(MootNotice, H)>,
    /// Handles of requests whose id does not match their task (not made by redress).
    pub forged: Vec<H>,
}

/// Whether a notice is about the request's finding: the same policy rule and resource,
/// reported by the same Config rule. When the request's finding names its Config rule's
/// ARN, only a COMPLIANT result from that very rule moots it: a look-alike rule (same
/// name, another owner) cannot make a pending request disappear.
fn same_resource(n: &MootNotice, r: &ApprovalRequest) -> bool {
    let f = &r.task.finding;
    let same_rule = n
        .config_rule_name
        .as_ref()
        .is_none_or(|name| *name == f.config_rule_name);
    let same_arn = f
        .config_rule_arn
        .as_ref()
        .is_none_or(|arn| n.config_rule_arn.as_ref() == Some(arn));
    n.rule_id == r.task.rule_id
        && n.account_id == f.account_id
        && n.region == f.region
        && n.resource_id == f.resource_id
        && same_rule
        && same_arn
}

/// Builds the board. A request is moot when a notice for its rule and resource was seen
/// at or after the request; expired when `now` is past its expiry (expiry wins). A
/// request whose id is not its own task's (`Task::approval_id`) is not one redress made:
/// it is left out, with its handle in `forged`.
pub fn board<H>(messages: Vec<(ApprovalsMessage, H)>, now: SystemTime) -> Board<H> {
    let mut by_id: BTreeMap<String, Entry<H>> = BTreeMap::new();
    let mut notices = Vec::new();
    let mut forged = Vec::new();
    for (message, handle) in messages {
        match message {
            ApprovalsMessage::Moot(n) => notices.push((n, handle)),
            ApprovalsMessage::Request(r) if r.id != r.task.approval_id() => forged.push(handle),
            ApprovalsMessage::Request(r) => match by_id.get_mut(&r.id) {
                Some(e) => {
                    e.conflicting |= asks(&e.request) != asks(&r);
                    e.copies.push(handle);
                }
                None => {
                    by_id.insert(
                        r.id.clone(),
                        Entry {
                            request: *r,
                            status: Status::Pending,
                            copies: vec![handle],
                            conflicting: false,
                        },
                    );
                }
            },
        }
    }
    let mut entries: Vec<Entry<H>> = by_id.into_values().collect();
    for e in &mut entries {
        let expired = parse_rfc3339(&e.request.expires_at).is_some_and(|t| now > t);
        let requested = parse_rfc3339(&e.request.requested_at);
        // An undo is asked of a compliant resource on purpose: nothing moots it.
        let moot = e.request.task.undo.is_none()
            && notices.iter().any(|(n, _)| {
                same_resource(n, &e.request)
                    && match (parse_rfc3339(&n.seen_at), requested) {
                        (Some(seen), Some(req)) => seen >= req,
                        _ => true,
                    }
            });
        e.status = if expired {
            Status::Expired
        } else if moot {
            Status::Moot
        } else {
            Status::Pending
        };
    }
    entries.sort_by(|a, b| {
        (a.request.requested_at.as_str(), a.request.id.as_str())
            .cmp(&(b.request.requested_at.as_str(), b.request.id.as_str()))
    });
    Board {
        entries,
        notices,
        forged,
    }
}

impl<H> Board<H> {
    /// The entry with this id.
    pub fn find(&self, id: &str) -> Option<&Entry<H>> {
        self.entries.iter().find(|e| e.request.id == id)
    }

    /// Notices no pending request refers to: once moot requests are pruned they have
    /// served their purpose.
    pub fn stale_notices(&self) -> impl Iterator<Item = &(MootNotice, H)> {
        self.notices.iter().filter(|(n, _)| {
            !self
                .entries
                .iter()
                .any(|e| e.status == Status::Pending && same_resource(n, &e.request))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Finding, Task, MESSAGE_VERSION};
    use crate::policy::{Fix, RenderedAction, Severity};

    /// The real id of the request labelled `label` (its task's approval id).
    fn rid(label: &str) -> String {
        // The tests label request `ap-N` for resource `sg-N`.
        let resource = format!("sg-{}", label.trim_start_matches("ap-"));
        request(
            label,
            &resource,
            "2026-11-08T00:00:00Z",
            "2026-11-15T00:00:00Z",
        )
        .id
    }

    fn request(
        label: &str,
        resource: &str,
        requested: &str,
        expires: &str,
    ) -> Box<ApprovalRequest> {
        let finding = Finding {
            config_rule_arn: None,
            event_id: label.into(),
            config_rule_name: "restricted-ssh".into(),
            resource_id: resource.into(),
            resource_type: "AWS::EC2::SecurityGroup".into(),
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            compliance: "NON_COMPLIANT".into(),
            annotation: None,
            evaluation_time: None,
        };
        let task = Task::new("ssh", Severity::High, finding);
        Box::new(ApprovalRequest {
            version: MESSAGE_VERSION,
            id: task.approval_id(),
            task,
            proposed_action: RenderedAction::Fix(Fix::RevokePublicIngress {
                ports: Some(vec![22]),
            }),
            preview: vec![],
            requested_at: requested.into(),
            expires_at: expires.into(),
            policy_version: None,
            returned: None,
        })
    }

    fn notice(resource: &str, seen: &str) -> MootNotice {
        MootNotice {
            rule_id: "ssh".into(),
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            resource_id: resource.into(),
            event_id: "c".into(),
            seen_at: seen.into(),
            config_rule_name: None,
            config_rule_arn: None,
        }
    }

    fn now() -> SystemTime {
        parse_rfc3339("2026-11-10T00:00:00Z").unwrap()
    }

    #[test]
    fn sorts_oldest_first_and_merges_copies() {
        let b = board(
            vec![
                (
                    ApprovalsMessage::Request(request(
                        "ap-2",
                        "sg-2",
                        "2026-11-09T00:00:00Z",
                        "2026-11-16T00:00:00Z",
                    )),
                    1,
                ),
                (
                    ApprovalsMessage::Request(request(
                        "ap-1",
                        "sg-1",
                        "2026-11-08T00:00:00Z",
                        "2026-11-15T00:00:00Z",
                    )),
                    2,
                ),
                (
                    ApprovalsMessage::Request(request(
                        "ap-2",
                        "sg-2",
                        "2026-11-09T00:00:00Z",
                        "2026-11-16T00:00:00Z",
                    )),
                    3,
                ),
            ],
            now(),
        );
        let ids: Vec<&str> = b.entries.iter().map(|e| e.request.id.as_str()).collect();
        assert_eq!(ids, vec![rid("ap-1"), rid("ap-2")]);
        assert_eq!(b.find(&rid("ap-2")).unwrap().copies, vec![1, 3]);
        assert!(b.entries.iter().all(|e| e.status == Status::Pending));
    }

    #[test]
    fn forged_ids_are_left_out_and_differing_copies_conflict() {
        let genuine = request("x", "sg-1", "2026-11-08T00:00:00Z", "2026-11-15T00:00:00Z");
        let id = genuine.id.clone();
        let mut wrong_id = genuine.clone();
        wrong_id.id = "ap-0000000001".into();
        let mut dry = genuine.clone();
        dry.task.dry_run = true;
        let mut again = genuine.clone();
        again.requested_at = "2026-11-09T00:00:00Z".into();
        let b = board(
            vec![
                (ApprovalsMessage::Request(genuine.clone()), 1),
                (ApprovalsMessage::Request(wrong_id), 2),
                (ApprovalsMessage::Request(again), 3),
            ],
            now(),
        );
        assert_eq!(b.forged, vec![2]);
        let e = b.find(&id).unwrap();
        assert_eq!(e.copies, vec![1, 3]);
        assert!(!e.conflicting, "a duplicate made later is the same request");
        let b = board(
            vec![
                (ApprovalsMessage::Request(genuine), 1),
                (ApprovalsMessage::Request(dry), 2),
            ],
            now(),
        );
        assert!(b.find(&id).unwrap().conflicting);
    }

    #[test]
    fn only_the_same_config_rule_moots_a_request_that_names_its_arn() {
        let arn = "arn:aws:config:eu-west-1:111122223333:config-rule/config-rule-org1";
        let mut r = request(
            "ap-1",
            "sg-1",
            "2026-11-08T00:00:00Z",
            "2026-11-20T00:00:00Z",
        );
        r.task.finding.config_rule_arn = Some(arn.into());
        let later = "2026-11-09T00:00:00Z";
        let look_alike = MootNotice {
            config_rule_arn: Some(
                "arn:aws:config:eu-west-1:111122223333:config-rule/config-rule-evil".into(),
            ),
            ..notice("sg-1", later)
        };
        assert!(!same_resource(&look_alike, &r));
        assert!(
            !same_resource(&notice("sg-1", later), &r),
            "no ARN, no moot"
        );
        let genuine = MootNotice {
            config_rule_arn: Some(arn.into()),
            config_rule_name: Some(r.task.finding.config_rule_name.clone()),
            ..notice("sg-1", later)
        };
        assert!(same_resource(&genuine, &r));
        let other_rule = MootNotice {
            config_rule_name: Some("another-rule".into()),
            ..genuine
        };
        assert!(!same_resource(&other_rule, &r));
    }

    #[test]
    fn moot_only_after_the_request_and_expiry_wins() {
        let b = board(
            vec![
                (
                    ApprovalsMessage::Request(request(
                        "ap-1",
                        "sg-1",
                        "2026-11-08T00:00:00Z",
                        "2026-11-15T00:00:00Z",
                    )),
                    1,
                ),
                (
                    ApprovalsMessage::Request(request(
                        "ap-2",
                        "sg-2",
                        "2026-11-08T00:00:00Z",
                        "2026-11-15T00:00:00Z",
                    )),
                    2,
                ),
                (
                    ApprovalsMessage::Request(request(
                        "ap-3",
                        "sg-3",
                        "2026-11-01T00:00:00Z",
                        "2026-11-08T00:00:00Z",
                    )),
                    3,
                ),
                (
                    ApprovalsMessage::Moot(notice("sg-1", "2026-11-09T00:00:00Z")),
                    4,
                ),
                (
                    ApprovalsMessage::Moot(notice("sg-2", "2026-11-07T00:00:00Z")),
                    5,
                ),
                (
                    ApprovalsMessage::Moot(notice("sg-3", "2026-11-02T00:00:00Z")),
                    6,
                ),
            ],
            now(),
        );
        assert_eq!(b.find(&rid("ap-1")).unwrap().status, Status::Moot);
        assert_eq!(
            b.find(&rid("ap-2")).unwrap().status,
            Status::Pending,
            "notice older than request"
        );
        assert_eq!(b.find(&rid("ap-3")).unwrap().status, Status::Expired);
        let stale: Vec<i32> = b.stale_notices().map(|(_, h)| *h).collect();
        assert_eq!(
            stale,
            vec![4, 6],
            "sg-2's notice still concerns a pending request"
        );
    }
}
