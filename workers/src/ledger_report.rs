//! `redress report`: what the ledger says of a window of time, as a table, one JSON
//! document, or the evidence export (CSV, one row per entry). The window is read day by
//! day through the `by-day` index (one query per day, no scan); the counting, the
//! percentiles and the CSV are the domain's ([`redress::ledger::report`]).
//!
//! Exemptions in force are the undo exceptions of the entries read (an undo decided
//! before the window is not seen) and the policy's `[[exception]]`s, when the policy
//! loads; a report without the policy says so rather than failing.

use std::time::{Duration, SystemTime};

use redress::ledger::report::{self, policy_exceptions_in_force, GroupBy, PolicyException, Report};
use redress::ledger::LedgerEntry;
use redress::policy::Policy;
use redress::text::clean;
use redress::time::format_rfc3339;
use serde::Serialize;

use crate::aws::ledger::{Index, LedgerError, LedgerTable};
use crate::aws::Clients;
use crate::cli::{Global, ReportArgs, ReportBy, ReportFormat};
use crate::error::{CliError, CliResult};
use crate::output;

const DAY: Duration = Duration::from_secs(86_400);

/// `report --format json`: the report, and what it was read from.
#[derive(Serialize)]
struct ReportDoc<'a> {
    /// The ledger table.
    table: &'a str,
    /// `--since` as given.
    window: &'a str,
    /// Entries read (the rows of the evidence export).
    entries: usize,
    #[serde(flatten)]
    report: &'a Report,
    /// The policy's exceptions in force.
    policy_exceptions: &'a [PolicyException],
    /// Why the policy's exceptions are missing, when it did not load.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy_error: Option<&'a str>,
}

impl From<ReportBy> for GroupBy {
    fn from(by: ReportBy) -> GroupBy {
        match by {
            ReportBy::Rule => GroupBy::Rule,
            ReportBy::Account => GroupBy::Account,
            ReportBy::Severity => GroupBy::Severity,
        }
    }
}

/// Runs `redress report`.
pub async fn report(global: &Global, args: &ReportArgs) -> CliResult {
    let now = SystemTime::now();
    let window = humantime::parse_duration(&args.since)
        .map_err(|e| CliError::input(format!("--since {:?}: {e} (e.g. 30d, 12h)", args.since)))?;
    let since = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let name = global.ledger_to_read()?;
    let config = crate::aws::load().await;
    let table = LedgerTable::new(Clients::new(&config).dynamodb, name);
    let entries = read(&table, since, now)
        .await
        .map_err(|e| crate::history::read_error(name, e))?;
    let (policy_exceptions, policy_error) = match Policy::from_file(&global.policy) {
        Ok(p) => (policy_exceptions_in_force(&p, now), None),
        Err(e) => (
            Vec::new(),
            Some(format!("policy {} not read: {e}", global.policy.display())),
        ),
    };
    let r = report::report(&entries, args.by.into(), Some(since), now);
    match args.format {
        ReportFormat::Csv => print!("{}", report::to_csv(&entries)),
        ReportFormat::Json => {
            let doc = ReportDoc {
                table: name,
                window: &args.since,
                entries: entries.len(),
                report: &r,
                policy_exceptions: &policy_exceptions,
                policy_error: policy_error.as_deref(),
            };
            println!("{}", output::json(&doc)?);
        }
        ReportFormat::Table => {
            print!("{}", render(name, &args.since, &r, entries.len()));
            print!(
                "{}",
                render_exemptions(&r, &policy_exceptions, policy_error.as_deref())
            );
        }
    }
    Ok(())
}

/// The UTC days (`YYYY-MM-DD`, the `by-day` index's partitions) from `since`'s to
/// `now`'s, each once.
pub fn days(since: SystemTime, now: SystemTime) -> Vec<String> {
    let day = |t: SystemTime| format_rfc3339(t)[..10].to_string();
    let today = day(now);
    let mut days = Vec::new();
    let mut t = since;
    // UTC days are 86,400 s each: a step of a day lands on the next calendar day.
    while day(t) <= today {
        days.push(day(t));
        t += DAY;
    }
    days
}

/// Every entry decided between `since` and `now`, oldest first.
pub async fn read(
    table: &LedgerTable,
    since: SystemTime,
    now: SystemTime,
) -> Result<Vec<LedgerEntry>, LedgerError> {
    let mut entries = Vec::new();
    for day in days(since, now) {
        entries.extend(table.query(Index::Day, &day, Some(since)).await?);
    }
    // An entry keeps its decision time, so it sits in one day's partition; sorting and
    // dropping repeats keeps the count honest all the same.
    entries.sort_by(|a, b| (a.times.decided_at, &a.id).cmp(&(b.times.decided_at, &b.id)));
    entries.dedup_by(|a, b| a.id == b.id);
    Ok(entries)
}

