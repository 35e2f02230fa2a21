//! The remediation ledger on the local stack: each fix leaves an entry with the state
//! before and after, `redress history` shows it, and a finding another executor holds is
//! left to it. Each test provisions a ledger table of its own (the world's other commands
//! run without one).

use std::process::Output;
use std::time::Duration;

use redress::ledger::{Actor, Change, EntryId, Status};
use redress::policy::{Fix, RenderedAction, Severity};
use redress_workers::aws::ledger::LedgerTable;
use redress_workers::executor::ledger::NotNow;
use redress_workers::executor::{Done, Ledger};
use serde_json::Value;

use crate::support::{audit, executions, policy_fixtures, text, EventBuilder, World};

const SG: &str = "AWS::EC2::SecurityGroup";

/// A world whose commands (through [`Ledgered::redress`]) record in a ledger table of its
/// own, provisioned.
struct Ledgered {
    w: World,
    table: String,
}

impl Ledgered {
    async fn new(test: &str, rules: &[&str], vars: &[(&str, &str)]) -> Ledgered {
        let policy = format!(
            "[routing]\nauto_max_severity = \"MEDIUM\"\n{}",
            policy_fixtures(rules, vars)
        );
        let w = World::new(test, &policy).await;
        let table = format!("{}-ledger", w.prefix);
        let l = Ledgered { w, table };
        let out = l.redress(&["provision"]);
        assert!(out.status.success(), "provision: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains(&format!("table     {}", l.table)),
            "{}",
            text(&out.stdout)
        );
        l
    }

    fn redress(&self, args: &[&str]) -> Output {
        self.w
            .command(args)
            .env("REDRESS_LEDGER_TABLE", &self.table)
            .output()
            .expect("run redress")
    }

    /// `history --resource ID --json`: the entries.
    fn history(&self, resource: &str) -> Vec<Value> {
        let out = self.redress(&["history", "--resource", resource, "--json"]);
        assert!(out.status.success(), "history: {}", text(&out.stderr));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["entries"].as_array().unwrap().clone()
    }

    /// The one entry about `resource`, which must show a finished, automatic change.
    fn fixed(&self, resource: &str) -> Value {
        let entries = self.history(resource);
        assert_eq!(entries.len(), 1, "{entries:#?}");
        let e = entries[0].clone();
        assert!(
            ["succeeded", "verified"].contains(&e["status"].as_str().unwrap()),
            "{e:#}"
        );
        assert_eq!(e["actor"]["kind"], "automatic", "{e:#}");
        assert_eq!(e["finding"]["resource_id"], resource);
        assert!(
            e["lease"].is_null(),
            "the outcome released the lease: {e:#}"
        );
        assert!(e["times"]["fixed_at"].is_string(), "{e:#}");
        e
    }

    fn ledger(&self, holder: &str) -> Ledger {
        Ledger::new(
            LedgerTable::new(self.w.clients.dynamodb.clone(), &self.table),
            holder,
            Duration::from_secs(600),
            None,
        )
    }
}

