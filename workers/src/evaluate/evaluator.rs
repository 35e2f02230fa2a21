//! Answers a Config custom-rule invocation the way a rule's Lambda function does: read
//! why Config invoked the rule, evaluate (the item it sent, the latest item of an
//! oversized one, NOT_APPLICABLE for a resource gone or out of scope, everything in scope
//! on a schedule), and report with `PutEvaluations` under the invocation's result token.
//! The same code serves Lambda mode, `redress evaluate --invocation`, and the dry run.

use std::collections::BTreeMap;
use std::time::SystemTime;

use aws_lambda_events::event::config::ConfigEvent;
use redress::evaluate::invocation::{parameters, trigger, Trigger};
use redress::evaluate::parameter_drift::{self, Parameter};
use redress::evaluate::{security_group, with_gone, Evaluation, RuleKind, Settings};
use redress::parameter_path::for_app;

use crate::aws::compliance::{Compliance, Latest};
use crate::aws::ec2::SecurityGroups;
use crate::aws::ssm::Parameters;
use crate::aws::Clients;

/// What one invocation reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The Config rule.
    pub rule: String,
    /// The evaluations put.
    pub evaluations: Vec<Evaluation>,
}

/// The reads and the one write an evaluator makes.
#[derive(Clone, Debug)]
pub struct Evaluator {
    compliance: Compliance,
    groups: SecurityGroups,
    parameters: Parameters,
}

impl Evaluator {
    /// From the clients of the account and region the rule runs in.
    pub fn new(clients: &Clients) -> Evaluator {
        Evaluator::from_parts(
            Compliance::new(clients.config.clone()),
            SecurityGroups::new(clients.ec2.clone()),
            Parameters::new(clients.ssm.clone()),
        )
    }

    /// From its seams: Config (results, items, `PutEvaluations`), EC2 (security groups)
    /// and SSM (parameters). Tests hand it mocked clients this way.
    pub fn from_parts(
        compliance: Compliance,
        groups: SecurityGroups,
        parameters: Parameters,
    ) -> Evaluator {
        Evaluator {
            compliance,
            groups,
            parameters,
        }
    }

    /// Evaluates what the invocation names and puts the evaluations into Config.
    pub async fn answer(&self, event: &ConfigEvent) -> Result<Answered, String> {
        let rule = event
            .config_rule_name
            .clone()
            .ok_or("the invocation names no configRuleName")?;
        let kind = RuleKind::for_rule(&rule).ok_or_else(|| {
            format!(
                "Config rule {rule:?} is not one of redress's ({})",
                RuleKind::ALL.map(RuleKind::name).join(", ")
            )
        })?;
        let token = event
            .result_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or("the invocation carries no resultToken")?;
        let settings = kind.settings(&parameters(event.rule_parameters.as_deref())?)?;
        let why = trigger(
            event.invoking_event.as_deref().unwrap_or_default(),
            event.event_left_scope,
        )?;
        let (evaluations, ordering) = match why {
            Trigger::Change {
                resource,
                configuration,
            } => (
                vec![
                    self.one(
                        kind,
                        &settings,
                        &resource.resource_type,
                        &resource.resource_id,
                        Some(configuration),
                    )
                    .await?,
                ],
                resource.captured_at,
            ),
            Trigger::Oversized { resource } => (
                vec![
                    self.one(
                        kind,
                        &settings,
                        &resource.resource_type,
                        &resource.resource_id,
                        None,
                    )
                    .await?,
                ],
                resource.captured_at,
            ),
            Trigger::Gone { resource } => (
                vec![Evaluation::not_applicable(
                    &resource.resource_type,
                    &resource.resource_id,
                )],
                resource.captured_at,
            ),
            Trigger::Scheduled { at } => (self.everything(kind, &settings, Some(&rule)).await?, at),
        };
        let ordering = redress::time::parse_rfc3339(&ordering).unwrap_or_else(SystemTime::now);
        self.compliance
            .put_evaluations(token, &evaluations, ordering)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Answered { rule, evaluations })
    }

    /// One resource named by a change notification: its item's `configuration`, or
    /// (`None`, the item was too large to send) the latest one Config recorded.
    async fn one(
        &self,
        kind: RuleKind,
        settings: &Settings,
        resource_type: &str,
        resource_id: &str,
        configuration: Option<serde_json::Value>,
    ) -> Result<Evaluation, String> {
        let Settings::Ports(ports) = settings else {
            return Err(format!(
                "{} is periodic: Config invoked it for a configuration change of {resource_id}",
                kind.name()
            ));
        };
        if resource_type != kind.resource_type() {
            return Ok(Evaluation::not_applicable(resource_type, resource_id));
        }
        let configuration = match configuration {
            Some(c) => c,
            None => match self
                .compliance
                .latest_configuration(resource_type, resource_id)
                .await
                .map_err(|e| e.to_string())?
            {
                Latest::Item(c) => c,
                Latest::Gone => return Ok(Evaluation::not_applicable(resource_type, resource_id)),
                Latest::Nothing => {
                    return Err(format!(
                        "Config holds no configuration item for {resource_type} {resource_id}"
                    ))
                }
            },
        };
        Ok(security_group::evaluate(resource_id, &configuration, ports))
    }

    /// Everything in the rule's scope, read live, plus NOT_APPLICABLE for what Config
    /// holds results for (under `rule`, when it exists) that is gone.
    pub async fn everything(
        &self,
        kind: RuleKind,
        settings: &Settings,
        rule: Option<&str>,
    ) -> Result<Vec<Evaluation>, String> {
        let found = match settings {
            Settings::Ports(ports) => self
                .groups
                .all()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(id, ingress)| security_group::evaluate_permissions(&id, ingress, ports))
                .collect(),
            Settings::Drift {
                apps,
                current_prefix,
                approved_prefix,
            } => {
                let mut found = Vec::new();
                for app in apps {
                    let current = for_app(current_prefix, app);
                    let approved = for_app(approved_prefix, app);
                    found.extend(parameter_drift::evaluate(
                        &current,
                        &self.under(&current).await?,
                        &self.under(&approved).await?,
                        kind.resource_type(),
                    ));
                }
                found
            }
        };
        let previously = match rule {
            Some(rule) => self
                .compliance
                .evaluated(rule)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|e| (e.resource_type, e.resource_id))
                .collect(),
            None => Vec::new(),
        };
        Ok(with_gone(found, &previously))
    }

    /// The parameters under `prefix`, by the part of their names after it.
    async fn under(&self, prefix: &str) -> Result<BTreeMap<String, Parameter>, String> {
        let path = prefix.trim_end_matches('/');
        let read = self
            .parameters
            .under(path)
            .await
            .map_err(|e| e.to_string())?;
        Ok(read
            .into_iter()
            .filter_map(|(name, r)| {
                let rest = name.strip_prefix(prefix)?.to_string();
                Some((
                    rest,
                    Parameter {
                        value: r.value,
                        kind: r.kind,
                    },
                ))
            })
            .collect())
    }
}
