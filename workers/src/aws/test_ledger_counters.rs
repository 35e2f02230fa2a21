//! The fleet counters through a real DynamoDB client whose responses come from
//! `aws-smithy-mocks` rules: a take is one conditional `ADD` on the planned item, a
//! condition that does not hold is the cap reached (not an error), and the breaker's
//! outcome comes back with the whole window.

use super::*;
use crate::aws::retry::ErrorClass;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use redress::ledger::limits::Outcomes;
use std::time::{Duration, UNIX_EPOCH};

const TABLE: &str = "redress-ledger";

fn counters(rules: &[&Rule]) -> FleetCounters {
    let table = LedgerTable::new(
        mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules),
        TABLE,
    );
    FleetCounters::new(&table)
}

fn plan() -> TakePlan {
    TakePlan {
        key: "rate#all#1000".into(),
        below: 4,
        expires_at: 63_660,
    }
}

fn condition_failed() -> UpdateItemError {
    UpdateItemError::ConditionalCheckFailedException(
        ConditionalCheckFailedException::builder()
            .message("The conditional request failed")
            .build(),
    )
}

/// `UpdateItem` of the planned counter, below the planned bound: it succeeds when
/// `taken`, else its condition fails.
fn take_rule(taken: bool) -> Rule {
    let rule = mock!(Client::update_item).match_requests(|r| {
        let values = r.expression_attribute_values().cloned().unwrap_or_default();
        r.table_name() == Some(TABLE)
            && r.key().and_then(|k| k.get(item::ID))
                == Some(&AttributeValue::S("rate#all#1000".into()))
            && r.update_expression() == Some("ADD #n :one SET #ttl = :ttl")
            && r.condition_expression() == Some("attribute_not_exists(#n) OR #n < :below")
            && r.expression_attribute_names()
                .and_then(|n| n.get("#n"))
                .map(String::as_str)
                == Some(limits::COUNT)
            && values.get(":below") == Some(&n(4))
            && values.get(":one") == Some(&n(1))
            && values.get(":ttl") == Some(&n(63_660))
    });
    if taken {
        rule.then_output(|| UpdateItemOutput::builder().build())
    } else {
        rule.then_error(condition_failed)
    }
}

#[tokio::test]
async fn a_take_is_a_conditional_add_and_a_failed_condition_is_the_cap_reached() {
    let taken = take_rule(true);
    assert!(counters(&[&taken]).take(&plan()).await.unwrap());
    assert_eq!(taken.num_calls(), 1);

    let refused = take_rule(false);
    assert!(
        !counters(&[&refused]).take(&plan()).await.unwrap(),
        "ConditionalCheckFailedException means the cap is spent"
    );
    assert_eq!(refused.num_calls(), 1);
}

#[tokio::test]
async fn a_take_that_cannot_be_made_is_an_error_with_its_class() {
    let rule = mock!(Client::update_item).then_error(|| {
        UpdateItemError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not allowed")
                .build(),
        )
    });
    let e = counters(&[&rule]).take(&plan()).await.unwrap_err();
    assert_eq!(
        (e.operation, e.code.as_str(), e.class),
        (
            "dynamodb:UpdateItem",
            "AccessDeniedException",
            ErrorClass::Permanent
        )
    );
}

#[tokio::test]
async fn an_outcome_returns_the_whole_window_and_opening_is_once() {
    let now = UNIX_EPOCH + Duration::from_secs(60_005);
    let recorded = mock!(Client::update_item)
        .match_requests(|r| {
            r.update_expression() == Some("ADD #outcome :one SET #ttl = :ttl")
                && r.expression_attribute_names()
                    .and_then(|n| n.get("#outcome"))
                    .map(String::as_str)
                    == Some("failed_1000")
                && r.return_values() == Some(&ReturnValue::AllNew)
        })
        .then_output(|| {
            UpdateItemOutput::builder()
                .set_attributes(Some(HashMap::from([
                    (
                        item::ID.into(),
                        AttributeValue::S(limits::BREAKER_KEY.into()),
                    ),
                    ("ok_999".into(), n(2)),
                    ("failed_1000".into(), n(3)),
                ])))
                .build()
        });
    let item = counters(&[&recorded])
        .record(false, now, 70_000)
        .await
        .unwrap();
    assert_eq!(
        item.minutes.get(&1000),
        Some(&Outcomes { ok: 0, failed: 3 })
    );
    assert_eq!(item.tally(Duration::from_secs(600), now), (3, 5));

    let trip = Trip {
        failed: 3,
        total: 5,
        open_until: 60_905,
    };
    let first = mock!(Client::update_item)
        .match_requests(|r| {
            r.condition_expression() == Some("attribute_not_exists(#open) OR #open <= :now")
                && r.expression_attribute_values()
                    .and_then(|v| v.get(":until"))
                    == Some(&n(60_905))
        })
        .then_output(|| UpdateItemOutput::builder().build());
    assert!(counters(&[&first]).open(&trip, now).await.unwrap());
    let already = mock!(Client::update_item).then_error(condition_failed);
    assert!(
        !counters(&[&already]).open(&trip, now).await.unwrap(),
        "another executor opened it first"
    );
}
