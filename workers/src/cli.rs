//! Command-line interface. Settings come from flags, then environment, then defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// redress: fix AWS Config findings automatically, or after a person approves.
///
/// AWS Config reports a resource breaking a rule; EventBridge puts the event on the events
/// queue; the router decides from the policy what to do; the executor fixes low and medium
/// findings (SSM Automation runbook or a direct API call) and high ones wait for approval.
///
/// Local quick start: `make run` (builds, starts the local AWS emulator, fixes a demo
/// world). AWS access uses the standard chain (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL).
#[derive(Debug, Parser)]
#[command(name = "redress", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Policy file (TOML): which Config rules to act on and how.
    #[arg(
        long,
        env = "REDRESS_POLICY",
        default_value = "infra/policies/default.toml",
        global = true
    )]
    pub policy: PathBuf,
    /// Events queue (name or URL): where EventBridge delivers Config events.
    #[arg(
        long,
        env = "REDRESS_EVENTS_QUEUE",
        default_value = "redress-events",
        global = true
    )]
    pub events_queue: String,
    /// Tasks queue (name or URL): work for the executor.
    #[arg(
        long,
        env = "REDRESS_TASKS_QUEUE",
        default_value = "redress-tasks",
        global = true
    )]
    pub tasks_queue: String,
    /// Approvals queue (name or URL): findings waiting for a person.
    #[arg(
        long,
        env = "REDRESS_APPROVALS_QUEUE",
        default_value = "redress-approvals",
        global = true
    )]
    pub approvals_queue: String,
    /// Decide and audit everything but change no AWS resource (REDRESS_DRY_RUN=1).
    #[arg(long, env = "REDRESS_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false, global = true)]
    pub dry_run: bool,
    /// Log format on stderr [default: pretty on a terminal, json otherwise].
    #[arg(long, env = "REDRESS_LOG_FORMAT", value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    /// Ledger table (DynamoDB): the executor records each change there (intent before,
    /// outcome after, with the state before and after) and leases each finding to one
    /// executor; `history` reads it; `provision` creates it. A table named here must
    /// exist; empty: no ledger [default: redress-ledger if that table exists, else no
    /// ledger].
    #[arg(
        long,
        env = "REDRESS_LEDGER_TABLE",
        value_name = "TABLE",
        global = true
    )]
    pub ledger_table: Option<String>,
    /// Notification topic (SNS name or ARN, e.g. redress-notifications): people are told
    /// of new approval requests, failed or dead-lettered fixes, guards tripped or reset,
    /// and findings still non-compliant after a fix. `provision` creates it. A topic
    /// named here must exist; unset or empty: no notifications.
    #[arg(
        long,
        env = "REDRESS_NOTIFY_TOPIC",
        value_name = "TOPIC",
        global = true
    )]
    pub notify_topic: Option<String>,
    /// EventBridge bus that `provision` wires to the events queue (AWS Config puts its
    /// events on the default bus).
    #[arg(
        long,
        env = "REDRESS_EVENT_BUS",
        default_value = "default",
        global = true
    )]
    pub event_bus: String,
    /// The policy file as [`Global::apply_policy_settings`] parsed it, so that start-up
    /// reads and parses it once (`crate::run::load_policy` hands this one on); `None`
    /// when it was not parsed there or did not parse (then the command loads it and
    /// says why it fails).
    #[arg(skip)]
    pub parsed_policy: Option<std::sync::Arc<redress::policy::Policy>>,
}

/// The ledger table's name when none is given.
pub const DEFAULT_LEDGER_TABLE: &str = "redress-ledger";

