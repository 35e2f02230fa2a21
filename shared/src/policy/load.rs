//! Loading a policy from TOML, reporting every problem with its line.
//!
//! Serde stops at the first error and loses positions inside tables, so the document is
//! read as tables of spanned keys and values, and each field is then converted on its own.
//! That lets one `policy check` name the line of every unknown key, duplicate id and bad
//! value at once.
//!
//! [`Policy::check`] also checks every runbook action against the runbook catalog
//! ([`crate::catalog`]) in the same pass, so its problems come sorted among the others,
//! each on the line of the part of the action it concerns (the `runbook`, the parameter,
//! `assume_role`). Its errors make the policy unusable like any other; its warnings do
//! not (and a notify-only rule, which never runs its action, gets none for a document
//! outside the catalog). [`Policy::from_toml`] does not consult the catalog: the workers
//! load a policy exactly as before, and `policy check` is where the catalog speaks.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::catalog::{self, Catalog, ASSUME_ROLE_PARAMETER};

use super::{
    Accounts, Action, Approvals, ConfigSettings, Exception, Exemptions, Fix, LedgerSettings,
    Limits, Mode, Notifications, Policy, Routing, Rule, Runbook, Severity,
};

type SpannedTable = BTreeMap<Spanned<String>, Spanned<toml::Value>>;

const TOP_KEYS: [&str; 10] = [
    "routing",
    "config",
    "approvals",
    "limits",
    "accounts",
    "exemptions",
    "ledger",
    "notifications",
    "rule",
    "exception",
];
const RULE_KEYS: [&str; 9] = [
    "id",
    "config_rule",
    "config_rule_arn",
    "annotation",
    "resource_types",
    "severity",
    "mode",
    "action",
    "max_fixes_per_minute",
];
const LIMIT_KEYS: [&str; 7] = [
    "max_fixes_per_minute",
    "breaker_error_rate",
    "breaker_window",
    "breaker_min_fixes",
    "breaker_cooldown",
    "kill_switch_parameter",
    "kill_switch_cache",
];
const CONFIG_KEYS: [&str; 6] = [
    "verify",
    "verify_deadline",
    "recheck_after",
    "accounts",
    "regions",
    "aggregator",
];
const EXCEPTION_KEYS: [&str; 5] = ["resource_id", "account", "rules", "expires", "reason"];

/// Longest duration a policy may give (longer ones overflow clock arithmetic).
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 86_400);

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when the problem has a position.
    pub line: Option<usize>,
    /// An error (the policy cannot be used) or a warning (only the runbook catalog gives
    /// those).
    pub severity: catalog::Severity,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// An error on this line.
    fn error(line: Option<usize>, message: impl Into<String>) -> Problem {
        Problem {
            line,
            severity: catalog::Severity::Error,
            message: message.into(),
        }
    }

    /// Whether the problem makes the policy unusable.
    pub fn is_error(&self) -> bool {
        self.severity == catalog::Severity::Error
    }

    /// The problem as compilers print one: `FILE:LINE: error: message` (or `warning:`).
    pub fn located(&self, source_name: &str) -> String {
        let label = match self.severity {
            catalog::Severity::Error => "error",
            catalog::Severity::Warning => "warning",
        };
        match self.line {
            Some(line) => format!("{source_name}:{line}: {label}: {}", self.message),
            None => format!("{source_name}: {label}: {}", self.message),
        }
    }
}

/// How many errors and warnings, e.g. `2 errors and 1 warning`.
fn count(problems: &[Problem]) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let errors = problems.iter().filter(|p| p.is_error()).count();
    match problems.len() - errors {
        0 => plural(errors, "error"),
        warnings => format!(
            "{} and {}",
            plural(errors, "error"),
            plural(warnings, "warning")
        ),
    }
}

/// A policy that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// File name (or `<string>`).
    pub source_name: String,
    /// The problems, in file order: at least one error, and any warnings.
    pub problems: Vec<Problem>,
}

impl PolicyError {
    /// One line saying how many errors and warnings the policy has.
    pub fn summary(&self) -> String {
        format!("policy {} has {}", self.source_name, count(&self.problems))
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.summary())?;
        for p in &self.problems {
            write!(f, "\n  {}", p.located(&self.source_name))?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// A policy that passed [`Policy::check`], with what is worth a look.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The policy.
    pub policy: Policy,
    /// Warnings, in file order (the catalog's: documents outside it, test-only documents,
    /// values that do not look like their resource-picker type...).
    pub warnings: Vec<Problem>,
}

/// The `action = { ... }` inline table before it is checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionConfig {
    /// A direct fix: `revoke_public_ingress` or `restore_parameter_baseline`.
    fix: Option<String>,
    /// An SSM Automation document name.
    runbook: Option<String>,
    /// `revoke_public_ingress`: ports to close.
    ports: Option<Vec<u16>>,
    /// `restore_parameter_baseline`: prefix of approved values.
    baseline_prefix: Option<String>,
    /// `restore_parameter_baseline`: prefix of live values.
    current_prefix: Option<String>,
    /// Runbook parameters (lists of strings; placeholders allowed).
    parameters: Option<BTreeMap<String, Vec<String>>>,
    /// Runbook `AutomationAssumeRole` (placeholders allowed).
    assume_role: Option<String>,
}

/// Where the parts of each rule's action are, by rule index, for the catalog's problems.
#[derive(Debug, Default, Deserialize)]
struct ActionSpansDoc {
    #[serde(default)]
    rule: Vec<RuleSpans>,
}

#[derive(Debug, Deserialize)]
struct RuleSpans {
    /// `None` when the action is absent or not a table (the loader reports that).
    #[serde(default, deserialize_with = "lenient")]
    action: Option<ActionSpans>,
}

/// The spans of an action's keys; any other key is ignored here.
#[derive(Debug, Deserialize)]
struct ActionSpans {
    runbook: Option<Spanned<IgnoredAny>>,
    parameters: Option<Spanned<BTreeMap<Spanned<String>, IgnoredAny>>>,
    assume_role: Option<Spanned<IgnoredAny>>,
}

/// A value that may not have the expected shape: `None` then, without failing the
/// document (the loader reports the shape with its line).
fn lenient<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Ok(T::deserialize(d).ok())
}

impl ActionSpans {
    /// Where a catalog problem belongs: the parameter it names (the action's
    /// `assume_role` for `AutomationAssumeRole` when the action gives one), `parameters`
    /// for a parameter the action lacks, and the `runbook` for the document itself.
    fn of(&self, problem: &catalog::Problem) -> Option<Range<usize>> {
        let runbook = self.runbook.as_ref().map(|r| r.span());
        let Some(name) = problem.parameter.as_deref() else {
            return runbook;
        };
        let twice = problem.kind == catalog::ProblemKind::AssumeRoleTwice;
        if name == ASSUME_ROLE_PARAMETER && !twice {
            if let Some(role) = &self.assume_role {
                return Some(role.span());
            }
        }
        let parameters = self.parameters.as_ref();
        parameters
            .and_then(|p| p.get_ref().keys().find(|k| k.get_ref() == name))
            .map(|k| k.span())
            .or_else(|| parameters.map(|p| p.span()))
            .or(runbook)
    }
}

struct Loader<'a> {
    src: &'a str,
    problems: Vec<Problem>,
    /// The catalog runbook actions are checked against, and where each rule's action
    /// parts are (by rule index); `None` when loading without the catalog.
    catalog: Option<(&'a Catalog, Vec<RuleSpans>)>,
}

