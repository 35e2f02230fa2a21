//! Blast radius and exemptions: the kill switch, the circuit breaker, rate caps, exempt
//! resources, Config re-evaluation, and dry run over a whole world.

use std::collections::BTreeSet;

use crate::support::{
    executions, policy_fixture, reason, reevaluations_of, EventBuilder, World, ACCOUNT,
};

const SG: &str = "AWS::EC2::SecurityGroup";

/// One automatic SSH rule (LOW), plus `extra` (tables such as `[limits]`).
fn ssh_policy(extra: &str) -> String {
    format!("{extra}\n{}", policy_fixture("ssh-low"))
}

/// `n` groups with SSH open to the world, and one finding for each, held by Config, on
/// the events queue.
async fn open_groups(w: &World, n: usize) -> Vec<String> {
    let mut groups = Vec::new();
    for i in 0..n {
        let sg = w
            .security_group(&format!("g{i}"), &[(22, "0.0.0.0/0"), (443, "10.0.0.0/8")])
            .await;
        w.send_event(&EventBuilder::new("restricted-ssh", SG, &sg))
            .await;
        groups.push(sg);
    }
    groups
}

async fn ssh_open(w: &World, sg: &str) -> bool {
    w.ingress(sg).await.contains(&(22, "0.0.0.0/0".to_string()))
}

fn with_decision<'a>(records: &'a [serde_json::Value], d: &str) -> Vec<&'a serde_json::Value> {
    records.iter().filter(|r| r["decision"] == d).collect()
}

#[tokio::test]
async fn exempt_resources_are_left_alone_by_tag_and_by_an_unexpired_exception() {
    let w = World::new("exempt", &ssh_policy("")).await;
    let [excepted, expired, tagged, plain]: [String; 4] =
        open_groups(&w, 4).await.try_into().unwrap();
    w.tag(&tagged, "redress:exempt", "true").await;
    w.set_policy(&ssh_policy(&format!(
        r#"
[exemptions]
tag = "redress:exempt"

[[exception]]
resource_id = "{excepted}"
expires = "2099-01-01"
reason = "bastion host, SEC-42"

[[exception]]
resource_id = "{expired}"
expires = "2020-01-01"
reason = "was a bastion until 2020"
"#
    )));
    let records = w.run_once(&[]);

    assert!(ssh_open(&w, &excepted).await, "excepted group was changed");
    assert!(ssh_open(&w, &tagged).await, "tagged group was changed");
    assert!(
        !ssh_open(&w, &expired).await,
        "expired exception still applied"
    );
    assert!(!ssh_open(&w, &plain).await, "plain group not fixed");

    let skipped = with_decision(&records, "skipped");
    let by_router = skipped
        .iter()
        .find(|r| r["resource_id"] == excepted.as_str())
        .expect("a skip record for the excepted group");
    assert_eq!(by_router["worker"], "router");
    assert!(reason(by_router).contains("exempt") && reason(by_router).contains("SEC-42"));
    let by_tag = with_decision(&records, "exempt_by_tag")
        .into_iter()
        .find(|r| r["resource_id"] == tagged.as_str())
        .expect("an exempt_by_tag record for the tagged group");
    assert_eq!(by_tag["worker"], "executor");
    assert_eq!(reason(by_tag), "exempt: tagged redress:exempt=true");
    let fixed: BTreeSet<&str> = executions(&records)
        .iter()
        .filter(|r| r["outcome"] == "succeeded")
        .map(|r| r["resource_id"].as_str().unwrap())
        .collect();
    assert_eq!(fixed, BTreeSet::from([expired.as_str(), plain.as_str()]));
}

#[tokio::test]
async fn after_a_fix_config_is_asked_to_reevaluate_the_rule() {
    let w = World::new("reeval", &ssh_policy("")).await;
    let sg = w.security_group("g", &[(22, "0.0.0.0/0")]).await;
    // A rule name only this test uses, as Security Hub's suffixed names look; Config
    // holds the rule and its finding (StartConfigRulesEvaluation needs the rule to exist).
    let rule = format!("securityhub-restricted-ssh-{}", w.prefix);
    w.send_event(&EventBuilder::new(&rule, SG, &sg)).await;
    let records = w.run_once(&[]);
    let done = executions(&records);
    assert_eq!(done.len(), 1, "{records:#?}");
    assert_eq!(done[0]["outcome"], "succeeded");
    assert!(reason(done[0]).contains("Config re-evaluation queued"));
    assert!(w.ingress(&sg).await.is_empty());
    let mine = reevaluations_of(&rule);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["account"], ACCOUNT);
    assert_eq!(mine[0]["config_rule_names"], serde_json::json!([rule]));
}