/// Which ledger table a command uses, and whether it must exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerChoice<'a> {
    /// None (`--ledger-table ''`).
    Off,
    /// The default table, if it exists.
    IfExists(&'a str),
    /// The table named; it must exist.
    Required(&'a str),
}

impl Global {
    /// The ledger table a command that reads it must use: the one named, or the default
    /// (a command that reads the ledger cannot run without one).
    pub fn ledger_to_read(&self) -> Result<&str, crate::error::CliError> {
        match self.ledger() {
            LedgerChoice::Off => Err(crate::error::CliError::input(
                "no ledger: --ledger-table (REDRESS_LEDGER_TABLE) is empty",
            )),
            LedgerChoice::IfExists(n) | LedgerChoice::Required(n) => Ok(n),
        }
    }

    /// The ledger `--ledger-table` (or its default) chooses.
    pub fn ledger(&self) -> LedgerChoice<'_> {
        match self.ledger_table.as_deref() {
            None => LedgerChoice::IfExists(DEFAULT_LEDGER_TABLE),
            Some(t) if t.trim().is_empty() => LedgerChoice::Off,
            Some(t) => LedgerChoice::Required(t),
        }
    }

    /// The notification topic `--notify-topic` chooses.
    pub fn notify(&self) -> crate::notify::TopicChoice<'_> {
        crate::notify::TopicChoice::of(self.notify_topic.as_deref())
    }

    /// Takes the ledger table and the notification topic from the policy's `[ledger]
    /// table` and `[notifications] topic` where neither the flag nor its variable named
    /// one (they win). A policy that cannot be read changes nothing here: the commands
    /// that need it say why. The parsed policy is kept in [`Global::parsed_policy`].
    pub fn apply_policy_settings(&mut self) {
        if self.ledger_table.is_some() && self.notify_topic.is_some() {
            return;
        }
        let Ok(policy) = redress::policy::Policy::from_file(&self.policy) else {
            return;
        };
        if self.ledger_table.is_none() {
            self.ledger_table = policy.ledger.table.clone();
        }
        if self.notify_topic.is_none() {
            self.notify_topic = policy.notifications.topic.clone();
        }
        self.parsed_policy = Some(std::sync::Arc::new(policy));
    }
}

