//! The parameter fixes through a real SSM client whose responses come from
//! `aws-smithy-mocks` rules. A rule matches only the request the fix must send (name,
//! value, type, key, overwrite), so a request of another shape finds no rule and fails the
//! test; counting a rule's calls shows what was never sent.

use super::*;
use crate::aws::retry::ErrorClass;
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterOutput;
use aws_sdk_ssm::operation::describe_parameters::DescribeParametersOutput;
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
use aws_sdk_ssm::types::{Parameter, ParameterMetadata, ParameterType};
use aws_sdk_ssm::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_types::DateTime;
use redress::ledger::{Change, ParameterVersion};
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing::instrument::WithSubscriber;

const BASELINES: &str = "/{app}/approved/";
const CURRENT: &str = "/{app}/current/";
const NAME: &str = "/payments/current/db/password";
const BASELINE: &str = "/payments/approved/db/password";
/// The value under test; it must never reach a log line, a detail or an error.
const SECRET: &str = "s3cr3t-approved-value";
/// Another secret: what the current parameter (or a copy) holds instead.
const OTHER: &str = "s3cr3t-other-value";
const KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6";
/// When the parameters in these tests were written (Unix seconds).
const WRITTEN: i64 = 1_764_578_400;

fn parameter(name: &str, value: &str, kind: ParameterType, version: i64, at: i64) -> Parameter {
    Parameter::builder()
        .name(name)
        .value(value)
        .r#type(kind)
        .version(version)
        .last_modified_date(DateTime::from_secs(at))
        .build()
}

/// A SecureString holding `value`, as the tests' parameters mostly are.
fn secure(name: &str, value: &str, version: i64) -> Parameter {
    parameter(name, value, ParameterType::SecureString, version, WRITTEN)
}

/// Where the copy of [`NAME`] at `p`'s state must go, spelled out independently of
/// `quarantine_name`.
fn copy_of(p: &Parameter) -> String {
    format!(
        "/redress/quarantine{NAME}/{}-v{}",
        p.last_modified_date().unwrap().secs(),
        p.version()
    )
}

/// The body of an SSM (awsJson1.1) error, so the real client parses the code.
fn ssm_error(code: &str) -> String {
    serde_json::json!({"__type": code, "message": format!("{code} (mock)")}).to_string()
}

/// `GetParameter` (decrypted) of `name` answers these states in turn, the last one from
/// then on.
fn reads(name: impl Into<String>, states: Vec<Parameter>) -> Rule {
    let name = name.into();
    let mut sequence = mock!(Client::get_parameter)
        .match_requests(move |r| {
            r.name() == Some(name.as_str()) && r.with_decryption() == Some(true)
        })
        .sequence();
    for state in states {
        sequence = sequence.output(move || {
            GetParameterOutput::builder()
                .parameter(state.clone())
                .build()
        });
    }
    sequence.repeatedly().build()
}

/// `GetParameter` (decrypted) of `name` always answers `state`.
fn holds(name: impl Into<String>, state: Parameter) -> Rule {
    reads(name, vec![state])
}

/// `GetParameter` of `name` always answers that it does not exist.
fn absent(name: impl Into<String>) -> Rule {
    let name = name.into();
    mock!(Client::get_parameter)
        .match_requests(move |r| r.name() == Some(name.as_str()))
        .sequence()
        .http_status(400, Some(ssm_error("ParameterNotFound")))
        .repeatedly()
        .build()
}

/// `DescribeParameters` filtered on `name` answers that it is encrypted with [`KEY`].
fn keyed(name: &'static str) -> Rule {
    mock!(Client::describe_parameters)
        .match_requests(move |r| {
            r.parameter_filters()
                .iter()
                .any(|f| f.key() == "Name" && f.option() == Some("Equals") && f.values() == [name])
        })
        .then_output(move || {
            DescribeParametersOutput::builder()
                .parameters(
                    ParameterMetadata::builder()
                        .name(name)
                        .r#type(ParameterType::SecureString)
                        .key_id(KEY)
                        .build(),
                )
                .build()
        })
}

