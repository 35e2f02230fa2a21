//! The executor's ledger steps through a real DynamoDB client whose responses come from
//! `aws-smithy-mocks` rules: the lease decides who acts, a condition that fails hands the
//! finding back, and the outcome completes the intent.

use super::*;
use crate::aws::ledger::LedgerTable;
use crate::executor::outcome::Done;
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::types::error::ConditionalCheckFailedException;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use redress::policy::Fix;
use std::collections::HashMap;

const LEASE: Duration = Duration::from_secs(600);

fn task() -> Task {
    Task::new(
        "sg-admin",
        redress::policy::Severity::Medium,
        crate::test_support::ssh_finding("2026-05-01T10:00:00Z"),
    )
}

fn action() -> RenderedAction {
    RenderedAction::Fix(Fix::RevokePublicIngress {
        ports: Some(vec![22]),
    })
}

/// The entry as executor `holder` would have written its intent, now.
fn held_by(holder: &str) -> LedgerEntry {
    let now = SystemTime::now();
    let mut e = LedgerEntry::for_task(&task(), action(), Status::Intent, now).unwrap();
    lease::take(&mut e, holder, now, LEASE).unwrap();
    e
}

fn item(e: &LedgerEntry) -> HashMap<String, AttributeValue> {
    e.to_item(None)
        .iter()
        .map(|(k, v)| (k.clone(), crate::aws::ledger::to_sdk(v)))
        .collect()
}

/// `GetItem` answers these entries in turn (`None`: no item), the last from then on.
fn reads(states: Vec<Option<LedgerEntry>>) -> Rule {
    let mut sequence = mock!(Client::get_item).sequence();
    for state in states {
        sequence = sequence.output(move || {
            GetItemOutput::builder()
                .set_item(state.as_ref().map(item))
                .build()
        });
    }
    sequence.repeatedly().build()
}

fn refused() -> Rule {
    mock!(Client::put_item).then_error(|| {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder().build(),
        )
    })
}

fn ledger(holder: &str, rules: &[&Rule]) -> Ledger {
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, rules);
    Ledger::new(
        LedgerTable::new(client, "redress-ledger"),
        holder,
        LEASE,
        None,
    )
}

fn status_of(r: &aws_sdk_dynamodb::operation::put_item::PutItemInput) -> Option<&str> {
    match r.item()?.get("status")? {
        AttributeValue::S(s) => Some(s),
        _ => None,
    }
}

#[tokio::test]
async fn of_two_executors_taking_one_finding_only_the_first_write_acts() {
    // b read no entry; a wrote its intent before b's write, so b's condition fails, and
    // b, reading again, finds a's lease.
    let (get, put) = (reads(vec![None, Some(held_by("a"))]), refused());
    let b = ledger("b", &[&get, &put]);
    let err = b
        .begin(&task(), &action(), Actor::Automatic, None)
        .await
        .unwrap_err();
    let NotNow::Held { why, retry_after } = err else {
        panic!("{err:?}")
    };
    assert!(why.contains("executor a holds the finding until"), "{why}");
    assert!(
        retry_after > MIN_RETRY && retry_after <= MAX_RETRY,
        "{retry_after:?}"
    );
    assert_eq!((get.num_calls(), put.num_calls()), (2, 1));
}

#[tokio::test]
async fn a_live_lease_of_another_executor_is_not_written_over() {
    let (get, put) = (reads(vec![Some(held_by("a"))]), refused());
    let err = ledger("b", &[&get, &put])
        .begin(&task(), &action(), Actor::Automatic, None)
        .await
        .unwrap_err();
    assert!(matches!(err, NotNow::Held { .. }), "{err:?}");
    assert_eq!(
        put.num_calls(),
        0,
        "decided on the reading, without a write"
    );
}

#[tokio::test]
async fn a_finding_already_fixed_is_a_duplicate() {
    let mut done = held_by("a");
    done.advance(Status::Succeeded, SystemTime::now()).unwrap();
    let (get, put) = (reads(vec![Some(done.clone())]), refused());
    let err = ledger("b", &[&get, &put])
        .begin(&task(), &action(), Actor::Automatic, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, NotNow::Finished { id, status: Status::Succeeded } if *id == done.id),
        "{err:?}"
    );
    assert_eq!(put.num_calls(), 0);
}

#[tokio::test]
async fn the_intent_is_written_before_and_completed_after_with_the_change() {
    let get = reads(vec![None]);
    let intent = mock!(Client::put_item)
        .match_requests(|r| {
            r.condition_expression() == Some("attribute_not_exists(#id)")
                && status_of(r) == Some("intent")
        })
        .then_output(|| PutItemOutput::builder().build());
    let outcome = mock!(Client::put_item)
        .match_requests(|r| {
            r.condition_expression() == Some("#status = :intent AND #lease.#holder = :holder")
                && r.expression_attribute_values().unwrap()[":holder"]
                    == AttributeValue::S("a".into())
                && status_of(r) == Some("succeeded")
                && r.item().unwrap().contains_key("change")
                && !r.item().unwrap().contains_key("lease")
        })
        .then_output(|| PutItemOutput::builder().build());
    let a = ledger("a", &[&get, &intent, &outcome]);
    let written = a
        .begin(&task(), &action(), Actor::Automatic, None)
        .await
        .unwrap()
        .expect("a ledger is on");
    assert_eq!(written.status, Status::Intent);
    assert_eq!(written.lease.as_ref().map(|l| l.holder.as_str()), Some("a"));
    assert_eq!(intent.num_calls(), 1);
    let change = Change::RevokeIngress {
        group_id: "sg-0123456789abcdef0".into(),
        before: vec![],
        revoked: vec![],
    };
    a.finish(Some(written), &Ok(Done::succeeded("revoked", change)))
        .await;
    assert_eq!(outcome.num_calls(), 1);
}

