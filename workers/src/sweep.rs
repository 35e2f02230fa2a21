//! `redress sweep`: Config emits an event only when a resource's compliance *changes*, so
//! a resource already NON_COMPLIANT when redress was deployed, or whose event was lost,
//! never produces one. The sweep reads Config's current NON_COMPLIANT results for every
//! Config rule the policy covers and feeds each through the router, exactly as its event
//! would have gone: dedup, exemptions, severity, guards and approvals apply unchanged.
//! A result keeps its identity across sweeps (its rule, resource and recording time), so
//! sweeping twice queues the same task twice and the executor fixes it once.
//!
//! With a ledger, the sweep (run on a schedule) also compares the approvals queue with
//! the ledger's waiting requests first ([`crate::approvals::ledger::repair`]): a request
//! someone deleted from the queue by hand goes back on it, one past its ttl is marked
//! expired, and a queued request without an entry is recorded when the sweep holds the
//! executor's rights (reported otherwise).

use std::collections::HashSet;
use std::sync::Arc;

use redress::decision::{decide, Decision};
use redress::event::{parse_message, StoredResult};
use redress::message::ApprovalsMessage;
use redress::policy::Policy;
use serde::Serialize;

use crate::approvals::ledger::{self, Repaired};
use crate::aws::compliance::{Compliance, Evaluation};
use crate::aws::sqs::{Queue, Received};
use crate::aws::Clients;
use crate::cli::{Global, SweepArgs};
use crate::error::{CliError, CliResult};
use crate::executor::{Polling, Targets};
use crate::output;
use crate::report::{Disposition, Tally};
use crate::settle::{Settled, Settler};
use crate::worker::Handler;

/// Seconds the pending approval requests stay hidden while the sweep reads them.
const SCAN_VISIBILITY_SECONDS: i32 = 60;

/// A result to feed, with where it was read.
struct Found {
    evaluation: Evaluation,
    arn: Option<String>,
    account: String,
    region: String,
}

/// What the sweep did, for `--json` and the summary.
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// NON_COMPLIANT results read from Config for rules the policy covers.
    found: usize,
    /// Handed on: a task for the executor, or an approval request.
    queued: usize,
    /// An approval request for the same finding is already waiting.
    already_pending: usize,
    /// The router skipped it (no policy, exempt, notify only, ...).
    skipped: usize,
    /// Could not be handed on (see the log); the next sweep tries again.
    failed: usize,
    /// With --dry-run: what the router would decide, per finding.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    decisions: Vec<DryDecision>,
    /// The approvals queue against the ledger; absent without a ledger.
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger: Option<Repaired>,
}

/// One dry-run decision.
#[derive(Debug, Serialize)]
struct DryDecision {
    account: String,
    region: String,
    config_rule: String,
    resource_id: String,
    decision: String,
}

/// Runs `redress sweep`.
pub async fn sweep(global: &Global, args: &SweepArgs) -> CliResult {
    let policy = crate::run::load_policy(global)?;
    let wanted = match &args.rule {
        Some(g) => Some(
            globset::Glob::new(g)
                .map_err(|e| CliError::input(format!("--rule {g:?}: {e}")))?
                .compile_matcher(),
        ),
        None => None,
    };
    let covers = |name: &str, arn: Option<&str>| {
        wanted.as_ref().is_none_or(|w| w.is_match(name))
            && policy.rules.iter().any(|r| r.covers_config_rule(name, arn))
    };
    let config = crate::aws::load().await;
    let clients = Clients::new(&config);
    // First, so requests put back count as pending for the findings fed below.
    let repaired = reconcile(global, &policy, &clients).await?;
    let found = read(&policy, &config, &clients, &covers).await?;
    let mut summary = Summary {
        found: found.len(),
        failed: repaired.as_ref().map_or(0, |r| r.failed),
        ledger: repaired,
        ..Summary::default()
    };
    let now = redress::time::now_rfc3339();
    let events: Vec<String> = found
        .iter()
        .map(|f| {
            let e = &f.evaluation;
            let stored = StoredResult {
                rule: &e.rule,
                rule_arn: f.arn.as_deref(),
                resource_type: &e.resource_type,
                resource_id: &e.resource_id,
                account: &f.account,
                region: &f.region,
                compliance: &e.compliance,
                annotation: e.annotation.as_deref(),
                recorded_at: e.recorded_at.as_deref(),
                invoked_at: e.invoked_at.as_deref(),
            };
            serde_json::to_string(&stored.as_event(&now)).expect("an event serialises")
        })
        .collect();
    if global.dry_run {
        let approvals = Queue::resolve(&clients.sqs, &global.approvals_queue).await?;
        let pending = pending_requests(&approvals).await?;
        rehearse(&policy, &events, &pending, &mut summary);
    } else {
        feed(global, policy.clone(), &clients, &events, &mut summary).await?;
    }
    print(&summary, args.json, global.dry_run)?;
    if summary.failed > 0 {
        return Err(CliError::failed(format!(
            "{} finding(s) could not be handed on; the next sweep tries again",
            summary.failed
        )));
    }
    Ok(())
}

