//! `redress dlq`: operators see why messages failed, replay them safely, or purge them.
//!
//! Replay sends the copy first and deletes the original second, so a crash in between
//! can duplicate a message but never lose one (the pipeline is idempotent). Every replay
//! bumps a replay count; past `--max-replays` a message is skipped unless `--force`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::time::{Duration, UNIX_EPOCH};

use indicatif::ProgressBar;
use serde::{Serialize, Serializer};

use crate::aws::sqs::{Outbound, Queue, Received};
use crate::aws::Clients;
use redress::audit::{AuditDecision, AuditRecord};
use redress::dead_letter::{replay_body, summarise, Filter, Summary, REPLAY_COUNT};
use redress::text::clean;

use crate::cli::{DlqCommand, Global, ReplayArgs};
use crate::error::{CliError, CliResult};
use crate::output;

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
async fn target(clients: &Clients, global: &Global, which: &str) -> CliResult<Target> {
    let named = match which {
        "events" => global.events_queue.as_str(),
        "tasks" => global.tasks_queue.as_str(),
        "approvals" => global.approvals_queue.as_str(),
        other => other,
    };
    let queue = Queue::resolve(&clients.sqs, named)
        .await
        .map_err(|e| CliError::input(format!("queue {which}: {e}")))?;
    if let Some(dlq) = queue.dead_letter_queue().await? {
        return Ok(Target {
            dlq,
            source: Some(queue),
        });
    }
    let mut sources = queue.dead_letter_sources().await?;
    let source = match sources.len() {
        1 => sources.pop(),
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
        DlqCommand::Redrive { queue } => redrive(&clients, global, queue).await,
        DlqCommand::Purge { queue, yes } => purge(&clients, global, queue, *yes).await,
    }
}

/// Hands the whole DLQ to an SQS message-move task and follows it.
async fn redrive(clients: &Clients, global: &Global, which: &str) -> CliResult {
    let t = target(clients, global, which).await?;
    // SQS's native move does not pass through redress: a task would keep its approval.
    // Tasks go back through `replay`, which drops approvals.
    let tasks = global.tasks_queue.rsplit('/').next().unwrap_or_default();
    if t.source.as_ref().is_some_and(|q| q.name == tasks) {
        return Err(CliError::input(format!(
            "refusing to redrive {}: a native move would keep the approvals tasks carry; use `redress dlq replay tasks`, which turns them into new approval requests",
            clean(&t.dlq.name)
        )));
    }
    let arn = t.dlq.arn().await?;
    let name = clean(&t.dlq.name);
    eprintln!("moving every message in {name} back to its source queue (SQS message-move task)");
    let bar = output::progress(Some(0), &format!("moving {name}"));
    let mut logged = None;
    let moved = crate::aws::redrive::redrive(
        &clients.sqs,
        &arn,
        Duration::from_secs(2),
        Duration::from_secs(3600),
        |m, n| {
            bar.set_length(u64::try_from(n).unwrap_or(0));
            bar.set_position(u64::try_from(m).unwrap_or(0));
            // Without a terminal the bar is hidden: progress goes to the log instead.
            if bar.is_hidden() && logged != Some((m, n)) {
                tracing::info!(moved = m, to_move = n, "moved {m}/{n}");
                logged = Some((m, n));
            }
        },
    )
    .await;
    bar.finish_and_clear();
    let moved = moved?;
    println!(
        "message-move task {}: moved {} of {}",
        clean(&moved.status),
        moved.moved,
        moved.to_move
    );
    match moved.failure {
        Some(f) => Err(CliError::failed(format!(
            "the move task failed: {}",
            clean(&f)
        ))),
        None if moved.status != "COMPLETED" => Err(CliError::failed(format!(
            "the move task ended {}",
            clean(&moved.status)
        ))),
        None => Ok(()),
    }
}

