//! `redress dlq`: operators see why messages failed, replay them safely, or purge them.
//!
//! Replay sends the copy first and deletes the original second, so a crash in between
//! can duplicate a message but never lose one (the pipeline is idempotent). Every replay
//! bumps a replay count; past `--max-replays` a message is skipped unless `--force`.

mod redrive;

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use redress::audit::{AuditDecision, AuditRecord};
use redress::dead_letter::{replay_body, summarise, Filter, Summary, REPLAY_COUNT};
use crate::aws::sqs::{Queue, Received};
use redress::text::clean;

use crate::cli::{DlqCommand, Global, ReplayArgs};
use crate::error::{CliError, CliResult};

const WORKER: &str = "dlq";

/// A dead-letter queue and the one queue whose redrive policy names it.
struct Target {
    dlq: Queue,
    /// Where replays go: the source queue AWS's redrive configuration pairs with this
    /// DLQ, never a queue named in a message (its attributes are whatever the sender
    /// wrote). `None` when no single queue names it.
    source: Option<Queue>,
}

/// `events`, `tasks`, `approvals` (the configured queues' DLQs), or a queue name or URL
/// (a source queue means its DLQ; otherwise the queue itself is taken as the DLQ, and
/// its source is the one queue `ListDeadLetterSourceQueues` names).
async fn target(sqs: &aws_sdk_sqs::Client, global: &Global, which: &str) -> CliResult<Target> {
    let named = match which {
        "events" => global.events_queue.as_str(),
        "tasks" => global.tasks_queue.as_str(),
        "approvals" => global.approvals_queue.as_str(),
        other => other,
    };
    let queue = Queue::resolve(sqs, named)
        .await
        .map_err(|e| CliError::input(format!("queue {which}: {e}")))?;
    if let Some(dlq) = queue.dead_letter_queue().await? {
        return Ok(Target {
            dlq,
            source: Some(queue),
        });
    }
    let sources = sqs
        .list_dead_letter_source_queues()
        .queue_url(&queue.url)
        .send()
        .await
        .map_err(|e| crate::aws::retry::AwsError::from_sdk("sqs:ListDeadLetterSourceQueues", e))?;
    let source = match sources.queue_urls() {
        [one] => Some(Queue::at(sqs, one)),
        _ => None,
    };
    Ok(Target { dlq: queue, source })
}

fn age(m: &Received) -> String {
    m.sent_at_ms.map_or_else(
        || "?".into(),
        |ms| redress::time::age(UNIX_EPOCH + Duration::from_millis(ms)),
    )
}

/// Runs a dlq command.
pub async fn run(global: &Global, command: &DlqCommand) -> CliResult {
    let config = crate::aws::load().await;
    let clients = crate::aws::Clients::new(&config);
    match command {
        DlqCommand::List { queue, json } => list(&clients, global, queue, *json).await,
        DlqCommand::Replay(args) => replay(&clients, global, args).await,
        DlqCommand::Redrive { queue } => {
            let t = target(&clients.sqs, global, queue).await?;
            let arn = t.dlq.arn().await?;
            eprintln!(
                "moving every message in {} back to its source queue (SQS message-move task)",
                t.dlq.name
            );
            let moved = redrive::redrive(
                &clients.sqs,
                &arn,
                Duration::from_secs(2),
                Duration::from_secs(3600),
                |m, n| {
                    eprintln!("  moved {m}/{n}");
                },
            )
            .await?;
            println!(
                "message-move task {}: moved {} of {}",
                moved.status, moved.moved, moved.to_move
            );
            match moved.failure {
                Some(f) => Err(CliError::failed(format!("the move task failed: {f}"))),
                None if moved.status != "COMPLETED" => Err(CliError::failed(format!(
                    "the move task ended {}",
                    moved.status
                ))),
                None => Ok(()),
            }
        }
        DlqCommand::Purge { queue, yes } => purge(&clients, global, queue, *yes).await,
    }
}

