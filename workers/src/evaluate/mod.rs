//! `redress evaluate`: redress's own Config custom rules (`redress-sg-admin-ports`,
//! `redress-sg-privileged-ports`, `redress-parameter-drift`).
//!
//! - `redress evaluate RULE` asks Config to run the rule (`StartConfigRulesEvaluation`),
//!   waits for the run to finish (`DescribeConfigRuleEvaluationStatus`) and prints the
//!   rule's results.
//! - With `--dry-run` it evaluates in this process, with the rule's input parameters as
//!   Config holds them (or the defaults), and prints what it would report; nothing is put.
//! - `--invocation FILE` answers one Config invocation (the JSON Config sends a rule's
//!   Lambda function), as Lambda mode does: the local Config stand-in runs this.

mod evaluator;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_lambda_events::event::config::ConfigEvent;
use redress::evaluate::invocation::parameters;
use redress::evaluate::{Evaluation, RuleKind};
use serde::Serialize;

use crate::aws::compliance::{Compliance, EvaluationStatus};
use crate::aws::config::ConfigRules;
use crate::aws::Clients;
use crate::cli::{EvaluateArgs, Global};
use crate::error::{CliError, CliResult};
use crate::output;

pub use evaluator::{Answered, Evaluator};

/// How often the run's status is read while waiting.
const POLL: Duration = Duration::from_millis(500);

/// One result, as printed.
#[derive(Debug, Serialize)]
struct Row {
    resource_type: String,
    resource_id: String,
    compliance: String,
    annotation: Option<String>,
}

impl From<&Evaluation> for Row {
    fn from(e: &Evaluation) -> Row {
        Row {
            resource_type: e.resource_type.clone(),
            resource_id: e.resource_id.clone(),
            compliance: e.compliance.to_string(),
            annotation: e.annotation.clone(),
        }
    }
}

/// The command.
pub async fn evaluate(global: &Global, args: &EvaluateArgs) -> CliResult {
    let config = crate::aws::load().await;
    let clients = Clients::new(&config);
    if let Some(path) = &args.invocation {
        if global.dry_run {
            // Answering an invocation is putting its evaluations: nothing to leave out.
            return Err(CliError::input(
                "--invocation answers Config, so it puts evaluations even with --dry-run; to evaluate without putting, run `redress --dry-run evaluate RULE`",
            ));
        }
        return invocation(&clients, path).await;
    }
    let Some(rule) = &args.rule else {
        return Err(CliError::input(
            "name the rule to run, e.g. `redress evaluate redress-sg-admin-ports` (rules: redress-sg-admin-ports, redress-sg-privileged-ports, redress-parameter-drift)",
        ));
    };
    let kind = RuleKind::for_rule(rule).ok_or_else(|| {
        CliError::input(format!(
            "{rule:?} is not one of redress's Config rules: {}",
            RuleKind::ALL.map(RuleKind::name).join(", ")
        ))
    })?;
    let compliance = Compliance::new(clients.config.clone());
    let held = compliance.rule(rule).await?;
    if global.dry_run {
        let mut given = parameters(held.as_ref().and_then(|r| r.input_parameters.as_deref()))
            .map_err(CliError::input)?;
        given.extend(overrides(&args.parameter)?);
        let settings = kind.settings(&given).map_err(CliError::input)?;
        let found = Evaluator::new(&clients)
            .everything(kind, &settings, held.as_ref().map(|r| r.name.as_str()))
            .await
            .map_err(CliError::failed)?;
        let rows: Vec<Row> = found.iter().map(Row::from).collect();
        let note = match held {
            Some(_) => format!("dry run: {rule} would report (nothing was put into Config)"),
            None => format!(
                "dry run: no Config rule {rule} here, so its default input parameters were used; it would report (nothing was put)"
            ),
        };
        return print(&rows, args.json, &note);
    }
    if held.is_none() {
        return Err(CliError::input(format!(
            "no Config rule {rule} in this account and region: `redress provision` creates it on the local stack, infra/cloudformation/config.yaml on AWS (or use --dry-run)"
        )));
    }
    if !args.parameter.is_empty() {
        return Err(CliError::input(
            "--parameter applies to --dry-run only: Config runs the rule with its own input parameters",
        ));
    }
    let before = compliance.evaluation_status(rule).await?;
    ConfigRules::new(clients.config.clone())
        .reevaluate(rule)
        .await
        .map_err(|e| CliError::failed(format!("Config would not start {rule}: {e}")))?;
    eprintln!("asked Config to evaluate {rule}; waiting for the run to finish…");
    let wait = humantime::parse_duration(&args.wait)
        .map_err(|e| CliError::input(format!("--wait {:?}: {e}", args.wait)))?;
    let status = finished(&compliance, rule, before, wait).await?;
    let rows: Vec<Row> = compliance
        .all_results(rule)
        .await?
        .into_iter()
        .map(|e| Row {
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            compliance: e.compliance,
            annotation: e.annotation,
        })
        .collect();
    match status {
        Finished::Succeeded => print(&rows, args.json, &format!("{rule}: Config's results")),
        Finished::Failed(why) => {
            print(
                &rows,
                args.json,
                &format!("{rule}: the run failed; Config's results so far"),
            )?;
            Err(CliError::failed(format!(
                "Config's run of {rule} failed: {why}"
            )))
        }
    }
}

