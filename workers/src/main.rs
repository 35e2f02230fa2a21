//! The `redress` command. Thin: parse arguments, set up logging, run a command, map its
//! result to an exit code (0 ok, 1 failed, 2 bad usage or input).

use std::process::ExitCode;

use clap::Parser;

use redress_workers::cli::{Cli, Command, PolicyCommand};
use redress_workers::error::CliResult;
use redress_workers::run::Workers;
use redress_workers::{
    approvals, dlq, emit, evaluate, history, lambda, ledger_report, logging, policy_cmd, provision,
    run, runbooks_cmd, sweep, undo_cmd,
};

async fn dispatch(cli: &Cli) -> CliResult {
    let g = &cli.global;
    match &cli.command {
        Command::Run(a) => run::run(g, a, Workers::Both).await,
        Command::Router(a) => run::run(g, a, Workers::Router).await,
        Command::Executor(a) => run::run(g, a, Workers::Executor).await,
        Command::Policy(PolicyCommand::Check { file }) => {
            policy_cmd::check(file.as_ref().unwrap_or(&g.policy))
        }
        Command::Policy(PolicyCommand::Explain { event, json }) => {
            policy_cmd::explain(&g.policy, event, *json)
        }
        Command::Runbooks(c) => runbooks_cmd::run(c),
        Command::Approvals(c) => approvals::run(g, c).await,
        Command::Dlq(c) => dlq::run(g, c).await,
        Command::Emit(a) => emit::emit(g, a).await,
        Command::Lambda(a) => lambda::run(g, a).await,
        Command::Provision(a) => provision::provision(g, a).await,
        Command::Evaluate(a) => evaluate::evaluate(g, a).await,
        Command::Sweep(a) => sweep::sweep(g, a).await,
        Command::History(a) => history::history(g, a).await,
        Command::Report(a) => ledger_report::report(g, a).await,
        Command::Undo(a) => undo_cmd::undo(g, a).await,
    }
}

fn main() -> ExitCode {
    // Lambda starts a custom runtime's `bootstrap` with no arguments: this binary is
    // that bootstrap, so then it runs as `redress lambda`.
    let mut cli =
        if std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            Cli::parse_from(["redress", "lambda"])
        } else {
            Cli::parse()
        };
    // `[ledger] table` and `[notifications] topic` of the policy, unless a flag says.
    cli.global.apply_policy_settings();
    logging::init(cli.global.log_format);
    quiet_on_closed_stdout();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}

/// `redress ... | head` closes stdout early; printing then fails with a broken pipe, which
/// `println!` reports by panicking. That is the reader being done, not a failure: stop
/// quietly, as other command-line tools do.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}