/// A duration in seconds, briefly: `45s`, `12m`, `3h 5m`, `2d 4h`.
fn brief(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match secs {
        s if s >= 86_400 && h > 0 => format!("{d}d {h}h"),
        s if s >= 86_400 => format!("{d}d"),
        s if s >= 3_600 && m > 0 => format!("{}h {m}m", s / 3_600),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn brief_or_dash(secs: Option<u64>) -> String {
    secs.map_or_else(|| "-".into(), brief)
}

/// The counts and times: a heading line, then one row per group and the total.
fn render(table: &str, window: &str, r: &Report, entries: usize) -> String {
    let by = match r.by {
        GroupBy::Rule => "RULE",
        GroupBy::Account => "ACCOUNT",
        GroupBy::Severity => "SEVERITY",
    };
    let mut out = format!(
        "Ledger {}: {entries} entries decided since {} ({}), as of {}.\n",
        clean(table),
        r.since.as_deref().unwrap_or("the beginning"),
        clean(window),
        r.at
    );
    if entries == 0 {
        out.push_str("Nothing was fixed, failed, requested or skipped in the window.\n");
        return out;
    }
    out.push('\n');
    let mut t = output::table([
        by,
        "FIXED",
        "STILL NON-COMPLIANT",
        "FAILED",
        "IN PROGRESS",
        "WAITING",
        "OLDEST WAITING",
        "EXEMPT",
        "SKIPPED",
        "NOT APPROVED",
        "UNDONE",
        "TTR MEDIAN",
        "TTR P90",
    ]);
    output::align_right(&mut t, &(1..13).collect::<Vec<_>>());
    for g in r.groups.iter().chain(std::iter::once(&r.total)) {
        let c = &g.counts;
        t.add_row([
            clean(&g.key).into_owned(),
            c.fixed.to_string(),
            c.still_non_compliant.to_string(),
            c.failed.to_string(),
            c.in_progress.to_string(),
            c.waiting.to_string(),
            brief_or_dash(c.oldest_waiting_secs),
            c.exempt.to_string(),
            c.skipped.to_string(),
            c.not_approved.to_string(),
            c.undone.to_string(),
            brief_or_dash(g.time_to_remediate.median_secs),
            brief_or_dash(g.time_to_remediate.p90_secs),
        ]);
    }
    out.push_str(&output::render(&t));
    out.push_str(&format!(
        "\nTime to remediate (TTR): from Config's evaluation of the finding to its confirmation of the fix (verified fixes: {}).\n",
        r.total.time_to_remediate.samples
    ));
    out
}

/// The exemptions in force: undo exceptions from the ledger, then the policy's.
fn render_exemptions(r: &Report, policy: &[PolicyException], policy_error: Option<&str>) -> String {
    let mut out = String::from("\n");
    if r.exceptions.is_empty() && policy.is_empty() {
        out.push_str("No exemptions in force.\n");
    } else {
        out.push_str("Exemptions in force:\n");
        let mut t = output::table(["KIND", "RULE", "ACCOUNT", "RESOURCE", "UNTIL", "REASON"]);
        for x in &r.exceptions {
            t.add_row([
                format!("undo {}", x.undone),
                clean(&x.rule_id).into_owned(),
                clean(&x.account).into_owned(),
                clean(&x.resource_id).into_owned(),
                format_rfc3339(x.until),
                clean(&x.reason).into_owned(),
            ]);
        }
        let any = |v: Option<&str>| clean(v.unwrap_or("*")).into_owned();
        for x in policy {
            let rules = if x.rules.is_empty() {
                "*".to_string()
            } else {
                x.rules.join(",")
            };
            t.add_row([
                format!("policy line {}", x.line),
                clean(&rules).into_owned(),
                any(x.account.as_deref()),
                any(x.resource_id.as_deref()),
                x.until.clone(),
                clean(&x.reason).into_owned(),
            ]);
        }
        out.push_str(&output::render(&t));
    }
    if let Some(why) = policy_error {
        out.push_str(&format!(
            "(The policy's exceptions are not shown: {}.)\n",
            clean(why)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use redress::ledger::{Actor, LedgerEntry, Status};
    use redress::message::Task;
    use redress::policy::{Fix, RenderedAction, Severity};

    const NOW: &str = "2026-05-10T09:30:00Z";

    fn at(text: &str) -> SystemTime {
        redress::time::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_window_reads_each_of_its_days_once_today_included() {
        let now = at(NOW);
        assert_eq!(
            days(now - Duration::from_secs(36 * 3_600), now),
            ["2026-05-08", "2026-05-09", "2026-05-10"]
        );
        assert_eq!(days(now - 30 * DAY, now).len(), 31);
        assert_eq!(days(now, now), ["2026-05-10"]);
    }

    #[test]
    fn durations_are_brief() {
        for (secs, text) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3_599, "59m"),
            (3_600, "1h"),
            (3_660, "1h 1m"),
            (86_400, "1d"),
            (90_000, "1d 1h"),
        ] {
            assert_eq!(brief(secs), text, "{secs}");
        }
        assert_eq!(brief_or_dash(None), "-");
    }

    /// An automatic fix of a finding evaluated at `evaluated`, in `status`.
    fn entry(n: u32, rule: &str, severity: Severity, status: Status) -> LedgerEntry {
        let finding = crate::test_support::ssh_finding("2026-05-10T09:00:00Z");
        let mut task = Task::new(rule, severity, finding);
        task.generation = n;
        let action = RenderedAction::Fix(Fix::RevokePublicIngress {
            ports: Some(vec![22]),
        });
        let mut e =
            LedgerEntry::for_task(&task, action, Status::Intent, at("2026-05-10T09:01:00Z"))
                .unwrap();
        e.actor = Some(Actor::Automatic);
        e.status = status;
        e
    }

    #[test]
    fn the_table_has_a_row_per_group_and_the_total_with_brief_times() {
        let mut verified = entry(1, "ssh", Severity::Low, Status::Verified);
        verified.times.verified_at = Some(at("2026-05-10T09:12:00Z"));
        let entries = vec![
            verified,
            entry(2, "ssh", Severity::Low, Status::Failed),
            entry(3, "rdp", Severity::High, Status::AwaitingApproval),
        ];
        let r = report::report(&entries, GroupBy::Rule, Some(at(NOW) - DAY), at(NOW));
        let out = render("redress-ledger", "1d", &r, entries.len());
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with(
                "Ledger redress-ledger: 3 entries decided since 2026-05-09T09:30:00Z (1d)"
            ),
            "{out}"
        );
        let header = lines[2];
        assert!(
            header.starts_with("RULE") && header.ends_with("TTR P90"),
            "{out}"
        );
        let row = |key: &str| -> Vec<&str> {
            let line = lines
                .iter()
                .find(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("no {key} row in\n{out}"));
            line.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        };
        // RULE FIXED STILL FAILED IN-PROGRESS WAITING OLDEST EXEMPT SKIPPED NOT-APPROVED
        // UNDONE MEDIAN P90
        assert_eq!(
            row("rdp"),
            ["rdp", "0", "0", "0", "0", "1", "29m", "0", "0", "0", "0", "-", "-"]
        );
        assert_eq!(
            row("ssh"),
            ["ssh", "1", "0", "1", "0", "0", "-", "0", "0", "0", "0", "12m", "12m"]
        );
        assert_eq!(
            row("total"),
            ["total", "1", "0", "1", "0", "1", "29m", "0", "0", "0", "0", "12m", "12m"]
        );
        assert!(out.contains("(verified fixes: 1)"), "{out}");

        let empty = report::report(&[], GroupBy::Rule, Some(at(NOW)), at(NOW));
        assert!(render("t", "30d", &empty, 0).ends_with("in the window.\n"));
    }

    #[test]
    fn exemptions_list_both_kinds_or_say_there_are_none() {
        let r = report::report(&[], GroupBy::Rule, None, at(NOW));
        assert_eq!(
            render_exemptions(&r, &[], None),
            "\nNo exemptions in force.\n"
        );
        let policy = [PolicyException {
            rules: vec![],
            account: None,
            resource_id: Some("sg-0bastion".into()),
            until: "2099-01-01T00:00:00Z".into(),
            reason: "bastion, SEC-42".into(),
            line: 12,
        }];
        let out = render_exemptions(&r, &policy, Some("policy p.toml not read: gone"));
        let row = out
            .lines()
            .find(|l| l.starts_with("policy line 12"))
            .unwrap();
        for cell in [
            "*",
            "sg-0bastion",
            "2099-01-01T00:00:00Z",
            "bastion, SEC-42",
        ] {
            assert!(row.contains(cell), "{cell:?} not in {row:?}");
        }
        assert!(
            out.contains("not shown: policy p.toml not read: gone"),
            "{out}"
        );
    }
}
