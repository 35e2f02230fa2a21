//! AWS Config is the source of truth: the executor acts only on findings Config holds
//! NON_COMPLIANT, and a fix is closed only when Config agrees (`verified`), or handed to a
//! person when it still disagrees at the deadline (`still_non_compliant`). Each test plays
//! the Config rule itself (PutConfigRule, PutEvaluations) on a rule named after its world.

use std::time::Duration;

use crate::support::{
    audit, executions, logs, policy_fixture, policy_fixtures, put_evaluations, reason,
    reevaluations_of, run_until, text, wait_for, Evaluation, EventBuilder, World, ACCOUNT, REGION,
};

const SG: &str = "AWS::EC2::SecurityGroup";
/// The rule's annotation of a NON_COMPLIANT group.
const MYSQL_OPEN: &str = "Port 3306 is open to 0.0.0.0/0";

/// The policy: MySQL open to the world is fixed automatically under the world's own
/// Config rules (`<prefix>-*`), with `config` as the `[config]` table.
fn policy(w: &World, config: &str) -> String {
    format!(
        "[config]\n{config}\n{}",
        policy_fixtures(&["mysql-auto"], &[("rule", &format!("{}-*", w.prefix))])
    )
}

/// A world with [`policy`].
async fn world(test: &str, config: &str) -> World {
    // The policy names the world's prefix, known once the world exists.
    let w = World::new(test, &policy_fixture("catch-all")).await;
    w.set_policy(&policy(&w, config));
    w
}

/// A group with MySQL open to the world and HTTPS open to the VPC.
async fn mysql_group(w: &World, name: &str) -> String {
    w.security_group(name, &[(3306, "0.0.0.0/0"), (443, "10.0.0.0/8")])
        .await
}

/// The ingress of a group once MySQL is closed.
fn closed() -> Vec<(i32, String)> {
    vec![(443, "10.0.0.0/8".into())]
}

/// Acceptance 1: a finding that exists only as Config's (the rule's evaluation, Config's
/// event on the default bus) is fixed, waits for Config, and is verified once the rule
/// evaluates the group again and finds it compliant.
#[tokio::test]
async fn a_finding_from_config_is_fixed_and_verified_once_config_agrees() {
    let w = world("verified", "recheck_after = \"1s\"").await;
    let rule = format!("{}-mysql", w.prefix);
    let arn = w.config_rule(&rule, SG).await;
    w.listen_to_default_bus(&[&rule]).await;
    let sg = mysql_group(&w, "db").await;

    // The rule finds the group NON_COMPLIANT: Config records it and puts the change
    // event on the default bus, whose rule delivers it to the events queue.
    let open = Evaluation {
        annotation: Some(MYSQL_OPEN.into()),
        ..Evaluation::new(SG, &sg, "NON_COMPLIANT")
    };
    put_evaluations(ACCOUNT, REGION, &rule, &[open]).await;
    wait_for(
        Duration::from_secs(10),
        "Config's event on the events queue",
        || async {
            match w.depth("events").await {
                (1, 0) => Ok(()),
                d => Err(d),
            }
        },
    )
    .await;

    let records = w.run_once(&[]);
    assert_eq!(w.ingress(&sg).await, closed());
    let fixed: Vec<_> = executions(&records)
        .into_iter()
        .filter(|r| r["outcome"] == "succeeded")
        .collect();
    assert_eq!(fixed.len(), 1, "{records:#?}");
    assert_eq!(fixed[0]["resource_id"], sg.as_str());
    assert_eq!(fixed[0]["rule"], "mysql");
    assert_eq!(fixed[0]["verification"], "awaiting_verification");
    assert_eq!(
        fixed[0]["config_rule_arn"],
        arn.as_str(),
        "the event was Config's"
    );

    // The executor asked Config to evaluate the rule again; playing the managed rule,
    // the test answers: the group is COMPLIANT now.
    let asked = wait_for(
        Duration::from_secs(10),
        "a StartConfigRulesEvaluation of the rule",
        || async {
            let asked = reevaluations_of(&rule);
            if asked.is_empty() {
                Err("none yet")
            } else {
                Ok(asked)
            }
        },
    )
    .await;
    assert_eq!(asked[0]["account"], ACCOUNT);
    assert_eq!(asked[0]["region"], REGION);
    put_evaluations(
        ACCOUNT,
        REGION,
        &rule,
        &[Evaluation::new(SG, &sg, "COMPLIANT")],
    )
    .await;

    // When the closure check comes back, Config agrees.
    let (verified, seen) = run_until(&w, records, "a verified record", |r| {
        r["decision"] == "verified"
    })
    .await;
    assert_eq!(verified["resource_id"], sg.as_str());
    assert_eq!(verified["rule"], "mysql");
    assert_eq!(verified["worker"], "executor");
    assert!(
        reason(&verified).contains("Config reports COMPLIANT"),
        "{verified:#}"
    );
    let ttr = verified["time_to_remediate_secs"]
        .as_u64()
        .unwrap_or_else(|| panic!("a numeric time_to_remediate_secs: {verified:#}"));
    assert!(ttr < 120, "{verified:#}");
    // Config's COMPLIANT event came through the default bus too, and was skipped.
    assert!(
        seen.iter().any(|r| r["worker"] == "router"
            && r["decision"] == "skipped"
            && r["resource_id"] == sg.as_str()),
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|r| r["decision"] == "still_non_compliant"),
        "{seen:#?}"
    );
    // Nothing waits any more, and nothing was changed again.
    assert_eq!(w.depth("tasks").await, (0, 0));
    assert_eq!(w.delayed("tasks").await, 0);
    assert_eq!(w.depth("events").await, (0, 0));
    assert_eq!(w.ingress(&sg).await, closed());
    assert!(w.drain("tasks-dlq").await.is_empty());
}

