//! The ledger table through a real DynamoDB client whose responses come from
//! `aws-smithy-mocks` rules: each rule matches only the request the seam must send
//! (table, condition, names, values, item), so a request of another shape finds no rule
//! and fails the test.

use super::*;
use crate::aws::retry::ErrorClass;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use redress::ledger::{lease, Actor, Change, Lease, Status};
use redress::message::Task;
use redress::policy::{Fix, RenderedAction, Severity};
use std::time::UNIX_EPOCH;

const TABLE: &str = "redress-ledger";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_790_000_000 + secs)
}

fn task() -> Task {
    Task::new(
        "sg-admin",
        Severity::Medium,
        crate::test_support::ssh_finding(&redress::time::format_rfc3339(at(0))),
    )
}

/// A new intent of executor `holder`, its lease until `at(70)`.
fn intent(holder: &str) -> LedgerEntry {
    let action = RenderedAction::Fix(Fix::RevokePublicIngress {
        ports: Some(vec![22]),
    });
    let mut e = LedgerEntry::for_task(&task(), action, Status::Intent, at(10)).unwrap();
    e.actor = Some(Actor::Automatic);
    lease::take(&mut e, holder, at(10), Duration::from_secs(60)).unwrap();
    e
}

fn client(rules: &[&Rule]) -> LedgerTable {
    LedgerTable::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules),
        TABLE,
    )
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// `PutItem` to [`TABLE`] of `entry`'s item on exactly this condition, answering
/// success.
fn put(entry: &LedgerEntry, expression: &'static str, values: &[(&str, &str)]) -> Rule {
    let item = to_sdk_item(&entry.to_item(None));
    let values: HashMap<String, AttributeValue> =
        values.iter().map(|(k, v)| (k.to_string(), s(v))).collect();
    mock!(Client::put_item)
        .match_requests(move |r| {
            r.table_name() == Some(TABLE)
                && r.condition_expression() == Some(expression)
                && r.item() == Some(&item)
                && r.expression_attribute_values().cloned().unwrap_or_default() == values
                && r.expression_attribute_names().is_some_and(|n| {
                    // Every placeholder of the expression is named, and nothing else.
                    n.keys().all(|k| expression.contains(k.as_str()))
                        && expression
                            .split(|c: char| !(c == '#' || c.is_alphanumeric()))
                            .filter(|w| w.starts_with('#'))
                            .all(|w| n.contains_key(w))
                })
        })
        .then_output(|| PutItemOutput::builder().build())
}

#[tokio::test]
async fn a_new_intent_is_written_only_where_no_entry_exists() {
    let e = intent("a");
    let rule = put(&e, "attribute_not_exists(#id)", &[]);
    client(&[&rule])
        .write(&e, &Expect::Absent, None)
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);
    // The item carries the lease and sits in the open index while it is an intent.
    let item = e.to_item(None);
    assert_eq!(item[item::OPEN].as_s(), Some("intent"));
}

#[tokio::test]
async fn taking_over_a_lapsed_lease_names_the_lease_as_read() {
    let stale = intent("a");
    let mut mine = stale.clone();
    lease::take(&mut mine, "b", at(100), Duration::from_secs(60)).unwrap();
    let expect = lease::may_take(Some(&stale), "b", at(100))
        .unwrap()
        .expect("b");
    let rule = put(
        &mine,
        "#status = :status AND #lease.#holder = :holder AND #lease.#expires = :expires",
        &[
            (":status", "intent"),
            (":holder", "a"),
            (":expires", &redress::time::format_rfc3339(at(70))),
        ],
    );
    client(&[&rule]).write(&mine, &expect, None).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn an_outcome_is_written_only_by_the_lease_holder() {
    let mut done = intent("a");
    let expect = lease::may_complete(&done, "a").unwrap();
    done.advance(Status::Succeeded, at(20)).unwrap();
    let rule = put(
        &done,
        "#status = :intent AND #lease.#holder = :holder",
        &[(":intent", "intent"), (":holder", "a")],
    );
    client(&[&rule]).write(&done, &expect, None).await.unwrap();
    assert_eq!(rule.num_calls(), 1);
    assert!(
        !done.to_item(None).contains_key(item::OPEN),
        "the outcome leaves the open index in the same write"
    );
}

#[tokio::test]
async fn a_condition_that_fails_is_someone_else_holding_the_finding() {
    let rule = mock!(Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .build(),
        )
    });
    let err = client(&[&rule])
        .write(&intent("b"), &Expect::Absent, None)
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::HeldByAnother), "{err:?}");
    assert_eq!(
        err.to_string(),
        "someone else holds this finding: its ledger entry changed since it was read"
    );
}