impl Loader<'_> {
    fn line(&self, span: Range<usize>) -> usize {
        self.src[..span.start.min(self.src.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        let line = Some(self.line(span));
        self.problems.push(Problem::error(line, message));
    }

    /// The catalog's problems with rule `index`'s runbook, each on the line of the part
    /// of the action it concerns (else the action's). A notify-only rule never runs its
    /// action, so a document outside the catalog (the packs' `Redress-NotifyOnly-*`
    /// labels) is not worth a warning there; a misspelt name still is an error, since the
    /// mode may change.
    fn check_runbook(
        &mut self,
        index: usize,
        runbook: &Runbook,
        notify: bool,
        at: Range<usize>,
        what: &str,
    ) {
        let Some((catalog, spans)) = &self.catalog else {
            return;
        };
        let spans = spans.get(index).and_then(|r| r.action.as_ref());
        let found: Vec<(Option<usize>, catalog::Problem)> = catalog
            .check_runbook(runbook)
            .into_iter()
            .filter(|p| !(notify && p.kind == catalog::ProblemKind::UnknownDocument))
            .map(|p| {
                let span = spans.and_then(|s| s.of(&p)).unwrap_or(at.clone());
                (Some(self.line(span)), p)
            })
            .collect();
        for (line, p) in found {
            self.problems.push(Problem {
                line,
                severity: p.severity,
                message: format!("{what}: {}", p.message),
            });
        }
    }

    fn check_keys(&mut self, table: &SpannedTable, known: &[&str], what: &str) {
        for key in table.keys() {
            if !known.contains(&key.get_ref().as_str()) {
                self.problem(
                    key.span(),
                    format!(
                        "unknown key `{}` in {what}; expected one of: {}",
                        key.get_ref(),
                        known.join(", ")
                    ),
                );
            }
        }
    }

    /// Converts one field, recording a problem on its line when it has the wrong shape.
    fn field<T: DeserializeOwned>(
        &mut self,
        table: &SpannedTable,
        key: &str,
        what: &str,
    ) -> Option<(T, Range<usize>)> {
        let (_, value) = table.iter().find(|(k, _)| k.get_ref() == key)?;
        match value.get_ref().clone().try_into::<T>() {
            Ok(v) => Some((v, value.span())),
            Err(e) => {
                self.problem(value.span(), format!("{what}: `{key}`: {}", e.message()));
                None
            }
        }
    }

    fn required<T: DeserializeOwned>(
        &mut self,
        table: &SpannedTable,
        key: &str,
        what: &str,
        at: Range<usize>,
    ) -> Option<(T, Range<usize>)> {
        let present = table.keys().any(|k| k.get_ref() == key);
        if !present {
            self.problem(at, format!("{what}: missing required key `{key}`"));
            return None;
        }
        self.field(table, key, what)
    }

    fn routing(&mut self, table: Option<&SpannedTable>) -> Routing {
        let Some(table) = table else {
            return Routing::default();
        };
        self.check_keys(table, &["auto_max_severity"], "[routing]");
        let mut routing = Routing::default();
        if let Some((s, _)) = self.field::<Severity>(table, "auto_max_severity", "[routing]") {
            routing.auto_max_severity = s;
        }
        routing
    }

    fn approvals(&mut self, table: Option<&SpannedTable>) -> Approvals {
        let Some(table) = table else {
            return Approvals::default();
        };
        self.check_keys(table, &["ttl", "approvers"], "[approvals]");
        let mut approvals = Approvals::default();
        if let Some((ttl, span)) = self.field::<String>(table, "ttl", "[approvals]") {
            match humantime::parse_duration(&ttl) {
                Ok(d) if d > MAX_DURATION => self.problem(
                    span,
                    format!("[approvals]: `ttl` {ttl:?} is longer than 10 years"),
                ),
                Ok(d) if !d.is_zero() => approvals.ttl = d,
                Ok(_) => self.problem(span, "[approvals]: `ttl` must be longer than zero"),
                Err(e) => self.problem(
                    span,
                    format!("[approvals]: `ttl` {ttl:?}: {e} (e.g. \"7d\", \"12h\")"),
                ),
            }
        }
        if let Some((approvers, span)) =
            self.field::<Vec<String>>(table, "approvers", "[approvals]")
        {
            for a in &approvers {
                match crate::approver::ApproverSpec::parse(a) {
                    Ok(spec) => approvals.approvers.push(spec),
                    Err(e) => self.problem(span.clone(), format!("[approvals]: `approvers`: {e}")),
                }
            }
        }
        approvals
    }

    fn exemptions(&mut self, table: Option<&SpannedTable>) -> Exemptions {
        let Some(table) = table else {
            return Exemptions::default();
        };
        self.check_keys(table, &["tag"], "[exemptions]");
        let mut exemptions = Exemptions::default();
        if let Some((tag, span)) = self.field::<String>(table, "tag", "[exemptions]") {
            // EC2 tag keys: 1-128 characters, no `aws:` prefix.
            if tag.is_empty() || tag.len() > 128 || tag.starts_with("aws:") {
                self.problem(
                    span,
                    format!("[exemptions]: `tag` {tag:?} is not a usable tag key (1-128 characters, not aws:…)"),
                );
            } else {
                exemptions.tag = Some(tag);
            }
        }
        exemptions
    }

    /// `[ledger] table`: a DynamoDB table name (3-255 of `A-Za-z0-9_.-`).
    fn ledger(&mut self, table: Option<&SpannedTable>) -> LedgerSettings {
        let name = self.named(table, "[ledger]", "table", |t| {
            (3..=255).contains(&t.len())
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        });
        LedgerSettings { table: name }
    }

    /// `[notifications] topic`: an SNS topic name (1-256 of `A-Za-z0-9_-`) or ARN.
    fn notifications(&mut self, table: Option<&SpannedTable>) -> Notifications {
        let topic = self.named(table, "[notifications]", "topic", |t| {
            t.starts_with("arn:")
                || ((1..=256).contains(&t.len())
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)))
        });
        Notifications { topic }
    }

    /// A table's single string `key`, checked by `valid`.
    fn named(
        &mut self,
        table: Option<&SpannedTable>,
        section: &str,
        key: &str,
        valid: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let table = table?;
        self.check_keys(table, &[key], section);
        let (value, span) = self.field::<String>(table, key, section)?;
        if valid(&value) {
            Some(value)
        } else {
            self.problem(
                span,
                format!("{section}: `{key}` {value:?} is not a valid name"),
            );
            None
        }
    }

    fn config(&mut self, table: Option<&SpannedTable>) -> ConfigSettings {
        let mut config = ConfigSettings::default();
        let Some(table) = table else {
            return config;
        };
        let what = "[config]";
        self.check_keys(table, &CONFIG_KEYS, what);
        if let Some((verify, _)) = self.field::<bool>(table, "verify", what) {
            config.verify = verify;
        }
        if let Some(d) = self.duration(table, "verify_deadline", what) {
            config.verify_deadline = d;
        }
        if let Some(d) = self.duration(table, "recheck_after", what) {
            config.recheck_after = d;
        }
        if let Some((accounts, span)) = self.field::<Vec<String>>(table, "accounts", what) {
            for a in &accounts {
                if let Err(m) = crate::validate::account(a) {
                    self.problem(span.clone(), format!("{what}: `accounts`: {m}"));
                }
            }
            config.accounts = accounts;
        }
        if let Some((regions, span)) = self.field::<Vec<String>>(table, "regions", what) {
            for r in &regions {
                if let Err(m) = crate::validate::region(r) {
                    self.problem(span.clone(), format!("{what}: `regions`: {m}"));
                }
            }
            config.regions = regions;
        }
        if let Some((name, span)) = self.field::<String>(table, "aggregator", what) {
            // Config aggregator names: 1-256 of letters, digits, `.`, `_` and `-`.
            let ok = !name.is_empty()
                && name.len() <= 256
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if ok {
                config.aggregator = Some(name);
            } else {
                self.problem(
                    span,
                    format!("{what}: `aggregator` {name:?} is not a Config aggregator name (1-256 letters, digits, . _ -)"),
                );
            }
        }
        config
    }

    /// A glob (for a rule's optional `config_rule_arn` or `annotation`).
    fn glob(
        &mut self,
        table: &SpannedTable,
        key: &str,
        what: &str,
    ) -> Option<(String, globset::GlobMatcher)> {
        let (pattern, span) = self.field::<String>(table, key, what)?;
        match globset::Glob::new(&pattern) {
            Ok(g) => Some((pattern, g.compile_matcher())),
            Err(e) => {
                self.problem(span, format!("{what}: `{key}`: {e}"));
                None
            }
        }
    }

    /// A humantime duration (`"10m"`, `"30s"`) longer than zero.
    fn duration(
        &mut self,
        table: &SpannedTable,
        key: &str,
        what: &str,
    ) -> Option<std::time::Duration> {
        let (text, span) = self.field::<String>(table, key, what)?;
        match humantime::parse_duration(&text) {
            Ok(d) if d > MAX_DURATION => {
                self.problem(
                    span,
                    format!("{what}: `{key}` {text:?} is longer than 10 years"),
                );
                None
            }
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.problem(span, format!("{what}: `{key}` must be longer than zero"));
                None
            }
            Err(e) => {
                self.problem(
                    span,
                    format!("{what}: `{key}` {text:?}: {e} (e.g. \"30s\", \"10m\", \"1h\")"),
                );
                None
            }
        }
    }

    /// A per-minute cap: at least 1.
    fn cap(&mut self, table: &SpannedTable, key: &str, what: &str) -> Option<u32> {
        let (n, span) = self.field::<u32>(table, key, what)?;
        if n == 0 {
            self.problem(
                span,
                format!("{what}: `{key}` must be at least 1 (to stop automatic fixes, use mode = \"approve\" or the kill switch)"),
            );
            return None;
        }
        Some(n)
    }

    fn limits(&mut self, table: Option<&SpannedTable>) -> Limits {
        let mut limits = Limits::default();
        let Some(table) = table else {
            return limits;
        };
        let what = "[limits]";
        self.check_keys(table, &LIMIT_KEYS, what);
        limits.max_fixes_per_minute = self.cap(table, "max_fixes_per_minute", what);
        let b = &mut limits.breaker;
        if let Some((rate, span)) = self.field::<f64>(table, "breaker_error_rate", what) {
            if rate > 0.0 && rate <= 1.0 {
                b.error_rate = rate;
            } else {
                self.problem(
                    span,
                    format!("{what}: `breaker_error_rate` must be in (0, 1], e.g. 0.5 for half of the fixes failing"),
                );
            }
        }
        if let Some(w) = self.duration(table, "breaker_window", what) {
            limits.breaker.window = w;
        }
        if let Some((n, _)) = self.field::<u32>(table, "breaker_min_fixes", what) {
            limits.breaker.min_fixes = n.max(1);
        }
        if let Some(c) = self.duration(table, "breaker_cooldown", what) {
            limits.breaker.cooldown = c;
        }
        if let Some((name, span)) = self.field::<String>(table, "kill_switch_parameter", what) {
            let ok = name.starts_with('/')
                && name.len() <= 1011
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/_.-".contains(c));
            if ok {
                limits.kill_switch_parameter = Some(name);
            } else {
                self.problem(
                    span,
                    format!("{what}: `kill_switch_parameter` {name:?} is not an SSM parameter name like \"/redress/kill-switch\""),
                );
            }
        }
        if let Some(c) = self.duration(table, "kill_switch_cache", what) {
            limits.kill_switch_cache = c;
        }
        limits
    }

    fn accounts(&mut self, table: Option<&SpannedTable>) -> Accounts {
        let Some(table) = table else {
            return Accounts::default();
        };
        let what = "[accounts]";
        self.check_keys(table, &["role"], what);
        let mut accounts = Accounts::default();
        if let Some((role, span)) = self.field::<String>(table, "role", what) {
            match check_role_template(&role) {
                Ok(()) => accounts.role = Some(role),
                Err(m) => self.problem(span, format!("{what}: `role`: {m}")),
            }
        }
        accounts
    }

    /// Where a `[[table]]` starts: the span and line of its first key.
    fn start(&self, table: &SpannedTable) -> (Range<usize>, usize) {
        let at = table
            .keys()
            .map(|k| k.span())
            .min_by_key(|s| s.start)
            .unwrap_or(0..0);
        let line = self.line(at.clone());
        (at, line)
    }

    fn exception(&mut self, table: &SpannedTable, index: usize) -> Option<Exception> {
        let (at, line) = self.start(table);
        let what = format!("exception #{}", index + 1);
        self.check_keys(table, &EXCEPTION_KEYS, &what);
        let resource_id = self.field::<String>(table, "resource_id", &what);
        if let Some((id, span)) = &resource_id {
            if let Err(m) = crate::validate::resource_id("", id) {
                self.problem(span.clone(), format!("{what}: `resource_id`: {m}"));
            }
        }
        let account = self.field::<String>(table, "account", &what);
        if let Some((a, span)) = &account {
            if let Err(m) = crate::validate::account(a) {
                self.problem(span.clone(), format!("{what}: `account`: {m}"));
            }
        }
        if resource_id.is_none() && account.is_none() {
            self.problem(
                at.clone(),
                format!("{what}: needs `resource_id`, `account`, or both"),
            );
        }
        let rules = self
            .field::<Vec<String>>(table, "rules", &what)
            .unwrap_or_default();
        let mut set = globset::GlobSetBuilder::new();
        for r in &rules.0 {
            match globset::Glob::new(r) {
                Ok(g) => {
                    set.add(g);
                }
                Err(e) => self.problem(rules.1.clone(), format!("{what}: `rules`: {e}")),
            }
        }
        let rule_matcher = set.build().ok()?;
        let expires = self
            .required::<String>(table, "expires", &what, at.clone())
            .and_then(|(text, span)| match parse_expiry(&text) {
                Some(t) => Some((t, text)),
                None => {
                    self.problem(
                        span,
                        format!("{what}: `expires` {text:?} is not a date (2027-03-31) or an RFC 3339 time (2027-03-31T12:00:00Z)"),
                    );
                    None
                }
            });
        let reason = self
            .required::<String>(table, "reason", &what, at.clone())
            .and_then(|(r, span)| {
                if r.trim().is_empty() {
                    self.problem(span, format!("{what}: `reason` must say why"));
                    None
                } else {
                    Some(r)
                }
            });
        let (expires, expires_text) = expires?;
        Some(Exception {
            resource_id: resource_id.map(|(r, _)| r),
            account: account.map(|(a, _)| a),
            rules: rules.0,
            rule_matcher,
            expires,
            expires_text,
            reason: reason?,
            line,
        })
    }

    fn rule(&mut self, table: &SpannedTable, index: usize) -> Option<Rule> {
        let (at, line) = self.start(table);
        let label = format!("rule #{}", index + 1);
        let id = self.required::<String>(table, "id", &label, at.clone());
        let what = match &id {
            Some((id, _)) => format!("rule `{id}`"),
            None => label,
        };
        self.check_keys(table, &RULE_KEYS, &what);
        if let Some((id, span)) = &id {
            if let Err(m) = check_rule_id(id) {
                self.problem(span.clone(), format!("{what}: `id`: {m}"));
            }
        }
        let config_rule = self.required::<String>(table, "config_rule", &what, at.clone());
        let matcher =
            config_rule
                .as_ref()
                .and_then(|(pattern, span)| match globset::Glob::new(pattern) {
                    Ok(g) => Some(g.compile_matcher()),
                    Err(e) => {
                        self.problem(span.clone(), format!("{what}: `config_rule`: {e}"));
                        None
                    }
                });
        let arn = self.glob(table, "config_rule_arn", &what);
        let annotation = self.glob(table, "annotation", &what);
        let resource_types = self.field::<Vec<String>>(table, "resource_types", &what);
        if let Some((types, span)) = &resource_types {
            for t in types {
                if let Err(m) = crate::validate::resource_type(t) {
                    self.problem(span.clone(), format!("{what}: `resource_types`: {m}"));
                }
            }
        }
        let severity = self.required::<Severity>(table, "severity", &what, at.clone());
        let mode = self.field::<Mode>(table, "mode", &what);
        let max_fixes_per_minute = self.cap(table, "max_fixes_per_minute", &what);
        let action = self
            .required::<ActionConfig>(table, "action", &what, at)
            .and_then(|(cfg, span)| match action(cfg) {
                Ok(a) => Some((a, span)),
                Err(m) => {
                    self.problem(span, format!("{what}: `action`: {m}"));
                    None
                }
            });
        if let Some((Action::Runbook(runbook), span)) = &action {
            let notify = matches!(mode, Some((Mode::Notify, _)));
            self.check_runbook(index, runbook, notify, span.clone(), &what);
        }
        // Deleting is never automatic, whatever the severity: a person sees it first.
        if let Some((Action::Fix(f @ Fix::DeleteUnauthorizedParameter { .. }), span)) = &action {
            if !matches!(mode, Some((Mode::Approve, _))) {
                let span = mode.as_ref().map_or(span.clone(), |(_, s)| s.clone());
                self.problem(
                    span,
                    format!(
                        "{what}: {} erases a parameter: set mode = \"approve\"",
                        f.name()
                    ),
                );
            }
        }
        let action = action.map(|(a, _)| a);
        Some(Rule {
            id: id?.0,
            config_rule: config_rule?.0,
            matcher: matcher?,
            config_rule_arn: arn.as_ref().map(|(p, _)| p.clone()),
            arn_matcher: arn.map(|(_, m)| m),
            annotation: annotation.as_ref().map(|(p, _)| p.clone()),
            annotation_matcher: annotation.map(|(_, m)| m),
            resource_types: resource_types.map(|(t, _)| t),
            severity: severity?.0,
            mode: mode.map(|(m, _)| m),
            action: action?,
            max_fixes_per_minute,
            line,
        })
    }
}