/// The approvals queue against the ledger's waiting requests, repaired (in a dry run,
/// only compared); `None` without a ledger to compare with.
async fn reconcile(
    global: &Global,
    policy: &Policy,
    clients: &Clients,
) -> CliResult<Option<Repaired>> {
    let table = ledger::table(global, clients);
    let Some(awaiting) = ledger::awaiting(table.as_ref()).await else {
        return Ok(None);
    };
    let table = table.expect("entries were read from it");
    let approvals = Queue::resolve(&clients.sqs, &global.approvals_queue).await?;
    let groups = crate::executor::SecurityGroups::new(clients.ec2.clone());
    let repaired = ledger::repair(
        policy,
        &table,
        &awaiting,
        &approvals,
        &groups,
        SCAN_VISIBILITY_SECONDS,
        global.dry_run,
    )
    .await?;
    Ok(Some(repaired))
}

/// Config's NON_COMPLIANT results for the rules `covers` accepts: from the aggregator
/// when the policy names one, else from each account and region of `[config]`.
async fn read(
    policy: &Policy,
    config: &crate::aws::SdkConfig,
    clients: &Clients,
    covers: &(dyn Fn(&str, Option<&str>) -> bool + Sync),
) -> CliResult<Vec<Found>> {
    let home = crate::aws::caller_identity(&clients.sts).await?.account;
    let region = config
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| CliError::input("no AWS region configured (set AWS_REGION)"))?;
    if let Some(aggregator) = &policy.config.aggregator {
        let all = Compliance::new(clients.config.clone())
            .aggregated_non_compliant(aggregator, |name| covers(name, None))
            .await?;
        return Ok(all
            .into_iter()
            .filter_map(|e| {
                let (account, region) = (e.account.clone()?, e.region.clone()?);
                Some(Found {
                    evaluation: e,
                    arn: None,
                    account,
                    region,
                })
            })
            .collect());
    }
    let accounts = if policy.config.accounts.is_empty() {
        vec![home.clone()]
    } else {
        policy.config.accounts.clone()
    };
    let regions = if policy.config.regions.is_empty() {
        vec![region.clone()]
    } else {
        policy.config.regions.clone()
    };
    let polling = Polling {
        interval: std::time::Duration::from_secs(1),
        timeout: std::time::Duration::from_secs(60),
    };
    let targets = Targets::new(
        config.clone(),
        home,
        region,
        policy.accounts.role.clone(),
        polling,
    )
    .config_reads_only();
    let bar = output::progress(None, "reading Config rules");
    let mut found = Vec::new();
    for account in &accounts {
        for region in &regions {
            let seams = targets
                .seams(account, region)
                .await
                .map_err(|e| CliError::failed(format!("{account}/{region}: {e}")))?;
            let rules = seams.compliance.rules().await?;
            for rule in rules
                .into_iter()
                .filter(|r| covers(&r.name, r.arn.as_deref()))
            {
                for evaluation in seams.compliance.non_compliant(&rule.name).await? {
                    found.push(Found {
                        evaluation,
                        arn: rule.arn.clone(),
                        account: account.clone(),
                        region: region.clone(),
                    });
                }
                output::advance(&bar, 1);
            }
        }
    }
    bar.finish_and_clear();
    Ok(found)
}

/// (policy rule, account, region, resource): how a pending request and a finding are
/// matched.
type PendingKey = (String, String, String, String);

/// Whether an approval request for this event's finding under `rule_id` is waiting.
fn is_pending(
    pending: &HashSet<PendingKey>,
    rule_id: &str,
    e: &redress::event::ComplianceEvent,
) -> bool {
    let d = &e.detail;
    pending.contains(&(
        rule_id.to_string(),
        d.aws_account_id.clone(),
        d.aws_region.clone(),
        d.resource_id.clone(),
    ))
}

/// The router's decisions, sending nothing.
fn rehearse(
    policy: &Policy,
    events: &[String],
    pending: &HashSet<PendingKey>,
    summary: &mut Summary,
) {
    for body in events {
        let Ok(e) = parse_message(body) else {
            summary.skipped += 1;
            continue;
        };
        let d = decide(&e, policy);
        let decision = match &d {
            Decision::Skip { reason, .. } => {
                summary.skipped += 1;
                format!("skip: {}", reason.as_str())
            }
            Decision::Remediate { rule_id, .. } => {
                summary.queued += 1;
                format!("would fix under {rule_id}")
            }
            Decision::RequestApproval { rule_id, .. } if is_pending(pending, rule_id, &e) => {
                summary.already_pending += 1;
                format!("already waiting for approval under {rule_id}")
            }
            Decision::RequestApproval { rule_id, .. } => {
                summary.queued += 1;
                format!("would request approval under {rule_id}")
            }
        };
        summary.decisions.push(DryDecision {
            account: e.detail.aws_account_id.clone(),
            region: e.detail.aws_region.clone(),
            config_rule: e.detail.config_rule_name.clone(),
            resource_id: e.detail.resource_id.clone(),
            decision,
        });
    }
}

