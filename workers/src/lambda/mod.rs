//! `redress lambda`: run the router or the executor as an SQS-triggered AWS Lambda
//! function (custom runtime, `bootstrap` = this binary, served by `lambda_runtime`), with
//! partial batch failure reporting. For low-volume accounts; the same handlers as the
//! long-running workers. Or run the evaluator behind redress's Config custom rules
//! ([`evaluator`]), which Config invokes directly (no queue).
//!
//! Every record must prove it is a message of the worker's configured queue before it is
//! handled ([`Source`]): the invocation payload is not trusted, since anyone allowed to
//! invoke the function could otherwise forge a task and its `SenderId`. Work is bounded
//! by the invocation's deadline: handlers stop [`batch::HANDLE_MARGIN`] before it (their
//! records come back as batch item failures), then the batch is settled and the
//! handler's background work flushed before the answer.

mod batch;
mod source;
#[cfg(test)]
mod test_api;
#[cfg(test)]
mod tests;

use std::convert::Infallible;

use aws_lambda_events::event::config::ConfigEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};

use crate::aws::Clients;
use crate::cli::{Global, LambdaArgs, LambdaWorker};
use crate::error::{CliError, CliResult};
use crate::report::Tally;
use crate::worker::Handler;

pub use batch::{deadline_instant, handle_batch, received, ANSWER_MARGIN, HANDLE_MARGIN};
pub use source::{Source, Unproven};

/// Answers one invocation: the batch, then the handler's background work (Lambda may
/// freeze the process once it answers), both before the deadline.
async fn invocation<H: Handler>(
    handler: &H,
    worker: &'static str,
    source: &Source,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Infallible> {
    let deadline = deadline_instant(event.context.deadline());
    let tally = Tally::default();
    let response = handle_batch(handler, worker, source, &tally, &event.payload, deadline).await;
    let flush_by = deadline.checked_sub(ANSWER_MARGIN).unwrap_or(deadline);
    if tokio::time::timeout_at(flush_by, handler.settle())
        .await
        .is_err()
    {
        tracing::warn!(
            worker,
            "out of time finishing background work (Config re-evaluations)"
        );
    }
    Ok(response)
}

/// Serves invocations from the Lambda runtime API (`AWS_LAMBDA_RUNTIME_API` and the
/// function's settings come from the environment) until it fails.
async fn serve<H: Handler>(
    handler: &H,
    worker: &'static str,
    source: &Source,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| {
        invocation(handler, worker, source, event)
    }))
    .await
}

/// The worker's queue, resolved and checked at start-up.
async fn source(clients: &Clients, queue: &str) -> CliResult<Source> {
    Source::resolve(&clients.sqs, queue)
        .await
        .map_err(|e| CliError::failed(format!("queue {queue}: {e}")))
}

/// Runs the chosen worker under the Lambda runtime. It accepts records only from its
/// configured queue: the events queue for the router, the tasks queue for the executor.
pub async fn run(global: &Global, args: &LambdaArgs) -> CliResult {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        return Err(CliError::input(
            "AWS_LAMBDA_RUNTIME_API is not set: `redress lambda` runs inside AWS Lambda",
        ));
    }
    let config = crate::aws::load().await;
    let clients = crate::aws::Clients::new(&config);
    if args.worker == LambdaWorker::Evaluator {
        return evaluator(&clients).await;
    }
    let policy = crate::run::load_policy(global)?;
    // Init is billed and delays the first batch: the source queue and the worker's own
    // start-up checks do not depend on each other, so they are made at once.
    let served = match args.worker {
        LambdaWorker::Router => {
            let (source, handler) = tokio::try_join!(
                source(&clients, &global.events_queue),
                crate::run::router(global, policy, &clients),
            )?;
            serve(&handler, "router", &source).await
        }
        LambdaWorker::Executor => {
            let (source, handler) = tokio::try_join!(
                source(&clients, &global.tasks_queue),
                crate::run::executor(
                    global,
                    &args.executor,
                    policy,
                    &clients,
                    &config,
                    // A Lambda invocation is not signalled; its deadline bounds the work.
                    tokio::sync::watch::channel(false).1,
                ),
            )?;
            serve(&handler, "executor", &source).await
        }
        LambdaWorker::Evaluator => unreachable!("served above"),
    };
    // The runtime API is local and reliable; an error here means Lambda is tearing the
    // sandbox down. Exit so Lambda restarts cleanly.
    served.map_err(|e| CliError::failed(format!("Lambda runtime API: {e}")))
}

/// Serves Config custom-rule invocations with the clients of the function's account.
async fn evaluator(clients: &Clients) -> CliResult {
    serve_evaluator(&crate::evaluate::Evaluator::new(clients))
        .await
        .map_err(|e| CliError::failed(format!("Lambda runtime API: {e}")))
}

/// Answers Config custom-rule invocations from the Lambda runtime API until it fails.
/// An invocation that cannot be answered is returned as an error, so Config records the
/// rule's run as failed (with the message) rather than holding stale results silently.
async fn serve_evaluator(
    evaluator: &crate::evaluate::Evaluator,
) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<ConfigEvent>| async move {
        let answered = evaluator.answer(&event.payload).await.map_err(|e| {
            tracing::warn!(error = %e, "could not answer the Config invocation");
            lambda_runtime::Error::from(e)
        })?;
        tracing::info!(
            rule = %answered.rule,
            evaluations = answered.evaluations.len(),
            "evaluations put"
        );
        Ok::<(), lambda_runtime::Error>(())
    }))
    .await
}