/// Acceptance 2: findings Config does not back change nothing: the resource Config holds
/// COMPLIANT, a rule that does not exist, a resource the rule never evaluated.
#[tokio::test]
async fn findings_config_does_not_back_change_nothing() {
    let w = world("unbacked", "").await;
    let rule = format!("{}-mysql", w.prefix);
    let compliant = mysql_group(&w, "compliant").await;
    let missing = mysql_group(&w, "missing").await;
    let unevaluated = mysql_group(&w, "unevaluated").await;

    // Config holds the first group COMPLIANT: a NON_COMPLIANT event about it is stale
    // (or forged).
    let held = w
        .config_holds(&EventBuilder::new(&rule, SG, &compliant).compliance("COMPLIANT"))
        .await;
    w.send("events", &held.compliance("NON_COMPLIANT").build())
        .await;
    // An event naming a Config rule that does not exist.
    let nowhere = format!("{}-no-such-rule", w.prefix);
    w.send("events", &EventBuilder::new(&nowhere, SG, &missing).build())
        .await;
    // The rule exists (with its real ARN in the event) but never evaluated this group.
    let arn = w.config_rule(&rule, SG).await;
    w.send(
        "events",
        &EventBuilder::new(&rule, SG, &unevaluated)
            .rule_arn(&arn)
            .build(),
    )
    .await;
    let records = w.run_once(&[]);

    for sg in [&compliant, &missing, &unevaluated] {
        assert_eq!(
            w.ingress(sg).await,
            vec![(443, "10.0.0.0/8".into()), (3306, "0.0.0.0/0".into())],
            "{sg} changed"
        );
    }
    let of = |sg: &str| -> Vec<&serde_json::Value> {
        executions(&records)
            .into_iter()
            .filter(|r| r["resource_id"] == sg)
            .collect()
    };
    let c = of(&compliant);
    assert_eq!(c.len(), 1, "{records:#?}");
    assert_eq!(c[0]["outcome"], "already_compliant");
    assert!(
        reason(c[0]).contains("Config reports COMPLIANT"),
        "{:#}",
        c[0]
    );
    assert!(c[0].get("verification").is_none(), "{:#}", c[0]);
    let m = of(&missing);
    assert_eq!(m.len(), 1, "{records:#?}");
    assert_ne!(m[0]["outcome"], "succeeded");
    // Nothing was attempted: a refusal, not a failed fix.
    assert_eq!(m[0]["decision"], "dead_lettered", "{:#}", m[0]);
    assert!(m[0].get("outcome").is_none(), "{:#}", m[0]);
    assert!(reason(m[0]).contains("no such Config rule"), "{:#}", m[0]);
    let u = of(&unevaluated);
    assert_eq!(u.len(), 1, "{records:#?}");
    assert_ne!(u[0]["outcome"], "succeeded");
    assert!(
        reason(u[0]).contains("Config has no evaluation of"),
        "{:#}",
        u[0]
    );

    // Both refusals are in the tasks DLQ with their reasons.
    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 2, "{records:#?}");
    let mut why: Vec<(String, String)> = dead
        .iter()
        .map(|m| {
            assert_eq!(m.attributes["redress.error_class"], "refused");
            let task: redress::message::Task = serde_json::from_str(&m.body).unwrap();
            (
                task.finding.resource_id,
                m.attributes["redress.error"].clone(),
            )
        })
        .collect();
    why.sort();
    let mut expected = vec![
        (missing.clone(), "no such Config rule"),
        (unevaluated.clone(), "Config has no evaluation of"),
    ];
    expected.sort();
    for ((id, error), (want_id, want)) in why.iter().zip(&expected) {
        assert_eq!(id, want_id);
        assert!(error.contains(want), "{error}");
    }
    // Nothing was fixed, so nothing waits for Config and nothing asked it to look again.
    assert_eq!(w.delayed("tasks").await, 0);
    assert!(reevaluations_of(&rule).is_empty());
}