/// How a run ended.
enum Finished {
    Succeeded,
    Failed(String),
}

/// Waits until the rule's status shows a run newer than `before`.
async fn finished(
    compliance: &Compliance,
    rule: &str,
    before: Option<EvaluationStatus>,
    wait: Duration,
) -> CliResult<Finished> {
    let before = before.unwrap_or_default();
    let deadline = Instant::now() + wait;
    loop {
        let now = compliance
            .evaluation_status(rule)
            .await?
            .unwrap_or_default();
        if now.last_success.is_some() && now.last_success != before.last_success {
            return Ok(Finished::Succeeded);
        }
        if now.last_failure.is_some() && now.last_failure != before.last_failure {
            return Ok(Finished::Failed(
                now.last_error.unwrap_or_else(|| "no reason given".into()),
            ));
        }
        if Instant::now() >= deadline {
            return Err(CliError::failed(format!(
                "Config has not finished evaluating {rule} within {}; its results update when it does (`redress evaluate {rule}` again, or the Config console)",
                humantime::format_duration(wait)
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `--parameter KEY=VALUE`s.
fn overrides(given: &[String]) -> CliResult<BTreeMap<String, String>> {
    given
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .ok_or_else(|| CliError::input(format!("--parameter {p:?}: write KEY=VALUE")))
        })
        .collect()
}

/// Answers the invocation in `path` (`-`: standard input).
async fn invocation(clients: &Clients, path: &std::path::Path) -> CliResult {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
    let event: ConfigEvent = serde_json::from_str(&text).map_err(|e| {
        CliError::input(format!(
            "{}: not a Config rule invocation: {e}",
            path.display()
        ))
    })?;
    let answered = Evaluator::new(clients)
        .answer(&event)
        .await
        .map_err(CliError::failed)?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &answered.evaluations {
        *counts.entry(e.compliance).or_default() += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(c, n)| format!("{n} {c}")).collect();
    println!(
        "{}: put {} evaluation(s): {}",
        answered.rule,
        answered.evaluations.len(),
        counts.join(", ")
    );
    Ok(())
}

fn print(rows: &[Row], json: bool, title: &str) -> CliResult {
    if json {
        println!("{}", output::json(&rows)?);
        return Ok(());
    }
    println!("{}", redress::text::clean(title));
    let mut t = output::table(["compliance", "resource type", "resource", "annotation"]);
    for r in rows {
        t.add_row([
            r.compliance.clone(),
            redress::text::clean(&r.resource_type).into_owned(),
            redress::text::clean(&r.resource_id).into_owned(),
            redress::text::clean(r.annotation.as_deref().unwrap_or("")).into_owned(),
        ]);
    }
    println!("{}", output::render(&t));
    let non = rows
        .iter()
        .filter(|r| r.compliance == "NON_COMPLIANT")
        .count();
    println!("{} resource(s), {non} NON_COMPLIANT", rows.len());
    Ok(())
}