/// An exception's expiry: a date (it applies until that day starts, UTC) or a time.
fn parse_expiry(text: &str) -> Option<std::time::SystemTime> {
    let is_date = text.len() == 10 && text.as_bytes().get(4) == Some(&b'-');
    if is_date {
        crate::time::parse_rfc3339(&format!("{text}T00:00:00Z"))
    } else {
        crate::time::parse_rfc3339(text)
    }
}

/// `arn:aws:iam::{account_id}:role/NAME`, with `{account_id}` (a fixed account would
/// send every finding to one account) and no other placeholder.
fn check_role_template(role: &str) -> Result<(), String> {
    let Some(rest) = role.strip_prefix("arn:aws:iam::{account_id}:role/") else {
        return Err(format!(
            "{role:?} must look like \"arn:aws:iam::{{account_id}}:role/redress-member\""
        ));
    };
    let ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{rest:?} is not a role name (letters, digits and +=,.@_-/ only; no other placeholders)"))
    }
}

fn check_rule_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?} must be 1-64 letters, digits, '-', '_' or '.'"
        ))
    }
}

fn action(cfg: ActionConfig) -> Result<Action, String> {
    let action = match (cfg.fix.as_deref(), cfg.runbook) {
        (Some(_), Some(_)) => return Err("give either `fix` or `runbook`, not both".into()),
        (None, None) => return Err("needs `fix = \"...\"` or `runbook = \"...\"`".into()),
        (Some(fix), None) => {
            if cfg.parameters.is_some() || cfg.assume_role.is_some() {
                return Err("`parameters` and `assume_role` apply to runbooks only".into());
            }
            Action::Fix(direct_fix(
                fix,
                cfg.ports,
                cfg.baseline_prefix,
                cfg.current_prefix,
            )?)
        }
        (None, Some(document)) => {
            if cfg.ports.is_some() || cfg.baseline_prefix.is_some() || cfg.current_prefix.is_some()
            {
                return Err(
                    "`ports`, `baseline_prefix` and `current_prefix` apply to fixes only".into(),
                );
            }
            let valid = (3..=128).contains(&document.len())
                && document
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                return Err(format!("runbook {document:?} is not an SSM document name"));
            }
            Action::Runbook(Runbook {
                document,
                parameters: cfg.parameters.unwrap_or_default(),
                assume_role: cfg.assume_role,
            })
        }
    };
    action.check_placeholders()?;
    Ok(action)
}