/// Acceptance 4: a fix Config never confirms (nobody answers the re-evaluation) goes to
/// a person once the deadline passes.
#[tokio::test]
async fn a_fix_config_never_confirms_goes_to_a_person_after_the_deadline() {
    let w = world(
        "unconfirmed",
        "recheck_after = \"1s\"\nverify_deadline = \"3s\"",
    )
    .await;
    let rule = format!("{}-mysql", w.prefix);
    let sg = mysql_group(&w, "db").await;
    w.send_event(&EventBuilder::new(&rule, SG, &sg).annotation(MYSQL_OPEN))
        .await;
    let records = w.run_once(&[]);
    let fixed: Vec<_> = executions(&records)
        .into_iter()
        .filter(|r| r["outcome"] == "succeeded")
        .collect();
    assert_eq!(fixed.len(), 1, "{records:#?}");
    assert_eq!(fixed[0]["verification"], "awaiting_verification");
    assert_eq!(w.ingress(&sg).await, closed());

    // Config keeps reporting NON_COMPLIANT; past the deadline the check gives up.
    let (still, seen) = run_until(&w, records, "a still_non_compliant record", |r| {
        r["decision"] == "still_non_compliant"
    })
    .await;
    assert_eq!(still["resource_id"], sg.as_str());
    assert_eq!(still["rule"], "mysql");
    assert!(
        reason(&still).starts_with(&format!(
            "fixed, but Config still reports NON_COMPLIANT: {MYSQL_OPEN}"
        )),
        "{still:#}"
    );
    assert!(
        seen.iter().any(|r| r["decision"] == "approval_requested"
            && r["worker"] == "executor"
            && r["resource_id"] == sg.as_str()),
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|r| r["decision"] == "verified"),
        "{seen:#?}"
    );
    // A person sees it.
    let doc = w.approval_list();
    let requests = doc["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{doc:#}");
    assert_eq!(requests[0]["status"], "pending");
    assert_eq!(
        requests[0]["request"]["task"]["finding"]["resource_id"],
        sg.as_str()
    );
    assert_eq!(requests[0]["request"]["task"]["rule_id"], "mysql");
    // A new generation: approving it runs the fix again, not a duplicate of the first.
    assert_eq!(requests[0]["request"]["task"]["generation"], 1, "{doc:#}");
    // The checks are over.
    assert_eq!(w.depth("tasks").await, (0, 0));
    assert_eq!(w.delayed("tasks").await, 0);
    assert!(w.drain("tasks-dlq").await.is_empty());
}