/// Log output style.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the router and the executor together (small and local setups).
    ///
    /// A routed task goes to the executor in memory (one queue hop); the event is
    /// acknowledged once the fix's outcome is recorded. Tasks go through the tasks queue
    /// when the executor is busy. Separate `router` and
    /// `executor` processes (different privileges) always use the tasks queue.
    ///
    /// Example: `redress run --once` processes everything queued, prints what happened,
    /// and exits.
    Run(WorkerArgs),
    /// Run only the router: events queue → tasks / approvals queue, or skipped.
    Router(WorkerArgs),
    /// Run only the executor: tasks queue → fixed resources.
    Executor(WorkerArgs),
    /// Review and act on findings waiting for a person (high severity).
    ///
    /// Example: `redress approvals list`, then `redress approvals approve ap-1d2365eec0`.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// Inspect, replay or purge dead letters.
    ///
    /// QUEUE is `events`, `tasks`, `approvals` (the dead-letter queue of that queue), or a
    /// queue name or URL. Example: `redress dlq list tasks`.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Run the router or the executor as an SQS-triggered AWS Lambda function, or the
    /// evaluator as the function behind redress's Config custom rules.
    ///
    /// The binary is the custom runtime's `bootstrap`; see infra/cloudformation/lambda.yaml
    /// and config.yaml.
    Lambda(LambdaArgs),
    /// Validate a policy, or show what it decides for an event.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// The runbook catalog: the AWS-owned SSM Automation documents redress knows.
    ///
    /// For each document: its parameters as AWS validates them (type, required, default,
    /// allowed values or pattern), which one takes the resource id, the IAM actions its
    /// automation role needs, the AWS Config rules it pairs with (and whether an AWS source
    /// confirms the pairing), and whether redress could undo its change. `redress policy
    /// check` validates every runbook action of a policy against it.
    ///
    /// Examples: `redress runbooks list`; `redress runbooks show
    /// AWSConfigRemediation-EnforceEC2InstanceIMDSv2`; `redress runbooks list --json | jq
    /// '.documents[] | select(.undoable) | .name'`
    #[command(subcommand)]
    Runbooks(RunbooksCommand),
    /// Report an evaluation to AWS Config as a rule does (PutEvaluations), for the local stack.
    ///
    /// Config records it and, when the resource's compliance changes, puts the
    /// compliance-change event on the default event bus, which delivers it to the events
    /// queue. The Config rule must exist. Example: `redress emit --rule restricted-ssh --resource sg-0123 --resource-type
    /// AWS::EC2::SecurityGroup`
    Emit(EmitArgs),
    /// Feed Config's current NON_COMPLIANT results through the router, as events would be.
    ///
    /// Config sends an event only when compliance changes: a resource already
    /// NON_COMPLIANT when redress was deployed, or whose event was lost, is found only by
    /// a sweep. Reads every Config rule the policy covers, in the accounts and regions of
    /// `[config]` (or through `[config] aggregator`); dedup, exemptions, severity, guards
    /// and approvals apply as to events, and findings already waiting for approval are
    /// not asked about again. Run it daily (the CloudFormation stack schedules it).
    ///
    /// Example: `redress sweep --rule '*restricted*'`; with --dry-run, only prints what the
    /// router would decide.
    Sweep(SweepArgs),
    /// Run one of redress's own Config custom rules and print its results.
    ///
    /// The rules: `redress-sg-admin-ports` (ports 22, 3389, 1433, 3306, 5432, 27017, 6379
    /// open to the world), `redress-sg-privileged-ports` (other privileged ports open to
    /// the world; not 80 or 443), and `redress-parameter-drift` (each parameter under
    /// /APP/current/ against /APP/approved/: annotation `drifted`, `missing` or
    /// `unauthorized`, never a value). Config asks the rule's function to evaluate
    /// (StartConfigRulesEvaluation); redress waits for the run to finish and prints the
    /// rule's results. Each new NON_COMPLIANT result becomes an event redress acts on.
    ///
    /// Examples: `redress evaluate redress-sg-admin-ports`; `redress --dry-run evaluate
    /// redress-parameter-drift --parameter apps=payments,orders` (evaluates here and
    /// prints, putting nothing into Config).
    Evaluate(EvaluateArgs),
    /// What redress changed, by whom, and where each change stands now (the ledger).
    ///
    /// One row per ledger entry, oldest first: entry id, when it was decided, policy rule,
    /// resource, action, actor (`automatic` or the approver), status, and the state before
    /// → after. Filters combine; without --resource, --rule or --account it reads the
    /// last --since (default 30 days) day by day.
    ///
    /// Examples: `redress history --resource sg-0123456789abcdef0`; `redress history
    /// --rule 'sg-*' --since 7d --json`
    History(HistoryArgs),
    /// What the ledger says of the last --since: fixes, failures, approvals, exemptions,
    /// time to remediate; or the evidence export.
    ///
    /// Counts each ledger entry once, by what became of it: fixed (including since
    /// undone), still non-compliant after its fix, failed, in progress, waiting for
    /// approval (with the oldest request's age), exempt, skipped, rejected or expired,
    /// and undos carried out. Time to remediate is from Config's evaluation of the
    /// finding to Config's confirmation of the fix (median and 90th percentile of the
    /// verified fixes). Then the exemptions in force: undo exceptions and the policy's
    /// `[[exception]]`s, with when each ends.
    ///
    /// `--format csv` is the evidence export for auditors: one row per ledger entry
    /// (each action taken, proposed or declined) with the finding (Config rule and ARN,
    /// account, region, resource, evaluation time), the action, who acted (automatic or
    /// the approver AWS verified) and when, the state before and after, the execution id
    /// and the reason. Spreadsheet-safe (RFC 4180, formulas neutralised).
    ///
    /// Examples: `redress report`; `redress report --since 7d --by severity`; `redress
    /// report --since 90d --format csv > evidence.csv`; `redress report --format json |
    /// jq .total`
    Report(ReportArgs),
    /// Ask to put back what a ledger entry's fix changed, and leave the finding alone
    /// until --until.
    ///
    /// Plans the undo from the ledger entry and the resource as it is now: re-authorize
    /// exactly the permissions a revoke took away; put a parameter back to its previous
    /// version's value and type (a deleted one from its quarantine copy); delete a
    /// parameter a fix created (keeping a copy). Runbook fixes are undone only where the
    /// runbook catalog knows the inverse. If someone changed the resource since the fix,
    /// the undo is refused with what differs, unless --force.
    ///
    /// The undo is a change like any other: this command only hands it to the executor,
    /// which records it (with you as the requester, as SQS asserts) and puts a request on
    /// the approvals queue (`redress approvals show ap-…`). Once another approver approves
    /// it, the executor plans it again, runs it if the plan is still the one approved,
    /// records it in the ledger and records an exception so the next evaluation does not
    /// fix the finding again before --until (at most 90 days). With --dry-run it prints
    /// the plan and sends nothing.
    ///
    /// Examples: `redress undo le-0123456789abcdef0123 --reason "INC-42: vendor needs ssh"
    /// --until 2027-01-31`; `redress --dry-run undo le-… --reason test --until 7d`
    Undo(UndoArgs),
    /// Create the queues, dead-letter queues, EventBridge rule and target, the ledger
    /// table, and redress's three Config rules (idempotent).
    ///
    /// The ledger table (--ledger-table, default redress-ledger; skipped when empty) is
    /// on-demand, with its indexes, TTL on `ttl` and point-in-time recovery.
    ///
    /// Meant for the local stack (AWS_ENDPOINT_URL); on AWS, deploy infra/ instead. Each
    /// Config rule needs a Lambda function behind it: locally, provision creates one per
    /// rule (with its role) whose environment names this binary, which the local Config
    /// stand-in runs as `redress evaluate --invocation -` when the rule is invoked.
    Provision(ProvisionArgs),
}

