//! Bad input ends in a dead-letter queue with its reason, and nothing is remediated.

use std::collections::BTreeSet;

use crate::support::{policy_fixture, root, World};

#[tokio::test]
async fn every_bad_fixture_ends_in_the_events_dlq_with_a_reason() {
    let w = World::new("bad-input", &policy_fixture("catch-all")).await;
    let mut sent = BTreeSet::new();
    for entry in std::fs::read_dir(root().join("tests/fixtures/events/bad")).unwrap() {
        let body = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        w.send("events", &body).await;
        sent.insert(body);
    }
    assert_eq!(sent.len(), 6);
    let audit = w.run_once(&[]);

    let dead = w.drain("events-dlq").await;
    let bodies: BTreeSet<String> = dead.iter().map(|m| m.body.clone()).collect();
    assert_eq!(bodies, sent, "every bad message, exactly once, unaltered");
    for m in &dead {
        assert_eq!(m.attributes["redress.error_class"], "invalid_input");
        assert!(
            m.attributes["redress.error"].starts_with("invalid event: "),
            "{:?}",
            m.attributes
        );
        assert_eq!(m.attributes["redress.worker"], "router");
        assert!(m.attributes["redress.source_queue"].ends_with("-events"));
    }
    assert!(w.drain("events").await.is_empty());
    assert!(
        w.drain("tasks").await.is_empty(),
        "nothing sent to the executor"
    );
    assert!(w.drain("approvals").await.is_empty());
    assert!(
        audit.iter().all(|r| r["decision"] == "dead_lettered"),
        "{audit:#?}"
    );
    assert_eq!(audit.len(), 6);
}