/// `PutParameter` of [`SECRET`] to `name` as a SecureString under [`KEY`], with
/// `overwrite` as given (`false` also accepts it absent, which SSM reads as false);
/// answers version `version`, or `ParameterAlreadyExists` when `version` is `None`.
fn writes_secret(name: impl Into<String>, overwrite: bool, version: Option<i64>) -> Rule {
    let name = name.into();
    let rule = mock!(Client::put_parameter).match_requests(move |r| {
        r.name() == Some(name.as_str())
            && r.value() == Some(SECRET)
            && r.r#type() == Some(&ParameterType::SecureString)
            && r.key_id() == Some(KEY)
            && r.overwrite().unwrap_or(false) == overwrite
    });
    match version {
        Some(v) => rule.then_output(move || PutParameterOutput::builder().version(v).build()),
        None => rule
            .sequence()
            .http_status(400, Some(ssm_error("ParameterAlreadyExists")))
            .repeatedly()
            .build(),
    }
}

fn client(rules: &[&Rule]) -> Parameters {
    Parameters::new(mock_client!(aws_sdk_ssm, RuleMode::MatchAny, rules))
}

/// A log sink shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs a fix with every event at DEBUG and above (ours and the SDK's) captured, and
/// checks that neither those events nor what the fix returns show a secret value.
async fn run(fix: impl Future<Output = FixResult>) -> FixResult {
    let sink = Captured::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let result = fix.with_subscriber(subscriber).await;
    let logs = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "the SDK's events were captured");
    let returned = format!("{result:?}");
    for secret in [SECRET, OTHER] {
        assert!(!logs.contains(secret), "a secret was logged:\n{logs}");
        assert!(
            !returned.contains(secret),
            "a secret was returned: {returned}"
        );
    }
    result
}

// --- delete_unauthorized ---

/// The rules of a delete: [`BASELINE`] absent, [`NAME`] read as `states` in turn (and
/// encrypted with [`KEY`]), the copy either created or found `existing`, and the delete,
/// which matches only once the copy was attempted.
struct Delete {
    rules: Vec<Rule>,
    copy: Rule,
    delete: Rule,
}

impl Delete {
    fn new(states: Vec<Parameter>, existing: Option<Parameter>) -> Self {
        let copy_name = copy_of(&states[0]);
        let (copy, kept) = match existing {
            None => (
                writes_secret(&copy_name, false, Some(1)),
                secure(&copy_name, SECRET, 1),
            ),
            Some(existing) => (writes_secret(&copy_name, false, None), existing),
        };
        let copied = copy.clone();
        let delete = mock!(Client::delete_parameter)
            .match_requests(move |r| r.name() == Some(NAME) && copied.num_calls() == 1)
            .then_output(|| DeleteParameterOutput::builder().build());
        Delete {
            rules: vec![
                absent(BASELINE),
                reads(NAME, states),
                keyed(NAME),
                holds(copy_name, kept),
            ],
            copy,
            delete,
        }
    }

    /// Runs the fix against these rules, `first` taking precedence over them.
    async fn run(&self, first: &[&Rule]) -> FixResult {
        let mut rules = first.to_vec();
        rules.extend(&self.rules);
        rules.extend([&self.copy, &self.delete]);
        run(delete_unauthorized(
            &client(&rules),
            NAME,
            BASELINES,
            CURRENT,
        ))
        .await
    }
}

#[tokio::test]
async fn a_parameter_with_a_baseline_is_refused_and_nothing_is_written() {
    let world = Delete::new(vec![secure(NAME, SECRET, 3); 2], None);
    let baseline = holds(BASELINE, secure(BASELINE, OTHER, 1));
    let err = world.run(&[&baseline]).await.unwrap_err();
    assert!(err.refused, "{err:?}");
    assert!(err.message.contains("has a baseline"), "{}", err.message);
    assert_eq!(baseline.num_calls(), 1);
    assert_eq!((world.copy.num_calls(), world.delete.num_calls()), (0, 0));
}

