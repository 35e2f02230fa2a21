//! `redress history`: what the ledger recorded, filtered by resource, rule, account and
//! time, as a table or one JSON document. The narrowest index answers (resource, then an
//! exact rule, then account, else the days of the window); every filter is then applied
//! to what came back, so they combine.

use std::time::{Duration, SystemTime};

use globset::{Glob, GlobMatcher};
use redress::ledger::{Change, EntryAction, LedgerEntry};
use redress::text::clean;
use serde::Serialize;

use crate::aws::ledger::{Index, LedgerError, LedgerTable};
use crate::aws::Clients;
use crate::cli::{Global, HistoryArgs};
use crate::error::{CliError, CliResult};
use crate::output;

/// The window read when nothing narrows the query to one index partition.
const DEFAULT_WINDOW: Duration = Duration::from_secs(30 * 86_400);
const DAY: Duration = Duration::from_secs(86_400);

/// `history --json`.
#[derive(Serialize)]
struct HistoryDoc<'a> {
    entries: &'a [LedgerEntry],
}

/// The filters, checked before anything is read.
struct Filter {
    resource: Option<String>,
    rule: Option<(String, GlobMatcher)>,
    account: Option<String>,
    since: Option<SystemTime>,
}

impl Filter {
    fn parse(args: &HistoryArgs, now: SystemTime) -> CliResult<Filter> {
        let since = args
            .since
            .as_deref()
            .map(|s| {
                humantime::parse_duration(s)
                    .map_err(|e| CliError::input(format!("--since {s:?}: {e} (e.g. 30d, 12h)")))
                    .map(|d| now.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH))
            })
            .transpose()?;
        let rule = args
            .rule
            .as_deref()
            .map(|r| {
                Glob::new(r)
                    .map(|g| (r.to_string(), g.compile_matcher()))
                    .map_err(|e| CliError::input(format!("--rule {r:?}: {e}")))
            })
            .transpose()?;
        Ok(Filter {
            resource: args.resource.clone(),
            rule,
            account: args.account.clone(),
            since,
        })
    }

    fn keeps(&self, e: &LedgerEntry) -> bool {
        self.resource
            .as_ref()
            .is_none_or(|r| *r == e.finding.resource_id)
            && self
                .rule
                .as_ref()
                .is_none_or(|(_, g)| g.is_match(&e.rule_id))
            && self
                .account
                .as_ref()
                .is_none_or(|a| *a == e.finding.account_id)
            && self.since.is_none_or(|t| e.times.decided_at >= t)
    }

    /// The index partitions to read: the narrowest filter's, else one per day.
    fn partitions(&self, now: SystemTime) -> Vec<(Index, String)> {
        let exact_rule = self
            .rule
            .as_ref()
            .map(|(r, _)| r)
            .filter(|r| !r.contains(['*', '?', '[', '{']));
        if let Some(r) = &self.resource {
            return vec![(Index::Resource, r.clone())];
        }
        if let Some(r) = exact_rule {
            return vec![(Index::Rule, r.clone())];
        }
        if let Some(a) = &self.account {
            return vec![(Index::Account, a.clone())];
        }
        // UTC days, each 86,400 s: a step of a day is the next calendar day.
        let day = |t: SystemTime| redress::time::format_rfc3339(t)[..10].to_string();
        let today = day(now);
        let mut days = Vec::new();
        let mut t = self.since.unwrap_or(now - DEFAULT_WINDOW);
        while day(t) <= today {
            days.push((Index::Day, day(t)));
            t += DAY;
        }
        days
    }
}

/// Runs `redress history`.
pub async fn history(global: &Global, args: &HistoryArgs) -> CliResult {
    let now = SystemTime::now();
    let filter = Filter::parse(args, now)?;
    let name = global.ledger_to_read()?;
    let config = crate::aws::load().await;
    let table = LedgerTable::new(Clients::new(&config).dynamodb, name);
    let partitions = filter.partitions(now);
    // Day by day, the window has an end; by resource, rule or account, all is read.
    let by_day = partitions.iter().any(|(i, _)| *i == Index::Day);
    let since = filter
        .since
        .or_else(|| by_day.then(|| now - DEFAULT_WINDOW));
    let mut entries = Vec::new();
    for (index, key) in partitions {
        let found = table
            .query(index, &key, since)
            .await
            .map_err(|e| read_error(name, e))?;
        entries.extend(found.into_iter().filter(|e| filter.keeps(e)));
    }
    entries.sort_by(|a, b| (a.times.decided_at, &a.id).cmp(&(b.times.decided_at, &b.id)));
    entries.dedup_by(|a, b| a.id == b.id);
    if args.json {
        println!("{}", output::json(&HistoryDoc { entries: &entries })?);
    } else {
        print!("{}", render(&entries));
    }
    Ok(())
}

/// A failed read, saying what to do about a missing table.
pub fn read_error(table: &str, e: LedgerError) -> CliError {
    match e {
        LedgerError::Aws(a) if a.code == "ResourceNotFoundException" => CliError::failed(format!(
            "there is no ledger table {table} (`redress provision` creates it on the local stack, redress.yaml on AWS; --ledger-table names another)"
        )),
        other => CliError::failed(format!("cannot read the ledger {table}: {other}")),
    }
}