/// (policy rule, account, region, resource) of every approval request waiting now.
async fn pending_requests(
    approvals: &Queue,
) -> CliResult<HashSet<(String, String, String, String)>> {
    let messages = approvals.scan(SCAN_VISIBILITY_SECONDS).await?;
    let pending = messages
        .iter()
        .filter_map(
            |m| match serde_json::from_str::<ApprovalsMessage>(&m.body) {
                Ok(ApprovalsMessage::Request(r)) => {
                    let f = &r.task.finding;
                    Some((
                        r.task.rule_id.clone(),
                        f.account_id.clone(),
                        f.region.clone(),
                        f.resource_id.clone(),
                    ))
                }
                _ => None,
            },
        )
        .collect();
    let handles: Vec<&str> = messages.iter().map(|m| m.receipt_handle.as_str()).collect();
    approvals.release_all(&handles).await?;
    Ok(pending)
}

/// Feeds each finding through the router and settles the verdicts as the router worker
/// does (sends batched, audit records once durable).
async fn feed(
    global: &Global,
    policy: Arc<Policy>,
    clients: &Clients,
    events: &[String],
    summary: &mut Summary,
) -> CliResult {
    let router = crate::run::router(global, policy.clone(), clients).await?;
    let pending = pending_requests(&router.approvals).await?;
    let tally = Tally::default();
    let settler = Settler {
        worker: "router",
        dlq: None,
        tally: &tally,
    };
    let bar = output::progress(Some(events.len() as u64), "feeding findings");
    for chunk in events.chunks(10) {
        // The findings to feed, each read once; the router reads its message as it
        // reads any event.
        let mut messages: Vec<Received> = Vec::new();
        for body in chunk {
            let e = match parse_message(body) {
                Ok(e) => e,
                Err(why) => {
                    // One odd result (an id Config allows and redress does not) must not
                    // stop the sweep: it is left out, with the reason.
                    tracing::warn!(error = %why, "a Config result is not a usable finding; left out");
                    summary.skipped += 1;
                    continue;
                }
            };
            if let Decision::RequestApproval { rule_id, .. } = decide(&e, &policy) {
                if is_pending(&pending, &rule_id, &e) {
                    summary.already_pending += 1;
                    continue;
                }
            }
            messages.push(Received {
                message_id: e.event_id,
                receipt_handle: String::new(),
                body: body.clone(),
                receive_count: 1,
                attributes: Default::default(),
                sender_id: None,
                sent_at_ms: None,
            });
        }
        let mut batch = Vec::new();
        for m in &messages {
            batch.push((m, router.handle(m).await));
        }
        let fates: Vec<Option<Disposition>> = batch
            .iter()
            .map(|(_, v)| v.report.as_ref().map(|(fate, _, _)| *fate))
            .collect();
        for (settled, fate) in settler.settle(batch).await.into_iter().zip(fates) {
            match (settled, fate) {
                (Settled::Durable, Some(Disposition::Skipped)) => summary.skipped += 1,
                (Settled::Durable, _) => summary.queued += 1,
                (Settled::Again { .. }, _) => summary.failed += 1,
            }
        }
        output::advance(&bar, chunk.len());
    }
    bar.finish_and_clear();
    Ok(())
}

fn print(summary: &Summary, json: bool, dry_run: bool) -> CliResult {
    if json {
        println!("{}", output::json(summary)?);
        return Ok(());
    }
    for d in &summary.decisions {
        println!(
            "{} {} in {}/{}: {}",
            d.config_rule, d.resource_id, d.account, d.region, d.decision
        );
    }
    if let Some(l) = &summary.ledger {
        let ids: Vec<&str> = l.put_back.iter().map(|m| m.request.as_str()).collect();
        let mut line = format!(
            "Ledger: {} request(s) missing from the approvals queue {}{}",
            ids.len(),
            match (ids.is_empty(), dry_run) {
                (true, _) => "(none)",
                (false, false) => "put back",
                (false, true) => "would be put back",
            },
            if ids.is_empty() {
                String::new()
            } else {
                format!(" ({})", ids.join(", "))
            }
        );
        line.push_str(&format!(", {} expired, {} recorded", l.expired, l.recorded));
        if !l.unrecorded.is_empty() {
            line.push_str(&format!(
                ", {} queued without an entry that only the executor may record ({})",
                l.unrecorded.len(),
                l.unrecorded.join(", ")
            ));
        }
        println!("{line}");
    }
    println!(
        "Sweep: {} found, {} queued, {} already pending, {} skipped{}",
        summary.found,
        summary.queued,
        summary.already_pending,
        summary.skipped,
        if summary.failed > 0 {
            format!(", {} failed", summary.failed)
        } else {
            String::new()
        }
    );
    Ok(())
}
