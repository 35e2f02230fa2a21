//! `redress report` over a run of mixed findings: fixed automatically (one confirmed by
//! Config, so `verified`), waiting for approval, exempt by tag, needing nothing, and
//! failing. The evidence export has one row per ledger entry, and its fields, the JSON
//! counts and times, and the table agree with what the test reads from the ledger table
//! itself (a scan) and from the world (the approvals queue, the resources).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use redress::ledger::report::CSV_COLUMNS;
use redress::ledger::{Actor, LedgerEntry, Status};
use redress::time::{format_rfc3339, parse_rfc3339};
use serde_json::Value;

use crate::support::{
    policy_fixtures, put_evaluations, run_until, text, Evaluation, EventBuilder, World, ACCOUNT,
    REGION,
};

const SG: &str = "AWS::EC2::SecurityGroup";
const EXCEPTED: &str = "sg-0e2e0000000000042";

/// RFC 4180 records (quoted fields may hold commas, quotes and line breaks).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut records, mut record, mut field) = (Vec::new(), Vec::new(), String::new());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {
                chars.next();
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "a record without CRLF"
    );
    records
}

/// Counts by what became of each entry, as the report defines its columns, computed
/// here from the scan.
fn counts(entries: &[&LedgerEntry]) -> BTreeMap<&'static str, u64> {
    let mut c: BTreeMap<&'static str, u64> = [
        "fixed",
        "still_non_compliant",
        "failed",
        "in_progress",
        "waiting",
        "exempt",
        "skipped",
        "not_approved",
        "undone",
    ]
    .into_iter()
    .map(|k| (k, 0))
    .collect();
    for e in entries {
        let column = match e.status {
            Status::Succeeded | Status::Verified | Status::Undone if e.is_undo() => "undone",
            Status::Succeeded | Status::Verified | Status::Undone => "fixed",
            Status::StillNonCompliant => "still_non_compliant",
            Status::Failed => "failed",
            Status::Intent => "in_progress",
            Status::AwaitingApproval => "waiting",
            Status::Exempt => "exempt",
            Status::Skipped => "skipped",
            Status::Rejected | Status::Expired => "not_approved",
        };
        *c.get_mut(column).unwrap() += 1;
    }
    c
}

fn assert_counts(doc: &Value, want: &BTreeMap<&'static str, u64>, what: &str) {
    for (k, v) in want {
        assert_eq!(doc[*k].as_u64(), Some(*v), "{what}: {k} in {doc:#}");
    }
}

/// Time to remediate of a verified entry, from its own fields.
fn ttr(e: &LedgerEntry) -> Option<u64> {
    let evaluated = parse_rfc3339(e.finding.evaluation_time.as_deref()?)?;
    let verified = e.times.verified_at?;
    Some(verified.duration_since(evaluated).ok()?.as_secs())
}