fn direct_fix(
    name: &str,
    ports: Option<Vec<u16>>,
    baseline_prefix: Option<String>,
    current_prefix: Option<String>,
) -> Result<Fix, String> {
    match name {
        "revoke_public_ingress" => {
            if baseline_prefix.is_some() || current_prefix.is_some() {
                return Err("revoke_public_ingress takes only `ports`".into());
            }
            if ports
                .as_ref()
                .is_some_and(|p| p.is_empty() || p.contains(&0))
            {
                return Err("`ports` must list ports 1-65535 (omit it for any port)".into());
            }
            Ok(Fix::RevokePublicIngress { ports })
        }
        "restore_parameter_baseline"
        | "create_parameter_from_baseline"
        | "delete_unauthorized_parameter" => {
            if ports.is_some() {
                return Err(format!("{name} does not take `ports`"));
            }
            let (Some(baseline_prefix), Some(current_prefix)) = (baseline_prefix, current_prefix)
            else {
                return Err(format!(
                    "{name} needs `baseline_prefix` and `current_prefix`"
                ));
            };
            crate::parameter_path::check_pair(&baseline_prefix, &current_prefix)?;
            Ok(match name {
                "restore_parameter_baseline" => Fix::RestoreParameterBaseline {
                    baseline_prefix,
                    current_prefix,
                },
                "create_parameter_from_baseline" => Fix::CreateParameterFromBaseline {
                    baseline_prefix,
                    current_prefix,
                },
                _ => Fix::DeleteUnauthorizedParameter {
                    baseline_prefix,
                    current_prefix,
                },
            })
        }
        other => Err(format!(
            "unknown fix {other:?}; known fixes: revoke_public_ingress, restore_parameter_baseline, create_parameter_from_baseline, delete_unauthorized_parameter"
        )),
    }
}