#[tokio::test]
async fn without_a_ledger_nothing_is_held_or_recorded() {
    let off = Ledger::off();
    let begun = off
        .begin(&task(), &action(), Actor::Automatic, None)
        .await
        .unwrap();
    assert!(begun.is_none() && off.table().is_none());
    off.finish(begun, &Ok(Done::already_compliant("nothing")))
        .await;
}

mod recovery {
    //! An intent whose executor died (its lease lapsed) is taken over, and the resource
    //! re-checked against the change the intent recorded before anything is done.

    use super::*;
    use redress::ingress::Permission;

    fn ssh_open() -> Vec<Permission> {
        vec![Permission {
            protocol: "tcp".into(),
            from_port: Some(22),
            to_port: Some(22),
            ipv4: vec!["0.0.0.0/0".into()],
            ipv6: vec![],
        }]
    }

    fn revoke(before: Vec<Permission>, revoked: Vec<Permission>) -> Change {
        Change::RevokeIngress {
            group_id: "sg-0123456789abcdef0".into(),
            before,
            revoked,
        }
    }

    /// Executor `dead`'s intent to revoke SSH, its lease lapsed an hour ago.
    fn crashed() -> LedgerEntry {
        let then = SystemTime::now() - Duration::from_secs(3600);
        let mut e = LedgerEntry::for_task(&task(), action(), Status::Intent, then).unwrap();
        e.change = Some(revoke(ssh_open(), ssh_open()));
        lease::take(&mut e, "dead", then, Duration::from_secs(5)).unwrap();
        e
    }

    fn reason_of(r: &aws_sdk_dynamodb::operation::put_item::PutItemInput) -> String {
        match r.item().and_then(|i| i.get("reason")) {
            Some(AttributeValue::S(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// Takes `crashed()` over as `b` with `ingress` read now (the outcome written through
    /// `outcome`); checks the take-over was written on the lapsed lease's condition.
    async fn take_over(ingress: Vec<Permission>, outcome: &Rule) -> (Ledger, Intent) {
        let get = reads(vec![Some(crashed())]);
        let take = mock!(Client::put_item)
            .match_requests(|r| {
                let v = r.expression_attribute_values().unwrap();
                status_of(r) == Some("intent")
                    && v.get(":holder") == Some(&AttributeValue::S("dead".into()))
                    && reason_of(r).starts_with("recovered after a crash: executor dead")
            })
            .then_output(|| PutItemOutput::builder().build());
        let b = ledger("b", &[&get, &take, outcome]);
        let open = redress::ingress::world_open(&ingress, Some(&[22]));
        let intent = b
            .begin(
                &task(),
                &action(),
                Actor::Automatic,
                Some(revoke(ingress, open)),
            )
            .await
            .unwrap()
            .expect("a ledger is on");
        assert_eq!(take.num_calls(), 1, "taken over on the lapsed lease");
        (b, intent)
    }

    /// An outcome write with this status, whose reason contains `says`.
    fn outcome(status: &'static str, says: &'static str) -> Rule {
        mock!(Client::put_item)
            .match_requests(move |r| status_of(r) == Some(status) && reason_of(r).contains(says))
            .then_output(|| PutItemOutput::builder().build())
    }

    #[tokio::test]
    async fn a_revoke_the_dead_executor_made_is_completed_not_made_again() {
        let completed = outcome("succeeded", "completed (rolled forward)");
        let (b, intent) = take_over(vec![], &completed).await;
        let done = intent
            .made()
            .expect("found made: the caller must not revoke");
        assert_eq!(done.outcome, Outcome::Succeeded);
        assert_eq!(
            done.change,
            Some(revoke(ssh_open(), ssh_open())),
            "the recorded change, not the empty one read now"
        );
        assert_eq!(intent.change, done.change, "kept in the take-over's intent");
        assert_eq!(intent.lease.as_ref().unwrap().holder, "b");
        b.finish(Some(intent), &Ok(done)).await;
        assert_eq!(completed.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_revoke_the_dead_executor_did_not_make_is_made_and_says_so() {
        let completed = outcome(
            "succeeded",
            "none of its change was found made, so it was made now; revoked tcp 22",
        );
        let (b, intent) = take_over(ssh_open(), &completed).await;
        assert!(intent.made().is_none(), "still open: it must be revoked");
        assert!(
            intent
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("none of its change was found made")),
            "{:?}",
            intent.reason
        );
        assert_eq!(intent.change, Some(revoke(ssh_open(), ssh_open())));
        let done = Done::succeeded("revoked tcp 22", revoke(ssh_open(), ssh_open()));
        b.finish(Some(intent), &Ok(done)).await;
        assert_eq!(completed.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_fresh_take_is_no_recovery() {
        let (get, put) = (
            reads(vec![None]),
            mock!(Client::put_item).then_output(|| PutItemOutput::builder().build()),
        );
        let intent = ledger("a", &[&get, &put])
            .begin(
                &task(),
                &action(),
                Actor::Automatic,
                Some(revoke(vec![], vec![])),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(intent.made().is_none() && intent.reason.is_none());
    }
}
