//! AWS Config's results: the current result of one rule for one resource (the executor's
//! check before a fix and after it), the rules of an account, the results of a rule,
//! directly or through an aggregator (`redress sweep`); and what a custom rule's
//! evaluator needs: reporting evaluations, the latest configuration item of a resource,
//! and a rule's evaluation status (`redress evaluate`).

use aws_sdk_config::types::{
    AggregateEvaluationResult, ComplianceType, ConfigRuleComplianceFilters, EvaluationResult,
    EvaluationResultIdentifier,
};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

use crate::aws::retry::AwsError;

/// Most results one `GetComplianceDetailsByConfigRule` page may hold.
const PAGE: i32 = 100;
/// Most evaluations one `PutEvaluations` call may carry.
pub const PUT_BATCH: usize = 100;

/// One evaluation result, as `redress sweep` feeds it to the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Config rule name.
    pub rule: String,
    /// Resource type.
    pub resource_type: String,
    /// Resource id.
    pub resource_id: String,
    /// `NON_COMPLIANT`, ...
    pub compliance: String,
    /// The rule's annotation.
    pub annotation: Option<String>,
    /// When Config recorded the result (RFC 3339).
    pub recorded_at: Option<String>,
    /// When the rule was invoked (RFC 3339).
    pub invoked_at: Option<String>,
    /// Account of the resource (aggregated results name it; direct ones are the
    /// client's).
    pub account: Option<String>,
    /// Region of the resource (likewise).
    pub region: Option<String>,
}

/// A Config rule: its name and ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRule {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: Option<String>,
    /// Its input parameters (a JSON object of strings), if any.
    pub input_parameters: Option<String>,
}

impl ConfigRule {
    fn from_sdk(r: &aws_sdk_config::types::ConfigRule) -> Option<ConfigRule> {
        Some(ConfigRule {
            name: r.config_rule_name()?.to_string(),
            arn: r.config_rule_arn().map(str::to_string),
            input_parameters: r.input_parameters().map(str::to_string),
        })
    }
}

/// The longest `ComplianceResourceId` PutEvaluations accepts.
pub const MAX_RESOURCE_ID: usize = 768;

/// The latest configuration item Config recorded for a resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Latest {
    /// Config holds no item for it.
    Nothing,
    /// The latest item has no configuration to judge: the resource was deleted, or is
    /// no longer recorded, since the notification.
    Gone,
    /// The latest item's `configuration`.
    Item(serde_json::Value),
}

/// A time as Unix milliseconds.
fn millis(t: &DateTime) -> Option<i64> {
    t.to_millis().ok()
}

/// A rule's last evaluation runs, as `DescribeConfigRuleEvaluationStatus` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EvaluationStatus {
    /// When an evaluation last succeeded (Unix milliseconds: two runs within one second
    /// must still differ).
    pub last_success: Option<i64>,
    /// When an evaluation last failed (Unix milliseconds).
    pub last_failure: Option<i64>,
    /// Why it failed.
    pub last_error: Option<String>,
}

/// AWS Config results in one account and region (or an aggregator's view).
#[derive(Clone, Debug)]
pub struct Compliance {
    client: aws_sdk_config::Client,
}

fn rfc3339(t: Option<&DateTime>) -> Option<String> {
    t.and_then(|t| t.fmt(Format::DateTime).ok())
}

impl Evaluation {
    /// From the parts Config's two result types share.
    fn from_parts(
        id: Option<&EvaluationResultIdentifier>,
        compliance: Option<&ComplianceType>,
        annotation: Option<&str>,
        recorded: Option<&DateTime>,
        invoked: Option<&DateTime>,
    ) -> Option<Evaluation> {
        let q = id?.evaluation_result_qualifier()?;
        Some(Evaluation {
            rule: q.config_rule_name()?.to_string(),
            resource_type: q.resource_type()?.to_string(),
            resource_id: q.resource_id()?.to_string(),
            compliance: compliance?.as_str().to_string(),
            annotation: annotation.map(str::to_string),
            recorded_at: rfc3339(recorded),
            invoked_at: rfc3339(invoked),
            account: None,
            region: None,
        })
    }