#[tokio::test]
async fn the_kill_switch_sends_automatic_fixes_to_approval_and_nothing_is_fixed() {
    let w = World::new("kill", &ssh_policy("")).await;
    let switch = format!("/{}/kill-switch", w.prefix);
    w.set_policy(&ssh_policy(&format!(
        "[limits]\nkill_switch_parameter = \"{switch}\"\nkill_switch_cache = \"1s\"\n"
    )));
    w.put_parameter(&switch, "on").await;
    let groups = open_groups(&w, 2).await;
    let records = w.run_once(&[]);

    for sg in &groups {
        assert!(ssh_open(&w, sg).await, "{sg} was fixed with the switch on");
    }
    let tripped = with_decision(&records, "guard_tripped");
    assert_eq!(tripped.len(), 1, "{records:#?}");
    assert!(reason(tripped[0]).contains(&switch) && reason(tripped[0]).contains("is on"));
    let diverted = with_decision(&records, "approval_requested");
    assert_eq!(diverted.len(), 2, "{records:#?}");
    assert!(diverted
        .iter()
        .all(|r| r["worker"] == "executor" && reason(r).contains("kill switch")));
    let ids = w.approval_ids();
    assert_eq!(ids.len(), 2);

    // A person's approval does not outrank the switch: it is held, and the request
    // comes back showing whose approval it was.
    let out = w.redress_as(
        "alice",
        &["approvals", "approve", &ids[0], "--reason", "INC-7"],
    );
    assert!(out.status.success());
    let records = w.run_once(&[]);
    assert!(
        executions(&records).iter().all(|r| r["outcome"].is_null()),
        "{records:#?}"
    );
    assert!(ssh_open(&w, &groups[0]).await && ssh_open(&w, &groups[1]).await);
    assert_eq!(w.approval_ids().len(), 2, "the held request is back");
    let held = w.approval_list();
    let back = held["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == ids[0].as_str())
        .unwrap();
    assert!(
        back["request"]["returned"]["why"]
            .as_str()
            .unwrap()
            .starts_with("held: kill switch"),
        "{back:#}"
    );

    // Switched off: automatic fixes resume (a running executor also audits the
    // change; this is a new process, which has only ever seen it off).
    w.put_parameter(&switch, "off").await;
    let third = w.security_group("late", &[(22, "0.0.0.0/0")]).await;
    w.send_event(&EventBuilder::new("restricted-ssh", SG, &third))
        .await;
    let records = w.run_once(&[]);
    assert!(!ssh_open(&w, &third).await);
    assert!(
        with_decision(&records, "guard_tripped").is_empty(),
        "{records:#?}"
    );
}

#[tokio::test]
async fn the_breaker_opens_after_failures_and_later_tasks_go_to_approval() {
    let policy = format!(
        r#"
[limits]
breaker_error_rate = 0.5
breaker_min_fixes = 3
breaker_window = "10m"
breaker_cooldown = "10m"
{}"#,
        policy_fixture("always-fails")
    );
    let w = World::new("breaker", &policy).await;
    let findings: Vec<EventBuilder> = (0..6)
        .map(|i| {
            let bucket = format!("{}-b{i}", w.prefix);
            EventBuilder::new("broken-runbook-rule", "AWS::S3::Bucket", &bucket)
        })
        .collect();
    w.send_events(&findings).await;
    // One at a time, so the order of failures and trips is deterministic.
    let records = w.run_once(&["--concurrency", "1"]);

    let failed: Vec<_> = executions(&records)
        .into_iter()
        .filter(|r| r["outcome"] == "failed")
        .collect();
    assert_eq!(failed.len(), 3, "{records:#?}");
    let tripped = with_decision(&records, "guard_tripped");
    assert_eq!(tripped.len(), 1, "{records:#?}");
    assert!(
        reason(tripped[0]).contains("3 of 3 fixes failed"),
        "{}",
        reason(tripped[0])
    );
    let diverted = with_decision(&records, "approval_requested");
    assert_eq!(diverted.len(), 3, "{records:#?}");
    assert!(diverted
        .iter()
        .all(|r| reason(r).contains("circuit breaker open")));
    assert_eq!(w.approval_ids().len(), 3);
    assert_eq!(w.drain("tasks-dlq").await.len(), 3);
}

#[tokio::test]
async fn a_per_rule_rate_cap_sends_the_excess_to_approval() {
    let w = World::new("ratecap", &ssh_policy("")).await;
    w.set_policy(&format!("{}max_fixes_per_minute = 2\n", ssh_policy("")));
    let groups = open_groups(&w, 5).await;
    let records = w.run_once(&[]);

    let mut open = 0;
    for sg in &groups {
        open += usize::from(ssh_open(&w, sg).await);
    }
    assert_eq!(open, 3, "exactly two fixed");
    let tripped = with_decision(&records, "guard_tripped");
    assert_eq!(tripped.len(), 1, "{records:#?}");
    assert!(reason(tripped[0])
        .contains("rate cap: 2 automatic fixes in the last minute under rule ssh"));
    assert_eq!(w.approval_ids().len(), 3);
}

#[tokio::test]
async fn dry_run_over_the_demo_world_changes_nothing() {
    let policy =
        std::fs::read_to_string(crate::support::root().join("infra/policies/default.toml"))
            .unwrap();
    let w = World::new("dryrun", &policy).await;
    let world = crate::support::demo_world(&w);
    let before = crate::support::demo_report(&w, &world);
    let findings: Vec<EventBuilder> = crate::support::demo_findings(&w, &world)
        .into_iter()
        .map(|f| {
            let e =
                EventBuilder::new(&f.rule, &f.resource_type, &f.resource).compliance(&f.compliance);
            match &f.annotation {
                Some(a) => e.annotation(a),
                None => e,
            }
        })
        .collect();
    w.send_events(&findings).await;
    let out = w
        .command_as("test", &["run", "--once"])
        .env("REDRESS_DRY_RUN", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        crate::support::text(&out.stderr)
    );
    let records = crate::support::audit(&out);
    let after = crate::support::demo_report(&w, &world);
    assert_eq!(before, after, "the world changed in a dry run");

    let dry: Vec<_> = records
        .iter()
        .filter(|r| r["outcome"] == "dry_run")
        .collect();
    // Three automatic fixes (21, the drift, the bucket) and three approval requests (22,
    // the missing and the unauthorized parameter), each only described.
    assert_eq!(dry.len(), 6, "{records:#?}");
    assert!(records
        .iter()
        .filter(|r| r["outcome"].is_string())
        .all(|r| r["outcome"] == "dry_run" && r["dry_run"] == true));
    assert!(w.approval_ids().is_empty(), "a dry run queued an approval");
    assert_eq!(w.depth("tasks").await, (0, 0));
}
