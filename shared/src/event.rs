//! Config compliance-change events, in the two shapes they reach an SQS queue:
//! the EventBridge envelope (rule target) and the SNS notification (Config → SNS → SQS
//! without raw delivery). Both normalise to one [`ComplianceEvent`].
//!
//! Parsing is strict where it matters for safety (every field a remediation reads is
//! present, typed and well-formed) and lenient where AWS is lenient (optional fields are
//! `Option`; value sets AWS may grow are strings).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// `detail-type` of the events redress consumes.
pub const COMPLIANCE_CHANGE_DETAIL_TYPE: &str = "Config Rules Compliance Change";
/// `source` of AWS Config events.
pub const CONFIG_SOURCE: &str = "aws.config";
/// `messageType` of a compliance-change notification.
pub const COMPLIANCE_CHANGE_MESSAGE_TYPE: &str = "ComplianceChangeNotification";

/// An EventBridge event, generic over its `detail`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBridgeEvent<T> {
    /// Envelope version; `"0"` today.
    pub version: String,
    /// Unique id EventBridge gives the event.
    pub id: String,
    /// What kind of event this is (`Config Rules Compliance Change`).
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// Emitting service (`aws.config`).
    pub source: String,
    /// Account of the event bus; AWS omits it on some delivery paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// When the event happened (RFC 3339).
    pub time: String,
    /// Region of the event bus.
    pub region: String,
    /// ARNs of the resources involved (empty for Config).
    #[serde(default)]
    pub resources: Vec<String>,
    /// The service-specific payload.
    pub detail: T,
}

/// An SNS notification as delivered to SQS without raw message delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsNotification {
    /// `Notification`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// SNS message id; used as the event id.
    pub message_id: String,
    /// Topic the message came through.
    #[serde(default)]
    pub topic_arn: Option<String>,
    /// The Config message, as a JSON string.
    pub message: String,
    /// When SNS published it.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// `detail` of a Config compliance-change event (also the body of the SNS form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceChangeDetail {
    /// Id of the evaluated resource (`sg-…`, a bucket name, a parameter name…).
    pub resource_id: String,
    /// CloudFormation-style type (`AWS::EC2::SecurityGroup`); an open set.
    pub resource_type: String,
    /// Region of the resource.
    pub aws_region: String,
    /// Account owning the resource.
    pub aws_account_id: String,
    /// Config rule that evaluated it (Security Hub adds a random suffix).
    pub config_rule_name: String,
    /// ARN of that rule.
    #[serde(
        default,
        rename = "configRuleARN",
        skip_serializing_if = "Option::is_none"
    )]
    pub config_rule_arn: Option<String>,
    /// `ComplianceChangeNotification`.
    pub message_type: String,
    /// Record format version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_version: Option<String>,
    /// When Config created the notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_creation_time: Option<String>,
    /// The evaluation that caused this event.
    pub new_evaluation_result: EvaluationResult,
    /// The previous evaluation; absent on a resource's first evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_evaluation_result: Option<EvaluationResult>,
}

/// One evaluation of one resource by one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationResult {
    /// Which rule, resource and time the result is for.
    pub evaluation_result_identifier: EvaluationResultIdentifier,
    /// `COMPLIANT`, `NON_COMPLIANT`, `NOT_APPLICABLE`, `INSUFFICIENT_DATA`.
    pub compliance_type: ComplianceType,
    /// When Config recorded the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_recorded_time: Option<String>,
    /// When the rule was invoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_rule_invoked_time: Option<String>,
    /// The rule's explanation, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<String>,
    /// Token for PutEvaluations (custom rules only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_token: Option<String>,
}

/// Identifies an evaluation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationResultIdentifier {
    /// Rule, resource and mode.
    pub evaluation_result_qualifier: EvaluationResultQualifier,
    /// Orders results of the same resource and rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_timestamp: Option<String>,
}

/// Rule and resource of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluationResultQualifier {
    /// Config rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_rule_name: Option<String>,
    /// Resource type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// Resource id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// `DETECTIVE` or `PROACTIVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_mode: Option<String>,
}

/// A compliance type: an open set with known constants, since AWS may add values.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ComplianceType(pub String);