/// Options of `undo`.
#[derive(Debug, Args)]
pub struct UndoArgs {
    /// The ledger entry whose change to put back (`le-…`, from `redress history`).
    pub entry: String,
    /// Why (required; recorded in the ledger, the audit and the exception).
    #[arg(long)]
    pub reason: String,
    /// Leave the finding alone until then: a date (`2027-01-31`, midnight UTC), an RFC
    /// 3339 time, or a duration from now (`7d`, `12h`); at most 90 days away.
    #[arg(long, default_value = "7d")]
    pub until: String,
    /// Put the recorded state back even though the resource changed since the fix.
    #[arg(long)]
    pub force: bool,
}

/// Options of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only entries about this resource id.
    #[arg(long)]
    pub resource: Option<String>,
    /// Only entries of policy rules matching this glob (e.g. `sg-*`).
    #[arg(long)]
    pub rule: Option<String>,
    /// Only entries in this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Only entries decided within this long before now, e.g. `30d`, `12h`
    /// [default: all; 30d without --resource, --rule or --account].
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// One JSON document on stdout (`{"entries": [...]}`, the entries in full) instead
    /// of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The window: entries decided within this long before now, e.g. `30d`, `12h`, `1w`.
    #[arg(long, value_name = "DURATION", default_value = "30d")]
    pub since: String,
    /// One row per policy rule, account, or severity.
    #[arg(long, value_enum, default_value_t = ReportBy::Rule)]
    pub by: ReportBy,
    /// `table` for people; `json`: the same as one document on stdout; `csv`: the
    /// evidence export, one row per ledger entry.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
}

/// What a report's rows group by.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportBy {
    /// The policy rule.
    Rule,
    /// The finding's account.
    Account,
    /// The rule's severity.
    Severity,
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    /// A table.
    Table,
    /// One JSON document.
    Json,
    /// The evidence export (CSV, one row per ledger entry).
    Csv,
}

/// Options of `evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The Config rule: redress-sg-admin-ports, redress-sg-privileged-ports or
    /// redress-parameter-drift (a name with a suffix, e.g. from a conformance pack, works).
    pub rule: Option<String>,
    /// With --dry-run: an input parameter to use instead of the rule's, e.g.
    /// `apps=payments,orders`, `ports=22,3389` (repeatable).
    #[arg(long = "parameter", value_name = "KEY=VALUE")]
    pub parameter: Vec<String>,
    /// How long to wait for Config to finish the run.
    #[arg(long, default_value = "2m")]
    pub wait: String,
    /// One JSON document on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Answer one Config custom-rule invocation (the JSON Config sends the rule's Lambda
    /// function; `-` reads standard input) as Lambda mode does, putting its evaluations
    /// with the invocation's result token.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["rule", "parameter", "json"])]
    pub invocation: Option<PathBuf>,
}

/// Options of `provision`.
#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Applications the `redress-parameter-drift` rule evaluates (its `apps` input
    /// parameter): parameters under /APP/current/ against /APP/approved/.
    #[arg(long, env = "REDRESS_APPS", default_value = "payments")]
    pub apps: String,
}

/// Options of the worker commands.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Drain the queues and exit 0 when all are empty and nothing is in flight.
    #[arg(long)]
    pub once: bool,
    /// Messages each worker handles at once. It receives ahead (up to 10 more) so a slot
    /// that frees starts at once, and acknowledges in batches. Raise it when remediation
    /// calls are slow: throughput grows with it.
    #[arg(long, env = "REDRESS_CONCURRENCY", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub concurrency: u32,
    /// On SIGTERM or SIGINT, how long work in progress may take to finish (seconds).
    /// Messages received but not started are handed back at once; work still running at
    /// the deadline is abandoned and its message made visible again, and the process
    /// exits 0. Keep it under the platform's kill timeout (ECS stopTimeout: 30 s).
    #[arg(long, env = "REDRESS_SHUTDOWN_GRACE", default_value_t = 25)]
    pub shutdown_grace: u64,
    #[command(flatten)]
    pub executor: ExecutorArgs,
}

