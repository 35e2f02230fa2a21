//! `redress policy check` and `redress policy explain`: no AWS calls, no side effects.

use std::collections::BTreeSet;
use std::path::Path;

use redress::catalog::Catalog;
use redress::coverage;
use redress::decision::{decide, Decision};
use redress::event::parse_message;
use redress::message::Finding;
use redress::policy::{Action, Mode, Policy, Problem, RenderedAction, Severity};
use redress::text::clean;
use serde::Serialize;

use crate::error::{CliError, CliResult};
use crate::output;

/// Validates a policy, checking every runbook action against the shipped runbook
/// catalog, and prints its rules. Every problem goes to stderr as `FILE:LINE: error: …`
/// (or `warning: …`); any error fails the check (exit 2), warnings alone do not.
pub fn check(path: &Path) -> CliResult {
    let catalog = Catalog::shipped();
    let name = path.display().to_string();
    let print = |problems: &[Problem]| {
        for p in problems {
            eprintln!("{}", clean(&p.located(&name)));
        }
    };
    let checked = match Policy::check_file(path, catalog) {
        Ok(c) => c,
        Err(e) => {
            print(&e.problems);
            return Err(CliError::input(clean(&e.summary())));
        }
    };
    print(&checked.warnings);
    let policy = checked.policy;
    println!("{name}: OK, {}", clean(&counts(&policy, catalog)));
    println!(
        "  routing: auto_max_severity = {} (at or below: fixed automatically; above: approval)",
        policy.routing.auto_max_severity
    );
    let l = &policy.limits;
    let cap = |c: Option<u32>| c.map_or("no cap".to_string(), |n| format!("{n}/min"));
    println!(
        "  limits: automatic fixes {}; breaker at {:.0}% failed of >= {} in {}, open {}; kill switch {}",
        cap(l.max_fixes_per_minute),
        l.breaker.error_rate * 100.0,
        l.breaker.min_fixes,
        humantime::format_duration(l.breaker.window),
        humantime::format_duration(l.breaker.cooldown),
        l.kill_switch_parameter.as_deref().unwrap_or("none"),
    );
    println!(
        "  accounts: {}",
        policy
            .accounts
            .role
            .as_deref()
            .unwrap_or("own account only (no [accounts] role)")
    );
    if !policy.rules.is_empty() {
        let mut table =
            output::table(["LINE", "RULE", "SEVERITY", "MODE", "CONFIG RULE", "ACTION"]);
        output::align_right(&mut table, &[0]);
        for r in &policy.rules {
            table.add_row(vec![
                r.line.to_string(),
                clean(&r.id).into_owned(),
                r.severity.to_string(),
                policy.mode_of(r).to_string(),
                clean(&r.config_rule).into_owned(),
                clean(&format!(
                    "{}{}",
                    r.action.describe(),
                    r.max_fixes_per_minute
                        .map(|n| format!(" (at most {n}/min)"))
                        .unwrap_or_default()
                ))
                .into_owned(),
            ]);
        }
        print!("{}", output::render(&table));
    }
    let now = std::time::SystemTime::now();
    for e in &policy.exceptions {
        let scope = match (&e.resource_id, &e.account) {
            (Some(r), Some(a)) => format!("{r} in {a}"),
            (Some(r), None) => r.clone(),
            (None, Some(a)) => format!("account {a}"),
            (None, None) => "-".into(),
        };
        let state = if now < e.expires { "until" } else { "EXPIRED" };
        println!(
            "  line {:<4} exception {} {state} {}: {}",
            e.line,
            clean(&scope),
            clean(&e.expires_text),
            clean(&e.reason)
        );
    }
    Ok(())
}