impl ComplianceType {
    /// The resource complies.
    pub const COMPLIANT: &'static str = "COMPLIANT";
    /// The resource breaks the rule: the only state redress acts on.
    pub const NON_COMPLIANT: &'static str = "NON_COMPLIANT";
    /// The rule does not apply to the resource.
    pub const NOT_APPLICABLE: &'static str = "NOT_APPLICABLE";
    /// Config could not decide.
    pub const INSUFFICIENT_DATA: &'static str = "INSUFFICIENT_DATA";

    /// Whether this is `NON_COMPLIANT`.
    pub fn is_non_compliant(&self) -> bool {
        self.0 == Self::NON_COMPLIANT
    }

    /// The value as AWS wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which delivery shape a message had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// EventBridge rule → SQS.
    EventBridge,
    /// Config → SNS → SQS.
    Sns,
}

/// A validated compliance-change event, whichever way it was delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceEvent {
    /// EventBridge event id, or SNS message id.
    pub event_id: String,
    /// How it arrived.
    pub delivery: Delivery,
    /// When it was emitted.
    pub time: Option<String>,
    /// The Config payload.
    pub detail: ComplianceChangeDetail,
}

/// A result Config holds now, as read from its API (`redress sweep`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult<'a> {
    /// Config rule name.
    pub rule: &'a str,
    /// The rule's ARN, when known.
    pub rule_arn: Option<&'a str>,
    /// Resource type.
    pub resource_type: &'a str,
    /// Resource id.
    pub resource_id: &'a str,
    /// Account of the resource.
    pub account: &'a str,
    /// Region of the resource.
    pub region: &'a str,
    /// `NON_COMPLIANT`, ...
    pub compliance: &'a str,
    /// The rule's annotation.
    pub annotation: Option<&'a str>,
    /// When Config recorded the result (RFC 3339).
    pub recorded_at: Option<&'a str>,
    /// When the rule was invoked (RFC 3339).
    pub invoked_at: Option<&'a str>,
}

impl StoredResult<'_> {
    /// The compliance-change event Config would have sent for this result, so it takes
    /// the router's path exactly as an event does. Its id is derived from the result
    /// (rule, resource, account, region, recording time), so the same result swept twice
    /// is the same finding.
    pub fn as_event(&self, now: &str) -> EventBridgeEvent<ComplianceChangeDetail> {
        use sha2::{Digest, Sha256};
        let key = [
            self.rule,
            self.account,
            self.region,
            self.resource_type,
            self.resource_id,
            self.recorded_at.unwrap_or(""),
        ]
        .join("\u{1f}");
        let digest: String = Sha256::digest(key.as_bytes())[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let result = EvaluationResult {
            evaluation_result_identifier: EvaluationResultIdentifier {
                evaluation_result_qualifier: EvaluationResultQualifier {
                    config_rule_name: Some(self.rule.into()),
                    resource_type: Some(self.resource_type.into()),
                    resource_id: Some(self.resource_id.into()),
                    evaluation_mode: Some("DETECTIVE".into()),
                },
                ordering_timestamp: self.recorded_at.map(str::to_string),
            },
            compliance_type: ComplianceType(self.compliance.into()),
            result_recorded_time: self.recorded_at.map(str::to_string),
            config_rule_invoked_time: self.invoked_at.map(str::to_string),
            annotation: self.annotation.map(str::to_string),
            result_token: None,
        };
        EventBridgeEvent {
            version: "0".into(),
            id: format!("sweep-{digest}"),
            detail_type: COMPLIANCE_CHANGE_DETAIL_TYPE.into(),
            source: CONFIG_SOURCE.into(),
            account: Some(self.account.into()),
            time: now.into(),
            region: self.region.into(),
            resources: Vec::new(),
            detail: ComplianceChangeDetail {
                resource_id: self.resource_id.into(),
                resource_type: self.resource_type.into(),
                aws_region: self.region.into(),
                aws_account_id: self.account.into(),
                config_rule_name: self.rule.into(),
                config_rule_arn: self.rule_arn.map(str::to_string),
                message_type: COMPLIANCE_CHANGE_MESSAGE_TYPE.into(),
                record_version: Some("1.0".into()),
                notification_creation_time: Some(now.into()),
                new_evaluation_result: result,
                old_evaluation_result: None,
            },
        }
    }
}

