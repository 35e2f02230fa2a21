//! `redress run`, `router` and `executor`: wire the workers to their queues and run them.

use std::sync::Arc;
use std::time::Duration;

use crate::aws::retry::{with_backoff, AwsError};
use crate::aws::sqs::Queue;
use crate::aws::Clients;
use redress::policy::Policy;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::aws::ledger::LedgerTable;
use crate::cli::{ExecutorArgs, Global, LedgerChoice, WorkerArgs};
use crate::error::{CliError, CliResult};
use crate::executor::{
    Executor, FinishedTasks, Guards, KeyedLocks, Ledger, Polling, Reevaluator, SecurityGroups,
    Targets,
};
use crate::handoff::Handoff;
use crate::report::Tally;
use crate::router::Router;
use crate::worker::{Deferred, Handler, RunUntil, Worker};

/// Workers workers to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// Router and executor.
    Both,
    /// Router only.
    Router,
    /// Executor only.
    Executor,
}

/// Loads and validates the policy (or takes the one [`Global::apply_policy_settings`]
/// already parsed); a bad policy is bad input (exit 2). Warns when it turns Config
/// verification off.
pub fn load_policy(global: &Global) -> CliResult<Arc<Policy>> {
    let policy = match &global.parsed_policy {
        Some(parsed) => parsed.clone(),
        None => Arc::new(Policy::from_file(&global.policy).map_err(CliError::input)?),
    };
    if !policy.config.verify {
        tracing::warn!(
            policy = %global.policy.display(),
            "[config] verify = false: findings are acted on without asking AWS Config whether they are true; anyone who can send to the events or tasks queue can trigger fixes. Only for setups whose findings do not come from Config."
        );
    }
    Ok(policy)
}

/// How long start-up calls ride out transient errors (a flapping network as a container
/// starts) before the worker gives up.
const STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Resolves a queue by name or URL, retrying transient errors; the error names the
/// queue (start-up resolves several at once, so the SQS error alone would not say which).
async fn resolve(clients: &Clients, name: &str) -> CliResult<Queue> {
    with_backoff(STARTUP_PATIENCE, || Queue::resolve(&clients.sqs, name))
        .await
        .map_err(|e| {
            CliError::failed(format!(
                "queue {name}: {e} (run `redress provision` on a local stack?)"
            ))
        })
}

/// Resolves a queue and its dead-letter queue, which it must have.
async fn with_dlq(clients: &Clients, name: &str) -> CliResult<(Queue, Queue)> {
    let q = resolve(clients, name).await?;
    let dlq = with_backoff(STARTUP_PATIENCE, || q.dead_letter_queue())
        .await?
        .ok_or_else(|| {
            CliError::failed(format!(
            "queue {} has no dead-letter queue (RedrivePolicy); redress will not run without one",
            q.name
        ))
        })?;
    Ok((q, dlq))
}

/// Builds the router's handler. Its start-up calls do not depend on each other and are
/// made at once (start-up takes the slowest, not the sum); any failure stops it.
pub async fn router(global: &Global, policy: Arc<Policy>, clients: &Clients) -> CliResult<Router> {
    let requests_via_executor = async {
        Ok(match global.ledger_to_read() {
            Ok(name) => {
                crate::router::ledger_in_use(&LedgerTable::new(clients.dynamodb.clone(), name))
                    .await
            }
            Err(_) => false,
        })
    };
    let ((), tasks, approvals, requests_via_executor) = tokio::try_join!(
        crate::notify::start(global.notify(), clients),
        resolve(clients, &global.tasks_queue),
        resolve(clients, &global.approvals_queue),
        requests_via_executor,
    )?;
    Ok(Router {
        policy,
        tasks,
        approvals,
        security_groups: SecurityGroups::new(clients.ec2.clone()),
        dry_run: global.dry_run,
        requests_via_executor,
    })
}

/// Tasks the executor remembers having finished, to recognise duplicates.
const RECENT_TASKS: usize = 10_000;
/// How long it remembers them.
const RECENT_FOR: Duration = Duration::from_secs(3600);
/// Config re-evaluations asked for within this window are sent as one per rule.
const REEVALUATION_WINDOW: Duration = Duration::from_secs(1);

