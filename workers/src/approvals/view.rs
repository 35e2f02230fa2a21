//! How approval requests are shown: a table, a full view, and JSON. Every field in
//! human output passes through [`clean`]: it came from an event, a queue message or AWS,
//! and may carry terminal escapes or bidi overrides. JSON keeps the data as it is.

use redress::approval::{Board, Entry, Status};
use redress::message::ApprovalRequest;
use redress::text::clean;
use serde::Serialize;

use super::ledger::Missing;
use crate::error::CliResult;
use crate::output;

fn status_label(s: Status) -> &'static str {
    match s {
        Status::Pending => "pending",
        Status::Moot => "moot",
        Status::Expired => "expired",
    }
}

/// How old an RFC 3339 timestamp is, briefly.
fn age(since: &str) -> String {
    redress::time::parse_rfc3339(since).map_or_else(|| "?".into(), redress::time::age)
}

/// The table `approvals list` prints, oldest first, with a summary line.
pub fn list_table(board: &Board<usize>, expired: usize, unreadable: usize) -> String {
    let live: Vec<&Entry<usize>> = board
        .entries
        .iter()
        .filter(|e| e.status != Status::Expired)
        .collect();
    let mut out = String::new();
    if live.is_empty() {
        out.push_str("No approval requests are waiting.\n");
    } else {
        let mut table = output::table([
            "ID",
            "AGE",
            "STATUS",
            "SEVERITY",
            "RULE",
            "RESOURCE",
            "ACCOUNT/REGION",
            "PROPOSED ACTION",
        ]);
        output::align_right(&mut table, &[1]);
        for e in &live {
            let t = &e.request.task;
            let f = &t.finding;
            // A request an executor sent back says why under its action, in the same cell.
            let mut action = clean(&e.request.describe_action()).into_owned();
            if let Some(ret) = &e.request.returned {
                action.push_str("\nreturned: ");
                action.push_str(&clean(&returned(ret)));
            }
            table.add_row(vec![
                clean(&e.request.id).into_owned(),
                age(&e.request.requested_at),
                status_label(e.status).to_string(),
                t.severity.to_string(),
                clean(&t.rule_id).into_owned(),
                clean(&format!(
                    "{} {}",
                    f.resource_type.rsplit("::").next().unwrap_or(""),
                    f.resource_id
                ))
                .into_owned(),
                clean(&format!("{}/{}", f.account_id, f.region)).into_owned(),
                action,
            ]);
        }
        out.push_str(&output::render(&table));
    }
    let pending = live.iter().filter(|e| e.status == Status::Pending).count();
    let moot = live.len() - pending;
    out.push_str(&format!("{pending} pending"));
    if moot > 0 {
        out.push_str(&format!(
            ", {moot} moot (resource now compliant; remove with `redress approvals prune`)"
        ));
    }
    if expired > 0 {
        out.push_str(&format!(", {expired} expired and removed"));
    }
    if unreadable > 0 {
        out.push_str(&format!(
            ", {unreadable} unreadable message(s) left on the queue"
        ));
    }
    let forged = board.forged.len();
    if forged > 0 {
        out.push_str(&format!(
            ", {forged} request(s) not made by redress (id does not match the task) left on the queue"
        ));
    }
    out.push_str(".\nApprove with `redress approvals approve ID`, inspect with `redress approvals show ID`.\n");
    out
}

/// One request in `approvals list --json` and `approvals show ID --json`: the request as
/// it came off the queue (raw data; serde escapes it).
#[derive(Serialize)]
struct EntryDoc<'a> {
    id: &'a str,
    status: Status,
    /// How many queue messages carry this request.
    copies: usize,
    request: &'a ApprovalRequest,
}

impl<'a> From<&'a Entry<usize>> for EntryDoc<'a> {
    fn from(e: &'a Entry<usize>) -> Self {
        EntryDoc {
            id: &e.request.id,
            status: e.status,
            copies: e.copies.len(),
            request: &e.request,
        }
    }
}