/// A policy rule that pins `config_rule_arn` acts only under Config rules with a
/// matching ARN: not under another rule of the same name, whatever the event claims.
#[tokio::test]
async fn a_rule_pinned_to_config_rule_arns_acts_only_under_those_rules() {
    let w = World::new("arn-pin", &policy_fixture("catch-all")).await;
    let rule = format!("{}-mysql", w.prefix);
    let arn = w.config_rule(&rule, SG).await;
    let pinned = |glob: &str| policy_fixtures(&["mysql-pinned"], &[("rule", &rule), ("arn", glob)]);
    let untrusted = mysql_group(&w, "untrusted").await;
    let forged = mysql_group(&w, "forged").await;
    let trusted = mysql_group(&w, "trusted").await;
    let open = vec![(443, "10.0.0.0/8".into()), (3306, "0.0.0.0/0".into())];

    // Trusted: only the conformance packs' rules, which the local rule is not.
    let packs = "arn:aws:config:*:*:config-rule/aws-service-rule/config-conforms.amazonaws.com/*";
    w.set_policy(&pinned(packs));
    w.send_event(&EventBuilder::new(&rule, SG, &untrusted))
        .await;
    let records = w.run_once(&[]);
    assert_eq!(w.ingress(&untrusted).await, open);
    assert!(executions(&records).is_empty(), "{records:#?}");
    let skipped: Vec<_> = records
        .iter()
        .filter(|r| r["resource_id"] == untrusted.as_str())
        .collect();
    assert_eq!(skipped.len(), 1, "{records:#?}");
    assert_eq!(skipped[0]["worker"], "router");
    assert_eq!(skipped[0]["decision"], "skipped");
    assert!(reason(skipped[0]).contains("no_policy"), "{:#}", skipped[0]);

    // An event claiming a conformance pack's ARN for the rule: the router takes the claim,
    // the executor asks Config which rule that name is, and refuses.
    let claimed = format!(
        "arn:aws:config:{REGION}:{ACCOUNT}:config-rule/aws-service-rule/config-conforms.amazonaws.com/config-rule-forged"
    );
    let held = w.config_holds(&EventBuilder::new(&rule, SG, &forged)).await;
    w.send("events", &held.rule_arn(&claimed).build()).await;
    let records = w.run_once(&[]);
    assert_eq!(w.ingress(&forged).await, open);
    let refused: Vec<_> = executions(&records)
        .into_iter()
        .filter(|r| r["resource_id"] == forged.as_str())
        .collect();
    assert_eq!(refused.len(), 1, "{records:#?}");
    assert_ne!(refused[0]["outcome"], "succeeded");
    assert!(
        reason(refused[0]).contains("does not trust") && reason(refused[0]).contains(&arn),
        "{:#}",
        refused[0]
    );
    let dead = w.drain("tasks-dlq").await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attributes["redress.error_class"], "refused");

    // Pinned to the local rule's ARN: fixed.
    w.set_policy(&pinned(&arn));
    w.send_event(&EventBuilder::new(&rule, SG, &trusted)).await;
    let records = w.run_once(&[]);
    assert_eq!(w.ingress(&trusted).await, closed());
    let fixed: Vec<_> = executions(&records)
        .into_iter()
        .filter(|r| r["outcome"] == "succeeded")
        .collect();
    assert_eq!(fixed.len(), 1, "{records:#?}");
    assert_eq!(fixed[0]["resource_id"], trusted.as_str());
    assert_eq!(fixed[0]["rule"], "mysql-pinned");
    assert_eq!(fixed[0]["config_rule_arn"], arn.as_str());
}

