//! After a fix, ask AWS Config to re-evaluate the rule that reported the finding, so its
//! compliance turns green now instead of at the rule's next periodic or change-triggered
//! run. Best effort: the fix has already happened, so a request that cannot be made is a
//! warning, never a failed task.

use crate::aws::retry::AwsError;
use aws_sdk_config::config::interceptors::InterceptorContext;
use aws_sdk_config::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_config::operation::start_config_rules_evaluation::StartConfigRulesEvaluationError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Config's answer when an evaluation of the rule is already running (one at a time per
/// rule), or the rule was asked to re-evaluate less than a minute ago.
const EVALUATION_RUNNING: &str = "LimitExceededException";

/// What came of asking for a re-evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reevaluation {
    /// Config accepted the request.
    Requested,
    /// An evaluation of the rule is already running (or was just started); it will see
    /// the fixed resource, so nothing more is needed.
    AlreadyRunning,
    /// The request failed; the message says why. Already logged as a warning.
    Failed(String),
}

/// AWS Config rules.
#[derive(Clone, Debug)]
pub struct ConfigRules {
    client: aws_sdk_config::Client,
}

impl ConfigRules {
    /// Wraps a Config client (for the account the finding is in).
    pub fn new(client: aws_sdk_config::Client) -> Self {
        ConfigRules { client }
    }

    /// Starts an evaluation of `config_rule_name`, the rule's real name as the event
    /// carries it (Security Hub's rules keep their suffix, e.g.
    /// `securityhub-s3-bucket-...-abc123`): passed verbatim.
    ///
    /// The SDK's standard retry still retries throttling, but not `LimitExceededException`
    /// (which it would otherwise count as throttling): here that means an evaluation is
    /// already running, and retrying within seconds cannot change that.
    pub async fn reevaluate(&self, config_rule_name: &str) -> Result<(), AwsError> {
        self.client
            .start_config_rules_evaluation()
            .config_rule_names(config_rule_name)
            .customize()
            .config_override(
                aws_sdk_config::config::Builder::default().retry_classifier(EvaluationRunning),
            )
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("config:StartConfigRulesEvaluation", e))?;
        Ok(())
    }

    /// [`reevaluate`](Self::reevaluate), never failing: an evaluation already running
    /// is as good as a new one; any other error is logged and returned as
    /// [`Reevaluation::Failed`]. Not retried beyond the SDK's own attempts.
    pub async fn request_reevaluation(&self, config_rule_name: &str) -> Reevaluation {
        match self.reevaluate(config_rule_name).await {
            Ok(()) => Reevaluation::Requested,
            Err(e) if e.code == EVALUATION_RUNNING => {
                tracing::debug!(
                    config_rule = config_rule_name,
                    "Config evaluation already running; not requesting another"
                );
                Reevaluation::AlreadyRunning
            }
            Err(e) => {
                let message = format!(
                    "could not request re-evaluation of Config rule {config_rule_name}: {e}"
                );
                tracing::warn!(
                    config_rule = config_rule_name,
                    error = %e,
                    class = e.class.as_str(),
                    "could not request a Config re-evaluation; the finding updates at the rule's next evaluation"
                );
                Reevaluation::Failed(message)
            }
        }
    }
}

/// Forbids retrying `LimitExceededException` from `StartConfigRulesEvaluation`. It runs
/// at the default priority, before the SDK's error-code classifier (which lists
/// `LimitExceededException` as throttling), and `RetryForbidden` ends classification.
#[derive(Debug)]
struct EvaluationRunning;