/// Builds the executor's handler; its own account and region come from the credentials
/// and configuration, others are reached through the policy's `[accounts] role`. Its
/// start-up checks (who it is, the approvers, the ledger, the topic, the queues) do not
/// depend on each other and are made at once; any failure stops it.
pub async fn executor(
    global: &Global,
    args: &ExecutorArgs,
    policy: Arc<Policy>,
    clients: &Clients,
    config: &crate::aws::SdkConfig,
    shutdown: watch::Receiver<bool>,
) -> CliResult<Executor> {
    let region = config
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| CliError::input("no AWS region configured (set AWS_REGION)"))?;
    let polling = Polling {
        interval: Duration::from_millis(args.poll_interval_ms),
        timeout: Duration::from_secs(args.runbook_timeout),
    };
    let lease = args.ledger_lease.unwrap_or(polling.timeout + LEASE_MARGIN);
    let iam = crate::aws::iam::Iam::new(config);
    let identity = async {
        with_backoff(STARTUP_PATIENCE, || {
            crate::aws::caller_identity(&clients.sts)
        })
        .await
        .map_err(CliError::from)
    };
    let approvers = async {
        with_backoff(STARTUP_PATIENCE, || {
            crate::executor::approvers::resolve(&iam, &policy)
        })
        .await
        .map_err(|e| CliError::failed(format!("cannot resolve the policy's approvers: {e}")))
    };
    let (me, approvers, ledger, (), approvals, tasks) = tokio::try_join!(
        identity,
        approvers,
        ledger(global, clients, lease),
        crate::notify::start(global.notify(), clients),
        resolve(clients, &global.approvals_queue),
        resolve(clients, &global.tasks_queue),
    )?;
    let mut guards = Guards::new(
        &policy.limits,
        crate::aws::ssm::Parameters::new(clients.ssm.clone()),
    );
    // With a ledger the caps and the breaker hold for the fleet; say which is in force.
    if let Some(table) = ledger.table() {
        guards = guards.counted_in(crate::aws::ledger_counters::FleetCounters::new(table));
    }
    tracing::info!(limits = %guards.in_force(), "blast-radius limits in force");
    Ok(Executor {
        targets: Targets::new(
            config.clone(),
            me.account,
            region,
            policy.accounts.role.clone(),
            polling,
        ),
        guards,
        approvers,
        recent: FinishedTasks::new(RECENT_TASKS, RECENT_FOR),
        reevaluator: Reevaluator::start(REEVALUATION_WINDOW),
        approvals,
        tasks,
        own_id: Some(me.user_id),
        policy,
        dry_run: global.dry_run,
        max_attempts: args.max_attempts,
        locks: KeyedLocks::default(),
        shutdown,
        ledger,
    })
}

/// A lease outlasts the longest fix (a runbook polled to its timeout) with a margin,
/// since it is not renewed while the fix runs.
const LEASE_MARGIN: Duration = Duration::from_secs(120);
/// How long finished ledger entries are kept (their TTL).
const LEDGER_RETENTION: Duration = Duration::from_secs(400 * 86_400);

/// The executor's ledger, as `--ledger-table` chooses: the default table if it exists,
/// a named one (which must exist), or none; each finding leased for `lease`.
async fn ledger(global: &Global, clients: &Clients, lease: Duration) -> CliResult<Ledger> {
    let (name, required) = match global.ledger() {
        LedgerChoice::Off => return Ok(Ledger::off()),
        LedgerChoice::IfExists(n) => (n, false),
        LedgerChoice::Required(n) => (n, true),
    };
    let table = LedgerTable::new(clients.dynamodb.clone(), name);
    let exists = with_backoff(STARTUP_PATIENCE, || table.exists())
        .await
        .map_err(|e| CliError::failed(format!("cannot reach the ledger table {name}: {e}")))?;
    match (exists, required) {
        (true, _) => {}
        (false, false) => {
            tracing::info!(table = name, "no ledger table: changes are not recorded in a ledger, and findings are not leased across executors (`redress provision` creates it)");
            return Ok(Ledger::off());
        }
        (false, true) => {
            return Err(CliError::failed(format!(
                "the ledger table {name} does not exist (`redress provision` creates it on the local stack; --ledger-table '' runs without a ledger)"
            )))
        }
    }
    // Unique per process: a restarted executor does not inherit its old leases.
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let holder = format!("executor-{}-{started:x}", std::process::id());
    tracing::info!(table = name, %holder, "recording changes in the ledger");
    Ok(Ledger::new(table, &holder, lease, Some(LEDGER_RETENTION)))
}