/// The policy's version: the first 16 hex digits of the SHA-256 of its text.
fn version_of(src: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(src.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Deserialize)]
struct RawDoc {
    #[serde(default)]
    routing: Option<SpannedTable>,
    #[serde(default)]
    approvals: Option<SpannedTable>,
    #[serde(default)]
    limits: Option<SpannedTable>,
    #[serde(default)]
    accounts: Option<SpannedTable>,
    #[serde(default)]
    exemptions: Option<SpannedTable>,
    #[serde(default)]
    config: Option<SpannedTable>,
    #[serde(default)]
    ledger: Option<SpannedTable>,
    #[serde(default)]
    notifications: Option<SpannedTable>,
    #[serde(default)]
    rule: Vec<SpannedTable>,
    #[serde(default)]
    exception: Vec<SpannedTable>,
}

impl Policy {
    /// Parses and validates a policy. `source_name` appears in messages. Runbook actions
    /// are not checked against the catalog (see [`Policy::check`]).
    pub fn from_toml(src: &str, source_name: &str) -> Result<Policy, PolicyError> {
        Policy::load(src, source_name, None).map(|c| c.policy)
    }

    /// Reads and validates a policy file.
    pub fn from_file(path: &std::path::Path) -> Result<Policy, PolicyError> {
        Policy::from_toml(&read(path)?, &path.display().to_string())
    }

    /// Parses and validates a policy, and checks every runbook action against the
    /// catalog: the catalog's errors fail it like any other problem, its warnings come
    /// back with the policy.
    pub fn check(src: &str, source_name: &str, catalog: &Catalog) -> Result<Checked, PolicyError> {
        Policy::load(src, source_name, Some(catalog))
    }

    /// Reads a policy file and [`Policy::check`]s it.
    pub fn check_file(path: &std::path::Path, catalog: &Catalog) -> Result<Checked, PolicyError> {
        Policy::check(&read(path)?, &path.display().to_string(), catalog)
    }

    /// Loads a policy, checking runbook actions against `catalog` when one is given.
    fn load(
        src: &str,
        source_name: &str,
        catalog: Option<&Catalog>,
    ) -> Result<Checked, PolicyError> {
        let fail = |problems| PolicyError {
            source_name: source_name.to_string(),
            problems,
        };
        let mut loader = Loader {
            src,
            problems: Vec::new(),
            catalog: None,
        };
        let syntax = |e: toml::de::Error, loader: &Loader<'_>| {
            Problem::error(e.span().map(|s| loader.line(s)), e.message())
        };
        let top: SpannedTable = match toml::from_str(src) {
            Ok(t) => t,
            Err(e) => return Err(fail(vec![syntax(e, &loader)])),
        };
        loader.check_keys(&top, &TOP_KEYS, "the policy (top level)");
        let doc: RawDoc = match toml::from_str(src) {
            Ok(d) => d,
            Err(e) => {
                loader.problems.push(syntax(e, &loader));
                return Err(fail(loader.problems));
            }
        };
        // The document parsed above, so this does too; without spans, problems fall back
        // to the action's line.
        loader.catalog = catalog.map(|c| {
            let spans: ActionSpansDoc = toml::from_str(src).unwrap_or_default();
            (c, spans.rule)
        });
        let routing = loader.routing(doc.routing.as_ref());
        let approvals = loader.approvals(doc.approvals.as_ref());
        let limits = loader.limits(doc.limits.as_ref());
        let accounts = loader.accounts(doc.accounts.as_ref());
        let exemptions = loader.exemptions(doc.exemptions.as_ref());
        let config = loader.config(doc.config.as_ref());
        let ledger = loader.ledger(doc.ledger.as_ref());
        let notifications = loader.notifications(doc.notifications.as_ref());
        let exceptions: Vec<Exception> = doc
            .exception
            .iter()
            .enumerate()
            .filter_map(|(i, t)| loader.exception(t, i))
            .collect();
        let mut rules = Vec::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (i, table) in doc.rule.iter().enumerate() {
            // Duplicates are checked on the raw id so a rule with other problems still
            // gets its duplicate reported.
            if let Some((id, span)) = raw_id(table) {
                match first_line.get(id) {
                    Some(first) => loader.problem(
                        span,
                        format!("duplicate rule id `{id}` (first defined at line {first})"),
                    ),
                    None => {
                        let line = loader.line(span);
                        first_line.insert(id.to_string(), line);
                    }
                }
            }
            if let Some(rule) = loader.rule(table, i) {
                rules.push(rule);
            }
        }
        if doc.rule.is_empty() && loader.problems.is_empty() {
            loader.problems.push(Problem::error(
                None,
                "no [[rule]] tables: every event would be skipped",
            ));
        }
        // Stable: problems on one line keep the order they were found in.
        loader.problems.sort_by_key(|p| p.line);
        if loader.problems.iter().any(Problem::is_error) {
            return Err(fail(loader.problems));
        }
        Ok(Checked {
            policy: Policy {
                routing,
                approvals,
                rules,
                limits,
                exceptions,
                accounts,
                exemptions,
                config,
                ledger,
                notifications,
                version: version_of(src),
            },
            warnings: loader.problems,
        })
    }
}

/// A policy file's text.
fn read(path: &std::path::Path) -> Result<String, PolicyError> {
    std::fs::read_to_string(path).map_err(|e| PolicyError {
        source_name: path.display().to_string(),
        problems: vec![Problem::error(None, format!("cannot read: {e}"))],
    })
}

