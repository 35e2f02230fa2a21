//! `redress undo ENTRY --reason TEXT --until WHEN [--force]`: asks to put back what a
//! ledger entry's fix changed. It plans the undo from the entry and the resource as it is
//! now (refusing at once what the executor would refuse) and hands the unapproved undo to
//! the executor, which records it with the requester SQS asserts and makes the approval
//! request; it changes nothing itself (it needs no remediation rights). Another approver
//! approves it like any request, and the executor plans it again before acting
//! (`executor::undo`).

use std::time::{Duration, SystemTime};

use redress::catalog::Catalog;
use redress::ledger::{plan_undo, EntryAction, EntryId, Principal, UndoRequest};
use redress::message::{Task, UndoTask};
use redress::text::clean;
use redress::time::format_rfc3339;

use crate::aws::ledger::LedgerTable;
use crate::aws::sqs::Queue;
use crate::aws::targets::{Polling, Targets};
use crate::aws::Clients;
use crate::cli::{Global, UndoArgs};
use crate::error::{CliError, CliResult};
use crate::executor::undo_resource::observe;

/// Runs `redress undo`.
pub async fn undo(global: &Global, args: &UndoArgs) -> CliResult {
    let now = SystemTime::now();
    let id = EntryId::parse(&args.entry).map_err(CliError::input)?;
    let until = parse_until(&args.until, now).map_err(CliError::input)?;
    let policy = crate::run::load_policy(global)?;
    let config = crate::aws::load().await;
    let clients = Clients::new(&config);
    let name = global.ledger_to_read()?;
    let table = LedgerTable::new(clients.dynamodb.clone(), name);
    let original = table
        .get(&id)
        .await
        .map_err(|e| crate::history::read_error(name, e))?
        .ok_or_else(|| {
            CliError::input(format!(
                "no ledger entry {id} in {name} (see `redress history`)"
            ))
        })?;
    let EntryAction::Remediate(_) = &original.action else {
        return Err(CliError::input(format!(
            "{id} is itself an undo; to have the fix again, let its exception lapse and the policy fixes the finding"
        )));
    };
    let me = crate::aws::caller_identity(&clients.sts).await?;
    let request = UndoRequest {
        reason: args.reason.clone(),
        until,
        force: args.force,
        requested_by: Principal {
            arn: me.arn.clone(),
            user_id: me.user_id.clone(),
        },
    };
    request
        .check(now)
        .map_err(|r| CliError::input(format!("undo refused: {r}")))?;
    let f = &original.finding;
    let home = me.account.clone();
    let region = config
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| CliError::input("no AWS region configured (set AWS_REGION)"))?;
    let polling = Polling {
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(60),
    };
    let targets = Targets::new(
        config.clone(),
        home,
        region,
        policy.accounts.role.clone(),
        polling,
    );
    let seams = targets.seams(&f.account_id, &f.region).await.map_err(|e| {
        CliError::failed(format!(
            "cannot read {} in {}/{}: {e}",
            f.resource_id, f.account_id, f.region
        ))
    })?;
    let change = original.change.as_ref().ok_or_else(|| {
        CliError::input(format!(
            "undo refused: {id} records no state before its change, so there is nothing to put back from"
        ))
    })?;
    let observed = observe(&seams, change)
        .await
        .map_err(|e| CliError::input(format!("undo refused: {}", e.message)))?;
    let plan = plan_undo(&original, &observed, Catalog::shipped(), args.force)
        .map_err(|r| CliError::input(format!("undo refused: {r}")))?;
    let mut task = Task::new(&original.rule_id, original.severity, f.clone());
    task.undo = Some(UndoTask {
        entry: id.clone(),
        plan: plan.clone(),
        reason: args.reason.clone(),
        until: format_rfc3339(until),
        force: args.force,
        requested_at: format_rfc3339(now),
        requested_by: request.requested_by.clone(),
    });
    if global.dry_run {
        println!(
            "dry run: undo of {id} would ask for approval to {} on {} {}; then leave the finding alone until {}. Nothing was sent or changed.",
            clean(&plan.describe()),
            clean(&f.resource_type),
            clean(&f.resource_id),
            format_rfc3339(until)
        );
        return Ok(());
    }
    // To the executor, not the approvals queue: it records the undo in its ledger with
    // the requester SQS asserts (this task's SenderId), plans it again and makes the
    // approval request; at execution it compares the approver with that requester.
    let approval_id = task.approval_id();
    let queue = Queue::resolve(&clients.sqs, &global.tasks_queue).await?;
    let body = serde_json::to_string(&task)
        .map_err(|e| CliError::failed(format!("cannot serialise the undo: {e}")))?;
    queue.send(&body).await?;
    redress::audit::AuditRecord::for_finding(
        "undo",
        f,
        Some(&original.rule_id),
        Some(original.severity),
        redress::audit::AuditDecision::ApprovalRequested,
    )
    .reason(format!("undo of {id} asked by {}: {}", me.arn, args.reason))
    .emit();
    println!(
        "undo of {id} asked: {}. The executor records it and puts request {approval_id} on the approvals queue; another approver runs `redress approvals show {approval_id}` and `redress approvals approve {approval_id}`.",
        clean(&plan.describe()),
    );
    Ok(())
}

/// `--until`: a date (midnight UTC), an RFC 3339 time, or a duration from `now`.
fn parse_until(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let t = text.trim();
    let is_date = t.len() == 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-';
    let parsed = if is_date {
        redress::time::parse_rfc3339(&format!("{t}T00:00:00Z"))
    } else {
        redress::time::parse_rfc3339(t)
            .or_else(|| humantime::parse_duration(t).ok().map(|d| now + d))
    };
    parsed.ok_or_else(|| {
        format!("--until {t:?} is not a date (2027-01-31), an RFC 3339 time or a duration (7d)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_takes_a_date_a_time_or_a_duration() {
        let now = redress::time::parse_rfc3339("2026-12-07T10:00:00Z").unwrap();
        let at = |s| format_rfc3339(parse_until(s, now).unwrap());
        assert_eq!(at("2027-01-31"), "2027-01-31T00:00:00Z");
        assert_eq!(at("2027-01-31T12:30:00Z"), "2027-01-31T12:30:00Z");
        assert_eq!(at("7d"), "2026-12-14T10:00:00Z");
        assert!(parse_until("next tuesday", now)
            .unwrap_err()
            .contains("not a date"));
    }
}