/// A change in one cell: before → after; for a runbook whose settings were not read,
/// what it ran with instead.
fn change_summary(c: &Change) -> String {
    match c {
        Change::Runbook {
            inputs,
            before: None,
            after: None,
            ..
        } => {
            let inputs: Vec<String> = inputs
                .iter()
                .map(|(k, v)| format!("{k}={}", v.join(",")))
                .collect();
            format!("{} ({})", c.describe(), inputs.join("; "))
        }
        _ => format!("{} → {}", c.before_summary(), c.after_summary()),
    }
}

/// The human table.
fn render(entries: &[LedgerEntry]) -> String {
    if entries.is_empty() {
        return "No ledger entries.\n".into();
    }
    let mut t = output::table([
        "ENTRY",
        "WHEN",
        "RULE",
        "RESOURCE",
        "ACTION",
        "ACTOR",
        "STATUS",
        "BEFORE → AFTER",
    ]);
    for e in entries {
        let action = match &e.action {
            EntryAction::Remediate(a) => a.label(),
            EntryAction::Undo(u) => format!("undo {}", u.entry),
        };
        let change = match (&e.change, &e.reason) {
            (Some(c), _) => change_summary(c),
            (None, Some(why)) => why.clone(),
            (None, None) => "-".into(),
        };
        let actor = e.actor.as_ref().map_or("-".into(), |a| a.label());
        t.add_row([
            e.id.to_string(),
            redress::time::format_rfc3339(e.times.decided_at),
            clean(&e.rule_id).into_owned(),
            clean(&e.finding.resource_id).into_owned(),
            clean(&action).into_owned(),
            clean(&actor).into_owned(),
            e.status.as_str().to_string(),
            clean(&change).into_owned(),
        ]);
    }
    output::render(&t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redress::ingress::Permission;
    use redress::ledger::{Actor, Status};
    use redress::message::Task;
    use redress::policy::{Fix, RenderedAction, Severity};

    const NOW: &str = "2026-05-10T09:30:00Z";

    fn now() -> SystemTime {
        redress::time::parse_rfc3339(NOW).unwrap()
    }

    fn args(resource: Option<&str>, rule: Option<&str>, since: Option<&str>) -> HistoryArgs {
        HistoryArgs {
            resource: resource.map(str::to_string),
            rule: rule.map(str::to_string),
            account: None,
            since: since.map(str::to_string),
            json: false,
        }
    }

    fn partitions(a: &HistoryArgs) -> Vec<(Index, String)> {
        Filter::parse(a, now()).unwrap().partitions(now())
    }

    #[test]
    fn the_narrowest_filter_picks_the_index() {
        let by = |a| partitions(&a)[0].0;
        assert_eq!(by(args(Some("sg-1"), Some("ssh"), None)), Index::Resource);
        assert_eq!(by(args(None, Some("ssh"), None)), Index::Rule);
        // A glob cannot name a partition: the window is read day by day.
        assert_eq!(by(args(None, Some("sg-*"), None)), Index::Day);
    }

    #[test]
    fn a_window_reads_each_of_its_days_once_today_included() {
        // 36 hours back from the 10th at 09:30: from the 8th at 21:30, whose step of a
        // day to the 10th lands after now, so today must still be read.
        let days: Vec<String> = partitions(&args(None, None, Some("36h")))
            .into_iter()
            .map(|(i, d)| {
                assert_eq!(i, Index::Day);
                d
            })
            .collect();
        assert_eq!(days, ["2026-05-08", "2026-05-09", "2026-05-10"]);
        assert_eq!(
            partitions(&args(None, None, None)).len(),
            31,
            "30 days back"
        );
    }

    #[test]
    fn bad_filters_are_usage_errors() {
        for a in [
            args(None, None, Some("soon")),
            args(None, Some("sg-[x"), None),
        ] {
            assert_eq!(Filter::parse(&a, now()).err().map(|e| e.code), Some(2));
        }
    }

    #[test]
    fn each_row_shows_who_changed_what_from_before_to_after() {
        let finding = crate::test_support::ssh_finding(NOW);
        let action = RenderedAction::Fix(Fix::RevokePublicIngress {
            ports: Some(vec![22]),
        });
        let task = Task::new("ssh", Severity::Low, finding);
        let mut e = LedgerEntry::for_task(&task, action, Status::Intent, now()).unwrap();
        let open = Permission {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            ipv4: vec!["0.0.0.0/0".into()],
            ipv6: vec![],
        };
        e.actor = Some(Actor::Automatic);
        e.change = Some(Change::RevokeIngress {
            group_id: "sg-0123456789abcdef0".into(),
            before: vec![open.clone()],
            revoked: vec![open],
        });
        e.advance(Status::Succeeded, now()).unwrap();
        let table = render(std::slice::from_ref(&e));
        let row = table.lines().nth(1).unwrap();
        for cell in [
            e.id.as_str(),
            NOW,
            "ssh",
            "sg-0123456789abcdef0",
            "revoke_public_ingress",
            "automatic",
            "succeeded",
            "tcp 22 from 0.0.0.0/0 → none",
        ] {
            assert!(row.contains(cell), "{cell:?} not in {row:?}");
        }
        assert_eq!(render(&[]), "No ledger entries.\n");
        let runbook = Change::Runbook {
            document: "AWS-EnableS3BucketEncryption".into(),
            inputs: [("BucketName".to_string(), vec!["logs".to_string()])].into(),
            before: None,
            after: None,
        };
        assert_eq!(
            change_summary(&runbook),
            "ran AWS-EnableS3BucketEncryption (BucketName=logs)"
        );
    }
}
