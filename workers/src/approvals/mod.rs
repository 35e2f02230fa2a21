//! `redress approvals`: approvers list, inspect, approve and reject queued requests.
//!
//! Every command reads the whole approvals queue (hiding messages while it reads), sorts
//! it into a board (pending, moot, expired), removes expired requests with an audit
//! record, acts, and makes everything it did not consume visible again at once, so other
//! approvers are not blocked. An approver needs only the approvals queue (receive,
//! change visibility, delete) and the tasks queue (send): no remediation rights.
//!
//! With a ledger, each decision (approve, reject, expiry, prune) is also recorded on the
//! request's entry by a narrow update ([`ledger`]), and `list` says which requests the
//! ledger records as waiting that are gone from the queue (`redress sweep` puts them
//! back).

pub mod ledger;
mod view;

use std::collections::HashSet;
use std::time::SystemTime;

use crate::aws::ledger::LedgerTable;
use crate::aws::sqs::{Queue, Received};
use redress::approval::{board, Board, Entry, Status};
use redress::audit::{AuditDecision, AuditRecord};
use redress::ledger::reconcile::RequestDecision;
use redress::message::{Approval, ApprovalsMessage};
use redress::text::clean;

use crate::cli::{ApprovalsCommand, Global};
use crate::error::{CliError, CliResult};

const WORKER: &str = "approvals";
/// Long enough to read a few thousand messages before any reappears.
const SCAN_VISIBILITY_SECONDS: i32 = 120;

/// The approvals queue, read in full.
struct Session {
    queue: Queue,
    messages: Vec<Received>,
    board: Board<usize>,
    unreadable: usize,
    consumed: HashSet<usize>,
    expired: usize,
    /// The ledger decisions are recorded in, if one is configured.
    ledger: Option<LedgerTable>,
}

impl Session {
    async fn open(clients: &crate::aws::Clients, global: &Global) -> CliResult<Session> {
        let queue = Queue::resolve(&clients.sqs, &global.approvals_queue).await?;
        let messages = queue.scan(SCAN_VISIBILITY_SECONDS).await?;
        let mut parsed = Vec::new();
        let mut unreadable = 0;
        for (i, m) in messages.iter().enumerate() {
            match serde_json::from_str::<ApprovalsMessage>(&m.body) {
                Ok(a) => parsed.push((a, i)),
                Err(e) => {
                    unreadable += 1;
                    tracing::warn!(message_id = %m.message_id, error = %e, "unreadable message on the approvals queue; left in place");
                }
            }
        }
        let mut session = Session {
            queue,
            board: board(parsed, SystemTime::now()),
            messages,
            unreadable,
            consumed: HashSet::new(),
            expired: 0,
            ledger: ledger::table(global, clients),
        };
        session.expire().await?;
        Ok(session)
    }

    /// Removes every copy of an entry from the queue.
    async fn remove(&mut self, copies: &[usize]) -> CliResult {
        for &i in copies {
            self.queue.delete(&self.messages[i].receipt_handle).await?;
            self.consumed.insert(i);
        }
        Ok(())
    }

    /// Expired requests are removed with an audit record; nothing is fixed.
    async fn expire(&mut self) -> CliResult {
        let expired: Vec<Entry<usize>> = self
            .board
            .entries
            .iter()
            .filter(|e| e.status == Status::Expired)
            .cloned()
            .collect();
        for e in expired {
            self.remove(&e.copies).await?;
            let reason = format!("expired at {} without a decision", e.request.expires_at);
            // Not recorded in the ledger: the expiry is the message's word, and anyone
            // who may send to the queue could plant a copy that says so. The sweep
            // expires the entry by the ledger's own times.
            audit(&e, AuditDecision::Expired, None)
                .reason(reason)
                .emit();
            self.expired += 1;
        }
        Ok(())
    }

    /// Makes everything not consumed visible again.
    async fn close(self) -> CliResult {
        let handles: Vec<&str> = self
            .messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.consumed.contains(i))
            .map(|(_, m)| m.receipt_handle.as_str())
            .collect();
        self.queue.release_all(&handles).await?;
        Ok(())
    }

    fn live(&self, id: &str) -> CliResult<Entry<usize>> {
        match self.board.find(id) {
            Some(e) if e.status != Status::Expired => Ok(e.clone()),
            Some(_) => Err(CliError::input(format!("approval request {id} has expired; nothing was done"))),
            None => Err(CliError::input(format!(
                "no pending approval request {id}: it does not exist, or was already approved, rejected or \
                 expired, or another approver is acting on it now (see `redress approvals list`)"
            ))),
        }
    }
}