/// Why a message is not a usable compliance-change event. The text names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// Not JSON at all.
    #[error("body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but a field is missing or has the wrong type.
    #[error("{path}: {message}")]
    Shape {
        /// Dotted path of the offending field.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// Well-formed, but a value is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// Dotted path of the offending field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl EventError {
    fn invalid(field: &str, message: impl Into<String>) -> Self {
        EventError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// Parses and validates an SQS message body as a compliance-change event.
///
/// This is the router's hot path, so a well-formed body is read once, straight into typed
/// structs (`quick_parse`: no tree of values, no probe pass, no path tracking). A body that
/// read does not take (malformed or unusual) goes through `parse_carefully`, which decides
/// the same and names the offending field: rejections cost more, events don't pay.
pub fn parse_message(body: &str) -> Result<ComplianceEvent, EventError> {
    let event = match quick_parse(body) {
        Some(event) => event?,
        None => parse_carefully(body)?,
    };
    validate_detail(&event.detail)?;
    Ok(event)
}

/// Both envelopes' top-level fields, for one typed pass over the body. These are the
/// fields [`Probe`], [`EventBridgeEvent`] and [`SnsNotification`] read, with their types,
/// except that required fields are `Option`s (absent or `null` is left to the careful
/// path, which names the field) and fields that are only compared borrow from the body
/// (one written with a JSON escape fails to borrow and goes the careful way too).
#[derive(Deserialize)]
struct Envelope<'a> {
    /// SNS `Type`: `Notification` selects the SNS form, as in [`Probe`].
    #[serde(rename = "Type", borrow)]
    kind: Option<&'a str>,
    #[serde(borrow)]
    version: Option<&'a str>,
    id: Option<String>,
    #[serde(rename = "detail-type", borrow)]
    detail_type: Option<&'a str>,
    #[serde(borrow)]
    source: Option<&'a str>,
    /// Type-checked as the typed struct does; the event does not keep it.
    #[serde(rename = "account", borrow)]
    _account: Option<&'a str>,
    time: Option<String>,
    #[serde(borrow)]
    region: Option<&'a str>,
    /// Type-checked as the typed struct does; the event does not keep it.
    #[serde(rename = "resources", default, borrow)]
    _resources: Vec<&'a str>,
    detail: Option<ComplianceChangeDetail>,
    #[serde(rename = "MessageId")]
    message_id: Option<String>,
    /// Type-checked as the typed struct does; the event does not keep it.
    #[serde(rename = "TopicArn", borrow)]
    _topic_arn: Option<&'a str>,
    /// Config's payload as JSON text (always escaped, so owned).
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "Timestamp")]
    timestamp: Option<String>,
}

/// The event in one typed pass, with its envelope checked; `None` when that pass does not
/// take the body and [`parse_carefully`] must decide. It takes only bodies the careful path
/// reads into the same values: a body whose [`Envelope`] parses also passes [`Probe`]
/// (`Type` has the same type, a duplicate key fails both), and the typed struct its `Type`
/// selects then finds every field it needs, of its type.
fn quick_parse(body: &str) -> Option<Result<ComplianceEvent, EventError>> {
    // The typed structs also accept a JSON array (fields by position), which the probe
    // mostly rejects as a syntax error: only objects are taken here.
    if !body
        .trim_start_matches([' ', '\n', '\t', '\r'])
        .starts_with('{')
    {
        return None;
    }
    let e: Envelope<'_> = serde_json::from_str(body).ok()?;
    if e.kind == Some("Notification") {
        let (Some(message_id), Some(message)) = (e.message_id, e.message) else {
            return None;
        };
        let detail = serde_json::from_str(&message).ok()?;
        return Some(Ok(ComplianceEvent {
            event_id: message_id,
            delivery: Delivery::Sns,
            time: e.timestamp,
            detail,
        }));
    }
    let (Some(_), Some(id), Some(detail_type), Some(source), Some(time), Some(_), Some(detail)) = (
        e.version,
        e.id,
        e.detail_type,
        e.source,
        e.time,
        e.region,
        e.detail,
    ) else {
        return None;
    };
    Some(
        validate_envelope(&id, detail_type, source).map(|()| ComplianceEvent {
            event_id: id,
            delivery: Delivery::EventBridge,
            time: Some(time),
            detail,
        }),
    )
}