async fn list(
    clients: &crate::aws::Clients,
    global: &Global,
    which: &str,
    json: bool,
) -> CliResult {
    let t = target(&clients.sqs, global, which).await?;
    let messages = t.dlq.scan(120).await?;
    let summaries: Vec<Summary> = messages
        .iter()
        .map(|m| summarise(&m.body, &m.attributes, m.receive_count))
        .collect();
    let handles: Vec<&str> = messages.iter().map(|m| m.receipt_handle.as_str()).collect();
    t.dlq.release_all(&handles).await?;
    let mut by_class: Vec<(String, usize)> = Vec::new();
    for s in &summaries {
        match by_class.iter_mut().find(|(c, _)| *c == s.error_class) {
            Some((_, n)) => *n += 1,
            None => by_class.push((s.error_class.clone(), 1)),
        }
    }
    if json {
        let rows: Vec<serde_json::Value> = messages
            .iter()
            .zip(&summaries)
            .map(|(m, s)| {
                serde_json::json!({
                    "message_id": m.message_id,
                    "sent_at_ms": m.sent_at_ms,
                    "receive_count": m.receive_count,
                    "summary": s,
                    "attributes": m.attributes,
                    "body": m.body,
                })
            })
            .collect();
        let counts: serde_json::Map<String, serde_json::Value> = by_class
            .iter()
            .map(|(c, n)| (c.clone(), (*n).into()))
            .collect();
        println!(
            "{}",
            serde_json::json!({"queue": t.dlq.name, "messages": rows, "by_error_class": counts})
        );
        return Ok(());
    }
    if messages.is_empty() {
        println!("{} is empty.", t.dlq.name);
        return Ok(());
    }
    println!(
        "{:<38} {:>4} {:>4}  {:<24} {:<30} ERROR",
        "MESSAGE ID", "AGE", "RECV", "RULE", "RESOURCE"
    );
    for (m, s) in messages.iter().zip(&summaries) {
        let replays = if s.replay_count > 0 {
            format!(" (replayed {}x)", s.replay_count)
        } else {
            String::new()
        };
        println!(
            "{:<38} {:>4} {:>4}  {:<24} {:<30} [{}] {}{replays}",
            clean(&m.message_id),
            age(m),
            m.receive_count,
            clean(s.rule.as_deref().unwrap_or("-")),
            clean(s.resource.as_deref().unwrap_or("-")),
            clean(&s.error_class),
            clean(&s.error)
        );
    }
    let counts: Vec<String> = by_class
        .iter()
        .map(|(c, n)| format!("{n} {}", clean(c)))
        .collect();
    println!(
        "{} message{} in {}: {}",
        messages.len(),
        if messages.len() == 1 { "" } else { "s" },
        t.dlq.name,
        counts.join(", ")
    );
    println!("Replay with `redress dlq replay {which} [--rule GLOB] [--resource ID] [--error CLASS] [--dry-run]`.");
    Ok(())
}

fn filter(args: &ReplayArgs) -> CliResult<Filter> {
    let rule = args
        .rule
        .as_deref()
        .map(|g| globset::Glob::new(g).map(|g| g.compile_matcher()))
        .transpose()
        .map_err(|e| CliError::input(format!("--rule: {e}")))?;
    Ok(Filter {
        rule,
        resource: args.resource.clone(),
        error_class: args.error.clone(),
    })
}

/// Counts for the closing summary.
#[derive(Default)]
struct Tally {
    replayed: usize,
    skipped_limit: usize,
    failed: usize,
    not_selected: usize,
}

async fn replay(clients: &crate::aws::Clients, global: &Global, args: &ReplayArgs) -> CliResult {
    let filter = filter(args)?;
    let t = target(&clients.sqs, global, &args.queue).await?;
    let operator = crate::aws::caller_identity(&clients.sts).await?.arn;
    let mut kept: Vec<Received> = Vec::new();
    let mut tally = Tally::default();
    let limit = args.limit.unwrap_or(usize::MAX);
    let result: CliResult = async {
        loop {
            if tally.replayed >= limit {
                break;
            }
            let batch = t.dlq.receive_hidden_for(10, 1, Some(args.visibility as i32)).await?;
            if batch.is_empty() {
                break;
            }
            let mut chosen: Vec<(Received, Summary, Queue)> = Vec::new();
            for m in batch {
                let s = summarise(&m.body, &m.attributes, m.receive_count);
                if !filter.selects(&s) || tally.replayed + chosen.len() >= limit {
                    tally.not_selected += 1;
                    kept.push(m);
                    continue;
                }
                if s.replay_count >= args.max_replays && !args.force {
                    eprintln!(
                        "skipped {} ({} {}): replayed {} times already (limit {}; --force to override)",
                        clean(&m.message_id),
                        clean(s.rule.as_deref().unwrap_or("-")),
                        clean(s.resource.as_deref().unwrap_or("-")),
                        s.replay_count,
                        args.max_replays
                    );
                    tally.skipped_limit += 1;
                    kept.push(m);
                    continue;
                }
                let Some(source) = t.source.clone() else {
                    eprintln!(
                        "failed {}: no single queue names {} as its dead-letter queue, so there is nowhere safe to replay to",
                        clean(&m.message_id),
                        t.dlq.name
                    );
                    tally.failed += 1;
                    kept.push(m);
                    continue;
                };
                chosen.push((m, s, source));
            }
            if global.dry_run {
                for (m, s, source) in chosen {
                    println!(
                        "would replay {} ({} {}) to {}",
                        clean(&m.message_id),
                        clean(s.rule.as_deref().unwrap_or("-")),
                        clean(s.resource.as_deref().unwrap_or("-")),
                        source.name
                    );
                    tally.replayed += 1;
                    kept.push(m);
                }
                continue;
            }
            move_batch(&t.dlq, chosen, &operator, &mut tally, &mut kept).await?;
            if tally.replayed > 0 && tally.replayed % 50 < 10 {
                eprintln!("  replayed {} so far", tally.replayed);
            }
        }
        Ok(())
    }
    .await;
    // Whatever was read and not moved becomes visible again at once, even on error.
    let handles: Vec<&str> = kept.iter().map(|m| m.receipt_handle.as_str()).collect();
    let released = t.dlq.release_all(&handles).await;
    result?;
    released?;
    let verb = if global.dry_run {
        "would replay"
    } else {
        "replayed"
    };
    println!(
        "{verb} {}, skipped {} over the replay limit, {} failed, {} not selected",
        tally.replayed, tally.skipped_limit, tally.failed, tally.not_selected
    );
    let _ = std::io::stdout().flush();
    if tally.failed > 0 {
        return Err(CliError::failed(format!(
            "{} message(s) could not be replayed; they stay in {}",
            tally.failed, t.dlq.name
        )));
    }
    Ok(())
}

