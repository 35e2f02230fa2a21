//! redress's own Config rules close the loop with nothing written by hand: the local
//! Config stand-in runs a rule when `redress evaluate` asks (StartConfigRulesEvaluation),
//! its evaluations become Config's compliance-change events, redress fixes what the
//! shipped default policy fixes automatically and asks a person for the rest, and the
//! rules then report the fixed resources COMPLIANT.
//!
//! The rules evaluate every resource of their account, so each test runs in an account
//! no other test uses ([`World::in_account`]).

use std::time::Duration;

use aws_sdk_ssm::types::ParameterType;

use crate::support::{executions, reason, root, run_until, text, wait_for, EventBuilder, World};

/// Evaluates security groups' administrative ports.
const ADMIN: &str = "redress-sg-admin-ports";
/// Evaluates security groups' other privileged ports.
const PRIVILEGED: &str = "redress-sg-privileged-ports";
/// Evaluates the parameters of the apps `provision` names (`payments` by default).
const DRIFT: &str = "redress-parameter-drift";

/// The policy redress ships.
fn default_policy() -> String {
    std::fs::read_to_string(root().join("infra/policies/default.toml")).unwrap()
}

/// `redress evaluate RULE --json`: Config runs the rule; its results, by resource id,
/// as (compliance, annotation).
fn evaluate(w: &World, rule: &str) -> Vec<(String, String, String)> {
    let out = w.redress(&["evaluate", rule, "--json", "--wait", "60s"]);
    assert!(
        out.status.success(),
        "evaluate {rule}: {}",
        text(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["resource_id"].as_str().unwrap().to_string(),
                r["compliance"].as_str().unwrap().to_string(),
                r["annotation"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The result for one resource among `rows`: (compliance, annotation).
fn result_of(rows: &[(String, String, String)], id: &str) -> (String, String) {
    rows.iter()
        .find(|(r, _, _)| r == id)
        .map(|(_, c, a)| (c.clone(), a.clone()))
        .unwrap_or_else(|| panic!("no result for {id} in {rows:?}"))
}

/// Waits until the events queue holds at least `n` messages (Config's events travel
/// from the stand-in through the default bus).
async fn events_arrive(w: &World, n: u64) {
    wait_for(Duration::from_secs(30), "Config's events", || async {
        let (visible, _) = w.depth("events").await;
        if visible >= n {
            Ok(())
        } else {
            Err(visible)
        }
    })
    .await
}

/// The waiting approval requests as (id, policy rule, severity, resource id).
fn requests(w: &World) -> Vec<(String, String, String, String)> {
    let doc = w.approval_list();
    doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let task = &r["request"]["task"];
            (
                r["id"].as_str().unwrap().to_string(),
                task["rule_id"].as_str().unwrap().to_string(),
                task["severity"].as_str().unwrap().to_string(),
                task["finding"]["resource_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Approves every waiting request, as an approver would.
fn approve_all(w: &World, ids: &[String]) {
    for id in ids {
        let out = w.redress(&["approvals", "approve", id]);
        assert!(out.status.success(), "approve {id}: {}", text(&out.stderr));
    }
}

/// The executor's record of a fix of `resource` that succeeded.
fn fixed(resource: &str) -> impl Fn(&serde_json::Value) -> bool + '_ {
    move |r| {
        r["worker"] == "executor" && r["resource_id"] == resource && r["outcome"] == "succeeded"
    }
}

/// Acceptance 2: a group with 22 and 21 open to the world. Config runs both security
/// group rules; 21 (MEDIUM) is fixed automatically, 22 (HIGH) waits for a person; once
/// approved it is fixed too, and both rules report the group COMPLIANT.
#[tokio::test]
async fn open_admin_and_privileged_ports_are_found_fixed_and_then_compliant() {
    let w = World::in_account("detect-sg", &default_policy(), "444455556666").await;
    w.listen_to_default_bus(&[ADMIN, PRIVILEGED]).await;
    let sg = w
        .security_group(
            "open",
            &[(22, "0.0.0.0/0"), (21, "0.0.0.0/0"), (443, "10.0.0.0/8")],
        )
        .await;

    let admin = result_of(&evaluate(&w, ADMIN), &sg);
    assert_eq!(admin.0, "NON_COMPLIANT", "{admin:?}");
    assert!(admin.1.contains("tcp 22 from 0.0.0.0/0"), "{admin:?}");
    assert!(!admin.1.contains("tcp 21"), "{admin:?}");
    let privileged = result_of(&evaluate(&w, PRIVILEGED), &sg);
    assert_eq!(privileged.0, "NON_COMPLIANT", "{privileged:?}");
    assert!(
        privileged.1.contains("tcp 21 from 0.0.0.0/0"),
        "{privileged:?}"
    );
    assert!(!privileged.1.contains("tcp 22"), "{privileged:?}");

    events_arrive(&w, 2).await;
    let (_, seen) = run_until(&w, Vec::new(), "21 fixed automatically", fixed(&sg)).await;
    assert_eq!(
        w.ingress(&sg).await,
        vec![(22, "0.0.0.0/0".into()), (443, "10.0.0.0/8".into())],
        "only 21 is closed without a person"
    );
    let waiting = requests(&w);
    assert_eq!(
        waiting
            .iter()
            .map(|(_, rule, severity, id)| (rule.as_str(), severity.as_str(), id.as_str()))
            .collect::<Vec<_>>(),
        vec![("sg-open-admin-ports", "HIGH", sg.as_str())],
        "{seen:#?}"
    );

    approve_all(&w, &[waiting[0].0.clone()]);
    run_until(&w, Vec::new(), "22 fixed once approved", fixed(&sg)).await;
    assert_eq!(w.ingress(&sg).await, vec![(443, "10.0.0.0/8".into())]);

    for rule in [ADMIN, PRIVILEGED] {
        let now = result_of(&evaluate(&w, rule), &sg);
        assert_eq!(now.0, "COMPLIANT", "{rule}: {now:?}");
    }
    assert!(w.approval_ids().is_empty(), "nothing left waiting");
}

/// A parameter's value and type.
async fn read(w: &World, name: &str) -> Option<(String, ParameterType)> {
    let out = w
        .clients
        .ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await;
    match out {
        Ok(o) => {
            let p = o.parameter.unwrap();
            Some((p.value.unwrap(), p.r#type.unwrap()))
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            None
        }
        Err(e) => panic!("GetParameter {name}: {e:?}"),
    }
}

/// Puts a parameter of this type.
async fn put(w: &World, name: &str, value: &str, kind: ParameterType) {
    w.clients
        .ssm
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(kind)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

/// A secret that must never appear in anything redress prints.
const SECRET: &str = "debug-token-7f3a9c";

/// Acceptance 3: drifted, missing and unauthorized parameters of the `payments` app.
/// The drift is restored automatically; the missing and the unauthorized one wait for a
/// person; approved, the missing one is created with its baseline's type and the
/// unauthorized one deleted (a quarantine copy kept); the rule then reports nothing
/// non-compliant: the parameters fixed in place COMPLIANT, the deleted one NOT_APPLICABLE
/// (Config's answer for a resource that no longer exists).
#[tokio::test]
async fn drifted_missing_and_unauthorized_parameters_are_put_right() {
    let w = World::in_account("detect-param", &default_policy(), "555566667777").await;
    w.listen_to_default_bus(&[DRIFT]).await;
    let string = ParameterType::String;
    let secure = ParameterType::SecureString;
    put(&w, "/payments/approved/pool", "10", string.clone()).await;
    put(&w, "/payments/current/pool", "99", string.clone()).await;
    put(&w, "/payments/approved/region", "eu-west-1", secure.clone()).await;
    put(&w, "/payments/approved/name", "payments", string.clone()).await;
    put(&w, "/payments/current/name", "payments", string.clone()).await;
    put(&w, "/payments/current/debug", SECRET, secure.clone()).await;

    let rows = evaluate(&w, DRIFT);
    let by = |name: &str| result_of(&rows, &format!("/payments/current/{name}"));
    assert_eq!(by("pool"), ("NON_COMPLIANT".into(), "drifted".into()));
    assert_eq!(by("region"), ("NON_COMPLIANT".into(), "missing".into()));
    assert_eq!(by("debug"), ("NON_COMPLIANT".into(), "unauthorized".into()));
    assert_eq!(by("name").0, "COMPLIANT");

    events_arrive(&w, 3).await;
    let (_, seen) = run_until(
        &w,
        Vec::new(),
        "the drift restored automatically",
        fixed("/payments/current/pool"),
    )
    .await;
    assert_eq!(
        read(&w, "/payments/current/pool").await,
        Some(("10".into(), string.clone()))
    );
    let mut waiting = requests(&w);
    waiting.sort_by(|a, b| a.1.cmp(&b.1));
    let shown: Vec<(&str, &str, &str)> = waiting
        .iter()
        .map(|(_, rule, severity, id)| (rule.as_str(), severity.as_str(), id.as_str()))
        .collect();
    assert_eq!(
        shown,
        vec![
            ("param-missing", "HIGH", "/payments/current/region"),
            ("param-unauthorized", "LOW", "/payments/current/debug"),
        ],
        "{seen:#?}"
    );
    let listing = w.redress(&["approvals", "list", "--json"]);
    assert!(
        !text(&listing.stdout).contains(SECRET) && !format!("{seen:?}").contains(SECRET),
        "the secret value must never be shown"
    );
    // Nothing was created or deleted before a person approved.
    assert_eq!(read(&w, "/payments/current/region").await, None);
    assert!(read(&w, "/payments/current/debug").await.is_some());

    let ids: Vec<String> = waiting.iter().map(|r| r.0.clone()).collect();
    approve_all(&w, &ids);
    let (_, after) = run_until(
        &w,
        Vec::new(),
        "the missing parameter created",
        fixed("/payments/current/region"),
    )
    .await;
    run_until(
        &w,
        after,
        "the unauthorized parameter deleted",
        fixed("/payments/current/debug"),
    )
    .await;
    assert_eq!(
        read(&w, "/payments/current/region").await,
        Some(("eu-west-1".into(), secure.clone())),
        "created from its baseline, with the baseline's type"
    );
    assert_eq!(read(&w, "/payments/current/debug").await, None);
    let kept = w
        .clients
        .ssm
        .get_parameters_by_path()
        .path("/redress/quarantine/payments/current/debug")
        .recursive(true)
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let copies: Vec<(String, ParameterType)> = kept
        .parameters()
        .iter()
        .map(|p| (p.value().unwrap().into(), p.r#type().unwrap().clone()))
        .collect();
    assert_eq!(
        copies,
        vec![(SECRET.to_string(), secure.clone())],
        "one quarantine copy, value and type kept"
    );

    let rows = evaluate(&w, DRIFT);
    let by = |name: &str| result_of(&rows, &format!("/payments/current/{name}")).0;
    assert_eq!(by("pool"), "COMPLIANT");
    assert_eq!(by("region"), "COMPLIANT");
    assert_eq!(by("name"), "COMPLIANT");
    assert_eq!(by("debug"), "NOT_APPLICABLE", "deleted");
    assert!(
        rows.iter().all(|(_, c, _)| c != "NON_COMPLIANT"),
        "{rows:?}"
    );
    assert!(w.approval_ids().is_empty(), "nothing left waiting");
}

/// A parameter finding of redress's rule for an app the rule was not given (or with
/// baselines elsewhere than the policy's) is refused: whoever may change the rule's input
/// parameters cannot widen what redress fixes.
#[tokio::test]
async fn a_parameter_finding_outside_the_rule_s_apps_is_refused() {
    let account = "555566668888";
    let w = World::in_account("detect-scope", &default_policy(), account).await;
    put(&w, "/orders/approved/x", "1", ParameterType::String).await;
    put(&w, "/orders/current/x", "2", ParameterType::String).await;
    // Config holds a finding for the app `orders`; `provision` gave the rule `payments`.
    let finding = EventBuilder::new(DRIFT, "AWS::SSM::Parameter", "/orders/current/x")
        .account(account)
        .annotation("drifted");
    let held = w.config_holds(&finding).await;
    w.send_event(&held).await;
    let records = w.run_once(&[]);

    assert_eq!(
        read(&w, "/orders/current/x").await,
        Some(("2".into(), ParameterType::String)),
        "nothing restored"
    );
    let refused: Vec<_> = executions(&records);
    assert_eq!(refused.len(), 1, "{records:#?}");
    assert_ne!(refused[0]["outcome"], "succeeded");
    assert!(
        reason(refused[0]).contains("evaluates the apps payments, not orders"),
        "{:#}",
        refused[0]
    );
    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["redress.error_class"], "refused");
}

/// `--dry-run` never puts: answering an invocation is putting its evaluations, so the
/// two together are refused, and Config holds nothing of the invocation's resource.
#[tokio::test]
async fn a_dry_run_does_not_answer_an_invocation() {
    let w = World::new("detect-dry", &default_policy()).await;
    let fixture = root().join("tests/fixtures/config-invocations/sg-admin-port-open.json");
    let out = w.redress(&[
        "--dry-run",
        "evaluate",
        "--invocation",
        fixture.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("redress --dry-run evaluate RULE"),
        "{}",
        text(&out.stderr)
    );
    let held = crate::support::stack_get("/_redress/config-results").to_string();
    assert!(!held.contains("sg-0a1b2c3d4e5f60718"), "{held}");
}