fn raw_id(table: &SpannedTable) -> Option<(&str, Range<usize>)> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == "id")
        .and_then(|(_, v)| v.get_ref().as_str().map(|s| (s, v.span())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Subject;

    const GOOD: &str = r#"
[routing]
auto_max_severity = "MEDIUM"

[[rule]]
id = "sg-open-admin-ports"
config_rule = "*restricted-ssh*"
resource_types = ["AWS::EC2::SecurityGroup"]
severity = "HIGH"
mode = "approve"
action = { fix = "revoke_public_ingress", ports = [22, 3389] }

[[rule]]
id = "param-drift"
config_rule = "ssm-parameter-drift"
severity = "MEDIUM"
action = { fix = "restore_parameter_baseline", baseline_prefix = "/payments/approved/", current_prefix = "/payments/current/" }

[[rule]]
id = "s3-encryption"
config_rule = "s3-bucket-server-side-encryption-enabled*"
severity = "MEDIUM"
action = { runbook = "AWS-EnableS3BucketEncryption", parameters = { BucketName = ["{resource_id}"], SSEAlgorithm = ["AES256"] }, assume_role = "arn:aws:iam::{account_id}:role/redress-remediation" }
"#;

    fn problems(src: &str) -> Vec<Problem> {
        Policy::from_toml(src, "p.toml").unwrap_err().problems
    }

    #[test]
    fn ledger_and_notifications_name_their_table_and_topic() {
        let p = Policy::from_toml(GOOD, "p.toml").unwrap();
        assert_eq!((p.ledger.table, p.notifications.topic), (None, None));
        let named = format!(
            "[ledger]\ntable = \"team-ledger\"\n[notifications]\ntopic = \"arn:aws:sns:us-east-1:111122223333:t\"\n{GOOD}"
        );
        let p = Policy::from_toml(&named, "p.toml").unwrap();
        assert_eq!(p.ledger.table.as_deref(), Some("team-ledger"));
        assert_eq!(
            p.notifications.topic.as_deref(),
            Some("arn:aws:sns:us-east-1:111122223333:t")
        );
        let bad = format!("[ledger]\ntable = \"a b\"\n[notifications]\nchannel = \"x\"\n{GOOD}");
        let found = problems(&bad);
        assert!(
            found
                .iter()
                .any(|p| p.line == Some(2)
                    && p.message.contains("`table` \"a b\" is not a valid name")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|p| p.line == Some(4) && p.message.contains("channel")),
            "{found:?}"
        );
    }

    #[test]
    fn config_table_defaults_and_values() {
        let p = Policy::from_toml(GOOD, "p.toml").unwrap();
        assert!(p.config.verify);
        assert_eq!(p.config.verify_deadline, ConfigSettings::DEFAULT_DEADLINE);
        let src = format!(
            "[config]\nverify = false\nverify_deadline = \"5m\"\nrecheck_after = \"10s\"\naccounts = [\"111122223333\"]\nregions = [\"eu-west-1\"]\naggregator = \"org\"\n{GOOD}"
        );
        let p = Policy::from_toml(&src, "p.toml").unwrap();
        assert!(!p.config.verify);
        assert_eq!(
            p.config.verify_deadline,
            std::time::Duration::from_secs(300)
        );
        assert_eq!(p.config.recheck_after, std::time::Duration::from_secs(10));
        assert_eq!(p.config.accounts, ["111122223333"]);
        assert_eq!(p.config.aggregator.as_deref(), Some("org"));
        let bad = problems(&format!(
            "[config]\nverfy = true\naccounts = [\"12\"]\nregions = [\"mars\"]\naggregator = \"a b\"\nverify_deadline = \"soon\"\n{GOOD}"
        ));
        let text = format!("{bad:?}");
        for needle in [
            "verfy",
            "12-digit",
            "region",
            "aggregator",
            "verify_deadline",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        assert!(bad.iter().all(|p| p.line.is_some()), "{bad:?}");
    }

    #[test]
    fn a_rule_pinned_by_arn_or_annotation_covers_only_those() {
        let src = r#"
[[rule]]
id = "org"
config_rule = "*restricted-ssh*"
config_rule_arn = "arn:aws:config:*:*:config-rule/aws-service-rule/config-conforms.amazonaws.com/*"
severity = "LOW"
action = { fix = "revoke_public_ingress" }

[[rule]]
id = "missing"
config_rule = "redress-parameter-drift"
annotation = "missing*"
severity = "HIGH"
action = { fix = "revoke_public_ingress" }
"#;
        let p = Policy::from_toml(src, "p.toml").unwrap();
        let sg = "AWS::EC2::SecurityGroup";
        let org = "arn:aws:config:eu-west-1:111122223333:config-rule/aws-service-rule/config-conforms.amazonaws.com/config-rule-x";
        let local = "arn:aws:config:eu-west-1:111122223333:config-rule/config-rule-x";
        let with =
            |arn: Option<&'static str>, annotation: Option<&'static str>, name: &'static str| {
                Subject {
                    config_rule_arn: arn,
                    annotation,
                    ..Subject::of(name, sg)
                }
            };
        assert_eq!(
            p.find(&with(Some(org), None, "restricted-ssh")).unwrap().id,
            "org"
        );
        assert!(p.find(&with(Some(local), None, "restricted-ssh")).is_none());
        assert!(p.find(&with(None, None, "restricted-ssh")).is_none());
        assert!(p.rules[0].covers_config_rule("restricted-ssh", Some(org)));
        assert!(!p.rules[0].covers_config_rule("restricted-ssh", Some(local)));
        assert!(p.rules[0].trusts_arn(org) && !p.rules[0].trusts_arn(local));
        let drift = "redress-parameter-drift";
        assert_eq!(
            p.find(&with(None, Some("missing"), drift)).unwrap().id,
            "missing"
        );
        assert!(p.find(&with(None, Some("drifted"), drift)).is_none());
        assert!(p.find(&with(None, None, drift)).is_none());
        assert!(format!(
            "{:?}",
            problems(&src.replace("config-conforms.amazonaws.com/*", "["))
        )
        .contains("config_rule_arn"));
    }

    #[test]
    fn loads_the_design_example() {
        let p = Policy::from_toml(GOOD, "p.toml").unwrap();
        assert_eq!(p.rules.len(), 3);
        assert_eq!(p.rules[0].line, 6);
        assert_eq!(p.rules[0].severity, Severity::High);
        assert_eq!(p.mode_of(&p.rules[1]), Mode::Auto);
        assert!(matches!(p.rules[2].action, Action::Runbook(_)));
        assert!(p
            .find(&Subject::of("restricted-ssh", "AWS::EC2::SecurityGroup"))
            .is_some());
        assert!(p
            .find(&Subject::of("restricted-ssh", "AWS::S3::Bucket"))
            .is_none());
    }

    #[test]
    fn reports_every_problem_with_its_line() {
        let src = r#"[[rule]]
id = "a"
config_rule = "x"
severity = "LOW"
colour = "red"
action = { fix = "revoke_public_ingress" }

[[rule]]
id = "a"
config_rule = "y"
severity = "SEVERE"
action = { fix = "revoke_public_ingress" }
"#;
        let ps = problems(src);
        let lines: Vec<_> = ps.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![Some(5), Some(9), Some(11)], "{ps:?}");
        assert!(ps[0].message.contains("unknown key `colour`"));
        assert!(ps[1].message.contains("duplicate rule id `a`"));
        assert!(ps[1].message.contains("line 2"));
        assert!(ps[2].message.contains("SEVERE"));
    }

    #[test]
    fn rejects_bad_actions_and_placeholders() {
        let base = |action: &str| {
            format!("[[rule]]\nid = \"a\"\nconfig_rule = \"x\"\nseverity = \"LOW\"\naction = {action}\n")
        };
        for (action, needle) in [
            ("{ fix = \"reboot\" }", "unknown fix"),
            (
                "{ runbook = \"X-Doc\", parameters = { A = [\"{bucket}\"] } }",
                "{bucket}",
            ),
            (
                "{ fix = \"revoke_public_ingress\", runbook = \"X-Doc\" }",
                "not both",
            ),
            (
                "{ fix = \"restore_parameter_baseline\" }",
                "needs `baseline_prefix`",
            ),
            ("{ fix = \"revoke_public_ingress\", ports = [] }", "ports"),
            ("{ fix = \"revoke_public_ingress\", colour = 1 }", "colour"),
        ] {
            let ps = problems(&base(action));
            assert_eq!(ps.len(), 1, "{action}: {ps:?}");
            assert_eq!(ps[0].line, Some(5), "{action}");
            assert!(
                ps[0].message.contains(needle),
                "{action}: {}",
                ps[0].message
            );
        }
    }

    #[test]
    fn parameter_fixes_take_app_prefixes_and_deleting_always_needs_a_person() {
        let rule = |fix: &str, mode: &str, baseline: &str| {
            format!(
                "[[rule]]\nid = \"p\"\nconfig_rule = \"redress-parameter-drift\"\nseverity = \"LOW\"\n{mode}action = {{ fix = \"{fix}\", baseline_prefix = \"{baseline}\", current_prefix = \"/{{app}}/current/\" }}\n"
            )
        };
        for fix in [
            "restore_parameter_baseline",
            "create_parameter_from_baseline",
        ] {
            let p = Policy::from_toml(&rule(fix, "", "/{app}/approved/"), "p.toml").unwrap();
            assert_eq!(p.rules[0].action.label(), fix);
        }
        let ok = rule(
            "delete_unauthorized_parameter",
            "mode = \"approve\"\n",
            "/{app}/approved/",
        );
        Policy::from_toml(&ok, "p.toml").unwrap();
        // Automatic (from routing, or said outright): refused, naming the line.
        for mode in ["", "mode = \"auto\"\n", "mode = \"notify\"\n"] {
            let ps = problems(&rule(
                "delete_unauthorized_parameter",
                mode,
                "/{app}/approved/",
            ));
            assert_eq!(ps.len(), 1, "{mode}: {ps:?}");
            assert!(ps[0].message.contains("set mode = \"approve\""), "{ps:?}");
            assert_eq!(ps[0].line, Some(5), "{mode}: {ps:?}");
        }
        // `{app}` on one side only.
        let ps = problems(&rule(
            "restore_parameter_baseline",
            "",
            "/payments/approved/",
        ));
        assert!(ps[0].message.contains("in both"), "{ps:?}");
    }

    /// A rule checking an IMDSv2 runbook written as sub-tables, so each part of its
    /// action is on a line of its own.
    const CATALOG_SPLIT: &str = r#"[[rule]]
id = "fine"
config_rule = "x"
severity = "LOW"
action = { fix = "revoke_public_ingress" }

[[rule]]
id = "imds"
config_rule = "ec2-imdsv2-check"
severity = "LOW"

[rule.action]
runbook = "AWSConfigRemediation-EnforceEC2InstanceIMDSv2"
assume_role = "arn:aws:iam::{account_id}:role/redress-automation"

[rule.action.parameters]
InstanceId = ["{resource_id}"]
HttpPutResponseHopLimit = ["{resource_id}"]
HopLimit = ["2"]
"#;

    fn checked(src: &str) -> Result<Checked, PolicyError> {
        Policy::check(src, "p.toml", Catalog::shipped())
    }

    #[test]
    fn check_puts_each_catalog_problem_on_the_line_of_what_it_concerns() {
        let ps = checked(CATALOG_SPLIT).unwrap_err().problems;
        let found: Vec<(Option<usize>, bool)> = ps.iter().map(|p| (p.line, p.is_error())).collect();
        // Line 18: the placeholder cannot fill an Integer; line 19: no such parameter.
        assert_eq!(found, vec![(Some(18), true), (Some(19), true)], "{ps:#?}");
        assert!(
            ps[0].message.starts_with("rule `imds`: "),
            "{}",
            ps[0].message
        );
        assert!(
            ps[0].message.contains("{resource_id} cannot fill"),
            "{}",
            ps[0].message
        );
        assert!(
            ps[1].message.contains("no parameter HopLimit"),
            "{}",
            ps[1].message
        );

        // Without the role: the problem is on the `parameters` the role is missing from.
        let no_role = CATALOG_SPLIT.replace(
            "assume_role = \"arn:aws:iam::{account_id}:role/redress-automation\"\n",
            "",
        );
        let ps = checked(&no_role).unwrap_err().problems;
        assert!(
            ps.iter()
                .any(|p| p.line == Some(15) && p.message.contains("requires AutomationAssumeRole")),
            "{ps:#?}"
        );
        // A bad role is on the line of `assume_role`.
        let bad_role = CATALOG_SPLIT.replace("{account_id}:role", "{region}:role");
        let ps = checked(&bad_role).unwrap_err().problems;
        assert!(
            ps.iter().any(|p| p.line == Some(14) && !p.is_error()),
            "{ps:#?}"
        );
        // A misspelt document is on the line of `runbook`, in an inline action too.
        let ps = checked(&CATALOG_SPLIT.replace("AWSConfigRemediation-Enforce", "AWS-Enforce"))
            .unwrap_err()
            .problems;
        assert_eq!(ps[0].line, Some(13), "{ps:#?}");
        assert!(
            ps[0]
                .message
                .contains("did you mean AWSConfigRemediation-EnforceEC2InstanceIMDSv2?"),
            "{}",
            ps[0].message
        );
    }

    #[test]
    fn catalog_warnings_come_back_with_the_policy_and_errors_fail_it_alongside_others() {
        let outside = r#"[[rule]]
id = "custom"
config_rule = "x"
severity = "LOW"
action = { runbook = "Acme-FixEverything", parameters = { Target = ["{resource_id}"] } }
"#;
        let c = checked(outside).unwrap();
        assert_eq!(c.policy.rules.len(), 1);
        assert_eq!(c.warnings.len(), 1, "{:#?}", c.warnings);
        assert_eq!(c.warnings[0].line, Some(5));
        assert!(!c.warnings[0].is_error());
        assert!(c.warnings[0]
            .located("p.toml")
            .starts_with("p.toml:5: warning: rule `custom`: runbook Acme-FixEverything is not in"));

        // A notify-only rule never runs its action: no warning about its document, but a
        // misspelt name is still an error.
        let notify = outside.replace("action =", "mode = \"notify\"\naction =");
        assert!(checked(&notify).unwrap().warnings.is_empty());
        let misspelt = notify.replace("Acme-FixEverything", "AWS-EnableS3BucketEncrytion");
        assert!(checked(&misspelt).is_err());

        // A catalog error sorts among the loader's own problems, warnings kept.
        let src = format!(
            "{outside}\n{}",
            CATALOG_SPLIT.replace("id = \"fine\"", "id = \"fine\"\ncolour = 1")
        );
        let e = checked(&src).unwrap_err();
        let lines: Vec<Option<usize>> = e.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![Some(5), Some(9), Some(25), Some(26)], "{e}");
        assert_eq!(e.summary(), "policy p.toml has 3 errors and 1 warning");
        assert!(
            e.to_string()
                .contains("\n  p.toml:9: error: unknown key `colour`"),
            "{e}"
        );

        // Loading for the workers does not consult the catalog.
        assert!(Policy::from_toml(CATALOG_SPLIT, "p.toml").is_ok());
        assert!(Policy::check(GOOD, "p.toml", Catalog::shipped())
            .unwrap()
            .warnings
            .is_empty());
    }

    #[test]
    fn syntax_errors_and_missing_keys_have_lines() {
        let ps = problems("[[rule]]\nid = \n");
        assert_eq!(ps[0].line, Some(2));
        let ps = problems("[[rule]]\nid = \"a\"\nseverity = \"LOW\"\n");
        assert!(ps.iter().any(|p| p.message.contains("`config_rule`")));
        assert!(ps.iter().any(|p| p.message.contains("`action`")));
        let ps = problems("[routing]\nauto_max_severity = \"LOW\"\ncolour = 1\n[[rule]]\nid=\"a\"\nconfig_rule=\"x\"\nseverity=\"LOW\"\naction={fix=\"revoke_public_ingress\"}\nextra = 1\n");
        assert!(ps.iter().any(|p| p.line == Some(3)), "{ps:?}");
    }

    #[test]
    fn exemption_tag_is_off_unless_named() {
        let rule = "[[rule]]\nid=\"a\"\nconfig_rule=\"x\"\nseverity=\"LOW\"\naction={fix=\"revoke_public_ingress\"}\n";
        assert_eq!(Policy::from_toml(rule, "p").unwrap().exemptions.tag, None);
        let p = Policy::from_toml(
            &format!("[exemptions]\ntag = \"redress:exempt\"\n{rule}"),
            "p",
        )
        .unwrap();
        assert_eq!(p.exemptions.tag.as_deref(), Some("redress:exempt"));
        let ps = problems(&format!("[exemptions]\ntag = \"aws:x\"\n{rule}"));
        assert_eq!(ps[0].line, Some(2), "{ps:?}");
    }

    #[test]
    fn the_version_changes_with_the_text() {
        let rule = "[[rule]]\nid=\"a\"\nconfig_rule=\"x\"\nseverity=\"LOW\"\naction={fix=\"revoke_public_ingress\"}\n";
        let a = Policy::from_toml(rule, "p").unwrap().version;
        let b = Policy::from_toml(&format!("{rule}# edited\n"), "p")
            .unwrap()
            .version;
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }

    #[test]
    fn approvals_table() {
        let rule = "[[rule]]\nid=\"a\"\nconfig_rule=\"x\"\nseverity=\"LOW\"\naction={fix=\"revoke_public_ingress\"}\n";
        let p = Policy::from_toml(rule, "p").unwrap();
        assert_eq!(p.approvals.ttl, Approvals::DEFAULT_TTL);
        assert!(p
            .approvals
            .admits_caller("AIDAANY", "arn:aws:iam::1:user/anyone"));
        let src = format!("[approvals]\nttl = \"12h\"\napprovers = [\"arn:aws:sts::111122223333:assumed-role/SecOps/*\"]\n{rule}");
        let p = Policy::from_toml(&src, "p").unwrap();
        assert_eq!(p.approvals.ttl.as_secs(), 12 * 3600);
        assert!(p.approvals.admits_caller(
            "AROAX:alice",
            "arn:aws:sts::111122223333:assumed-role/SecOps/alice"
        ));
        assert!(!p
            .approvals
            .admits_caller("AIDAX", "arn:aws:iam::111122223333:user/mallory"));
        // A wildcard account would admit principals nobody named: refused with its line.
        let ps = problems(&format!(
            "[approvals]\napprovers = [\"arn:aws:sts::*:assumed-role/SecOps/*\"]\n{rule}"
        ));
        assert_eq!(ps[0].line, Some(2), "{ps:?}");
        assert!(ps[0].message.contains("12 digits"), "{ps:?}");
        let ps = problems(&format!("[approvals]\nttl = \"soon\"\n{rule}"));
        assert_eq!(ps[0].line, Some(2), "{ps:?}");
    }

    const RULE: &str = "[[rule]]\nid=\"a\"\nconfig_rule=\"x\"\nseverity=\"LOW\"\naction={fix=\"revoke_public_ingress\"}\n";

    #[test]
    fn limits_accounts_and_exceptions_load_with_defaults() {
        let p = Policy::from_toml(RULE, "p").unwrap();
        assert_eq!(p.limits, Limits::default());
        assert!(p.exceptions.is_empty() && p.accounts.role.is_none());
        let src = format!(
            "[limits]\nmax_fixes_per_minute = 30\nbreaker_error_rate = 0.25\nbreaker_window = \"2m\"\nbreaker_min_fixes = 3\nbreaker_cooldown = \"1h\"\nkill_switch_parameter = \"/redress/kill-switch\"\nkill_switch_cache = \"5s\"\n[accounts]\nrole = \"arn:aws:iam::{{account_id}}:role/redress-member\"\n{RULE}max_fixes_per_minute = 4\n[[exception]]\nresource_id = \"sg-0abc\"\nexpires = \"2027-03-31\"\nreason = \"legacy bastion, SEC-123\"\n"
        );
        let p = Policy::from_toml(&src, "p").unwrap();
        assert_eq!(p.limits.max_fixes_per_minute, Some(30));
        assert_eq!(p.limits.breaker.error_rate, 0.25);
        assert_eq!(p.limits.breaker.window.as_secs(), 120);
        assert_eq!(p.limits.breaker.min_fixes, 3);
        assert_eq!(p.limits.breaker.cooldown.as_secs(), 3600);
        assert_eq!(
            p.limits.kill_switch_parameter.as_deref(),
            Some("/redress/kill-switch")
        );
        assert_eq!(p.limits.kill_switch_cache.as_secs(), 5);
        assert_eq!(p.rules[0].max_fixes_per_minute, Some(4));
        assert_eq!(
            p.accounts.role_for("111122223333").as_deref(),
            Some("arn:aws:iam::111122223333:role/redress-member")
        );
        assert_eq!(p.exceptions.len(), 1);
        assert!(p.exceptions[0].describe().contains("2027-03-31"));
        assert!(p.exceptions[0].describe().contains("SEC-123"));
    }

    #[test]
    fn bad_limits_accounts_and_exceptions_name_their_lines() {
        let src = format!(
            "[limits]\nmax_fixes_per_minute = 0\nbreaker_error_rate = 1.5\nbreaker_window = \"soon\"\nkill_switch_parameter = \"kill switch\"\nbreaker_cooldown = \"300000000000y\"\n[accounts]\nrole = \"arn:aws:iam::111122223333:role/fixed\"\n{RULE}[[exception]]\nexpires = \"next week\"\nreason = \"\"\n[[exception]]\nresource_id = \"sg-1\"\nreason = \"x\"\n"
        );
        let ps = problems(&src);
        let text: Vec<String> = ps
            .iter()
            .map(|p| format!("{:?}: {}", p.line, p.message))
            .collect();
        for (line, needle) in [
            (2, "`max_fixes_per_minute` must be at least 1"),
            (3, "`breaker_error_rate` must be in (0, 1]"),
            (4, "`breaker_window`"),
            (6, "longer than 10 years"),
            (5, "`kill_switch_parameter`"),
            (8, "{account_id}"),
            (15, "needs `resource_id`, `account`, or both"),
            (15, "`expires` \"next week\""),
            (16, "`reason` must say why"),
            (18, "missing required key `expires`"),
        ] {
            assert!(
                ps.iter()
                    .any(|p| p.line == Some(line) && p.message.contains(needle)),
                "no problem on line {line} containing {needle:?} in {text:#?}"
            );
        }
    }

    #[test]
    fn first_matching_rule_wins() {
        let src = r#"
[[rule]]
id = "narrow"
config_rule = "restricted-ssh"
severity = "HIGH"
action = { fix = "revoke_public_ingress", ports = [22] }
[[rule]]
id = "broad"
config_rule = "*"
severity = "LOW"
action = { fix = "revoke_public_ingress" }
"#;
        let p = Policy::from_toml(src, "p").unwrap();
        assert_eq!(
            p.find(&Subject::of("restricted-ssh", "AWS::EC2::SecurityGroup"))
                .unwrap()
                .id,
            "narrow"
        );
        assert_eq!(
            p.find(&Subject::of("other", "AWS::EC2::SecurityGroup"))
                .unwrap()
                .id,
            "broad"
        );
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any text either loads or yields problems, never a panic; every problem with a
        /// line points inside the file.
        #[test]
        fn never_panics_and_lines_are_in_range(s in "(\\[\\[rule\\]\\]\n|id = \"a\"\n|severity = \"[A-Z]{0,6}\"\n|config_rule = \"[*a-z{},]{0,8}\"\n|action = \\{ fix = \"[a-z_]{0,22}\" \\}\n|[a-z_]{1,8} = [0-9\"\\[\\]{}]{0,6}\n){0,12}") {
            if let Err(e) = Policy::from_toml(&s, "p") {
                let lines = s.lines().count().max(1);
                for p in e.problems {
                    if let Some(l) = p.line {
                        prop_assert!(l >= 1 && l <= lines + 1, "line {l} of {lines}");
                    }
                }
            }
        }
    }
}