/// `approvals list --json`.
#[derive(Serialize)]
struct ListDoc<'a> {
    /// Pending and moot requests, oldest first.
    requests: Vec<EntryDoc<'a>>,
    /// Expired requests this command removed.
    expired_removed: usize,
    /// Messages on the queue that are not approvals messages (left in place).
    unreadable: usize,
    /// Requests the ledger records as waiting that are not on the queue (deleted by
    /// hand; `redress sweep` puts them back). Absent without a ledger to compare with.
    #[serde(skip_serializing_if = "Option::is_none")]
    missing_from_queue: Option<&'a [Missing]>,
}

/// `approvals list --json`.
pub fn list_json(
    board: &Board<usize>,
    expired: usize,
    unreadable: usize,
    missing: Option<&[Missing]>,
) -> CliResult<String> {
    output::json(&ListDoc {
        requests: board
            .entries
            .iter()
            .filter(|e| e.status != Status::Expired)
            .map(EntryDoc::from)
            .collect(),
        expired_removed: expired,
        unreadable,
        missing_from_queue: missing,
    })
}

/// The lines `approvals list` adds for requests the ledger records as waiting that are
/// gone from the queue; nothing when there are none.
pub fn missing_text(missing: &[Missing]) -> String {
    if missing.is_empty() {
        return String::new();
    }
    let n = missing.len();
    let mut out = format!(
        "{n} request{} recorded in the ledger {} missing from the queue (deleted by hand?); `redress sweep` puts {} back:\n",
        if n == 1 { "" } else { "s" },
        if n == 1 { "is" } else { "are" },
        if n == 1 { "it" } else { "them" },
    );
    for m in missing {
        out.push_str(&format!(
            "  {} ({}, rule {}, {}, recorded {})\n",
            clean(&m.request),
            clean(&m.entry),
            clean(&m.rule),
            clean(&m.resource_id),
            clean(&m.recorded_at)
        ));
    }
    out
}

/// `approvals show ID --json`.
pub fn show_json(e: &Entry<usize>) -> CliResult<String> {
    output::json(&EntryDoc::from(e))
}

/// One line on why an approved request came back.
fn returned(r: &redress::message::Returned) -> String {
    let by = match (&r.approved_by, &r.approved_at) {
        (Some(by), Some(at)) => format!(" (approved by {by} at {at})"),
        (None, Some(at)) => format!(" (approval of {at})"),
        (Some(by), None) => format!(" (approved by {by})"),
        (None, None) => String::new(),
    };
    format!("{}{by}; put back {}", r.why, r.at)
}