/// Runs the chosen workers until shutdown, or until drained with `--once`.
pub async fn run(global: &Global, args: &WorkerArgs, which: Workers) -> CliResult {
    let policy = load_policy(global)?;
    let config = crate::aws::load().await;
    let clients = Clients::new(&config);
    let tally = Arc::new(Tally::default());
    let (events, events_dlq) = with_dlq(&clients, &global.events_queue).await?;
    let (tasks, tasks_dlq) = with_dlq(&clients, &global.tasks_queue).await?;
    let shutdown = shutdown_signal();
    let mut handles = Vec::new();
    let deferred = Arc::new(Deferred::default());
    let concurrency = args.concurrency as usize;
    let grace = Duration::from_secs(args.shutdown_grace);
    let heartbeat =
        (args.executor.heartbeat > 0).then(|| Duration::from_secs(args.executor.heartbeat));
    // A draining run stops when its queues are empty and nothing is in flight. With both
    // workers in the process they drain together: the executor's fixes ask Config to
    // evaluate again, whose events arrive after the fix.
    let until = |own: &Queue| {
        if !args.once {
            RunUntil::Shutdown
        } else if which == Workers::Both {
            RunUntil::Drained(vec![events.clone(), tasks.clone()], deferred.clone())
        } else {
            RunUntil::Drained(vec![own.clone()], deferred.clone())
        }
    };
    // `run` hands tasks over in memory if the heartbeat can hold an event through its fix.
    let hand_over = which == Workers::Both
        && {
            let visibility = with_backoff(STARTUP_PATIENCE, || events.visibility_timeout()).await?;
            match crate::handoff::holdable(heartbeat, visibility) {
                Ok(()) => {
                    tracing::info!("one hop: tasks go to the executor in memory");
                    true
                }
                Err(why) => {
                    tracing::warn!(%why, "tasks go to the executor through the tasks queue, not in memory");
                    false
                }
            }
        };
    let executor = match which {
        Workers::Router => None,
        _ => Some(Arc::new(
            executor(
                global,
                &args.executor,
                policy.clone(),
                &clients,
                &config,
                shutdown.clone(),
            )
            .await?,
        )),
    };
    // The executor's slots: shared by its worker on the tasks queue and, in `run`, the
    // router's in-memory hand-off.
    let slots = Arc::new(Semaphore::new(concurrency));
    if let Some(handler) = &executor {
        let worker = Worker {
            name: "executor",
            queue: tasks.clone(),
            dlq: tasks_dlq.clone(),
            handler: handler.clone(),
            tally: tally.clone(),
            concurrency,
            slots: Some(slots.clone()),
            heartbeat,
            grace,
        };
        // With the hand-off, the router's worker decides when a draining run is done.
        let until = match until(&tasks) {
            RunUntil::Drained(_, d) if hand_over => RunUntil::Follows(d),
            other => other,
        };
        spawn(worker, until, &shutdown, &mut handles);
    }
    if which != Workers::Executor {
        let router = router(global, policy, &clients).await?;
        let queues = (&events, &events_dlq);
        match executor.filter(|_| hand_over) {
            // One hop: tasks go to the executor in memory; the events message is held
            // (and its visibility extended) until the fix's outcome is durable.
            Some(executor) => {
                let handoff = Handoff {
                    router,
                    executor,
                    tasks: tasks.clone(),
                    tasks_dlq,
                    slots,
                    shutdown: shutdown.clone(),
                };
                spawn(
                    events_worker(handoff, queues, &tally, args, heartbeat),
                    until(&events),
                    &shutdown,
                    &mut handles,
                );
            }
            None => spawn(
                events_worker(router, queues, &tally, args, None),
                until(&events),
                &shutdown,
                &mut handles,
            ),
        }
    }
    // Every worker ends before the first failure is told: the other may be mid-fix.
    let mut failed = None;
    for h in handles {
        let ended = h
            .await
            .map_err(|e| CliError::failed(format!("worker stopped abnormally: {e}")))
            .and_then(|r| r.map_err(|e| CliError::failed(format!("cannot receive messages: {e}"))));
        if let Err(e) = ended {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if args.once {
        print!("{}", tally.render());
        if let Some(line) = pending(&[&events, &tasks]).await {
            println!("{line}");
        }
    }
    Ok(())
}

/// What a draining run left for later, in words: closure checks waiting for Config
/// (delayed messages) and messages waiting out a retry's back-off (invisible ones, as
/// nothing is in flight any more).
async fn pending(queues: &[&Queue]) -> Option<String> {
    let (mut delayed, mut backing_off) = (0, 0);
    for q in queues {
        if let Ok(d) = q.depth().await {
            delayed += d.delayed;
            backing_off += d.invisible;
        }
    }
    (delayed + backing_off > 0).then(|| {
        format!(
            "Pending: {delayed} waiting for a delay (fixes awaiting Config's confirmation), {backing_off} waiting out a retry's back-off. `redress run` picks them up when they are due."
        )
    })
}

/// The worker on the events queue, with the router or (in `run`) the router with the
/// executor behind it.
fn events_worker<H>(
    handler: H,
    (events, dlq): (&Queue, &Queue),
    tally: &Arc<Tally>,
    args: &WorkerArgs,
    heartbeat: Option<Duration>,
) -> Worker<H> {
    Worker {
        name: "router",
        queue: events.clone(),
        dlq: dlq.clone(),
        handler: Arc::new(handler),
        tally: tally.clone(),
        concurrency: args.concurrency as usize,
        slots: None,
        heartbeat,
        grace: Duration::from_secs(args.shutdown_grace),
    }
}

/// Runs one worker on its own task.
fn spawn<H: Handler>(
    worker: Worker<H>,
    until: RunUntil,
    shutdown: &watch::Receiver<bool>,
    handles: &mut Vec<JoinHandle<Result<(), AwsError>>>,
) {
    let rx = shutdown.clone();
    handles.push(tokio::spawn(Arc::new(worker).run(until, rx)));
}

/// A flag that turns true on SIGINT or SIGTERM.
fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        let _ = tx.send(true);
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested: finishing work in progress");
        let _ = tx.send(true);
    });
    rx
}