/// Reads every visible message, hiding each for two minutes; on an error, makes what was
/// read visible again before failing.
async fn read_all(dlq: &Queue) -> CliResult<Vec<Received>> {
    let bar = output::progress(None, &format!("reading {}", clean(&dlq.name)));
    let mut all: Vec<Received> = Vec::new();
    let read: CliResult = async {
        loop {
            let batch = dlq.receive_hidden_for(10, 1, Some(120)).await?;
            if batch.is_empty() {
                return Ok(());
            }
            output::advance(&bar, batch.len());
            all.extend(batch);
        }
    }
    .await;
    bar.finish_and_clear();
    if let Err(e) = read {
        let handles: Vec<&str> = all.iter().map(|m| m.receipt_handle.as_str()).collect();
        // The read error is the one to report; the release is best effort.
        let _ = dlq.release_all(&handles).await;
        return Err(e);
    }
    Ok(all)
}

/// `dlq list --json`: raw data (serde escapes it; nothing is cleaned).
#[derive(Serialize)]
struct ListDoc<'a> {
    /// The dead-letter queue's name.
    queue: &'a str,
    messages: Vec<MessageDoc<'a>>,
    /// Messages per error class, in order of first appearance.
    #[serde(serialize_with = "counts_as_map")]
    by_error_class: &'a [(String, usize)],
}

/// One dead letter in `dlq list --json`.
#[derive(Serialize)]
struct MessageDoc<'a> {
    message_id: &'a str,
    sent_at_ms: Option<u64>,
    receive_count: u32,
    summary: &'a Summary,
    /// String message attributes, sorted by name.
    attributes: BTreeMap<&'a str, &'a str>,
    body: &'a str,
}