/// `approvals show ID`: everything needed to decide.
pub fn show_text(e: &Entry<usize>) -> String {
    let r = &e.request;
    let t = &r.task;
    let f = &t.finding;
    let mut out = format!(
        "Approval request {} ({})\n\
         \x20 rule          {} (severity {})\n\
         \x20 resource      {} {}\n\
         \x20 account       {} in {}\n\
         \x20 Config rule   {}\n\
         \x20 annotation    {}\n\
         \x20 first seen    {} ({} ago)\n\
         \x20 expires       {}\n\
         \x20 event         {}\n\
         \x20 action        {}\n\
         \x20 will change:\n",
        clean(&r.id),
        status_label(e.status),
        clean(&t.rule_id),
        t.severity,
        clean(&f.resource_type),
        clean(&f.resource_id),
        clean(&f.account_id),
        clean(&f.region),
        clean(&f.config_rule_name),
        clean(f.annotation.as_deref().unwrap_or("(none)")),
        clean(&r.requested_at),
        age(&r.requested_at),
        clean(&r.expires_at),
        clean(&f.event_id),
        clean(&r.describe_action()),
    );
    if r.preview.is_empty() {
        out.push_str("    (no preview recorded)\n");
    }
    for line in &r.preview {
        out.push_str(&format!("    {}\n", clean(line)));
    }
    if let Some(ret) = &r.returned {
        out.push_str(&format!("  returned      {}\n", clean(&returned(ret))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use redress::approval::board;
    use redress::message::ApprovalsMessage;

    const HOSTILE: &str =
        "ok \u{1b}]52;c;Y3VybCBldmlsIHwgc2g=\u{7} \u{1b}[2K \u{1b}[31mred\u{9b}0m \u{202e}gpj.exe";

    /// A board holding the v2 fixture request with hostile text in every shown field.
    fn hostile_board() -> Board<usize> {
        let fixture = include_str!("../../../tests/fixtures/messages/v2/approvals-request.json");
        let Ok(ApprovalsMessage::Request(mut r)) = serde_json::from_str(fixture) else {
            panic!("the fixture is an approval request");
        };
        r.task.rule_id = HOSTILE.into();
        r.task.finding.resource_id = HOSTILE.into();
        r.task.finding.annotation = Some(HOSTILE.into());
        r.preview = vec![HOSTILE.into()];
        r.returned = Some(redress::message::Returned {
            why: HOSTILE.into(),
            at: HOSTILE.into(),
            approved_by: Some(HOSTILE.into()),
            approved_at: None,
        });
        r.id = r.task.approval_id();
        let now = redress::time::parse_rfc3339("2026-11-03T00:00:00Z").unwrap();
        board(vec![(ApprovalsMessage::Request(r), 0)], now)
    }

    fn controls(s: &str) -> Vec<char> {
        s.chars()
            .filter(|&c| {
                (c.is_control() && c != '\n')
                    || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
            })
            .collect()
    }

    #[test]
    fn human_views_show_hostile_fields_cleaned_and_json_keeps_them() {
        let b = hostile_board();
        let table = list_table(&b, 0, 0);
        assert!(table.contains("ok "), "{table}");
        assert!(table.contains("returned: ok "), "{table}");
        assert_eq!(controls(&table), Vec::<char>::new(), "{table:?}");
        assert!(table.lines().next().unwrap().starts_with("ID "), "{table}");
        let shown = show_text(&b.entries[0]);
        assert!(shown.contains("ok "), "{shown}");
        assert_eq!(controls(&shown), Vec::<char>::new(), "{shown:?}");

        let doc: serde_json::Value =
            serde_json::from_str(&list_json(&b, 2, 1, None).unwrap()).unwrap();
        assert!(
            doc.get("missing_from_queue").is_none(),
            "no ledger, no claim"
        );
        assert_eq!(doc["expired_removed"], 2);
        assert_eq!(doc["unreadable"], 1);
        let entry = &doc["requests"][0];
        assert_eq!(entry["id"], b.entries[0].request.id.as_str());
        assert_eq!(entry["status"], "pending");
        assert_eq!(entry["copies"], 1);
        assert_eq!(entry["request"]["task"]["finding"]["annotation"], HOSTILE);
        let one: serde_json::Value =
            serde_json::from_str(&show_json(&b.entries[0]).unwrap()).unwrap();
        assert_eq!(&one, entry);
    }

    #[test]
    fn requests_missing_from_the_queue_are_named_cleaned_and_in_the_json() {
        let m = Missing {
            entry: "le-0123456789abcdef0123".into(),
            request: "ap-0123456789".into(),
            rule: "ssh".into(),
            resource_id: HOSTILE.into(),
            recorded_at: "2026-12-07T16:00:00Z".into(),
        };
        assert_eq!(missing_text(&[]), "");
        let text = missing_text(std::slice::from_ref(&m));
        assert!(
            text.starts_with("1 request recorded in the ledger is missing from the queue"),
            "{text}"
        );
        assert!(
            text.contains("ap-0123456789 (le-0123456789abcdef0123"),
            "{text}"
        );
        assert_eq!(controls(&text), Vec::<char>::new(), "{text:?}");
        let b = hostile_board();
        let doc: serde_json::Value =
            serde_json::from_str(&list_json(&b, 0, 0, Some(&[m])).unwrap()).unwrap();
        assert_eq!(doc["missing_from_queue"][0]["request"], "ap-0123456789");
        assert_eq!(doc["missing_from_queue"][0]["resource_id"], HOSTILE);
    }
}