#[tokio::test]
async fn the_report_and_its_evidence_export_agree_with_the_ledger() {
    let pp = format!("/report-{}/", std::process::id());
    let policy = format!(
        "[routing]\nauto_max_severity = \"MEDIUM\"\n[config]\nrecheck_after = \"1s\"\n\
         [exemptions]\ntag = \"redress:exempt\"\n\
         [[exception]]\nresource_id = \"{EXCEPTED}\"\nexpires = \"2099-01-01\"\nreason = \"bastion, SEC-42\"\n{}",
        policy_fixtures(
            &["ssh-low", "param-drift", "rdp-high", "always-fails"],
            &[("prefix", &pp)]
        )
    );
    let w = World::new("report", &policy).await;
    let table = w.use_ledger();
    let ssh_rule = format!("{}-restricted-ssh", w.prefix);

    // Fixed and then confirmed; fixed and left waiting for Config; exempt by tag;
    // nothing to do (only a private port open); needing approval; failing.
    let confirmed = w.security_group("confirmed", &[(22, "0.0.0.0/0")]).await;
    let current = format!("{pp}current/db_pool_size");
    w.put_parameter(&format!("{pp}approved/db_pool_size"), "20")
        .await;
    w.put_parameter(&current, "200").await;
    let exempt = w.security_group("exempt", &[(22, "0.0.0.0/0")]).await;
    w.tag(&exempt, "redress:exempt", "true").await;
    let closed = w.security_group("closed", &[(443, "10.0.0.0/8")]).await;
    let rdp = w.security_group("rdp", &[(3389, "0.0.0.0/0")]).await;
    let broken = w.security_group("broken", &[(80, "10.0.0.0/8")]).await;
    // Config evaluated them ten minutes ago: time to remediate counts from then.
    let evaluated = format_rfc3339(SystemTime::now() - Duration::from_secs(600));
    let events: Vec<EventBuilder> = [
        EventBuilder::new(&ssh_rule, SG, &confirmed),
        EventBuilder::new("ssm-parameter-drift", "AWS::SSM::Parameter", &current),
        EventBuilder::new(&ssh_rule, SG, &exempt),
        EventBuilder::new(&ssh_rule, SG, &closed),
        EventBuilder::new("restricted-rdp", SG, &rdp),
        EventBuilder::new("broken-runbook-rule", SG, &broken),
    ]
    .into_iter()
    .map(|e| e.recorded_at(&evaluated))
    .collect();
    w.send_events(&events).await;
    let records = w.run_once(&[]);

    // Config now finds the first group compliant; the closure check records it.
    put_evaluations(
        ACCOUNT,
        REGION,
        &ssh_rule,
        &[Evaluation::new(SG, &confirmed, "COMPLIANT")],
    )
    .await;
    let (verified, _) = run_until(&w, records, "a verified record", |r| {
        r["decision"] == "verified" && r["resource_id"] == confirmed.as_str()
    })
    .await;

    // The world: what was fixed is, what was not is not; one request waits.
    assert!(w.ingress(&confirmed).await.is_empty());
    assert_eq!(w.parameter(&current).await, "20");
    assert_eq!(w.ingress(&exempt).await, vec![(22, "0.0.0.0/0".into())]);
    assert_eq!(w.ingress(&rdp).await, vec![(3389, "0.0.0.0/0".into())]);
    let requests = w.approval_list()["requests"].as_array().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(
        requests[0]["request"]["task"]["rule_id"], "rdp",
        "{requests:#?}"
    );

    // The ledger, read directly.
    let scan = w.ledger_scan().await;
    let about = |resource: &str| -> Vec<&LedgerEntry> {
        scan.iter()
            .filter(|e| e.finding.resource_id == resource)
            .collect()
    };
    let one = |resource: &str| -> &LedgerEntry {
        let found = about(resource);
        assert_eq!(found.len(), 1, "{resource}: {scan:#?}");
        found[0]
    };
    let fix = one(&confirmed);
    assert_eq!(fix.status, Status::Verified, "{fix:#?}");
    assert_eq!(fix.actor, Some(Actor::Automatic));
    let verified_at = fix.times.verified_at.expect("a verified time");
    assert!(verified_at >= fix.times.fixed_at.unwrap(), "{fix:#?}");
    assert!(
        fix.reason
            .as_deref()
            .unwrap_or_default()
            .contains("Config reports COMPLIANT"),
        "{fix:#?}"
    );
    let fix_ttr = ttr(fix).unwrap();
    assert!((600..900).contains(&fix_ttr), "{fix_ttr} s: {fix:#?}");
    // The audit says the same time to remediate, within the second the ledger keeps.
    let audited = verified["time_to_remediate_secs"].as_u64().unwrap();
    assert!(audited.abs_diff(fix_ttr) <= 1, "{audited} vs {fix_ttr}");
    assert_eq!(one(&current).status, Status::Succeeded);
    assert_eq!(one(&closed).status, Status::Skipped);
    let failed = one(&broken);
    assert_eq!(failed.status, Status::Failed);
    assert!(failed.execution_id.is_some(), "{failed:#?}");
    // The request waiting on the approvals queue is the ledger's waiting entry.
    let waiting_in_ledger = about(&rdp);
    assert_eq!(waiting_in_ledger.len(), requests.len(), "{scan:#?}");
    assert_eq!(waiting_in_ledger[0].status, Status::AwaitingApproval);
    assert_eq!(
        waiting_in_ledger[0].approval_request.as_deref(),
        requests[0]["id"].as_str(),
        "{requests:#?}"
    );
    // Exempt findings are counted as far as the ledger holds them.
    assert!(
        about(&exempt).iter().all(|e| e.status == Status::Exempt),
        "{scan:#?}"
    );
    let all: Vec<&LedgerEntry> = scan.iter().collect();
    let want = counts(&all);
    assert_eq!(want["fixed"], 2);
    assert_eq!(want["failed"], 1);
    assert_eq!(want["skipped"], 1);
    assert_eq!(want["waiting"], 1);

    // The evidence export: one row per ledger entry, each field as the entry says.
    let out = w.redress(&["report", "--format", "csv"]);
    assert!(out.status.success(), "report: {}", text(&out.stderr));
    let csv = parse_csv(&text(&out.stdout));
    assert_eq!(csv[0], CSV_COLUMNS, "the header");
    let rows = &csv[1..];
    assert_eq!(rows.len(), scan.len(), "{csv:#?}");
    let col = |row: &[String], name: &str| -> String {
        row[CSV_COLUMNS.iter().position(|c| *c == name).unwrap()].clone()
    };
    let ids: BTreeSet<String> = rows.iter().map(|r| col(r, "entry_id")).collect();
    assert_eq!(
        ids,
        scan.iter()
            .map(|e| e.id.to_string())
            .collect::<BTreeSet<_>>()
    );
    let time = |t: Option<SystemTime>| t.map(format_rfc3339).unwrap_or_default();
    for row in rows {
        assert_eq!(row.len(), CSV_COLUMNS.len(), "{row:?}");
        let e = scan
            .iter()
            .find(|e| e.id.as_str() == col(row, "entry_id"))
            .unwrap();
        assert_eq!(col(row, "status"), e.status.as_str());
        assert_eq!(col(row, "rule_id"), e.rule_id);
        assert_eq!(col(row, "resource_id"), e.finding.resource_id);
        assert_eq!(col(row, "account"), e.finding.account_id);
        assert_eq!(
            col(row, "config_rule_arn"),
            e.finding.config_rule_arn.clone().unwrap_or_default()
        );
        assert_eq!(col(row, "evaluated_at"), evaluated);
        assert_eq!(col(row, "decided_at"), format_rfc3339(e.times.decided_at));
        assert_eq!(col(row, "fixed_at"), time(e.times.fixed_at));
        assert_eq!(col(row, "verified_at"), time(e.times.verified_at));
        assert_eq!(
            col(row, "time_to_remediate_secs"),
            ttr(e).map(|s| s.to_string()).unwrap_or_default()
        );
        assert_eq!(
            col(row, "execution_id"),
            e.execution_id.clone().unwrap_or_default()
        );
        // Everything here was automatic; a request has no actor until approved.
        let actor = if e.status == Status::AwaitingApproval {
            ""
        } else {
            "automatic"
        };
        assert_eq!(col(row, "actor"), actor, "{row:?}");
        assert_eq!(
            col(row, "approval_request"),
            e.approval_request.clone().unwrap_or_default()
        );
    }
    let row = rows
        .iter()
        .find(|r| col(r, "resource_id") == confirmed)
        .unwrap();
    assert_eq!(col(row, "before"), "tcp 22 from 0.0.0.0/0");
    assert_eq!(col(row, "after"), "none");
    assert_eq!(col(row, "time_to_remediate_secs"), fix_ttr.to_string());

    // The counts and times, as one document.
    let out = w.redress(&["report", "--format", "json", "--since", "1d"]);
    assert!(out.status.success(), "report: {}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["entries"], scan.len(), "{doc:#}");
    assert_eq!(doc["table"], format!("{}-ledger", w.prefix));
    assert_counts(&doc["total"], &want, "total");
    let by_rule: BTreeSet<&str> = scan.iter().map(|e| e.rule_id.as_str()).collect();
    let groups = doc["groups"].as_array().unwrap();
    assert_eq!(
        groups
            .iter()
            .map(|g| g["key"].as_str().unwrap())
            .collect::<BTreeSet<_>>(),
        by_rule
    );
    for g in groups {
        let key = g["key"].as_str().unwrap();
        let mine: Vec<&LedgerEntry> = scan.iter().filter(|e| e.rule_id == key).collect();
        assert_counts(g, &counts(&mine), key);
    }
    let t = &doc["total"]["time_to_remediate"];
    assert_eq!(t["samples"], 1, "{doc:#}");
    assert_eq!(t["median_secs"], fix_ttr, "{doc:#}");
    assert_eq!(t["p90_secs"], fix_ttr, "{doc:#}");
    // The oldest waiting request's age, when the ledger holds requests.
    let now = SystemTime::now();
    let oldest = now
        .duration_since(waiting_in_ledger[0].times.decided_at)
        .unwrap()
        .as_secs();
    let shown = doc["total"]["oldest_waiting_secs"].as_u64().unwrap();
    assert!(
        oldest.abs_diff(shown) <= 5,
        "{oldest} vs {shown} in {doc:#}"
    );
    let policy = doc["policy_exceptions"].as_array().unwrap();
    assert_eq!(policy.len(), 1, "{doc:#}");
    assert_eq!(policy[0]["resource_id"], EXCEPTED);
    assert_eq!(policy[0]["until"], "2099-01-01T00:00:00Z");

    // By severity: rows in severity order, adding up to the total.
    let out = w.redress(&["report", "--by", "severity", "--format", "json"]);
    assert!(out.status.success(), "report: {}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    let order = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
    let rank = |k: &str| order.iter().position(|o| *o == k).unwrap();
    assert!(keys.windows(2).all(|p| rank(p[0]) < rank(p[1])), "{keys:?}");
    assert_eq!(keys[..2], ["LOW", "MEDIUM"], "{keys:?}");

    // For people: a row per rule and the total, and the exemption.
    let out = w.redress(&["report"]);
    assert!(out.status.success(), "report: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    let cells = |first: &str| -> Vec<String> {
        shown
            .lines()
            .find(|l| l.starts_with(first))
            .unwrap_or_else(|| panic!("no {first:?} row in\n{shown}"))
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        cells("RULE")[1..4],
        ["FIXED", "STILL NON-COMPLIANT", "FAILED"]
    );
    let total = cells("total");
    assert_eq!(total[1], want["fixed"].to_string(), "{shown}");
    assert_eq!(total[3], want["failed"].to_string(), "{shown}");
    assert_eq!(total[5], "1", "waiting: {shown}");
    assert_ne!(total[6], "-", "the oldest request's age: {shown}");
    assert_eq!(total[8], want["skipped"].to_string(), "{shown}");
    for rule in &by_rule {
        cells(rule);
    }
    assert!(
        cells("policy line").contains(&EXCEPTED.to_string()),
        "{shown}"
    );
    // The table's name and the ledger the test read are the same.
    assert_eq!(table.name(), format!("{}-ledger", w.prefix));
}

#[tokio::test]
async fn a_report_without_a_ledger_or_with_a_bad_window_is_a_usage_error() {
    let w = World::new("report-usage", &crate::support::policy_fixture("ssh-low")).await;
    let out = w.redress(&["report"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no ledger"),
        "{}",
        text(&out.stderr)
    );
    w.use_ledger();
    let out = w.redress(&["report", "--since", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--since"),
        "{}",
        text(&out.stderr)
    );
    // An empty ledger is a report of nothing, not an error.
    let out = w.redress(&["report", "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(parse_csv(&text(&out.stdout)), vec![CSV_COLUMNS.to_vec()]);
}