#[tokio::test]
async fn other_failures_stay_aws_errors_with_their_class() {
    let rule = mock!(Client::put_item).then_error(|| {
        PutItemError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not allowed")
                .build(),
        )
    });
    let err = client(&[&rule])
        .write(&intent("b"), &Expect::Absent, None)
        .await
        .unwrap_err();
    let LedgerError::Aws(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (e.operation, e.code.as_str(), e.class),
        (
            "dynamodb:PutItem",
            "AccessDeniedException",
            ErrorClass::Permanent
        )
    );
}

#[tokio::test]
async fn an_entry_is_read_strongly_consistent_and_round_trips() {
    let e = intent("a");
    let stored = to_sdk_item(&e.to_item(None));
    let id = e.id.to_string();
    let found = mock!(Client::get_item)
        .match_requests(move |r| {
            r.table_name() == Some(TABLE)
                && r.consistent_read() == Some(true)
                && r.key().and_then(|k| k.get(item::ID)) == Some(&s(&id))
        })
        .then_output(move || {
            GetItemOutput::builder()
                .set_item(Some(stored.clone()))
                .build()
        });
    let missing = mock!(Client::get_item).then_output(|| GetItemOutput::builder().build());
    let table = client(&[&found]);
    assert_eq!(table.get(&e.id).await.unwrap(), Some(e.clone()));
    assert_eq!(client(&[&missing]).get(&e.id).await.unwrap(), None);
}

#[tokio::test]
async fn an_item_that_is_no_entry_is_refused_with_its_id() {
    let mut stored = to_sdk_item(&intent("a").to_item(None));
    stored.insert("status".into(), s("finished-ish"));
    let rule = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(stored.clone()))
            .build()
    });
    let err = client(&[&rule]).get(&intent("a").id).await.unwrap_err();
    assert!(
        matches!(&err, LedgerError::Unreadable { id, .. } if id.starts_with("le-")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_query_reads_every_page_of_one_partition_since_a_time() {
    let (first, second) = (intent("a"), {
        let mut e = intent("b");
        e.rule_id = "other".into();
        e
    });
    let items = [first.clone(), second.clone()].map(|e| to_sdk_item(&e.to_item(None)));
    let since = redress::time::format_rfc3339(at(5));
    let wanted = move |r: &aws_sdk_dynamodb::operation::query::QueryInput| {
        let values = r.expression_attribute_values().unwrap();
        r.index_name() == Some("by-resource")
            && r.key_condition_expression() == Some("#pk = :pk AND #at >= :since")
            && r.expression_attribute_names().unwrap()["#pk"] == "by_resource"
            && r.expression_attribute_names().unwrap()["#at"] == "at"
            && values[":pk"] == s("sg-0123456789abcdef0")
            && values[":since"] == s(&since)
    };
    let last = HashMap::from([(item::ID.to_string(), s("le-page"))]);
    let page1 = {
        let (item, last) = (items[0].clone(), last.clone());
        let wanted = wanted.clone();
        mock!(Client::query)
            .match_requests(move |r| wanted(r) && r.exclusive_start_key().is_none())
            .then_output(move || {
                QueryOutput::builder()
                    .items(item.clone())
                    .set_last_evaluated_key(Some(last.clone()))
                    .build()
            })
    };
    let page2 = {
        let item = items[1].clone();
        mock!(Client::query)
            .match_requests(move |r| wanted(r) && r.exclusive_start_key() == Some(&last))
            .then_output(move || QueryOutput::builder().items(item.clone()).build())
    };
    let found = client(&[&page1, &page2])
        .query(Index::Resource, "sg-0123456789abcdef0", Some(at(5)))
        .await
        .unwrap();
    assert_eq!(found, vec![first, second]);
    assert_eq!((page1.num_calls(), page2.num_calls()), (1, 1));
}

#[test]
fn values_convert_both_ways_and_foreign_kinds_are_refused() {
    let change = Change::RevokeIngress {
        group_id: "sg-1".into(),
        before: vec![],
        revoked: vec![],
    };
    let mut e = intent("a");
    e.change = Some(change);
    e.lease = Some(Lease::new("a", at(1), Duration::from_secs(5)));
    for (name, v) in e.to_item(Some(Duration::from_secs(60))) {
        assert_eq!(from_sdk(&to_sdk(&v)).unwrap(), v, "{name}");
    }
    assert_eq!(to_sdk(&AttrValue::Null), AttributeValue::Null(true));
    assert!(from_sdk(&AttributeValue::Ss(vec!["x".into()])).is_err());
    let nested = AttributeValue::L(vec![AttributeValue::Ns(vec!["1".into()])]);
    assert!(from_sdk(&nested).is_err(), "found inside a list too");
}

#[test]
fn every_index_is_named_and_keyed_by_an_item_attribute() {
    let names: Vec<&str> = Index::ALL.iter().map(|i| i.name()).collect();
    assert_eq!(
        names,
        ["by-resource", "by-rule", "by-account", "by-day", "open"]
    );
    for i in Index::ALL {
        assert!(
            item::INDEX_ATTRIBUTES.contains(&i.partition()),
            "{}",
            i.name()
        );
    }
}