/// Options of the executor.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// Attempts at a task before a transient failure is dead-lettered.
    #[arg(long, env = "REDRESS_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Longest a runbook may run before the executor stops waiting (seconds).
    #[arg(long, env = "REDRESS_RUNBOOK_TIMEOUT", default_value_t = 600)]
    pub runbook_timeout: u64,
    /// First interval between runbook status polls (milliseconds); grows with backoff.
    #[arg(long, env = "REDRESS_POLL_INTERVAL_MS", default_value_t = 500)]
    pub poll_interval_ms: u64,
    /// While a task runs, extend its message's visibility this often (seconds), to three
    /// times as long, so a long runbook is not redelivered mid-run. 0 turns it off (the
    /// queue's visibility timeout then bounds every task).
    #[arg(long, env = "REDRESS_HEARTBEAT", default_value_t = 30)]
    pub heartbeat: u64,
    /// How long the executor holds a finding's ledger lease (e.g. `5m`): a crashed
    /// executor's intent is taken over and recovered once it lapses. It is not renewed,
    /// so it must outlast the longest fix [default: the runbook timeout plus 2 minutes].
    #[arg(long, env = "REDRESS_LEDGER_LEASE", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ledger_lease: Option<std::time::Duration>,
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Every waiting request, oldest first (expired ones are removed and audited).
    List {
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One request in full: the finding, the exact action and what it will change.
    Show {
        /// Request id, e.g. `ap-1d2365eec0`.
        id: String,
        /// One JSON document on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Approve: hand the task to the executor. Records who you are (from STS), when and why.
    ///
    /// With --dry-run, shows what would be executed and changes nothing.
    Approve {
        /// Request id.
        id: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Reject: remove the request; the resource is not touched.
    Reject {
        /// Request id.
        id: String,
        /// Why (required; recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// Remove requests made moot (the resource became compliant) and stale notices.
    Prune,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Every dead letter: id, age, receive count, rule, resource and error, with a count
    /// by error class. Messages are visible again as soon as it has read them.
    List {
        /// events, tasks, approvals, or a queue name or URL.
        queue: String,
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move matching dead letters back to their source queue (copy first, then delete).
    Replay(ReplayArgs),
    /// Move everything back with SQS's native message-move task.
    Redrive {
        /// events, tasks, approvals, or a queue name or URL.
        queue: String,
    },
    /// Delete every message in the dead-letter queue (asks for --yes).
    Purge {
        /// events, tasks, approvals, or a queue name or URL.
        queue: String,
        /// Yes, delete them; prints how many were removed.
        #[arg(long)]
        yes: bool,
    },
}

/// Options of `dlq replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// events, tasks, approvals, or a queue name or URL.
    pub queue: String,
    /// Only messages whose rule (policy rule id or Config rule name) matches this glob.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only messages about this resource id.
    #[arg(long)]
    pub resource: Option<String>,
    /// Only messages with this error class (e.g. permanent, exhausted, invalid_input).
    #[arg(long)]
    pub error: Option<String>,
    /// Replay at most this many.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Replay even messages already replayed --max-replays times.
    #[arg(long)]
    pub force: bool,
    /// Times a message may be replayed before it is skipped (a loop guard).
    #[arg(long, env = "REDRESS_MAX_REPLAYS", default_value_t = 3)]
    pub max_replays: u32,
    /// Seconds a message read but not moved stays hidden if the replay is killed.
    #[arg(long, env = "REDRESS_DLQ_VISIBILITY", default_value_t = 60)]
    pub visibility: u32,
}

/// Options of `lambda`.
#[derive(Debug, Args)]
pub struct LambdaArgs {
    /// Which worker this function is.
    #[arg(long, env = "REDRESS_LAMBDA_WORKER", value_enum)]
    pub worker: LambdaWorker,
    #[command(flatten)]
    pub executor: ExecutorArgs,
}

/// A worker that can run as a Lambda function.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LambdaWorker {
    /// Events queue → tasks / approvals.
    Router,
    /// Tasks queue → fixes.
    Executor,
    /// Config custom-rule invocations → evaluations (redress's own Config rules; needs
    /// no queue and no policy).
    Evaluator,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy file; every problem is listed with its line. Exit 2 if invalid.
    ///
    /// Runbook actions are checked against the runbook catalog (`redress runbooks list`)
    /// as AWS would check them: the document's name (an error for a misspelt one, a warning
    /// for one outside the catalog), missing, unknown or mistyped parameters, values outside
    /// the allowed set or pattern, placeholders that cannot fill a parameter, and a missing
    /// AutomationAssumeRole. Problems go to stderr as `FILE:LINE: error: …` or `warning: …`;
    /// warnings alone do not fail the check. On success it prints the count of rules,
    /// runbooks and undoable runbooks, then the rules.
    ///
    /// Example: `redress policy check infra/policies/soc2.toml`
    Check {
        /// Policy file [default: --policy].
        file: Option<PathBuf>,
    },
    /// Print the decision the policy makes for an event file, with no side effects.
    ///
    /// Example: `redress policy explain tests/fixtures/events/sg-ssh-open-noncompliant.json`
    Explain {
        /// Event JSON as found on the queue (EventBridge or SNS form).
        event: PathBuf,
        /// One JSON document on stdout instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunbooksCommand {
    /// Every document in the catalog: resource type, paired Config rules, parameters,
    /// whether redress could undo it, and whether an AWS source confirms the pairing.
    List {
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One document in full: parameters (type, required, default, allowed values or
    /// pattern), the resource-id parameter, IAM actions, Config rules, undo, sources.
    ///
    /// A misspelt name exits 2 with the name it probably means.
    /// Example: `redress runbooks show AWS-EnableS3BucketEncryption`
    Show {
        /// Document name (case-sensitive), e.g. `AWS-EnableS3BucketEncryption`.
        name: String,
        /// The catalog's entry as one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Options of `sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Only Config rules whose name matches this glob.
    #[arg(long)]
    pub rule: Option<String>,
    /// One JSON document on stdout instead of a summary line.
    #[arg(long)]
    pub json: bool,
}

/// Options of `emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {
    /// Config rule name, e.g. `restricted-ssh`.
    #[arg(long)]
    pub rule: String,
    /// Resource id, e.g. `sg-0123456789abcdef0`.
    #[arg(long)]
    pub resource: String,
    /// Resource type, e.g. `AWS::EC2::SecurityGroup`.
    #[arg(long)]
    pub resource_type: String,
    /// New compliance.
    #[arg(long, default_value = "NON_COMPLIANT")]
    pub compliance: String,
    /// The rule's annotation.
    #[arg(long)]
    pub annotation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_policy_names_the_ledger_and_topic_unless_a_flag_does() {
        let dir = std::env::temp_dir().join(format!("redress-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("policy.toml");
        std::fs::write(
            &path,
            "[ledger]\ntable = \"team-ledger\"\n[notifications]\ntopic = \"team-topic\"\n\n[[rule]]\nid = \"ssh\"\nconfig_rule = \"*restricted-ssh*\"\nseverity = \"LOW\"\naction = { fix = \"revoke_public_ingress\", ports = [22] }\n",
        )
        .unwrap();
        let policy = path.to_str().unwrap();
        let parse = |extra: &[&str]| {
            let mut args = vec!["redress", "--policy", policy];
            args.extend_from_slice(extra);
            args.push("history");
            let mut cli = Cli::try_parse_from(args).unwrap();
            cli.global.apply_policy_settings();
            cli.global
        };
        let from_policy = parse(&[]);
        assert_eq!(from_policy.ledger(), LedgerChoice::Required("team-ledger"));
        assert_eq!(from_policy.notify_topic.as_deref(), Some("team-topic"));
        let g = parse(&["--ledger-table", "", "--notify-topic", "other"]);
        assert_eq!(g.ledger(), LedgerChoice::Off);
        assert_eq!(g.notify_topic.as_deref(), Some("other"));
        assert!(g.parsed_policy.is_none(), "both named by flags: not parsed");
        std::fs::remove_dir_all(&dir).unwrap();
        // Parsed once: the commands take the policy read above, not the file again.
        let policy = crate::run::load_policy(&from_policy).expect("the policy parsed above");
        assert_eq!(policy.rules.len(), 1);
        assert!(
            crate::run::load_policy(&g).is_err(),
            "not parsed above: read now, and the file is gone"
        );
    }

    #[test]
    fn an_undo_lasts_a_week_unless_until_says() {
        let cli = Cli::try_parse_from(["redress", "undo", "le-0", "--reason", "INC-1"]).unwrap();
        let Command::Undo(a) = cli.command else {
            panic!("not undo")
        };
        assert_eq!(a.until, "7d");
        assert!(
            Cli::try_parse_from(["redress", "undo", "le-0"]).is_err(),
            "a reason is required"
        );
    }
}