#[tokio::test]
async fn a_parameter_is_copied_with_its_type_and_key_then_deleted() {
    let world = Delete::new(vec![secure(NAME, SECRET, 3); 2], None);
    let done = world.run(&[]).await.unwrap();
    assert_eq!(done.outcome, Outcome::Succeeded);
    let copy = copy_of(&secure(NAME, SECRET, 3));
    assert_eq!(
        copy,
        "/redress/quarantine/payments/current/db/password/1764578400-v3"
    );
    assert!(done.detail.contains(&copy), "{}", done.detail);
    assert_eq!(
        done.change,
        Some(Change::DeleteParameter {
            name: NAME.into(),
            before: ParameterVersion {
                version: 3,
                value_type: "SecureString".into(),
                key_id: Some(KEY.into()),
            },
            quarantine_copy: copy.clone(),
        })
    );
    // The copy was written once without overwriting, with the value, type and key
    // (the rule matches nothing else), and the original deleted after it.
    assert_eq!((world.copy.num_calls(), world.delete.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_parameter_written_while_it_was_copied_is_not_deleted() {
    let world = Delete::new(vec![secure(NAME, SECRET, 3), secure(NAME, OTHER, 4)], None);
    let err = world.run(&[]).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err:?}");
    assert!(!err.refused);
    assert_eq!((world.copy.num_calls(), world.delete.num_calls()), (1, 0));
}

#[tokio::test]
async fn a_parameter_deleted_and_created_again_while_it_was_copied_is_not_deleted() {
    // The same version number (a new parameter starts at 1 again), a later write, another
    // value: the copy does not hold what a delete would now erase.
    let recreated = parameter(NAME, OTHER, ParameterType::SecureString, 1, WRITTEN + 1);
    let world = Delete::new(vec![secure(NAME, SECRET, 1), recreated], None);
    let err = world.run(&[]).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::Transient, "{err:?}");
    assert_eq!((world.copy.num_calls(), world.delete.num_calls()), (1, 0));
}

#[tokio::test]
async fn an_existing_copy_of_the_same_state_is_kept_and_the_delete_goes_ahead() {
    // An earlier attempt made the copy and stopped before deleting.
    let copy = copy_of(&secure(NAME, SECRET, 3));
    let world = Delete::new(
        vec![secure(NAME, SECRET, 3); 2],
        Some(secure(&copy, SECRET, 1)),
    );
    let done = world.run(&[]).await.unwrap();
    assert_eq!(done.outcome, Outcome::Succeeded);
    assert_eq!((world.copy.num_calls(), world.delete.num_calls()), (1, 1));
}

#[tokio::test]
async fn an_existing_copy_that_holds_something_else_is_neither_overwritten_nor_trusted() {
    let copy = copy_of(&secure(NAME, SECRET, 3));
    let others = [
        secure(&copy, OTHER, 1),
        // The same characters, but readable by anyone who can read a String.
        parameter(&copy, SECRET, ParameterType::String, 1, WRITTEN),
    ];
    for existing in others {
        let world = Delete::new(vec![secure(NAME, SECRET, 3); 2], Some(existing));
        let err = world.run(&[]).await.unwrap_err();
        assert!(err.refused, "{err:?}");
        assert!(err.message.contains("is not deleted"), "{}", err.message);
        assert_eq!((world.copy.num_calls(), world.delete.num_calls()), (1, 0));
    }
}

#[tokio::test]
async fn a_parameter_already_gone_is_compliant_and_nothing_is_written() {
    let world = Delete::new(vec![secure(NAME, SECRET, 3)], None);
    let gone = absent(NAME);
    let done = world.run(&[&gone]).await.unwrap();
    assert_eq!(done.outcome, Outcome::AlreadyCompliant);
    assert_eq!((world.copy.num_calls(), world.delete.num_calls()), (0, 0));
}

// --- create_from_baseline ---

/// The rules of a create: [`BASELINE`] holds [`SECRET`] as a SecureString under
/// [`KEY`]; creating [`NAME`] answers `created` (see [`writes_secret`]); [`NAME`] then
/// reads as `after`.
fn create(created: Option<i64>, after: Parameter) -> (Vec<Rule>, Rule) {
    let put = writes_secret(NAME, false, created);
    let rules = vec![
        holds(BASELINE, secure(BASELINE, SECRET, 2)),
        keyed(BASELINE),
        holds(NAME, after),
    ];
    (rules, put)
}

async fn run_create(rules: &[Rule], put: &Rule) -> FixResult {
    let mut all: Vec<&Rule> = rules.iter().collect();
    all.push(put);
    run(create_from_baseline(
        &client(&all),
        NAME,
        BASELINES,
        CURRENT,
    ))
    .await
}

#[tokio::test]
async fn a_secure_baseline_is_created_as_a_secure_string_with_its_key_and_no_overwrite() {
    let (rules, put) = create(Some(1), secure(NAME, SECRET, 1));
    let done = run_create(&rules, &put).await.unwrap();
    assert_eq!(done.outcome, Outcome::Succeeded);
    assert!(done.detail.contains("SecureString"), "{}", done.detail);
    assert_eq!(put.num_calls(), 1);
    let Some(Change::CreateParameter { source, after, .. }) = &done.change else {
        panic!("{:?}", done.change)
    };
    assert_eq!(source, BASELINE);
    assert_eq!(
        after.as_ref().map(|v| (v.version, v.key_id.as_deref())),
        Some((1, Some(KEY)))
    );
}

#[tokio::test]
async fn an_existing_current_parameter_is_not_overwritten() {
    let others = [
        secure(NAME, OTHER, 5),
        parameter(NAME, SECRET, ParameterType::String, 5, WRITTEN),
    ];
    for existing in others {
        let (rules, put) = create(None, existing);
        let err = run_create(&rules, &put).await.unwrap_err();
        assert!(err.refused, "{err:?}");
        assert!(
            err.message.contains("does not overwrite"),
            "{}",
            err.message
        );
        // One create without overwrite; no second, overwriting write (it matches no rule).
        assert_eq!(put.num_calls(), 1);
    }
}

#[tokio::test]
async fn an_existing_current_parameter_equal_to_its_baseline_is_compliant() {
    let (rules, put) = create(None, secure(NAME, SECRET, 1));
    let done = run_create(&rules, &put).await.unwrap();
    assert_eq!(done.outcome, Outcome::AlreadyCompliant);
    assert_eq!(put.num_calls(), 1);
}

// --- restore_baseline ---

#[tokio::test]
async fn a_drifted_secure_string_is_overwritten_with_its_baseline_value_type_and_key() {
    let put = writes_secret(NAME, true, Some(4));
    let rules = [
        holds(BASELINE, secure(BASELINE, SECRET, 2)),
        keyed(BASELINE),
        reads(NAME, vec![secure(NAME, OTHER, 3), secure(NAME, SECRET, 4)]),
        keyed(NAME),
        put.clone(),
    ];
    let params = client(&rules.iter().collect::<Vec<_>>());
    let done = run(restore_baseline(&params, NAME, BASELINES, CURRENT))
        .await
        .unwrap();
    assert_eq!(done.outcome, Outcome::Succeeded);
    assert_eq!(put.num_calls(), 1);
    // The ledger learns the version replaced and the one written, never a value.
    let version = |version| ParameterVersion {
        version,
        value_type: "SecureString".into(),
        key_id: Some(KEY.into()),
    };
    assert_eq!(
        done.change,
        Some(Change::RestoreParameter {
            name: NAME.into(),
            before: version(3),
            after: Some(version(4)),
        })
    );
}

#[tokio::test]
async fn a_secure_baseline_is_not_written_into_a_plain_string() {
    let put = writes_secret(NAME, true, Some(4));
    let rules = [
        holds(BASELINE, secure(BASELINE, SECRET, 2)),
        keyed(BASELINE),
        holds(
            NAME,
            parameter(NAME, OTHER, ParameterType::String, 3, WRITTEN),
        ),
        put.clone(),
    ];
    let params = client(&rules.iter().collect::<Vec<_>>());
    let err = run(restore_baseline(&params, NAME, BASELINES, CURRENT))
        .await
        .unwrap_err();
    assert!(err.refused, "{err:?}");
    assert_eq!(put.num_calls(), 0);
}

// --- quarantine_name ---

fn read(version: i64, modified: i64) -> Read {
    Read {
        value: "v".into(),
        kind: "String".into(),
        version,
        modified,
    }
}

#[test]
fn a_copy_is_named_by_the_state_it_keeps_and_fits_parameter_store() {
    let name = "/payments/current/debug";
    let copy = quarantine_name(name, &read(3, 1_764_578_400)).unwrap();
    assert_eq!(
        copy,
        "/redress/quarantine/payments/current/debug/1764578400-v3"
    );
    // The same state, the same name (a retry finds its copy); another, another.
    assert_eq!(
        copy,
        quarantine_name(name, &read(3, 1_764_578_400)).unwrap()
    );
    assert_ne!(
        copy,
        quarantine_name(name, &read(1, 1_764_578_999)).unwrap()
    );
    // 13 levels already: the copy would have 16, more than Parameter Store allows.
    let deep = format!("/{}x", "a/".repeat(12));
    assert!(quarantine_name(&deep, &read(1, 0)).is_err());
    assert!(quarantine_name(&format!("/{}", "x".repeat(1000)), &read(1, 0)).is_err());
}
