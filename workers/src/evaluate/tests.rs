//! The handler Lambda mode serves for redress's Config custom rules ([`Evaluator::answer`])
//! over recorded invocations (`tests/fixtures/config-invocations/`, the shape AWS
//! documents, parsed into the `ConfigEvent` the Lambda runtime hands it), with Config,
//! EC2 and SSM mocked at the SDK level: what it sends to `PutEvaluations`, and what it
//! reads first.

use std::sync::{Arc, Mutex};

use aws_lambda_events::event::config::ConfigEvent;
use aws_sdk_config::operation::get_compliance_details_by_config_rule::GetComplianceDetailsByConfigRuleOutput;
use aws_sdk_config::operation::get_resource_config_history::GetResourceConfigHistoryOutput;
use aws_sdk_config::operation::put_evaluations::{
    PutEvaluationsError, PutEvaluationsInput, PutEvaluationsOutput,
};
use aws_sdk_config::types::error::InvalidResultTokenException;
use aws_sdk_config::types::{
    ComplianceType, ConfigurationItem, ConfigurationItemStatus, Evaluation as SdkEvaluation,
    EvaluationResult, EvaluationResultIdentifier, EvaluationResultQualifier, ResourceType,
};
use aws_sdk_config::Client as ConfigClient;
use aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsOutput;
use aws_sdk_ec2::types::{IpPermission, IpRange, SecurityGroup};
use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput;
use aws_sdk_ssm::types::{Parameter, ParameterType};
use aws_sdk_ssm::Client as SsmClient;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::DateTime;
use redress::evaluate::Evaluation;

use super::{Answered, Evaluator};
use crate::aws::compliance::Compliance;
use crate::aws::ec2::SecurityGroups;
use crate::aws::ssm::Parameters;

const SG: &str = "AWS::EC2::SecurityGroup";
const PARAMETER: &str = "AWS::SSM::Parameter";

