//! Micro-benchmarks of the pure domain: parse + validate + route one event, routing with
//! 10 and 500 rules, and task / approval (de)serialization. Run with `make bench`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use redress::decision::decide;
use redress::event::parse_message;
use redress::message::{ApprovalRequest, ApprovalsMessage, Finding, Task, MESSAGE_VERSION};
use redress::policy::{Policy, Severity};

fn fixture() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/events/sg-ssh-open-noncompliant.json"
    ))
    .unwrap()
}

fn default_policy() -> Policy {
    Policy::from_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/policies/default.toml"
    )))
    .unwrap()
}

/// `n` rules, the event matching only the last (the worst case for first-match routing).
fn policy_with(n: usize) -> Policy {
    let mut src = String::new();
    for i in 0..n - 1 {
        src.push_str(&format!(
            "[[rule]]\nid = \"r{i}\"\nconfig_rule = \"*other-rule-{i}*\"\nseverity = \"LOW\"\naction = {{ fix = \"revoke_public_ingress\" }}\n"
        ));
    }
    src.push_str("[[rule]]\nid = \"ssh\"\nconfig_rule = \"*restricted-ssh*\"\nseverity = \"HIGH\"\naction = { fix = \"revoke_public_ingress\", ports = [22] }\n");
    Policy::from_toml(&src, "bench").unwrap()
}

fn benches(c: &mut Criterion) {
    let body = fixture();
    let policy = default_policy();
    c.bench_function("parse + validate + route (default policy)", |b| {
        b.iter(|| {
            let e = parse_message(black_box(&body)).unwrap();
            black_box(decide(&e, &policy))
        })
    });
    let event = parse_message(&body).unwrap();
    for n in [10, 500] {
        let p = policy_with(n);
        c.bench_function(&format!("route with {n} rules (match is last)"), |b| {
            b.iter(|| black_box(decide(black_box(&event), &p)))
        });
    }
    let task = Task::new("ssh", Severity::High, Finding::from_event(&event));
    c.bench_function("task serialize + deserialize", |b| {
        b.iter(|| {
            let json = serde_json::to_string(black_box(&task)).unwrap();
            black_box(serde_json::from_str::<Task>(&json).unwrap())
        })
    });
    let rule = policy.rule("sg-open-admin-ports").unwrap();
    let request = ApprovalsMessage::Request(Box::new(ApprovalRequest {
        version: MESSAGE_VERSION,
        id: task.approval_id(),
        proposed_action: rule.action.render(&task.finding.facts()).unwrap(),
        preview: vec!["revoke tcp 22 from 0.0.0.0/0".into()],
        requested_at: "2026-11-27T21:00:00Z".into(),
        expires_at: "2026-12-04T21:00:00Z".into(),
        policy_version: Some(policy.version.clone()),
        returned: None,
        task: task.clone(),
    }));
    c.bench_function("approval request serialize + deserialize", |b| {
        b.iter(|| {
            let json = serde_json::to_string(black_box(&request)).unwrap();
            black_box(serde_json::from_str::<ApprovalsMessage>(&json).unwrap())
        })
    });
}

criterion_group!(domain, benches);
criterion_main!(domain);