/// The policy's size in words: `7 rules: 2 runbooks, 5 of 6 fixes undoable`, counted as
/// the coverage table counts them ([`coverage::counts`]: runbooks are the distinct
/// AWS-owned documents that can run, undoable the fixes redress could put back), plus
/// runnable documents outside the catalog when there are any. A notify-only rule's
/// document outside the catalog is a label that never runs (the packs'
/// `Redress-NotifyOnly-*`), not a runbook.
fn counts(policy: &Policy, catalog: &Catalog) -> String {
    let c = coverage::counts(policy, catalog);
    let outside: BTreeSet<&str> = policy
        .rules
        .iter()
        .filter(|r| policy.mode_of(r) != Mode::Notify)
        .filter_map(|r| match &r.action {
            Action::Runbook(rb) if catalog.get(&rb.document).is_none() => {
                Some(rb.document.as_str())
            }
            _ => None,
        })
        .collect();
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let fixes = if c.fixes() == 1 { "fix" } else { "fixes" };
    let mut text = format!(
        "{}: {}, {} of {} {fixes} undoable",
        plural(c.rules, "rule"),
        plural(c.runbooks, "runbook"),
        c.undoable,
        c.fixes(),
    );
    if !outside.is_empty() {
        text.push_str(&format!(", {} outside the runbook catalog", outside.len()));
    }
    text
}

/// `policy explain --json`: the event's fields as they are (serde escapes them) and the
/// decision.
#[derive(Serialize)]
struct ExplainDoc<'a> {
    event_id: &'a str,
    config_rule: &'a str,
    resource_id: &'a str,
    resource_type: &'a str,
    account: &'a str,
    region: &'a str,
    compliance: &'a str,
    /// The matching policy rule, if any.
    rule: Option<&'a str>,
    severity: Option<Severity>,
    /// `remediate`, `approval_requested` or `skipped`.
    decision: &'a str,
    /// Why it was skipped.
    reason: Option<&'a str>,
    /// The action with every placeholder expanded (none when skipped).
    action: Option<&'a RenderedAction>,
}

/// Prints the decision the policy makes for an event file.
pub fn explain(policy_path: &Path, event_path: &Path, json: bool) -> CliResult {
    let policy = Policy::from_file(policy_path).map_err(CliError::input)?;
    let body = std::fs::read_to_string(event_path)
        .map_err(|e| CliError::input(format!("cannot read {}: {e}", event_path.display())))?;
    let event = parse_message(&body).map_err(|e| {
        CliError::input(format!(
            "{} is not a valid event: {e}",
            event_path.display()
        ))
    })?;
    let decision = decide(&event, &policy);
    let finding = Finding::from_event(&event);
    let action = decision
        .rule_id()
        .and_then(|id| policy.rule(id))
        .filter(|_| !matches!(decision, Decision::Skip { .. }))
        .map(|r| r.action.render(&finding.facts()))
        .transpose()
        .map_err(CliError::input)?;
    let (kind, reason) = match &decision {
        Decision::Remediate { .. } => ("remediate", None),
        Decision::RequestApproval { .. } => ("approval_requested", None),
        Decision::Skip { reason, .. } => ("skipped", Some(reason.as_str())),
    };
    if json {
        let doc = ExplainDoc {
            event_id: &finding.event_id,
            config_rule: &finding.config_rule_name,
            resource_id: &finding.resource_id,
            resource_type: &finding.resource_type,
            account: &finding.account_id,
            region: &finding.region,
            compliance: &finding.compliance,
            rule: decision.rule_id(),
            severity: decision.severity(),
            decision: kind,
            reason,
            action: action.as_ref(),
        };
        println!("{}", output::json_pretty(&doc)?);
        return Ok(());
    }
    // The event file is untrusted input: every field from it is cleaned.
    println!(
        "event     {} ({})",
        clean(&finding.event_id),
        clean(&finding.compliance)
    );
    println!(
        "resource  {} {} in {}/{}",
        clean(&finding.resource_type),
        clean(&finding.resource_id),
        clean(&finding.account_id),
        clean(&finding.region)
    );
    println!("config    {}", clean(&finding.config_rule_name));
    match decision.rule_id().and_then(|id| policy.rule(id)) {
        Some(r) => println!(
            "rule      {} (line {}, severity {})",
            clean(&r.id),
            r.line,
            r.severity
        ),
        None => println!("rule      none matches"),
    }
    match (kind, reason) {
        (_, Some(reason)) => println!("decision  skipped: {}", clean(reason)),
        ("remediate", _) => println!("decision  remediate automatically"),
        _ => println!("decision  request approval"),
    }
    if let Some(a) = action {
        println!("action    {}", clean(&a.describe()));
    }
    Ok(())
}