/// A recorded invocation, as the Lambda runtime deserializes it for the handler.
fn invocation(name: &str) -> ConfigEvent {
    let path = format!(
        "{}/../tests/fixtures/config-invocations/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn at(time: &str) -> DateTime {
    DateTime::from_str(time, Format::DateTime).unwrap()
}

/// An evaluator over mocked clients; a call no rule answers fails the test.
fn evaluator(config: &[&Rule], ec2: &[&Rule], ssm: &[&Rule]) -> Evaluator {
    Evaluator::from_parts(
        Compliance::new(mock_client!(aws_sdk_config, RuleMode::MatchAny, config)),
        SecurityGroups::new(mock_client!(aws_sdk_ec2, RuleMode::MatchAny, ec2)),
        Parameters::new(mock_client!(aws_sdk_ssm, RuleMode::MatchAny, ssm)),
    )
}

/// One evaluation as a `PutEvaluations` request carried it.
#[derive(Debug, Clone, PartialEq)]
struct Put {
    resource_type: String,
    resource_id: String,
    compliance: String,
    annotation: Option<String>,
    ordering: DateTime,
}

impl Put {
    fn new(
        resource_type: &str,
        resource_id: &str,
        compliance: &str,
        annotation: Option<&str>,
        ordering: &str,
    ) -> Put {
        Put {
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
            compliance: compliance.into(),
            annotation: annotation.map(str::to_string),
            ordering: at(ordering),
        }
    }
}

/// One `PutEvaluations` request: its result token and its evaluations.
type Call = (String, Vec<Put>);

/// The `PutEvaluations` requests Config received.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Call>>>);

impl Received {
    /// A rule accepting every `PutEvaluations` and recording it here.
    fn rule(&self) -> Rule {
        let received = self.clone();
        mock!(ConfigClient::put_evaluations).then_compute_output(move |r: &PutEvaluationsInput| {
            let evaluations = r
                .evaluations()
                .iter()
                .map(|e| Put {
                    resource_type: e.compliance_resource_type().into(),
                    resource_id: e.compliance_resource_id().into(),
                    compliance: e.compliance_type().as_str().into(),
                    annotation: e.annotation().map(str::to_string),
                    ordering: *e.ordering_timestamp(),
                })
                .collect();
            let token = r.result_token().unwrap_or_default().to_string();
            received.0.lock().unwrap().push((token, evaluations));
            PutEvaluationsOutput::builder().build()
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }
}

/// A result Config holds for a rule (what a periodic run must account for).
fn held(rule: &str, resource_type: &str, id: &str) -> EvaluationResult {
    EvaluationResult::builder()
        .evaluation_result_identifier(
            EvaluationResultIdentifier::builder()
                .evaluation_result_qualifier(
                    EvaluationResultQualifier::builder()
                        .config_rule_name(rule)
                        .resource_type(resource_type)
                        .resource_id(id)
                        .build(),
                )
                .build(),
        )
        .compliance_type(ComplianceType::NonCompliant)
        .build()
}

/// `GetComplianceDetailsByConfigRule` for `rule`, holding results for `ids`.
fn previously(rule: &'static str, resource_type: &str, ids: &[&str]) -> Rule {
    let results: Vec<EvaluationResult> =
        ids.iter().map(|id| held(rule, resource_type, id)).collect();
    mock!(ConfigClient::get_compliance_details_by_config_rule)
        .match_requests(move |r| r.config_rule_name() == Some(rule))
        .then_output(move || {
            GetComplianceDetailsByConfigRuleOutput::builder()
                .set_evaluation_results(Some(results.clone()))
                .build()
        })
}

#[tokio::test]
async fn a_change_is_answered_with_one_put_under_the_invocations_token() {
    struct Case {
        file: &'static str,
        /// Another rule over the same item (Config invokes each rule with its own name).
        rule: Option<&'static str>,
        id: &'static str,
        compliance: &'static str,
        annotation: Option<&'static str>,
        captured: &'static str,
    }
    let case = |file, rule, id, compliance, annotation, captured| Case {
        file,
        rule,
        id,
        compliance,
        annotation,
        captured,
    };
    let (admin, privileged) = (
        Some("redress-sg-admin-ports"),
        Some("redress-sg-privileged-ports"),
    );
    let cases = [
        // HIGH.
        case(
            "sg-admin-port-open.json",
            None,
            "sg-0a1b2c3d4e5f60718",
            "NON_COMPLIANT",
            Some("open to the world: tcp 22 from 0.0.0.0/0"),
            "2026-03-02T09:14:27.118Z",
        ),
        // MEDIUM, and not the admin rule's finding.
        case(
            "sg-privileged-port-open.json",
            None,
            "sg-1b2c3d4e5f6071829",
            "NON_COMPLIANT",
            Some("open to the world: tcp 21 from 0.0.0.0/0, ::/0"),
            "2026-03-02T09:20:03.551Z",
        ),
        case(
            "sg-privileged-port-open.json",
            admin,
            "sg-1b2c3d4e5f6071829",
            "COMPLIANT",
            None,
            "2026-03-02T09:20:03.551Z",
        ),
        // No finding on either rule.
        case(
            "sg-web-ports-open.json",
            None,
            "sg-2c3d4e5f607182930",
            "COMPLIANT",
            None,
            "2026-03-02T09:31:45.007Z",
        ),
        case(
            "sg-web-ports-open.json",
            privileged,
            "sg-2c3d4e5f607182930",
            "COMPLIANT",
            None,
            "2026-03-02T09:31:45.007Z",
        ),
        case(
            "sg-custom-ports.json",
            None,
            "sg-60718293a4b5c6d7e",
            "NON_COMPLIANT",
            Some("open to the world: tcp 8080 from 0.0.0.0/0"),
            "2026-03-02T12:05:55.431Z",
        ),
        case(
            "sg-deleted.json",
            None,
            "sg-3d4e5f60718293a4b",
            "NOT_APPLICABLE",
            None,
            "2026-03-02T10:02:11.640Z",
        ),
        case(
            "sg-left-scope.json",
            None,
            "sg-4e5f60718293a4b5c",
            "NOT_APPLICABLE",
            None,
            "2026-03-02T10:15:30.250Z",
        ),
    ];
    for c in cases {
        let mut event = invocation(c.file);
        if let Some(rule) = c.rule {
            event.config_rule_name = Some(rule.into());
        }
        let rule = event.config_rule_name.clone().unwrap();
        let token = event.result_token.clone().unwrap();
        let received = Received::default();
        // Config answers only PutEvaluations; EC2 and SSM nothing: the item is enough.
        let answered = evaluator(&[&received.rule()], &[], &[])
            .answer(&event)
            .await
            .unwrap_or_else(|e| panic!("{} as {rule}: {e}", c.file));
        let what = format!("{} as {rule}", c.file);
        assert_eq!(
            answered,
            Answered {
                rule,
                evaluations: vec![Evaluation {
                    resource_type: SG.into(),
                    resource_id: c.id.into(),
                    compliance: c.compliance,
                    annotation: c.annotation.map(str::to_string),
                }],
            },
            "{what}"
        );
        assert_eq!(
            received.calls(),
            [(
                token,
                vec![Put::new(SG, c.id, c.compliance, c.annotation, c.captured)]
            )],
            "{what}: one PutEvaluations, ordered at the item's capture time"
        );
    }
}

/// The full item of the oversized notification's group: one world-open RDP permission
/// among many narrow ones (what made it too large to send).
fn oversized_item() -> ConfigurationItem {
    let mut permissions = vec![serde_json::json!({
        "ipProtocol": "tcp", "fromPort": 3389, "toPort": 3389,
        "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"],
        "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": []
    })];
    permissions.extend((0..250).map(|i| {
        let cidr = format!("198.51.100.{}/32", i % 250);
        serde_json::json!({
            "ipProtocol": "tcp", "fromPort": 8443 + i, "toPort": 8443 + i,
            "ipv4Ranges": [{"cidrIp": cidr}], "ipRanges": [cidr],
            "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": []
        })
    }));
    let configuration = serde_json::json!({
        "groupId": "sg-5f60718293a4b5c6d",
        "groupName": "shared-services",
        "ipPermissions": permissions,
        "ipPermissionsEgress": [{"ipProtocol": "-1", "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]}]
    });
    ConfigurationItem::builder()
        .resource_type(ResourceType::from(SG))
        .resource_id("sg-5f60718293a4b5c6d")
        .configuration_item_status(ConfigurationItemStatus::Ok)
        .configuration_item_capture_time(at("2026-03-02T11:40:09.876Z"))
        .configuration(configuration.to_string())
        .build()
}

fn config_history(items: Vec<ConfigurationItem>) -> Rule {
    mock!(ConfigClient::get_resource_config_history)
        .match_requests(|r| {
            r.resource_type() == Some(&ResourceType::from(SG))
                && r.resource_id() == Some("sg-5f60718293a4b5c6d")
                && r.limit() == Some(1)
        })
        .then_output(move || {
            GetResourceConfigHistoryOutput::builder()
                .set_configuration_items(Some(items.clone()))
                .build()
        })
}

#[tokio::test]
async fn an_oversized_item_is_fetched_from_config_then_evaluated() {
    let history = config_history(vec![oversized_item()]);
    let received = Received::default();
    let answered = evaluator(&[&history, &received.rule()], &[], &[])
        .answer(&invocation("sg-oversized.json"))
        .await
        .unwrap();
    assert_eq!(history.num_calls(), 1);
    let annotation = "open to the world: tcp 3389 from 0.0.0.0/0";
    assert_eq!(answered.evaluations.len(), 1);
    assert_eq!(
        received.calls(),
        [(
            "result-token-sg-oversized".to_string(),
            vec![Put::new(
                SG,
                "sg-5f60718293a4b5c6d",
                "NON_COMPLIANT",
                Some(annotation),
                "2026-03-02T11:40:09.876Z"
            )]
        )]
    );
}

#[tokio::test]
async fn an_oversized_item_config_does_not_hold_is_an_error_and_nothing_is_put() {
    let history = config_history(Vec::new());
    let received = Received::default();
    let put = received.rule();
    let err = evaluator(&[&history, &put], &[], &[])
        .answer(&invocation("sg-oversized.json"))
        .await
        .unwrap_err();
    assert!(
        err.contains("holds no configuration item") && err.contains("sg-5f60718293a4b5c6d"),
        "{err}"
    );
    assert_eq!(put.num_calls(), 0);
}

/// Security group `i`: every tenth has SSH open to the world, the others HTTPS.
fn group(i: usize) -> SecurityGroup {
    let port = if i.is_multiple_of(10) { 22 } else { 443 };
    SecurityGroup::builder()
        .group_id(group_id(i))
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(port)
                .to_port(port)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .build()
}

fn group_id(i: usize) -> String {
    format!("sg-{i:017x}")
}

#[tokio::test]
async fn a_scheduled_run_puts_every_group_and_the_gone_ones_in_batches_of_100() {
    const RULE: &str = "redress-sg-admin-ports";
    // 150 groups on two pages.
    let page = |range: std::ops::Range<usize>, next: Option<&'static str>| {
        move || {
            DescribeSecurityGroupsOutput::builder()
                .set_security_groups(Some(range.clone().map(group).collect()))
                .set_next_token(next.map(str::to_string))
                .build()
        }
    };
    let first = mock!(Ec2Client::describe_security_groups)
        .match_requests(|r| r.next_token().is_none())
        .then_output(page(0..130, Some("page-2")));
    let second = mock!(Ec2Client::describe_security_groups)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(page(130..150, None));
    // Config holds results for a group that still exists and one that is gone.
    let gone = "sg-0ffffffffffffffff";
    let before = previously(RULE, SG, &[gone, "sg-00000000000000000"]);
    let received = Received::default();
    let answered = evaluator(&[&before, &received.rule()], &[&first, &second], &[])
        .answer(&invocation("sg-scheduled.json"))
        .await
        .unwrap();
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    assert_eq!(answered.evaluations.len(), 151);

    let calls = received.calls();
    let sizes: Vec<usize> = calls.iter().map(|(_, b)| b.len()).collect();
    assert_eq!(sizes, [100, 51], "PutEvaluations takes at most 100");
    assert!(calls
        .iter()
        .all(|(token, _)| token == "result-token-sg-scheduled"));
    let put: Vec<Put> = calls.into_iter().flat_map(|(_, b)| b).collect();
    // Every put is ordered at the scheduled notification's time.
    assert!(put
        .iter()
        .all(|p| p.ordering == at("2026-03-02T18:00:00.215Z")));
    let mut want: Vec<(String, &str, Option<&str>)> = (0..150usize)
        .map(|i| {
            if i.is_multiple_of(10) {
                (
                    group_id(i),
                    "NON_COMPLIANT",
                    Some("open to the world: tcp 22 from 0.0.0.0/0"),
                )
            } else {
                (group_id(i), "COMPLIANT", None)
            }
        })
        .collect();
    want.push((gone.to_string(), "NOT_APPLICABLE", None));
    let got: Vec<(String, &str, Option<&str>)> = put
        .iter()
        .map(|p| {
            assert_eq!(p.resource_type, SG);
            (
                p.resource_id.clone(),
                p.compliance.as_str(),
                p.annotation.as_deref(),
            )
        })
        .collect();
    assert_eq!(got, want);
}

fn parameter(name: &str, value: &str, kind: ParameterType) -> Parameter {
    Parameter::builder()
        .name(name)
        .value(value)
        .r#type(kind)
        .version(1)
        .build()
}

/// `GetParametersByPath` of `path` (decrypted, recursive), holding `parameters`.
fn path(path: &'static str, parameters: Vec<Parameter>) -> Rule {
    mock!(SsmClient::get_parameters_by_path)
        .match_requests(move |r| {
            r.path() == Some(path)
                && r.with_decryption() == Some(true)
                && r.recursive() == Some(true)
        })
        .then_output(move || {
            GetParametersByPathOutput::builder()
                .set_parameters(Some(parameters.clone()))
                .build()
        })
}

#[tokio::test]
async fn a_scheduled_drift_run_puts_one_outcome_per_parameter_never_a_value() {
    use ParameterType::{SecureString, String as Plain};
    let current = path(
        "/payments/current",
        vec![
            parameter("/payments/current/pool", "20", Plain),
            parameter("/payments/current/timeout", "900", Plain),
            parameter("/payments/current/debug", "true", Plain),
            parameter("/payments/current/api-key", "s3cret", SecureString),
        ],
    );
    let approved = path(
        "/payments/approved",
        vec![
            parameter("/payments/approved/pool", "20", Plain),
            parameter("/payments/approved/timeout", "30", Plain),
            parameter("/payments/approved/region", "eu-west-1", Plain),
            parameter("/payments/approved/api-key", "s3cret", SecureString),
        ],
    );
    let before = previously(
        "redress-parameter-drift",
        PARAMETER,
        &["/payments/current/old"],
    );
    let received = Received::default();
    evaluator(&[&before, &received.rule()], &[], &[&current, &approved])
        .answer(&invocation("parameter-drift-scheduled.json"))
        .await
        .unwrap();
    let put = |name: &str, compliance: &str, annotation: Option<&str>| {
        Put::new(
            PARAMETER,
            &format!("/payments/current/{name}"),
            compliance,
            annotation,
            "2026-03-02T06:00:00.512Z",
        )
    };
    assert_eq!(
        received.calls(),
        [(
            "result-token-parameter-drift-scheduled".to_string(),
            vec![
                put("api-key", "COMPLIANT", None),
                // LOW, MEDIUM and HIGH in the default policy.
                put("debug", "NON_COMPLIANT", Some("unauthorized")),
                put("pool", "COMPLIANT", None),
                put("region", "NON_COMPLIANT", Some("missing")),
                put("timeout", "NON_COMPLIANT", Some("drifted")),
                // Reported before, now on neither side.
                put("old", "NOT_APPLICABLE", None),
            ]
        )]
    );
}

#[tokio::test]
async fn a_put_config_refuses_is_an_error_not_swallowed() {
    let refused_token = mock!(ConfigClient::put_evaluations).then_error(|| {
        PutEvaluationsError::InvalidResultTokenException(
            InvalidResultTokenException::builder()
                .message("The result token is invalid.")
                .meta(
                    ErrorMetadata::builder()
                        .code("InvalidResultTokenException")
                        .message("The result token is invalid.")
                        .build(),
                )
                .build(),
        )
    });
    let refused_evaluation = mock!(ConfigClient::put_evaluations).then_output(|| {
        PutEvaluationsOutput::builder()
            .failed_evaluations(
                SdkEvaluation::builder()
                    .compliance_resource_type(SG)
                    .compliance_resource_id("sg-0a1b2c3d4e5f60718")
                    .compliance_type(ComplianceType::NonCompliant)
                    .ordering_timestamp(at("2026-03-02T09:14:27.118Z"))
                    .build()
                    .unwrap(),
            )
            .build()
    });
    for (put, want) in [
        (
            &refused_token,
            "config:PutEvaluations failed: InvalidResultTokenException",
        ),
        (
            &refused_evaluation,
            "Config did not accept the evaluation of sg-0a1b2c3d4e5f60718",
        ),
    ] {
        let err = evaluator(&[put], &[], &[])
            .answer(&invocation("sg-admin-port-open.json"))
            .await
            .unwrap_err();
        assert!(err.contains(want), "{err}");
        assert_eq!(put.num_calls(), 1, "refusals are not retried: {err}");
    }
}