/// The event, by the careful way: a probe for the envelope's kind, then a typed pass that
/// tracks the path, so an error names the field. Does not validate the detail.
fn parse_carefully(body: &str) -> Result<ComplianceEvent, EventError> {
    let is_sns = match serde_json::from_str::<Probe>(body) {
        Ok(p) => p.kind.as_ref().and_then(|t| t.as_str()) == Some("Notification"),
        Err(e) if e.is_syntax() || e.is_eof() => return Err(EventError::NotJson(e.to_string())),
        // Valid JSON of another shape: the typed pass says what is wrong with it.
        Err(_) => false,
    };
    if is_sns {
        let sns: SnsNotification = typed(body, "")?;
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&sns.message) {
            return Err(EventError::invalid(
                "Message",
                format!("SNS message is not JSON: {e}"),
            ));
        }
        let detail: ComplianceChangeDetail = typed(&sns.message, "Message.")?;
        Ok(ComplianceEvent {
            event_id: sns.message_id,
            delivery: Delivery::Sns,
            time: sns.timestamp,
            detail,
        })
    } else {
        let envelope: EventBridgeEvent<ComplianceChangeDetail> = typed(body, "")?;
        validate_envelope(&envelope.id, &envelope.detail_type, &envelope.source)?;
        Ok(ComplianceEvent {
            event_id: envelope.id,
            delivery: Delivery::EventBridge,
            time: Some(envelope.time),
            detail: envelope.detail,
        })
    }
}

/// Just the SNS envelope's `Type`, when there is one.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "Type")]
    kind: Option<serde_json::Value>,
}

fn typed<T: DeserializeOwned>(text: &str, prefix: &str) -> Result<T, EventError> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            prefix.trim_end_matches('.').to_string()
        } else {
            format!("{prefix}{path}")
        };
        EventError::Shape {
            path: if path.is_empty() {
                "(top level)".into()
            } else {
                path
            },
            message: e.into_inner().to_string(),
        }
    })
}

/// Checks an EventBridge envelope's `id`, `detail-type` and `source`.
fn validate_envelope(id: &str, detail_type: &str, source: &str) -> Result<(), EventError> {
    if detail_type != COMPLIANCE_CHANGE_DETAIL_TYPE {
        return Err(EventError::invalid(
            "detail-type",
            format!("expected {COMPLIANCE_CHANGE_DETAIL_TYPE:?}, got {detail_type:?}"),
        ));
    }
    if source != CONFIG_SOURCE {
        return Err(EventError::invalid(
            "source",
            format!("expected {CONFIG_SOURCE:?}, got {source:?}"),
        ));
    }
    if id.is_empty() {
        return Err(EventError::invalid("id", "must not be empty"));
    }
    Ok(())
}

fn validate_detail(d: &ComplianceChangeDetail) -> Result<(), EventError> {
    if d.message_type != COMPLIANCE_CHANGE_MESSAGE_TYPE {
        return Err(EventError::invalid(
            "detail.messageType",
            format!(
                "expected {COMPLIANCE_CHANGE_MESSAGE_TYPE:?}, got {:?}",
                d.message_type
            ),
        ));
    }
    crate::validate::resource_id(&d.resource_type, &d.resource_id)
        .map_err(|m| EventError::invalid("detail.resourceId", m))?;
    crate::validate::resource_type(&d.resource_type)
        .map_err(|m| EventError::invalid("detail.resourceType", m))?;
    crate::validate::account(&d.aws_account_id)
        .map_err(|m| EventError::invalid("detail.awsAccountId", m))?;
    crate::validate::region(&d.aws_region)
        .map_err(|m| EventError::invalid("detail.awsRegion", m))?;
    crate::validate::rule_name(&d.config_rule_name)
        .map_err(|m| EventError::invalid("detail.configRuleName", m))?;
    if let Some(arn) = &d.config_rule_arn {
        crate::validate::rule_arn(arn, &d.aws_account_id, &d.aws_region)
            .map_err(|m| EventError::invalid("detail.configRuleARN", m))?;
    }
    let q = &d
        .new_evaluation_result
        .evaluation_result_identifier
        .evaluation_result_qualifier;
    let agree = |field: &str, theirs: &Option<String>, ours: &str| {
        match theirs {
        Some(v) if v != ours => Err(EventError::invalid(
            &format!("detail.newEvaluationResult.evaluationResultIdentifier.evaluationResultQualifier.{field}"),
            format!("{v:?} disagrees with detail.{field} {ours:?}"),
        )),
        _ => Ok(()),
    }
    };
    agree("resourceId", &q.resource_id, &d.resource_id)?;
    agree("resourceType", &q.resource_type, &d.resource_type)?;
    agree("configRuleName", &q.config_rule_name, &d.config_rule_name)?;
    Ok(())
}