    fn from_result(r: &EvaluationResult) -> Option<Evaluation> {
        Evaluation::from_parts(
            r.evaluation_result_identifier(),
            r.compliance_type(),
            r.annotation(),
            r.result_recorded_time(),
            r.config_rule_invoked_time(),
        )
    }

    fn from_aggregate(r: &AggregateEvaluationResult) -> Option<Evaluation> {
        Some(Evaluation {
            account: r.account_id().map(str::to_string),
            region: r.aws_region().map(str::to_string),
            ..Evaluation::from_parts(
                r.evaluation_result_identifier(),
                r.compliance_type(),
                r.annotation(),
                r.result_recorded_time(),
                r.config_rule_invoked_time(),
            )?
        })
    }
}

impl Compliance {
    /// Wraps a Config client (for the account and region asked about).
    pub fn new(client: aws_sdk_config::Client) -> Self {
        Compliance { client }
    }

    /// The rule's current result for the resource: `None` when the rule has no
    /// evaluation of it (or no such rule exists: see [`rule`](Self::rule)).
    pub async fn current(
        &self,
        rule: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Option<Evaluation>, AwsError> {
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .get_compliance_details_by_resource()
                .resource_type(resource_type)
                .resource_id(resource_id)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("config:GetComplianceDetailsByResource", e))?;
            let found = out
                .evaluation_results()
                .iter()
                .filter_map(Evaluation::from_result)
                .find(|e| e.rule == rule);
            if found.is_some() {
                return Ok(found);
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(None),
            }
        }
    }

    /// The rule of this name, or `None` when none exists.
    pub async fn rule(&self, name: &str) -> Result<Option<ConfigRule>, AwsError> {
        let out = self
            .client
            .describe_config_rules()
            .config_rule_names(name)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.config_rules().first().and_then(ConfigRule::from_sdk)),
            Err(e) => {
                let e = AwsError::from_sdk("config:DescribeConfigRules", e);
                if e.code == "NoSuchConfigRuleException" {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Reports one evaluation of `rule` (`PutEvaluations`), ordered now. The result token
    /// is the rule's name, which only the local stack's Config accepts (on AWS a token
    /// comes with the rule's invocation).
    pub async fn put_evaluation(
        &self,
        rule: &str,
        evaluation: &redress::evaluate::Evaluation,
    ) -> Result<(), AwsError> {
        self.put_evaluations(
            rule,
            std::slice::from_ref(evaluation),
            std::time::SystemTime::now(),
        )
        .await
    }

    /// Reports evaluations with an invocation's result token, in batches of
    /// [`PUT_BATCH`], all ordered at `ordering` (the configuration item's capture time,
    /// or the scheduled notification's time). Every batch is put even when one is
    /// refused, so one bad evaluation hides no other; a resource id longer than Config
    /// accepts ([`MAX_RESOURCE_ID`]) is not sent. Either makes the whole an error.
    pub async fn put_evaluations(
        &self,
        result_token: &str,
        evaluations: &[redress::evaluate::Evaluation],
        ordering: std::time::SystemTime,
    ) -> Result<(), AwsError> {
        const CALL: &str = "config:PutEvaluations";
        let (fits, too_long): (Vec<_>, Vec<_>) = evaluations
            .iter()
            .partition(|e| e.resource_id.len() <= MAX_RESOURCE_ID);
        let mut refused: Vec<String> = too_long
            .iter()
            .map(|e| {
                let start: String = e.resource_id.chars().take(60).collect();
                format!("{start}… (an id longer than {MAX_RESOURCE_ID} characters)")
            })
            .collect();
        let mut failed = None;
        for batch in fits.chunks(PUT_BATCH) {
            let batch = batch
                .iter()
                .map(|e| {
                    aws_sdk_config::types::Evaluation::builder()
                        .compliance_resource_type(&e.resource_type)
                        .compliance_resource_id(&e.resource_id)
                        .compliance_type(ComplianceType::from(e.compliance))
                        .set_annotation(e.annotation.clone())
                        .ordering_timestamp(DateTime::from(ordering))
                        .build()
                        .map_err(|err| AwsError::permanent(CALL, err.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            match self
                .client
                .put_evaluations()
                .result_token(result_token)
                .set_evaluations(Some(batch))
                .send()
                .await
            {
                Ok(out) => refused.extend(
                    out.failed_evaluations()
                        .iter()
                        .map(|f| f.compliance_resource_id().to_string()),
                ),
                Err(e) => failed = failed.or(Some(AwsError::from_sdk(CALL, e))),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        match refused.first() {
            None => Ok(()),
            Some(first) => Err(AwsError::permanent(
                CALL,
                format!(
                    "Config did not accept the evaluation of {first} ({} of {} refused)",
                    refused.len(),
                    evaluations.len()
                ),
            )),
        }
    }

    /// The latest configuration of a resource as Config recorded it (the item's
    /// `configuration`), for an invocation whose item was too large to send; `None` when
    /// Config holds none.
    pub async fn latest_configuration(
        &self,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<Latest, AwsError> {
        const CALL: &str = "config:GetResourceConfigHistory";
        let out = self
            .client
            .get_resource_config_history()
            .resource_type(aws_sdk_config::types::ResourceType::from(resource_type))
            .resource_id(resource_id)
            .limit(1)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk(CALL, e))?;
        let Some(item) = out.configuration_items().first() else {
            return Ok(Latest::Nothing);
        };
        let recorded = item.configuration_item_status().is_none_or(|s| {
            matches!(
                s,
                aws_sdk_config::types::ConfigurationItemStatus::Ok
                    | aws_sdk_config::types::ConfigurationItemStatus::ResourceDiscovered
            )
        });
        let Some(text) = item.configuration().filter(|_| recorded) else {
            return Ok(Latest::Gone);
        };
        serde_json::from_str(text).map(Latest::Item).map_err(|e| {
            AwsError::permanent(CALL, format!("the item's configuration is not JSON: {e}"))
        })
    }

    /// The rule's last evaluation runs; `None` when the rule has none yet.
    pub async fn evaluation_status(
        &self,
        rule: &str,
    ) -> Result<Option<EvaluationStatus>, AwsError> {
        let out = self
            .client
            .describe_config_rule_evaluation_status()
            .config_rule_names(rule)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("config:DescribeConfigRuleEvaluationStatus", e))?;
        Ok(out
            .config_rules_evaluation_status()
            .first()
            .map(|s| EvaluationStatus {
                last_success: s.last_successful_evaluation_time().and_then(millis),
                last_failure: s.last_failed_evaluation_time().and_then(millis),
                last_error: s.last_error_message().map(str::to_string),
            }))
    }

    /// Every Config rule of the account and region.
    pub async fn rules(&self) -> Result<Vec<ConfigRule>, AwsError> {
        let mut rules = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_config_rules()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("config:DescribeConfigRules", e))?;
            rules.extend(out.config_rules().iter().filter_map(ConfigRule::from_sdk));
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(rules),
            }
        }
    }

    /// Every NON_COMPLIANT result of the rule, all pages.
    pub async fn non_compliant(&self, rule: &str) -> Result<Vec<Evaluation>, AwsError> {
        self.results(rule, &[ComplianceType::NonCompliant]).await
    }

    /// Every COMPLIANT or NON_COMPLIANT result of the rule: the resources a periodic run
    /// must account for.
    pub async fn evaluated(&self, rule: &str) -> Result<Vec<Evaluation>, AwsError> {
        self.results(
            rule,
            &[ComplianceType::Compliant, ComplianceType::NonCompliant],
        )
        .await
    }

    /// Every result of the rule, whatever its compliance.
    pub async fn all_results(&self, rule: &str) -> Result<Vec<Evaluation>, AwsError> {
        self.results(
            rule,
            &[
                ComplianceType::Compliant,
                ComplianceType::NonCompliant,
                ComplianceType::NotApplicable,
            ],
        )
        .await
    }

    /// Every result of the rule of these types, all pages.
    pub async fn results(
        &self,
        rule: &str,
        types: &[ComplianceType],
    ) -> Result<Vec<Evaluation>, AwsError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .get_compliance_details_by_config_rule()
                .config_rule_name(rule)
                .set_compliance_types(Some(types.to_vec()))
                .limit(PAGE)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| AwsError::from_sdk("config:GetComplianceDetailsByConfigRule", e))?;
            found.extend(
                out.evaluation_results()
                    .iter()
                    .filter_map(Evaluation::from_result),
            );
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(found),
            }
        }
    }

    /// Every NON_COMPLIANT result an aggregator holds for rules `wanted` accepts, across
    /// the accounts and regions it aggregates, all pages.
    pub async fn aggregated_non_compliant(
        &self,
        aggregator: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<Evaluation>, AwsError> {
        // (rule, account, region) with anything NON_COMPLIANT.
        let mut sources = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_aggregate_compliance_by_config_rules()
                .configuration_aggregator_name(aggregator)
                .filters(
                    ConfigRuleComplianceFilters::builder()
                        .compliance_type(ComplianceType::NonCompliant)
                        .build(),
                )
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    AwsError::from_sdk("config:DescribeAggregateComplianceByConfigRules", e)
                })?;
            for r in out.aggregate_compliance_by_config_rules() {
                if let (Some(rule), Some(account), Some(region)) =
                    (r.config_rule_name(), r.account_id(), r.aws_region())
                {
                    if wanted(rule) {
                        sources.push((rule.to_string(), account.to_string(), region.to_string()));
                    }
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        let mut found = Vec::new();
        for (rule, account, region) in sources {
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .client
                    .get_aggregate_compliance_details_by_config_rule()
                    .configuration_aggregator_name(aggregator)
                    .config_rule_name(&rule)
                    .account_id(&account)
                    .aws_region(&region)
                    .compliance_type(ComplianceType::NonCompliant)
                    .limit(PAGE)
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| {
                        AwsError::from_sdk("config:GetAggregateComplianceDetailsByConfigRule", e)
                    })?;
                found.extend(
                    out.aggregate_evaluation_results()
                        .iter()
                        .filter_map(Evaluation::from_aggregate)
                        .map(|mut e| {
                            e.account.get_or_insert_with(|| account.clone());
                            e.region.get_or_insert_with(|| region.clone());
                            e
                        }),
                );
                match out.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_string()),
                    _ => break,
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::retry::ErrorClass;
    use aws_sdk_config::operation::describe_aggregate_compliance_by_config_rules::DescribeAggregateComplianceByConfigRulesOutput;
    use aws_sdk_config::operation::get_aggregate_compliance_details_by_config_rule::GetAggregateComplianceDetailsByConfigRuleOutput;
    use aws_sdk_config::operation::get_compliance_details_by_resource::GetComplianceDetailsByResourceOutput;
    use aws_sdk_config::types::{
        AggregateComplianceByConfigRule, Compliance as RuleCompliance, EvaluationResultIdentifier,
        EvaluationResultQualifier,
    };
    use aws_sdk_config::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const SG: &str = "AWS::EC2::SecurityGroup";
    const AGGREGATOR: &str = "org-aggregator";

    /// One refused evaluation, or one id too long for Config, hides no other: every
    /// batch is still put, and the whole is an error naming what was not accepted.
    #[tokio::test]
    async fn every_batch_is_put_even_when_one_is_refused() {
        use aws_sdk_config::operation::put_evaluations::{
            PutEvaluationsInput, PutEvaluationsOutput,
        };
        let put = mock!(Client::put_evaluations).then_compute_output(|r: &PutEvaluationsInput| {
            let refused = r
                .evaluations()
                .iter()
                .filter(|e| e.compliance_resource_id() == "sg-0")
                .cloned()
                .collect();
            PutEvaluationsOutput::builder()
                .set_failed_evaluations(Some(refused))
                .build()
        });
        let config = Compliance::new(mock_client!(aws_sdk_config, RuleMode::MatchAny, [&put]));
        let mut evaluations: Vec<_> = (0..150)
            .map(|n| redress::evaluate::Evaluation::not_applicable(SG, &format!("sg-{n}")))
            .collect();
        evaluations.push(redress::evaluate::Evaluation::not_applicable(
            "AWS::SSM::Parameter",
            &format!("/payments/current/{}", "x".repeat(MAX_RESOURCE_ID)),
        ));
        let err = config
            .put_evaluations("token", &evaluations, std::time::SystemTime::now())
            .await
            .unwrap_err();
        assert_eq!(put.num_calls(), 2, "both batches put");
        let err = err.to_string();
        assert!(err.contains("(2 of 151 refused)"), "{err}");
    }

    fn identifier(rule: &str, resource: &str) -> EvaluationResultIdentifier {
        EvaluationResultIdentifier::builder()
            .evaluation_result_qualifier(
                EvaluationResultQualifier::builder()
                    .config_rule_name(rule)
                    .resource_type(SG)
                    .resource_id(resource)
                    .build(),
            )
            .build()
    }

    fn aggregate(account: &str, resource: &str) -> AggregateEvaluationResult {
        AggregateEvaluationResult::builder()
            .evaluation_result_identifier(identifier("restricted-ssh", resource))
            .compliance_type(ComplianceType::NonCompliant)
            .annotation("port 22 open")
            .result_recorded_time(DateTime::from_secs(1_764_570_000))
            .account_id(account)
            .aws_region("eu-west-1")
            .build()
    }

    #[tokio::test]
    async fn throttling_while_verifying_is_transient_after_the_sdk_retries() {
        let throttled = mock!(Client::get_compliance_details_by_resource)
            .sequence()
            .http_status(
                400,
                Some(
                    serde_json::json!({"__type": "ThrottlingException", "message": "Rate exceeded"})
                        .to_string(),
                ),
            )
            .repeatedly()
            .build();
        let config = Compliance::new(mock_client!(aws_sdk_config, [&throttled]));
        let err = config
            .current("restricted-ssh", SG, "sg-0a1b2c3d4e5f60718")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Transient, "{err}");
        assert_eq!(err.operation, "config:GetComplianceDetailsByResource");
        assert!(
            throttled.num_calls() > 1,
            "the SDK retried throttling first"
        );
    }

    #[tokio::test]
    async fn the_current_result_is_found_on_a_later_page_and_other_rules_are_ignored() {
        let page = |rule: &str, compliance: ComplianceType, next: Option<&str>| {
            let out = GetComplianceDetailsByResourceOutput::builder()
                .evaluation_results(
                    EvaluationResult::builder()
                        .evaluation_result_identifier(identifier(rule, "sg-1"))
                        .compliance_type(compliance)
                        .build(),
                )
                .set_next_token(next.map(str::to_string))
                .build();
            move || out.clone()
        };
        let first = mock!(Client::get_compliance_details_by_resource)
            .match_requests(|r| r.next_token().is_none())
            .then_output(page("other-rule", ComplianceType::Compliant, Some("t2")));
        let second = mock!(Client::get_compliance_details_by_resource)
            .match_requests(|r| r.next_token() == Some("t2"))
            .then_output(page("restricted-ssh", ComplianceType::NonCompliant, None));
        let config = Compliance::new(mock_client!(
            aws_sdk_config,
            RuleMode::MatchAny,
            [&first, &second]
        ));
        let found = config
            .current("restricted-ssh", SG, "sg-1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.compliance, "NON_COMPLIANT");
        assert_eq!(found.rule, "restricted-ssh");
        assert!(config
            .current("absent", SG, "sg-1")
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn an_aggregator_sweep_reads_every_page_of_every_account() {
        let rule = |account: &str| {
            AggregateComplianceByConfigRule::builder()
                .config_rule_name("restricted-ssh")
                .account_id(account)
                .aws_region("eu-west-1")
                .compliance(
                    RuleCompliance::builder()
                        .compliance_type(ComplianceType::NonCompliant)
                        .build(),
                )
                .build()
        };
        let (a, b) = ("111111111111", "222222222222");
        let (rule_a, rule_b) = (rule(a), rule(b));
        let unrelated = AggregateComplianceByConfigRule::builder()
            .config_rule_name("s3-bucket-logging-enabled")
            .account_id(a)
            .aws_region("eu-west-1")
            .build();
        // Rules: two pages, one account each (and a rule the policy does not cover).
        let rules_1 = mock!(Client::describe_aggregate_compliance_by_config_rules)
            .match_requests(|r| {
                r.next_token().is_none() && r.configuration_aggregator_name() == Some(AGGREGATOR)
            })
            .then_output(move || {
                DescribeAggregateComplianceByConfigRulesOutput::builder()
                    .aggregate_compliance_by_config_rules(rule_a.clone())
                    .aggregate_compliance_by_config_rules(unrelated.clone())
                    .next_token("rules-2")
                    .build()
            });
        let rules_2 = mock!(Client::describe_aggregate_compliance_by_config_rules)
            .match_requests(|r| r.next_token() == Some("rules-2"))
            .then_output(move || {
                DescribeAggregateComplianceByConfigRulesOutput::builder()
                    .aggregate_compliance_by_config_rules(rule_b.clone())
                    .build()
            });
        // Results: account A on two pages, account B on one.
        let a_1 = mock!(Client::get_aggregate_compliance_details_by_config_rule)
            .match_requests(move |r| r.account_id() == Some(a) && r.next_token().is_none())
            .then_output(move || {
                GetAggregateComplianceDetailsByConfigRuleOutput::builder()
                    .aggregate_evaluation_results(aggregate(a, "sg-a1"))
                    .aggregate_evaluation_results(aggregate(a, "sg-a2"))
                    .next_token("a-2")
                    .build()
            });
        let a_2 = mock!(Client::get_aggregate_compliance_details_by_config_rule)
            .match_requests(move |r| r.account_id() == Some(a) && r.next_token() == Some("a-2"))
            .then_output(move || {
                GetAggregateComplianceDetailsByConfigRuleOutput::builder()
                    .aggregate_evaluation_results(aggregate(a, "sg-a3"))
                    .build()
            });
        let b_1 = mock!(Client::get_aggregate_compliance_details_by_config_rule)
            .match_requests(move |r| {
                r.account_id() == Some(b)
                    && r.aws_region() == Some("eu-west-1")
                    && r.compliance_type() == Some(&ComplianceType::NonCompliant)
            })
            .then_output(move || {
                GetAggregateComplianceDetailsByConfigRuleOutput::builder()
                    .aggregate_evaluation_results(aggregate(b, "sg-b1"))
                    .build()
            });
        let config = Compliance::new(mock_client!(
            aws_sdk_config,
            RuleMode::MatchAny,
            [&rules_1, &rules_2, &a_1, &a_2, &b_1]
        ));
        let found = config
            .aggregated_non_compliant(AGGREGATOR, |name| name == "restricted-ssh")
            .await
            .unwrap();
        let seen: Vec<(String, String)> = found
            .iter()
            .map(|e| (e.account.clone().unwrap(), e.resource_id.clone()))
            .collect();
        assert_eq!(
            seen,
            [(a, "sg-a1"), (a, "sg-a2"), (a, "sg-a3"), (b, "sg-b1")]
                .map(|(x, y)| (x.to_string(), y.to_string()))
        );
        assert!(found
            .iter()
            .all(|e| e.region.as_deref() == Some("eu-west-1")
                && e.compliance == "NON_COMPLIANT"
                && e.recorded_at.is_some()));
        assert_eq!((rules_1.num_calls(), rules_2.num_calls()), (1, 1));
        assert_eq!(
            (a_1.num_calls(), a_2.num_calls(), b_1.num_calls()),
            (1, 1, 1)
        );
    }
}