/// `[config] verify = false` (findings that do not come from Config): a finding Config
/// never reported, under a rule that does not exist, is fixed, with a warning, and
/// nothing waits for Config afterwards.
#[tokio::test]
async fn with_verification_off_a_finding_config_never_reported_is_fixed() {
    let w = world("unverified", "verify = false").await;
    let rule = format!("{}-mysql", w.prefix);
    let sg = mysql_group(&w, "db").await;
    w.send("events", &EventBuilder::new(&rule, SG, &sg).build())
        .await;
    let out = w.redress(&["run", "--once"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records = audit(&out);
    assert_eq!(w.ingress(&sg).await, closed());
    let fixed: Vec<_> = executions(&records)
        .into_iter()
        .filter(|r| r["outcome"] == "succeeded")
        .collect();
    assert_eq!(fixed.len(), 1, "{records:#?}");
    assert!(fixed[0].get("verification").is_none(), "{:#}", fixed[0]);
    assert_eq!(w.delayed("tasks").await, 0, "no closure check");
    assert!(
        logs(&out).iter().any(|l| l["level"] == "WARN"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("[config] verify = false"))),
        "{}",
        text(&out.stderr)
    );
}

/// Acceptance 3: evaluations put while their events are lost (the events queue purged)
/// are found by `redress sweep`; sweeping twice and then running fixes each finding
/// exactly once.
#[tokio::test]
async fn findings_whose_events_were_lost_are_swept_and_fixed_once() {
    let w = world("sweep", "recheck_after = \"15m\"").await;
    let rule = format!("{}-mysql", w.prefix);
    w.config_rule(&rule, SG).await;
    w.listen_to_default_bus(&[&rule]).await;
    let groups = [
        mysql_group(&w, "a").await,
        mysql_group(&w, "b").await,
        mysql_group(&w, "c").await,
    ];
    let open: Vec<Evaluation> = groups
        .iter()
        .map(|sg| Evaluation {
            annotation: Some(MYSQL_OPEN.into()),
            ..Evaluation::new(SG, sg, "NON_COMPLIANT")
        })
        .collect();
    put_evaluations(ACCOUNT, REGION, &rule, &open).await;
    // The events are lost.
    let lost = w.drain("events").await;
    assert_eq!(lost.len(), 3, "Config sent one event per finding");
    assert_eq!(w.depth("events").await, (0, 0));

    // A dry run says what a sweep would do and sends nothing.
    let out = w.redress(&["sweep", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dry: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (dry["found"].as_u64(), dry["queued"].as_u64()),
        (Some(3), Some(3)),
        "{dry:#}"
    );
    assert_eq!(w.depth("tasks").await, (0, 0));

    for _ in 0..2 {
        let out = w.redress(&["sweep", "--rule", &format!("{}-*", w.prefix), "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["found"], 3, "{summary:#}");
        assert_eq!(summary["queued"], 3, "{summary:#}");
        assert_eq!(summary["failed"], 0, "{summary:#}");
        let routed = audit(&out);
        assert_eq!(
            routed
                .iter()
                .filter(|r| r["worker"] == "router" && r["decision"] == "remediate")
                .count(),
            3,
            "{routed:#?}"
        );
    }
    // A rule the glob leaves out finds nothing.
    let out = w.redress(&["sweep", "--rule", "no-such-rule-*", "--json"]);
    let none: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(none["found"], 0, "{none:#}");

    let records = w.run_once(&[]);
    for sg in &groups {
        assert_eq!(w.ingress(sg).await, closed(), "{sg}");
        let succeeded: Vec<_> = executions(&records)
            .into_iter()
            .filter(|r| r["resource_id"] == sg.as_str() && r["outcome"] == "succeeded")
            .collect();
        assert_eq!(succeeded.len(), 1, "{sg}: {records:#?}");
    }
    let duplicates = records
        .iter()
        .filter(|r| reason(r).starts_with("duplicate"))
        .count();
    assert_eq!(
        duplicates, 3,
        "the second sweep's tasks are recognised: {records:#?}"
    );
}

/// A closure check is believed only from the executor's own principal: one written by
/// anyone else who may send to the tasks queue is refused, and nothing it claims (an
/// approver, a fix time) reaches a record.
#[tokio::test]
async fn a_closure_check_from_another_principal_is_refused() {
    let w = world("forged-closure", "recheck_after = \"1s\"").await;
    let rule = format!("{}-mysql", w.prefix);
    let sg = mysql_group(&w, "db").await;
    let event = w
        .config_holds(&EventBuilder::new(&rule, SG, &sg).annotation(MYSQL_OPEN))
        .await;
    let mut task = event.task("mysql", redress::policy::Severity::Medium);
    task.closure = Some(redress::message::Closure {
        fixed_at: "2020-01-01T00:00:00Z".into(),
        execution_id: None,
        actor: Some("arn:aws:iam::123456789012:user/alice".into()),
        checks: 0,
    });
    let mallory = w.iam_user("mallory").await;
    w.send_as(&mallory, "tasks", &serde_json::to_string(&task).unwrap())
        .await;
    let records = w.run_once(&[]);
    let refused: Vec<_> = records
        .iter()
        .filter(|r| reason(r).contains("closure check refused"))
        .collect();
    assert_eq!(refused.len(), 1, "{records:#?}");
    assert_eq!(refused[0]["decision"], "dead_lettered");
    assert!(refused[0].get("actor").is_none(), "{:#}", refused[0]);
    assert!(
        !records
            .iter()
            .any(|r| r["decision"] == "still_non_compliant"
                || r["decision"] == "verified"
                || r["decision"] == "approval_requested"),
        "{records:#?}"
    );
    assert_eq!(w.drain("tasks-dlq").await.len(), 1);
    assert_eq!(w.ingress(&sg).await.len(), 2, "nothing changed");
}