fn counts_as_map<S: Serializer>(counts: &&[(String, usize)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(counts.iter().map(|(class, n)| (class, n)))
}

async fn list(
    clients: &crate::aws::Clients,
    global: &Global,
    which: &str,
    json: bool,
) -> CliResult {
    let t = target(clients, global, which).await?;
    let messages = read_all(&t.dlq).await?;
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
        let doc = ListDoc {
            queue: &t.dlq.name,
            messages: messages
                .iter()
                .zip(&summaries)
                .map(|(m, s)| MessageDoc {
                    message_id: &m.message_id,
                    sent_at_ms: m.sent_at_ms,
                    receive_count: m.receive_count,
                    summary: s,
                    attributes: m
                        .attributes
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                    body: &m.body,
                })
                .collect(),
            by_error_class: &by_class,
        };
        println!("{}", output::json(&doc)?);
        return Ok(());
    }
    let name = clean(&t.dlq.name);
    if messages.is_empty() {
        println!("{name} is empty.");
        return Ok(());
    }
    let mut table = output::table([
        "MESSAGE ID",
        "AGE",
        "RECV",
        "RULE",
        "RESOURCE",
        "CLASS",
        "ERROR",
    ]);
    output::align_right(&mut table, &[1, 2]);
    for (m, s) in messages.iter().zip(&summaries) {
        let mut error = clean(&s.error).into_owned();
        if s.replay_count > 0 {
            error.push_str(&format!(" (replayed {}x)", s.replay_count));
        }
        table.add_row(vec![
            clean(&m.message_id).into_owned(),
            age(m),
            m.receive_count.to_string(),
            clean(s.rule.as_deref().unwrap_or("-")).into_owned(),
            clean(s.resource.as_deref().unwrap_or("-")).into_owned(),
            clean(&s.error_class).into_owned(),
            error,
        ]);
    }
    print!("{}", output::render(&table));
    let counts: Vec<String> = by_class
        .iter()
        .map(|(c, n)| format!("{n} {}", clean(c)))
        .collect();
    println!(
        "{} message{} in {name}: {}",
        messages.len(),
        if messages.len() == 1 { "" } else { "s" },
        counts.join(", ")
    );
    println!("Replay with `redress dlq replay {} [--rule GLOB] [--resource ID] [--error CLASS] [--dry-run]`.", clean(which));
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

/// Counts for the progress bar and the closing summary.
#[derive(Default)]
struct Tally {
    replayed: usize,
    skipped_limit: usize,
    failed: usize,
    not_selected: usize,
}

impl Tally {
    fn brief(&self) -> String {
        let mut s = format!("{} replayed", self.replayed);
        if self.skipped_limit > 0 {
            s.push_str(&format!(", {} over the limit", self.skipped_limit));
        }
        if self.failed > 0 {
            s.push_str(&format!(", {} failed", self.failed));
        }
        s
    }
}

/// How many messages a DLQ shows, for a progress bar's length; only asked when a bar
/// will be drawn (one more call, and an approximate figure).
async fn visible_depth(dlq: &Queue) -> Option<u64> {
    if !output::progress_visible() {
        return None;
    }
    dlq.depth().await.ok().map(|d| d.visible)
}

/// Without a terminal the bar is hidden: every 50 replays go to the log instead.
const LOG_EVERY: usize = 50;

/// `rule resource` of a dead letter, cleaned, for one line of human output.
fn what(s: &Summary) -> String {
    format!(
        "{} {}",
        clean(s.rule.as_deref().unwrap_or("-")),
        clean(s.resource.as_deref().unwrap_or("-"))
    )
}

async fn replay(clients: &crate::aws::Clients, global: &Global, args: &ReplayArgs) -> CliResult {
    let filter = filter(args)?;
    let t = target(clients, global, &args.queue).await?;
    let operator = crate::aws::caller_identity(&clients.sts).await?.arn;
    let dlq_name = clean(&t.dlq.name).into_owned();
    let mut kept: Vec<Received> = Vec::new();
    let mut tally = Tally::default();
    let limit = args.limit.unwrap_or(usize::MAX);
    let bar = output::progress(
        visible_depth(&t.dlq).await,
        &format!("replaying {dlq_name}"),
    );
    let result: CliResult = async {
        loop {
            if tally.replayed >= limit {
                break;
            }
            let batch = t.dlq.receive_hidden_for(10, 1, Some(args.visibility as i32)).await?;
            if batch.is_empty() {
                break;
            }
            output::advance(&bar, batch.len());
            let mut chosen: Vec<(Received, Summary, Queue)> = Vec::new();
            for m in batch {
                let s = summarise(&m.body, &m.attributes, m.receive_count);
                if !filter.selects(&s) || tally.replayed + chosen.len() >= limit {
                    tally.not_selected += 1;
                    kept.push(m);
                    continue;
                }
                if s.replay_count >= args.max_replays && !args.force {
                    output::eprint_line(&bar, &format!(
                        "skipped {} ({}): replayed {} times already (limit {}; --force to override)",
                        clean(&m.message_id),
                        what(&s),
                        s.replay_count,
                        args.max_replays
                    ));
                    tally.skipped_limit += 1;
                    kept.push(m);
                    continue;
                }
                let Some(source) = t.source.clone() else {
                    output::eprint_line(&bar, &format!(
                        "failed {}: no single queue names {dlq_name} as its dead-letter queue, so there is nowhere safe to replay to",
                        clean(&m.message_id),
                    ));
                    tally.failed += 1;
                    kept.push(m);
                    continue;
                };
                chosen.push((m, s, source));
            }
            if global.dry_run {
                bar.suspend(|| {
                    for (m, s, source) in chosen {
                        println!(
                            "would replay {} ({}) to {}",
                            clean(&m.message_id),
                            what(&s),
                            clean(&source.name)
                        );
                        tally.replayed += 1;
                        kept.push(m);
                    }
                });
                bar.set_message(tally.brief());
                continue;
            }
            let before = tally.replayed;
            move_batch(&t.dlq, chosen, &operator, &mut tally, &mut kept, &bar).await?;
            bar.set_message(tally.brief());
            if bar.is_hidden() && tally.replayed / LOG_EVERY > before / LOG_EVERY {
                tracing::info!(replayed = tally.replayed, "replayed {} so far", tally.replayed);
            }
        }
        Ok(())
    }
    .await;
    bar.finish_and_clear();
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
            "{} message(s) could not be replayed; they stay in {dlq_name}",
            tally.failed
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
    bar: &ProgressBar,
) -> CliResult {
    let mut groups: HashMap<String, Vec<(Received, Summary, Queue)>> = HashMap::new();
    for c in chosen {
        groups.entry(c.2.url.clone()).or_default().push(c);
    }
    for (_, group) in groups {
        let source = group[0].2.clone();
        let copies: Vec<Outbound> = group
            .iter()
            .map(|(m, s, _)| Outbound {
                attributes: HashMap::from([
                    (REPLAY_COUNT.to_string(), (s.replay_count + 1).to_string()),
                    ("redress.replayed_from".to_string(), dlq.name.clone()),
                ]),
                ..Outbound::body(replay_body(&m.body))
            })
            .collect();
        let failed = source.send_batch(&copies).await?;
        let mut sent = Vec::new();
        for (i, (m, s, _)) in group.into_iter().enumerate() {
            match failed.iter().find(|(f, _)| *f == i) {
                Some((_, why)) => {
                    output::eprint_line(
                        bar,
                        &format!("failed {}: {}", clean(&m.message_id), clean(why)),
                    );
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
        let mut records = Vec::with_capacity(sent.len());
        for (i, (m, s)) in sent.iter().enumerate() {
            if let Some((_, why)) = not_deleted.iter().find(|(f, _)| *f == i) {
                // The copy is already on its way: the original reappears later and may be
                // replayed twice, which the pipeline tolerates. Never lost.
                output::eprint_line(
                    bar,
                    &format!(
                    "replayed {} but could not delete the original ({}); it may be replayed again",
                    clean(&m.message_id),
                    clean(why)
                ),
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
            records.push(r);
            tally.replayed += 1;
        }
        // Audit records go to stderr too: once per batch, with the bar out of the way.
        bar.suspend(|| records.iter().for_each(AuditRecord::emit));
    }
    Ok(())
}

async fn purge(
    clients: &crate::aws::Clients,
    global: &Global,
    which: &str,
    yes: bool,
) -> CliResult {
    let t = target(clients, global, which).await?;
    let name = clean(&t.dlq.name).into_owned();
    if !yes {
        let d = t.dlq.depth().await?;
        return Err(CliError::input(format!(
            "refusing to purge {name} ({} messages) without --yes; `redress dlq list {}` shows them",
            d.visible + d.invisible + d.delayed,
            clean(which)
        )));
    }
    let operator = crate::aws::caller_identity(&clients.sts).await?.arn;
    let bar = output::progress(visible_depth(&t.dlq).await, &format!("purging {name}"));
    let mut removed = 0;
    let result: CliResult = async {
        loop {
            let batch = t.dlq.receive_hidden_for(10, 1, Some(60)).await?;
            if batch.is_empty() {
                return Ok(());
            }
            let handles: Vec<&str> = batch.iter().map(|m| m.receipt_handle.as_str()).collect();
            let failed = t.dlq.delete_batch(&handles).await?;
            let mut records = Vec::with_capacity(batch.len());
            for (i, m) in batch.iter().enumerate() {
                if let Some((_, why)) = failed.iter().find(|(f, _)| *f == i) {
                    output::eprint_line(
                        &bar,
                        &format!(
                            "could not delete {} ({}); it stays in {name}",
                            clean(&m.message_id),
                            clean(why)
                        ),
                    );
                    continue;
                }
                let s = summarise(&m.body, &m.attributes, m.receive_count);
                let mut r = AuditRecord::bare(WORKER, AuditDecision::Purged)
                    .reason(format!("purged from {}", t.dlq.name));
                r.event_id = Some(m.message_id.clone());
                r.rule = s.rule;
                r.resource_id = s.resource;
                r.actor = Some(operator.clone());
                records.push(r);
                removed += 1;
            }
            output::advance(&bar, batch.len());
            bar.suspend(|| records.iter().for_each(AuditRecord::emit));
        }
    }
    .await;
    bar.finish_and_clear();
    result?;
    println!(
        "purged {removed} message{} from {name}",
        if removed == 1 { "" } else { "s" }
    );
    Ok(())
}