fn audit(e: &Entry<usize>, decision: AuditDecision, actor: Option<&str>) -> AuditRecord {
    let t = &e.request.task;
    let mut r = AuditRecord::for_finding(
        WORKER,
        &t.finding,
        Some(&t.rule_id),
        Some(t.severity),
        decision,
    );
    r.action = Some(e.request.label());
    r.actor = actor.map(str::to_string);
    r
}

/// The caller, as STS asserts it, if the policy lets them decide. Checked before the
/// queue is read, so a person who may not approve leaves every request where it was.
/// The executor checks the task's SenderId itself; this only refuses early and clearly.
async fn approver(global: &Global, clients: &crate::aws::Clients) -> CliResult<Caller> {
    let policy = crate::run::load_policy(global)?;
    let me = crate::aws::caller_identity(&clients.sts).await?;
    if !policy.approvals.admits_caller(&me.user_id, &me.arn) {
        return Err(CliError::input(format!(
            "{} ({}) is not on the approvers list of {}; nothing was done and the request stays pending",
            me.arn,
            me.user_id,
            global.policy.display()
        )));
    }
    Ok(Caller {
        arn: me.arn,
        user_id: me.user_id,
    })
}

/// Who is deciding.
struct Caller {
    arn: String,
    user_id: String,
}

/// Runs an approvals command.
pub async fn run(global: &Global, command: &ApprovalsCommand) -> CliResult {
    let config = crate::aws::load().await;
    let clients = crate::aws::Clients::new(&config);
    let caller = match command {
        ApprovalsCommand::Approve { .. } | ApprovalsCommand::Reject { .. } => {
            Some(approver(global, &clients).await?)
        }
        _ => None,
    };
    let mut session = Session::open(&clients, global).await?;
    let result = act(global, command, &clients, caller, &mut session).await;
    // Release even when the command failed: nothing may stay hidden.
    let released = session.close().await;
    result.and(released)
}