impl ClassifyRetry for EvaluationRunning {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let running = ctx
            .output_or_error()
            .and_then(|r| r.err())
            .and_then(|e| e.as_operation_error())
            .and_then(|e| e.downcast_ref::<StartConfigRulesEvaluationError>())
            .is_some_and(|e| {
                e.is_limit_exceeded_exception() || e.code() == Some(EVALUATION_RUNNING)
            });
        if running {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "Config evaluation already running"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::retry::ErrorClass;
    use aws_sdk_config::operation::start_config_rules_evaluation::StartConfigRulesEvaluationOutput;
    use aws_sdk_config::Client;
    use aws_smithy_mocks::{mock, mock_client, Rule};

    /// A Security Hub rule: the suffix is part of the real name.
    const RULE: &str = "securityhub-s3-bucket-server-side-encryption-enabled-abc123";

    /// The awsJson1_1 error body Config sends with HTTP 400.
    fn error_body(code: &str, message: &str) -> Option<String> {
        Some(serde_json::json!({ "__type": code, "message": message }).to_string())
    }

    /// Config answering every attempt with this error.
    fn failing(code: &str, message: &str) -> Rule {
        mock!(Client::start_config_rules_evaluation)
            .sequence()
            .http_status(400, error_body(code, message))
            .repeatedly()
            .build()
    }

    fn rules(rule: &Rule) -> ConfigRules {
        ConfigRules::new(mock_client!(aws_sdk_config, [rule]))
    }

    #[tokio::test]
    async fn success_sends_exactly_the_one_rule_verbatim() {
        let start = mock!(Client::start_config_rules_evaluation)
            .match_requests(|r| r.config_rule_names() == [RULE])
            .then_output(|| StartConfigRulesEvaluationOutput::builder().build());
        let out = rules(&start).request_reevaluation(RULE).await;
        assert_eq!(out, Reevaluation::Requested);
        assert_eq!(start.num_calls(), 1);
    }

    #[tokio::test]
    async fn an_evaluation_already_running_is_fine_and_not_retried() {
        let start = failing(
            "LimitExceededException",
            "An evaluation is already in progress for this rule.",
        );
        let out = rules(&start).request_reevaluation(RULE).await;
        assert_eq!(out, Reevaluation::AlreadyRunning);
        assert_eq!(
            start.num_calls(),
            1,
            "the SDK must not retry it as throttling"
        );
    }

    #[tokio::test]
    async fn an_unknown_rule_fails_naming_the_rule() {
        let start = failing(
            "NoSuchConfigRuleException",
            &format!("The ConfigRule '{RULE}' provided in the request is invalid."),
        );
        let config = rules(&start);
        let Reevaluation::Failed(message) = config.request_reevaluation(RULE).await else {
            panic!("expected Failed");
        };
        assert!(message.contains(RULE), "{message}");
        assert!(message.contains("NoSuchConfigRuleException"), "{message}");
        assert_eq!(start.num_calls(), 1);
    }

    #[tokio::test]
    async fn access_denied_fails_and_is_permanent() {
        let start = failing(
            "AccessDeniedException",
            "User: arn:aws:sts::111122223333:assumed-role/redress-executor/x is not authorized \
             to perform: config:StartConfigRulesEvaluation",
        );
        let config = rules(&start);
        let err = config.reevaluate(RULE).await.unwrap_err();
        assert_eq!(err.operation, "config:StartConfigRulesEvaluation");
        assert_eq!(err.code, "AccessDeniedException");
        assert_eq!(err.class, ErrorClass::Permanent);
        let Reevaluation::Failed(message) = config.request_reevaluation(RULE).await else {
            panic!("expected Failed");
        };
        assert!(message.contains("AccessDeniedException") && message.contains(RULE));
    }

    #[tokio::test]
    async fn throttling_is_still_retried_by_the_sdk() {
        let start = mock!(Client::start_config_rules_evaluation)
            .sequence()
            .http_status(400, error_body("ThrottlingException", "Rate exceeded"))
            .http_status(200, Some("{}".into()))
            .build();
        let out = rules(&start).request_reevaluation(RULE).await;
        assert_eq!(out, Reevaluation::Requested);
        assert_eq!(start.num_calls(), 2);
    }
}