impl ComplianceEvent {
    /// The evaluation's compliance.
    pub fn compliance(&self) -> &ComplianceType {
        &self.detail.new_evaluation_result.compliance_type
    }

    /// The rule's annotation, if any.
    pub fn annotation(&self) -> Option<&str> {
        self.detail.new_evaluation_result.annotation.as_deref()
    }

    /// What a policy rule is matched against.
    pub fn subject(&self) -> crate::policy::Subject<'_> {
        crate::policy::Subject {
            config_rule_name: &self.detail.config_rule_name,
            resource_type: &self.detail.resource_type,
            config_rule_arn: self.detail.config_rule_arn.as_deref(),
            annotation: self.annotation(),
        }
    }

    /// When the evaluation was recorded: identifies this evaluation (with rule and resource).
    pub fn evaluation_time(&self) -> Option<&str> {
        let r = &self.detail.new_evaluation_result;
        r.result_recorded_time
            .as_deref()
            .or(r.evaluation_result_identifier.ordering_timestamp.as_deref())
    }
}

#[cfg(test)]
mod stored_result_tests {
    use super::*;

    #[test]
    fn a_swept_result_is_a_valid_event_with_a_stable_id() {
        let r = StoredResult {
            rule: "restricted-ssh",
            rule_arn: Some("arn:aws:config:eu-west-1:111122223333:config-rule/config-rule-ab12cd"),
            resource_type: "AWS::EC2::SecurityGroup",
            resource_id: "sg-0a1b2c3d4e5f60718",
            account: "111122223333",
            region: "eu-west-1",
            compliance: "NON_COMPLIANT",
            annotation: Some("port 22 open"),
            recorded_at: Some("2026-12-01T06:00:00.000Z"),
            invoked_at: None,
        };
        let body = serde_json::to_string(&r.as_event("2026-12-01T07:00:00Z")).unwrap();
        let e = parse_message(&body).unwrap();
        assert_eq!(e.detail.resource_id, "sg-0a1b2c3d4e5f60718");
        assert!(e.compliance().is_non_compliant());
        assert_eq!(e.evaluation_time(), Some("2026-12-01T06:00:00.000Z"));
        assert_eq!(e.subject().config_rule_arn, r.rule_arn);
        // Swept again later: the same finding.
        let again = r.as_event("2026-12-02T07:00:00Z");
        assert_eq!(again.id, e.event_id);
        let other = StoredResult {
            resource_id: "sg-0b1b2c3d4e5f60718",
            ..r
        };
        assert_ne!(other.as_event("x").id, e.event_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/events")
    }

    fn read(name: &str) -> String {
        std::fs::read_to_string(fixtures().join(name)).unwrap()
    }

    #[test]
    fn every_good_fixture_parses_and_round_trips() {
        let mut seen = 0;
        for entry in std::fs::read_dir(fixtures()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let body = std::fs::read_to_string(&path).unwrap();
            let event =
                parse_message(&body).unwrap_or_else(|e| panic!("{} rejected: {e}", path.display()));
            // Re-serialise the detail and parse it again: nothing is lost or invented.
            let again: ComplianceChangeDetail =
                serde_json::from_str(&serde_json::to_string(&event.detail).unwrap()).unwrap();
            assert_eq!(again, event.detail, "{}", path.display());
            seen += 1;
        }
        assert!(seen >= 7, "expected the 7 good fixtures, saw {seen}");
    }

    #[test]
    fn every_bad_fixture_is_rejected_naming_the_field() {
        let expect = [
            ("missing-resource-id.json", "resourceId"),
            ("not-json.txt", "not JSON"),
            ("empty-object.json", "missing field"),
            ("wrong-detail-type.json", "detail-type"),
            ("resource-id-injection.json", "detail.resourceId"),
            ("compliance-type-wrong-type.json", "complianceType"),
        ];
        let dir = fixtures().join("bad");
        let count = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(count, expect.len(), "a bad fixture has no expectation here");
        for (name, needle) in expect {
            let body = std::fs::read_to_string(dir.join(name)).unwrap();
            let err = parse_message(&body).expect_err(name).to_string();
            assert!(err.contains(needle), "{name}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn optional_fields_may_be_absent() {
        let e = parse_message(&read("first-evaluation-no-old-result.json")).unwrap();
        assert!(e.detail.old_evaluation_result.is_none());
        assert_eq!(e.detail.aws_account_id, "111122223333");
        assert!(e.annotation().is_none());
    }

    #[test]
    fn sns_form_normalises_to_the_same_detail() {
        let sns = parse_message(&read("sns-wrapped-compliance-change.json")).unwrap();
        let eb = parse_message(&read("sg-ssh-open-noncompliant.json")).unwrap();
        assert_eq!(sns.delivery, Delivery::Sns);
        assert_eq!(sns.event_id, "5f1d7a2c-98e4-5b3a-a6c1-0e2d4f6b8a9c");
        assert_eq!(sns.detail.resource_id, eb.detail.resource_id);
        assert_eq!(sns.detail.config_rule_name, eb.detail.config_rule_name);
        assert!(sns.compliance().is_non_compliant());
    }

    #[test]
    fn sns_with_bad_inner_message_names_message() {
        let body = r#"{"Type":"Notification","MessageId":"m","Message":"{not json"}"#;
        let err = parse_message(body).unwrap_err().to_string();
        assert!(err.starts_with("Message"), "{err}");
    }

    #[test]
    fn qualifier_must_agree_with_detail() {
        let body = read("sg-ssh-open-noncompliant.json").replacen(
            "\"resourceId\": \"sg-0a1b2c3d4e5f60718\",\n          \"evaluationMode\"",
            "\"resourceId\": \"sg-0000000000000000\",\n          \"evaluationMode\"",
            1,
        );
        let err = parse_message(&body).unwrap_err().to_string();
        assert!(err.contains("disagrees"), "{err}");
    }

    #[test]
    fn unknown_compliance_values_are_kept_not_rejected() {
        let body =
            read("sg-ssh-open-noncompliant.json").replace("\"NON_COMPLIANT\"", "\"SOMETHING_NEW\"");
        let e = parse_message(&body).unwrap();
        assert_eq!(e.compliance().as_str(), "SOMETHING_NEW");
    }
}

#[cfg(test)]
mod prop {
    use super::*;
    use proptest::prelude::*;

    fn good() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/events/sg-ssh-open-noncompliant.json"
        ))
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn never_panics_on_arbitrary_text(s in ".{0,400}") {
            let _ = parse_message(&s);
        }

        /// A real event with one byte replaced either parses or is rejected; never a panic,
        /// and whatever parses passes validation (no injection characters in the id).
        #[test]
        fn mutated_events_parse_or_are_rejected(pos in 0usize..2600, byte in any::<u8>()) {
            let mut bytes = good().into_bytes();
            let i = pos % bytes.len();
            bytes[i] = byte;
            let s = String::from_utf8_lossy(&bytes);
            if let Ok(e) = parse_message(&s) {
                prop_assert!(crate::validate::resource_id(&e.detail.resource_type, &e.detail.resource_id).is_ok());
            }
        }
    }
}