async fn act(
    global: &Global,
    command: &ApprovalsCommand,
    clients: &crate::aws::Clients,
    caller: Option<Caller>,
    s: &mut Session,
) -> CliResult {
    let me = || {
        caller
            .as_ref()
            .ok_or_else(|| CliError::failed("approvals: the caller was not checked"))
    };
    match command {
        ApprovalsCommand::List { json } => {
            let missing = missing_from_queue(global, s).await;
            if *json {
                println!(
                    "{}",
                    view::list_json(&s.board, s.expired, s.unreadable, missing.as_deref())?
                );
            } else {
                print!("{}", view::list_table(&s.board, s.expired, s.unreadable));
                if let Some(m) = &missing {
                    print!("{}", view::missing_text(m));
                }
            }
            Ok(())
        }
        ApprovalsCommand::Show { id, json } => {
            let e = s.live(id)?;
            if *json {
                println!("{}", view::show_json(&e)?);
            } else {
                print!("{}", view::show_text(&e));
            }
            Ok(())
        }
        ApprovalsCommand::Approve { id, reason } => {
            let e = s.live(id)?;
            if e.conflicting {
                return Err(CliError::input(format!(
                    "request {id} has {} copies that ask for different things: one was not made by redress. Nothing was approved; reject it (`redress approvals reject {id} --reason ...`) and the pipeline asks again",
                    e.copies.len()
                )));
            }
            let Caller { arn, user_id } = me()?;
            // The executor made an undo's request and checks the requester from its own
            // ledger at execution; this only refuses early and clearly.
            if let Some(u) = &e.request.task.undo {
                if *user_id == u.requested_by.user_id {
                    return Err(CliError::input(format!(
                        "you asked for undo {} yourself: another approver must approve it (the executor refuses an undo approved by its requester)",
                        clean(&e.request.id)
                    )));
                }
            }
            let arn = arn.clone();
            let mut task = e.request.task.clone();
            // An approval is for a real fix: a dry-run mark in a request (which only a
            // forged one could carry) does not survive it.
            task.dry_run = false;
            // Bound to the action shown to the approver: the executor refuses it if its
            // policy would now run anything else.
            task.approval = Some(Approval {
                request_id: e.request.id.clone(),
                approved_by: arn.clone(),
                approver_user_id: user_id.clone(),
                approved_at: redress::time::now_rfc3339(),
                reason: reason.clone(),
                action_digest: Some(e.request.digest()),
                policy_version: e.request.policy_version.clone(),
            });
            if global.dry_run {
                println!(
                    "dry run: approving {} would hand this to the executor (nothing was changed):",
                    clean(&e.request.id)
                );
                println!("  {}", clean(&e.request.describe_action()));
                for line in &e.request.preview {
                    println!("  {}", clean(line));
                }
                return Ok(());
            }
            let tasks = Queue::resolve(&clients.sqs, &global.tasks_queue).await?;
            let body = serde_json::to_string(&task)
                .map_err(|e| CliError::failed(format!("cannot serialise task: {e}")))?;
            // Recorded before the task is sent, so a sweep never takes the request, gone
            // from the queue on its way to the executor, for one deleted by hand.
            ledger::decide(
                s.ledger.as_ref(),
                &e.request,
                RequestDecision::Approved {
                    by: arn.clone(),
                    at: SystemTime::now(),
                },
            )
            .await;
            // Send first, then remove the request: a crash in between leaves a request
            // that can be approved again (the executor's checks make that harmless).
            tasks.send(&body).await?;
            s.remove(&e.copies).await?;
            let mut r = audit(&e, AuditDecision::Approved, Some(&arn));
            r.reason = reason.clone();
            r.emit();
            println!(
                "approved {} as {}: {} on {} handed to the executor",
                clean(&e.request.id),
                clean(&arn),
                clean(&e.request.describe_action()),
                clean(&e.request.task.finding.resource_id)
            );
            Ok(())
        }
        ApprovalsCommand::Reject { id, reason } => {
            let e = s.live(id)?;
            let arn = me()?.arn.clone();
            if global.dry_run {
                println!(
                    "dry run: would reject {} (nothing was changed)",
                    clean(&e.request.id)
                );
                return Ok(());
            }
            s.remove(&e.copies).await?;
            ledger::decide(
                s.ledger.as_ref(),
                &e.request,
                RequestDecision::Rejected {
                    reason: format!("rejected by {arn}: {reason}"),
                },
            )
            .await;
            audit(&e, AuditDecision::Rejected, Some(&arn))
                .reason(reason)
                .emit();
            println!(
                "rejected {} as {}: {}; the resource was not touched",
                clean(&e.request.id),
                clean(&arn),
                clean(reason)
            );
            Ok(())
        }
        ApprovalsCommand::Prune => {
            let moot: Vec<Entry<usize>> = s
                .board
                .entries
                .iter()
                .filter(|e| e.status == Status::Moot)
                .cloned()
                .collect();
            for e in &moot {
                s.remove(&e.copies).await?;
                // Not recorded in the ledger either: a moot notice is the queue's word.
                // If the finding still stands, the sweep puts its request back.
                audit(e, AuditDecision::Skipped, None)
                    .reason("moot: the resource became compliant while waiting")
                    .emit();
            }
            let stale: Vec<usize> = s.board.stale_notices().map(|(_, i)| *i).collect();
            s.remove(&stale).await?;
            println!(
                "removed {} moot request{} and {} notice{}; {} expired request{} removed",
                moot.len(),
                plural(moot.len()),
                stale.len(),
                plural(stale.len()),
                s.expired,
                plural(s.expired)
            );
            Ok(())
        }
    }
}

/// Requests the ledger records as waiting that are not on the queue (deleted by hand);
/// `None` without a ledger to compare with.
async fn missing_from_queue(global: &Global, s: &Session) -> Option<Vec<ledger::Missing>> {
    let awaiting = ledger::awaiting(s.ledger.as_ref()).await?;
    let ttl = match crate::run::load_policy(global) {
        Ok(p) => p.approvals.ttl,
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot read the policy's approval ttl; the queue is not compared with the ledger");
            return None;
        }
    };
    let queued: Vec<_> = s
        .board
        .entries
        .iter()
        .filter_map(|e| ledger::entry_of(&e.request))
        .collect();
    Some(ledger::missing(&awaiting, &queued, ttl))
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