/// Sends copies (grouped by source queue, ten at a time), then deletes the originals whose
/// copy was accepted.
async fn move_batch(
    dlq: &Queue,
    chosen: Vec<(Received, Summary, Queue)>,
    operator: &str,
    tally: &mut Tally,
    kept: &mut Vec<Received>,
) -> CliResult {
    let mut groups: HashMap<String, Vec<(Received, Summary, Queue)>> = HashMap::new();
    for c in chosen {
        groups.entry(c.2.url.clone()).or_default().push(c);
    }
    for (_, group) in groups {
        let source = group[0].2.clone();
        let copies: Vec<(String, HashMap<String, String>)> = group
            .iter()
            .map(|(m, s, _)| {
                let attrs = HashMap::from([
                    (REPLAY_COUNT.to_string(), (s.replay_count + 1).to_string()),
                    ("redress.replayed_from".to_string(), dlq.name.clone()),
                ]);
                (replay_body(&m.body), attrs)
            })
            .collect();
        let failed = source.send_batch(&copies).await?;
        let mut sent = Vec::new();
        for (i, (m, s, _)) in group.into_iter().enumerate() {
            match failed.iter().find(|(f, _)| *f == i) {
                Some((_, why)) => {
                    eprintln!("failed {}: {}", clean(&m.message_id), clean(why));
                    tally.failed += 1;
                    kept.push(m);
                }
                None => sent.push((m, s)),
            }
        }
        let handles: Vec<&str> = sent
            .iter()
            .map(|(m, _)| m.receipt_handle.as_str())
            .collect();
        let not_deleted = dlq.delete_batch(&handles).await?;
        for (i, (m, s)) in sent.iter().enumerate() {
            if let Some((_, why)) = not_deleted.iter().find(|(f, _)| *f == i) {
                // The copy is already on its way: the original reappears later and may be
                // replayed twice, which the pipeline tolerates. Never lost.
                eprintln!(
                    "replayed {} but could not delete the original ({}); it may be replayed again",
                    clean(&m.message_id),
                    clean(why)
                );
            }
            let mut r = AuditRecord::bare(WORKER, AuditDecision::Replayed).reason(format!(
                "from {} to {} (replay {})",
                dlq.name,
                source.name,
                s.replay_count + 1
            ));
            r.event_id = Some(m.message_id.clone());
            r.rule = s.rule.clone();
            r.resource_id = s.resource.clone();
            r.actor = Some(operator.to_string());
            r.emit();
            tally.replayed += 1;
        }
    }
    Ok(())
}

async fn purge(
    clients: &crate::aws::Clients,
    global: &Global,
    which: &str,
    yes: bool,
) -> CliResult {
    let t = target(&clients.sqs, global, which).await?;
    if !yes {
        let (visible, in_flight) = t.dlq.depth().await?;
        return Err(CliError::input(format!(
            "refusing to purge {} ({} messages) without --yes; `redress dlq list {which}` shows them",
            t.dlq.name,
            visible + in_flight
        )));
    }
    let operator = crate::aws::caller_identity(&clients.sts).await?.arn;
    let mut removed = 0;
    loop {
        let batch = t.dlq.receive_hidden_for(10, 1, Some(60)).await?;
        if batch.is_empty() {
            break;
        }
        let handles: Vec<&str> = batch.iter().map(|m| m.receipt_handle.as_str()).collect();
        let failed = t.dlq.delete_batch(&handles).await?;
        for (i, m) in batch.iter().enumerate() {
            if failed.iter().any(|(f, _)| *f == i) {
                continue;
            }
            let s = summarise(&m.body, &m.attributes, m.receive_count);
            let mut r = AuditRecord::bare(WORKER, AuditDecision::Purged)
                .reason(format!("purged from {}", t.dlq.name));
            r.event_id = Some(m.message_id.clone());
            r.rule = s.rule;
            r.resource_id = s.resource;
            r.actor = Some(operator.clone());
            r.emit();
            removed += 1;
        }
    }
    println!(
        "purged {removed} message{} from {}",
        if removed == 1 { "" } else { "s" },
        t.dlq.name
    );
    Ok(())
}