fn pairs(permissions: &Value) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = permissions
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            let port = p["from_port"].as_i64().unwrap();
            p["ipv4"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |c| (port, c.as_str().unwrap().to_string()))
        })
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn a_revoke_a_restore_and_a_runbook_each_leave_an_entry_with_before_and_after() {
    let pp = format!("/ledger-{}/", std::process::id());
    let l = Ledgered::new(
        "ledger",
        &["ssh-low", "param-drift", "sg-runbook"],
        &[("prefix", &pp)],
    )
    .await;
    let w = &l.w;
    let ssh = w
        .security_group("ssh", &[(22, "0.0.0.0/0"), (443, "10.0.0.0/8")])
        .await;
    let rb = w
        .security_group("rb", &[(22, "0.0.0.0/0"), (3389, "0.0.0.0/0")])
        .await;
    let current = format!("{pp}current/db_pool_size");
    w.put_parameter(&format!("{pp}approved/db_pool_size"), "20")
        .await;
    w.put_parameter(&current, "200").await;
    w.send_events(&[
        EventBuilder::new("restricted-ssh", SG, &ssh),
        EventBuilder::new("ssm-parameter-drift", "AWS::SSM::Parameter", &current),
        EventBuilder::new("sg-public-admin-access", SG, &rb),
    ])
    .await;
    let out = l.redress(&["run", "--once"]);
    assert!(out.status.success(), "run: {}", text(&out.stderr));
    let records = audit(&out);
    let runs = executions(&records);
    assert_eq!(
        runs.iter().filter(|r| r["outcome"] == "succeeded").count(),
        3,
        "{records:#?}"
    );

    // The revoke: the ingress before, exactly what was revoked; the world agrees.
    let e = l.fixed(&ssh);
    assert_eq!(e["rule_id"], "ssh");
    let change = &e["change"];
    assert_eq!(change["kind"], "revoke_ingress", "{e:#}");
    assert_eq!(change["group_id"], ssh.as_str());
    assert_eq!(
        pairs(&change["before"]),
        vec![(22, "0.0.0.0/0".into()), (443, "10.0.0.0/8".into())]
    );
    assert_eq!(pairs(&change["revoked"]), vec![(22, "0.0.0.0/0".into())]);
    assert_eq!(w.ingress(&ssh).await, vec![(443, "10.0.0.0/8".into())]);

    // The restore: the version replaced and the one written, with their type; no value.
    let e = l.fixed(&current);
    let change = &e["change"];
    assert_eq!(change["kind"], "restore_parameter", "{e:#}");
    assert_eq!(change["name"], current.as_str());
    assert_eq!(change["before"]["version"], 1);
    assert_eq!(change["before"]["value_type"], "String");
    assert_eq!(change["after"]["version"], 2);
    assert_eq!(change["after"]["value_type"], "String");
    assert!(
        !e.to_string().contains("\"200\""),
        "a value in the ledger: {e}"
    );
    assert_eq!(w.parameter(&current).await, "20");

    // The runbook: the document, its inputs and the execution the audit names.
    let e = l.fixed(&rb);
    let change = &e["change"];
    assert_eq!(change["kind"], "runbook", "{e:#}");
    assert_eq!(
        change["document"],
        "AWS-DisablePublicAccessForSecurityGroup"
    );
    assert_eq!(change["inputs"]["GroupId"], serde_json::json!([rb]));
    let audited = runs
        .iter()
        .find(|r| r["rule"] == "sg-runbook")
        .and_then(|r| r["execution_id"].as_str())
        .expect("the runbook's execution in the audit");
    assert_eq!(e["execution_id"], audited);
    assert!(w.ingress(&rb).await.is_empty());

    // The same, for people: one row per change, before → after.
    let out = l.redress(&["history", "--resource", &ssh]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let row = table
        .lines()
        .find(|line| line.contains(&ssh))
        .unwrap_or_else(|| panic!("no row for {ssh}:\n{table}"));
    for word in [
        "automatic",
        "revoke_public_ingress",
        "tcp 22 from 0.0.0.0/0; tcp 443 from 10.0.0.0/8 → tcp 443 from 10.0.0.0/8",
    ] {
        assert!(row.contains(word), "{word:?} not in {row:?}");
    }
}

#[tokio::test]
async fn of_two_executors_given_the_same_finding_only_one_acts() {
    let l = Ledgered::new("ledger-race", &["ssh-low"], &[]).await;
    let ssh = l.w.security_group("race", &[(22, "0.0.0.0/0")]).await;
    let task = EventBuilder::new("restricted-ssh", SG, &ssh).task("ssh", Severity::Low);
    let action = RenderedAction::Fix(Fix::RevokePublicIngress {
        ports: Some(vec![22]),
    });
    let (a, b) = (l.ledger("executor-a"), l.ledger("executor-b"));
    let (ra, rb) = tokio::join!(
        a.begin(&task, &action, Actor::Automatic, None),
        b.begin(&task, &action, Actor::Automatic, None)
    );
    let (winner, loser) = match (ra, rb) {
        (Ok(Some(intent)), Err(other)) => ((a, intent), other),
        (Err(other), Ok(Some(intent))) => ((b, intent), other),
        other => panic!("exactly one executor must hold the finding: {other:?}"),
    };
    assert!(matches!(loser, NotNow::Held { .. }), "{loser:?}");
    // The stored entry is the winner's intent, under its lease.
    let table = LedgerTable::new(l.w.clients.dynamodb.clone(), &l.table);
    let stored = table.get(&EntryId::for_task(&task)).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Intent);
    assert_eq!(stored.lease, winner.1.lease);
    // Once the winner has acted, the finding is done for everybody.
    let (ledger, intent) = winner;
    let revoked = Change::RevokeIngress {
        group_id: ssh.clone(),
        before: vec![],
        revoked: vec![],
    };
    ledger
        .finish(Some(intent), &Ok(Done::succeeded("revoked", revoked)))
        .await;
    for late in [l.ledger("executor-a"), l.ledger("executor-c")] {
        let again = late
            .begin(&task, &action, Actor::Automatic, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                again,
                NotNow::Finished {
                    status: Status::Succeeded,
                    ..
                }
            ),
            "{again:?}"
        );
    }
    assert_eq!(l.history(&ssh).len(), 1);
}

#[tokio::test]
async fn a_finding_another_executor_holds_is_handed_back_untouched() {
    let l = Ledgered::new("ledger-held", &["ssh-low"], &[]).await;
    let w = &l.w;
    let ssh = w.security_group("held", &[(22, "0.0.0.0/0")]).await;
    let event = w
        .config_holds(
            &EventBuilder::new("restricted-ssh", SG, &ssh).recorded_at("2026-05-01T10:00:00Z"),
        )
        .await;
    // Another executor took the finding and is still at work on it.
    let task = event.task("ssh", Severity::Low);
    let action = RenderedAction::Fix(Fix::RevokePublicIngress {
        ports: Some(vec![22]),
    });
    l.ledger("elsewhere")
        .begin(&task, &action, Actor::Automatic, None)
        .await
        .unwrap()
        .expect("the other executor holds it");
    w.send("events", &event.build()).await;
    let out = l.redress(&["run", "--once"]);
    assert!(out.status.success(), "run: {}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.contains("held by another executor") && report.contains("elsewhere"),
        "{report}"
    );
    // Not acted on: still open, no outcome audited, the entry still the other's.
    assert_eq!(w.ingress(&ssh).await, vec![(22, "0.0.0.0/0".into())]);
    assert!(
        executions(&audit(&out))
            .iter()
            .all(|r| r["outcome"].is_null()),
        "{}",
        text(&out.stderr)
    );
    let entries = l.history(&ssh);
    assert_eq!(entries.len(), 1, "{entries:#?}");
    assert_eq!(entries[0]["status"], "intent");
    assert_eq!(entries[0]["lease"]["holder"], "elsewhere");
    // It waits, out of sight until the lease lapses: `run` handed the task to the
    // executor in memory, so the event is what was handed back for the retry's delay.
    assert_eq!(w.depth("events").await, (0, 1), "handed back for later");
    assert_eq!(w.depth("tasks").await, (0, 0));
}