/// The quick path of [`parse_message`] must decide exactly as the careful one: the same
/// events accepted, the same values, the same errors.
#[cfg(test)]
mod quick_path {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::{select, Index};
    use std::path::PathBuf;

    /// What `parse_message` did before it had a quick path.
    fn careful(body: &str) -> Result<ComplianceEvent, EventError> {
        let event = parse_carefully(body)?;
        validate_detail(&event.detail)?;
        Ok(event)
    }

    /// Every event fixture's text, good and bad.
    fn corpus() -> Vec<String> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/events");
        let mut texts = Vec::new();
        for d in [dir.clone(), dir.join("bad")] {
            for entry in std::fs::read_dir(d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    texts.push(std::fs::read_to_string(path).unwrap());
                }
            }
        }
        texts.sort();
        texts
    }

    #[test]
    fn every_good_fixture_takes_the_quick_path() {
        let mut quick = 0;
        for body in corpus() {
            if let Some(event) = quick_parse(&body) {
                assert_eq!(event, parse_carefully(&body), "{body}");
                quick += 1;
            }
        }
        // The 7 good fixtures, and the bad ones whose JSON is whole and whose envelope
        // is wrong (detail-type) or whose detail is invalid (the injected resource id).
        assert!(quick >= 9, "only {quick} fixtures took the quick path");
    }

    #[test]
    fn escapes_and_odd_shapes_decide_as_before() {
        let good = corpus()
            .into_iter()
            .find(|t| t.contains("sg-0a1b2c3d4e5f60718") && t.contains("\"detail-type\""))
            .unwrap();
        let cases = [
            // An escape where the quick path borrows: the careful path takes it.
            good.replacen("\"aws.config\"", "\"aws\\u002econfig\"", 1),
            good.replacen(
                "\"eu-west-1\",\n  \"resources\"",
                "\"eu\\u002dwest-1\",\n  \"resources\"",
                1,
            ),
            good.replacen("{", "{\"Type\": \"Notific\\u0061tion\",", 1),
            // Types and nulls where the careful path wants a value.
            good.replacen("{", "{\"Type\": 5,", 1),
            good.replacen("{", "{\"Type\": \"Other\",", 1),
            good.replacen("{", "{\"Type\": \"Notification\",", 1),
            good.replacen("\"resources\": []", "\"resources\": null", 1),
            good.replacen("\"resources\": []", "\"resources\": [\"a\", 1]", 1),
            good.replacen("\"version\": \"0\"", "\"version\": null", 1),
            good.replacen("\"account\": \"111122223333\"", "\"account\": null", 1),
            good.replacen("{", "{\"MessageId\": 7,", 1),
            good.replacen("{", "{\"id\": \"dup\",", 1),
            good.replacen("{", "{\"Type\": \"x\", \"Type\": \"y\",", 1),
            format!("[{good}]"),
            format!("  \n{good}\n "),
            format!("{good} x"),
            "[\"0\",\"i\",\"Config Rules Compliance Change\",\"aws.config\",null,\"t\",\"r\",[]]"
                .into(),
            "{\"Type\":\"Notification\",\"MessageId\":\"m\",\"Message\":\"{}\"}".into(),
            "{\"Type\":\"Notification\",\"MessageId\":\"m\",\"Message\":\"[1] x\"}".into(),
        ];
        for body in cases {
            assert_eq!(parse_message(&body), careful(&body), "{body}");
        }
    }

    /// A snippet the proptest writes just after an opening brace.
    const SNIPPETS: &[&str] = &[
        "\"Type\":\"Notification\",",
        "\"Type\":null,",
        "\"Type\":[1],",
        "\"id\":null,",
        "\"id\":\"\",",
        "\"detail\":null,",
        "\"resources\":null,",
        "\"account\":\"\\u0031\",",
        "\"Message\":\"{}\",",
        "\"MessageId\":\"m\",",
        "\"TopicArn\":1,",
        "\"Timestamp\":null,",
        "\"resourceId\":\"sg-1\",",
        "\"configRuleARN\":null,",
        "\"x\":{\"y\":[1e400]},",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Mutated fixtures (a byte replaced, a snippet inserted after a brace, a range
        /// cut) get the careful path's answer, whichever path reads them.
        #[test]
        fn mutated_fixtures_decide_as_before(
            file in any::<Index>(),
            pos in any::<Index>(),
            byte in select(b"\"\\{}[]:,n0 \x01aZ-".to_vec()),
            snippet in select(SNIPPETS),
            cut in 0usize..40,
            edit in 0u8..3,
        ) {
            let corpus = corpus();
            let text = &corpus[file.index(corpus.len())];
            let body = match edit {
                0 => {
                    let mut bytes = text.clone().into_bytes();
                    let i = pos.index(bytes.len().max(1)).min(bytes.len().saturating_sub(1));
                    if !bytes.is_empty() {
                        bytes[i] = byte;
                    }
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                1 => {
                    let braces: Vec<usize> = text.match_indices('{').map(|(i, _)| i + 1).collect();
                    let mut body = text.clone();
                    if !braces.is_empty() {
                        body.insert_str(braces[pos.index(braces.len())], snippet);
                    }
                    body
                }
                _ => {
                    let start = pos.index(text.len().max(1)).min(text.len());
                    let end = (start + cut).min(text.len());
                    let bytes = [&text.as_bytes()[..start], &text.as_bytes()[end..]].concat();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
            };
            prop_assert_eq!(parse_message(&body), careful(&body), "{}", body);
        }
    }
}
