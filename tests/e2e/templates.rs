//! Every template in infra/cloudformation/ deploys, and a member account's Config event
//! reaches the central events queue through the forwarding path.
//!
//! tests/e2e/templates.py starts a moto of its own on loopback (the templates use fixed
//! names: queues, member roles, rules on the default bus) and deploys, with moto's
//! CloudFormation, redress.yaml in ECS mode and in Lambda mode (with lambda.yaml, another
//! region), member.yaml in the central account and in a member account's two regions, and
//! config.yaml in both accounts. moto's CloudFormation skips the types it does not
//! implement; the script puts those the APIs can hold (Config's recorder, delivery channel
//! and rules, the bus, queue and bucket policies) as CloudFormation would, from the
//! template's resolved properties. Alarms, autoscaling and the scheduler are checked by
//! cfn-lint only. The tests here then read what exists through the SDK.
//!
//! What moto does not do for the forwarding path, hence what is proven elsewhere: it
//! delivers to a cross-account bus target but re-puts the event on the central bus as the
//! central account's own (AWS keeps the member's `account` and `region`), and it evaluates
//! neither the forwarding role nor the central bus's policy. So the central rule's pattern
//! is also run (by moto's matcher) against an event whose `account` is the member and whose
//! `region` is another; and tests/e2e/iam.rs's model proves the bus policy admits the
//! organization and refuses everyone else, and that only EventBridge, for the member's
//! forwarding rule, acts as the forwarding role.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::root;

const CENTRAL: &str = "123456789012";
const MEMBER: &str = "111122223333";

/// The deployment, started once for the tests of this module.
struct Deployed {
    info: Value,
    _child: Child,
    // Open for the life of the test process: when it ends, the script exits.
    _stdin: ChildStdin,
}

fn deployed() -> &'static Value {
    static D: OnceLock<Deployed> = OnceLock::new();
    &D.get_or_init(|| {
        let python = root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "the template tests need the emulator's virtualenv: run `make venv`"
        );
        let log =
            std::env::temp_dir().join(format!("redress-templates-{}.log", std::process::id()));
        let started = Instant::now();
        let mut child = Command::new(python)
            .arg(root().join("tests/e2e/templates.py"))
            .arg("--exit-with-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file in the temp dir"))
            .spawn()
            .expect("start tests/e2e/templates.py");
        let stdin = child.stdin.take().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            !line.is_empty(),
            "tests/e2e/templates.py exited before deploying; its log: {}",
            log.display()
        );
        eprintln!("templates deployed in {:?}", started.elapsed());
        Deployed {
            info: serde_json::from_str(&line).unwrap(),
            _child: child,
            _stdin: stdin,
        }
    })
    .info
}

fn stack<'a>(d: &'a Value, template: &str, account: &str, region: &str) -> &'a Value {
    d["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["template"] == template && s["account"] == account && s["region"] == region)
        .unwrap_or_else(|| panic!("no {template}.yaml stack in {account} {region}"))
}

fn output(s: &Value, key: &str) -> String {
    s["outputs"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no output {key}: {}", s["name"], s["outputs"]))
        .to_string()
}

fn created(s: &Value, logical: &str) -> bool {
    s["created"].get(logical).is_some()
        || s["emulated"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == logical)
}

async fn sdk(account: &str, region: &str) -> aws_config::SdkConfig {
    let d = deployed();
    let creds = if account == CENTRAL {
        aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "templates")
    } else {
        let c = &d["member_credentials"];
        aws_sdk_sqs::config::Credentials::new(
            c["access_key_id"].as_str().unwrap(),
            c["secret_access_key"].as_str().unwrap(),
            c["session_token"].as_str().map(str::to_string),
            None,
            "templates",
        )
    };
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(d["endpoint"].as_str().unwrap())
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(creds)
        .load()
        .await
}

/// Resource types moto's CloudFormation skips and nothing here can put: cfn-lint checks them.
const NOT_EMULATED: &[&str] = &[
    "AWS::CloudWatch::Alarm",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
    "AWS::Scheduler::Schedule",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_deploys_into_the_emulators_cloudformation() {
    let d = deployed();
    for s in d["stacks"].as_array().unwrap() {
        assert_eq!(s["status"], "CREATE_COMPLETE", "{}", s["name"]);
        let emulated: BTreeSet<&str> = s["emulated"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for (logical, kind) in s["skipped"].as_object().unwrap() {
            assert!(
                emulated.contains(logical.as_str())
                    || NOT_EMULATED.contains(&kind.as_str().unwrap()),
                "{} {} {}: {logical} ({kind}) was neither created nor emulated",
                s["template"],
                s["account"],
                s["region"]
            );
        }
    }

    // ---- exactly one worker mode runs
    let ecs = stack(d, "redress", CENTRAL, "us-east-1");
    let lam = stack(d, "redress", CENTRAL, "us-west-2");
    for logical in [
        "RouterService",
        "ExecutorService",
        "RouterTaskRole",
        "ExecutorTaskRole",
    ] {
        assert!(created(ecs, logical), "ECS mode: no {logical}");
        assert!(!created(lam, logical), "Lambda mode runs {logical} too");
    }
    for logical in ["RouterScaling", "ExecutorScaling", "RouterScalableTarget"] {
        assert!(ecs["skipped"].get(logical).is_some(), "ECS mode: {logical}");
        assert!(
            lam["skipped"].get(logical).is_none(),
            "Lambda mode: {logical}"
        );
    }
    assert_eq!(
        output(ecs, "ExecutorRoleArn"),
        output(ecs, "ExecutorTaskRoleArn")
    );
    let lambda_stack = stack(d, "lambda", CENTRAL, "us-west-2");
    assert_eq!(
        output(lam, "ExecutorRoleArn"),
        output(lambda_stack, "LambdaExecutorRoleArn")
    );
    assert!(lam["outputs"].get("ExecutorTaskRoleArn").is_none());

    // ---- queues, rule, its target's retries and dead letters, the bus policy
    let central = sdk(CENTRAL, "us-east-1").await;
    let sqs = aws_sdk_sqs::Client::new(&central);
    let urls = sqs.list_queues().send().await.unwrap();
    let names: BTreeSet<String> = urls
        .queue_urls()
        .iter()
        .map(|u| u.rsplit('/').next().unwrap().to_string())
        .collect();
    for q in ["events", "tasks", "approvals"] {
        for name in [format!("redress-{q}"), format!("redress-{q}-dlq")] {
            assert!(names.contains(&name), "no queue {name}: {names:?}");
        }
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(output(ecs, &format!("{}QueueUrl", capitalized(q))))
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
            .send()
            .await
            .unwrap();
        let redrive = attrs.attributes().unwrap()
            [&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy]
            .clone();
        assert!(
            redrive.contains(&format!("redress-{q}-dlq")),
            "{q}: {redrive}"
        );
    }
    let events = aws_sdk_eventbridge::Client::new(&central);
    let targets = events
        .list_targets_by_rule()
        .rule("redress-events-compliance-change")
        .send()
        .await
        .unwrap();
    let [target] = targets.targets() else {
        panic!("{targets:?}")
    };
    assert_eq!(target.arn(), output(ecs, "EventsQueueArn"));
    assert_eq!(
        target.dead_letter_config().and_then(|c| c.arn()),
        Some(output(ecs, "EventsDlqArn").as_str()),
        "the rule's deliveries that fail go to the events DLQ"
    );
    let retry = target.retry_policy().expect("a retry policy");
    assert_eq!(retry.maximum_event_age_in_seconds(), Some(86400));
    let bus = events
        .describe_event_bus()
        .name("default")
        .send()
        .await
        .unwrap();
    let policy: Value = serde_json::from_str(bus.policy().expect("the bus policy")).unwrap();
    assert_eq!(
        policy["Statement"][0]["Condition"]["StringEquals"]["aws:PrincipalOrgID"],
        d["organization"],
        "{policy}"
    );

    // ---- roles
    let iam = aws_sdk_iam::Client::new(&central);
    let mut central_roles = vec![
        "redress-evaluator-us-east-1".to_string(),
        "redress-remediation".into(),
        "redress-automation".into(),
        "redress-lambda-router-us-west-2".into(),
        "redress-lambda-executor-us-west-2".into(),
    ];
    for key in [
        "RouterTaskRoleArn",
        "ExecutorTaskRoleArn",
        "SweepTaskRoleArn",
        "ApproverRoleArn",
        "OperatorRoleArn",
    ] {
        central_roles.push(output(ecs, key).rsplit('/').next().unwrap().to_string());
    }
    for role in &central_roles {
        iam.get_role()
            .role_name(role)
            .send()
            .await
            .unwrap_or_else(|e| panic!("central role {role}: {e:?}"));
    }
    // No forwarding where the events are on the central bus already.
    assert!(iam
        .get_role()
        .role_name("redress-forward-events-us-east-1")
        .send()
        .await
        .is_err());
    let member_iam = aws_sdk_iam::Client::new(&sdk(MEMBER, "us-east-1").await);
    for role in [
        "redress-remediation",
        "redress-automation",
        "redress-forward-events-us-east-1",
        "redress-forward-events-eu-west-1",
        "redress-evaluator-eu-west-1",
    ] {
        member_iam
            .get_role()
            .role_name(role)
            .send()
            .await
            .unwrap_or_else(|e| panic!("member role {role}: {e:?}"));
    }
    let trust = member_iam
        .get_role()
        .role_name("redress-remediation")
        .send()
        .await
        .unwrap();
    let trust = trust
        .role()
        .unwrap()
        .assume_role_policy_document()
        .unwrap_or_default()
        .to_string();
    let trust = decoded(&trust);
    assert!(
        trust.contains(&output(ecs, "ExecutorRoleArn")),
        "the member role trusts the executor that runs: {trust}"
    );

    // ---- functions
    for (account, region) in [(CENTRAL, "us-east-1"), (MEMBER, "eu-west-1")] {
        let lambda = aws_sdk_lambda::Client::new(&sdk(account, region).await);
        let f = lambda
            .get_function()
            .function_name("redress-evaluator")
            .send()
            .await
            .unwrap();
        let c = f.configuration().unwrap();
        assert_eq!(c.runtime().map(|r| r.as_str()), Some("provided.al2023"));
        assert_eq!(c.handler(), Some("bootstrap"));
        let env = c.environment().and_then(|e| e.variables()).unwrap();
        assert_eq!(env["REDRESS_LAMBDA_WORKER"], "evaluator");
        let policy = lambda
            .get_policy()
            .function_name("redress-evaluator")
            .send()
            .await
            .unwrap();
        let policy = policy.policy().unwrap_or_default();
        assert!(
            policy.contains("config.amazonaws.com") && policy.contains(account),
            "{policy}"
        );
    }
    let lambda = aws_sdk_lambda::Client::new(&sdk(CENTRAL, "us-west-2").await);
    for (function, worker) in [
        ("redress-router", "router"),
        ("redress-executor", "executor"),
    ] {
        let f = lambda
            .get_function()
            .function_name(function)
            .send()
            .await
            .unwrap();
        let c = f.configuration().unwrap();
        assert_eq!(
            c.environment().and_then(|e| e.variables()).unwrap()["REDRESS_LAMBDA_WORKER"],
            worker
        );
        assert_eq!(
            c.architectures()
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>(),
            ["x86_64"],
            "the default architecture is the documented build's"
        );
        let mappings = lambda
            .list_event_source_mappings()
            .function_name(function)
            .send()
            .await
            .unwrap();
        assert_eq!(mappings.event_source_mappings().len(), 1, "{function}");
    }

    // ---- Config: recorder, rules (the custom ones bound to the evaluator)
    for (account, region, global) in [(CENTRAL, "us-east-1", true), (MEMBER, "eu-west-1", false)] {
        let sdk = sdk(account, region).await;
        let config = aws_sdk_config::Client::new(&sdk);
        let recorders = config
            .describe_configuration_recorders()
            .send()
            .await
            .unwrap();
        let [recorder] = recorders.configuration_recorders() else {
            panic!("{recorders:?}")
        };
        let group = recorder.recording_group().unwrap();
        assert!(group.all_supported());
        assert_eq!(
            group.include_global_resource_types(),
            global,
            "{account} {region}"
        );
        let rules = config_rules(&config).await;
        let names: BTreeSet<&str> = rules.iter().filter_map(|r| r.config_rule_name()).collect();
        for name in [
            "redress-sg-admin-ports",
            "redress-sg-privileged-ports",
            "redress-parameter-drift",
            "restricted-ssh",
            "restricted-common-ports",
            "s3-bucket-ssl-requests-only",
            "s3-bucket-server-side-encryption-enabled",
            "rds-storage-encrypted",
            "elb-tls-https-listeners-only",
            "alb-http-to-https-redirection-check",
            "ec2-imdsv2-check",
        ] {
            assert!(
                names.contains(name),
                "{account} {region}: no rule {name}: {names:?}"
            );
        }
        for name in ["root-account-mfa-enabled", "cloudtrail-enabled"] {
            assert_eq!(
                names.contains(name),
                global,
                "{account} {region}: {name} only in the global region"
            );
        }
        let evaluator = output(stack(d, "config", account, region), "EvaluatorFunctionArn");
        for rule in &rules {
            let name = rule.config_rule_name().unwrap();
            let source = rule.source().unwrap();
            if !name.starts_with("redress-") {
                assert_eq!(source.owner().as_str(), "AWS", "{name}");
                continue;
            }
            assert_eq!(source.owner().as_str(), "CUSTOM_LAMBDA", "{name}");
            assert_eq!(
                source.source_identifier(),
                Some(evaluator.as_str()),
                "{name}"
            );
            let kinds: Vec<&str> = source
                .source_details()
                .iter()
                .filter_map(|s| s.message_type())
                .map(|m| m.as_str())
                .collect();
            if name == "redress-parameter-drift" {
                assert_eq!(kinds, ["ScheduledNotification"]);
                assert_eq!(
                    source.source_details()[0]
                        .maximum_execution_frequency()
                        .map(|f| f.as_str()),
                    Some("TwentyFour_Hours")
                );
                let input: Value = serde_json::from_str(rule.input_parameters().unwrap()).unwrap();
                assert_eq!(input["currentPrefix"], "/{app}/current/");
                assert_eq!(input["approvedPrefix"], "/{app}/approved/");
                assert!(input["apps"].as_str().is_some_and(|a| !a.is_empty()));
            } else {
                assert_eq!(
                    kinds,
                    [
                        "ConfigurationItemChangeNotification",
                        "OversizedConfigurationItemChangeNotification"
                    ],
                    "{name}"
                );
                let scope = rule.scope().unwrap().compliance_resource_types();
                assert_eq!(scope, ["AWS::EC2::SecurityGroup"], "{name}");
            }
        }
    }
}

async fn config_rules(config: &aws_sdk_config::Client) -> Vec<aws_sdk_config::types::ConfigRule> {
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let out = config
            .describe_config_rules()
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        all.extend(out.config_rules().iter().cloned());
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return all,
        }
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// IAM returns policy documents URL-encoded; moto may not.
fn decoded(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every `config_rule` glob of the shipped policies matches a rule config.yaml creates, so
/// every finding the packs act on has a rule that raises it.
#[test]
fn config_yaml_creates_a_rule_for_every_config_rule_the_policies_name() {
    let t = &crate::iam::templates()["config"];
    let names: Vec<String> = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::Config::ConfigRule")
        .map(|r| {
            r["Properties"]["ConfigRuleName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut checked = 0;
    for pack in ["default", "soc2", "hipaa"] {
        let policy =
            std::fs::read_to_string(root().join(format!("infra/policies/{pack}.toml"))).unwrap();
        for line in policy.lines().filter(|l| l.starts_with("config_rule = \"")) {
            let glob = line.split('"').nth(1).unwrap();
            let m = globset::Glob::new(glob).unwrap().compile_matcher();
            assert!(
                names.iter().any(|n| m.is_match(n)),
                "{pack}.toml: config_rule = {glob:?} matches no rule in config.yaml ({names:?})"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} config_rule lines");
}

/// A member account's compliance change, put on its own default bus in another region,
/// arrives on the central events queue through member.yaml's forwarding rule and the
/// central rule; a non-Config event does not. See the module's doc for what moto's
/// delivery leaves out (the event arrives re-stamped as the central account's; the bus
/// policy and the forwarding role are not evaluated) and where that is proven instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_accounts_config_event_reaches_the_central_events_queue() {
    let d = deployed();
    // The central rule's pattern names no account or region: member events match it.
    let pattern: Value = serde_json::from_str(d["central_pattern"].as_str().unwrap()).unwrap();
    assert!(
        pattern.get("account").is_none() && pattern.get("region").is_none(),
        "{pattern}"
    );
    assert_eq!(d["central_rule_matches_member_event"], true);
    assert_eq!(d["central_rule_matches_other_source"], false);

    let member = sdk(MEMBER, "eu-west-1").await;
    let events = aws_sdk_eventbridge::Client::new(&member);
    // The forwarding rule targets the central bus, with the role EventBridge uses for it.
    let targets = events
        .list_targets_by_rule()
        .rule("redress-forward-compliance-change")
        .send()
        .await
        .unwrap();
    let [target] = targets.targets() else {
        panic!("{targets:?}")
    };
    assert_eq!(
        target.arn(),
        format!("arn:aws:events:us-east-1:{CENTRAL}:event-bus/default")
    );
    assert_eq!(
        target.role_arn(),
        Some(format!("arn:aws:iam::{MEMBER}:role/redress-forward-events-eu-west-1").as_str())
    );

    let marker = format!("sg-{:x}", std::process::id());
    let detail = |rule: &str| {
        serde_json::json!({
            "resourceId": marker,
            "awsRegion": "eu-west-1",
            "awsAccountId": MEMBER,
            "configRuleName": rule,
            "recordVersion": "1.0",
            "messageType": "ComplianceChangeNotification",
            "resourceType": "AWS::EC2::SecurityGroup",
            "newEvaluationResult": {"complianceType": "NON_COMPLIANT", "annotation": "22 open to 0.0.0.0/0"},
            "oldEvaluationResult": {"complianceType": "COMPLIANT"}
        })
        .to_string()
    };
    let entry = |source: &str, rule: &str| {
        aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(source)
            .detail_type("Config Rules Compliance Change")
            .detail(detail(rule))
            .build()
    };
    let out = events
        .put_events()
        .entries(entry("aws.config", "redress-sg-admin-ports"))
        .entries(entry("aws.s3", "not-a-config-event"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_entry_count(), 0, "{out:?}");

    let sqs = aws_sdk_sqs::Client::new(&sdk(CENTRAL, "us-east-1").await);
    let url = output(stack(d, "redress", CENTRAL, "us-east-1"), "EventsQueueUrl");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut arrived = Vec::new();
    while Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            if body["detail"]["resourceId"] == marker.as_str() {
                arrived.push(body);
            }
        }
        if !arrived.is_empty() {
            // Anything forwarded with it was delivered in the same call.
            let more = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            arrived.extend(
                more.messages()
                    .iter()
                    .map(|m| serde_json::from_str::<Value>(m.body().unwrap()).unwrap())
                    .filter(|b| b["detail"]["resourceId"] == marker.as_str()),
            );
            break;
        }
    }
    assert_eq!(
        arrived.len(),
        1,
        "exactly the Config event arrives: {arrived:?}"
    );
    let e = &arrived[0];
    assert_eq!(e["source"], "aws.config");
    assert_eq!(e["detail-type"], "Config Rules Compliance Change");
    assert_eq!(e["detail"]["configRuleName"], "redress-sg-admin-ports");
    assert_eq!(e["detail"]["awsAccountId"], MEMBER);
    assert_eq!(e["detail"]["awsRegion"], "eu-west-1");
}

/// `make deploy`'s command sequence (infra/deploy.sh --dry-run, which prints exactly what a
/// real run executes): in order, with the settings resolved, every stack parameter it
/// passes a parameter of that template, and every required one passed.
#[test]
fn make_deploy_dry_run_prints_the_whole_sequence() {
    let account = "210987654321";
    let run = |mode: &str, complete: bool| {
        let mut cmd = Command::new("bash");
        cmd.arg(root().join("infra/deploy.sh"));
        cmd.arg("--dry-run")
            .env("WORKER_MODE", mode)
            .env("TAG", "v7");
        for var in [
            "AWS_REGION",
            "ACCOUNT",
            "DRY_RUN",
            "ORGANIZATION_ID",
            "ALARM_TOPIC",
        ] {
            cmd.env_remove(var);
        }
        if complete {
            cmd.env("REGION", "eu-west-1")
                .env("ACCOUNT", account)
                .env(
                    "APPROVERS",
                    format!("arn:aws:iam::{account}:user/alice,arn:aws:iam::{account}:user/bob"),
                )
                .env("OPERATORS", format!("arn:aws:iam::{account}:user/olivia"))
                .env("SUBNETS", "subnet-aaa,subnet-bbb")
                .env("SECURITY_GROUPS", "sg-egress")
                .env("CODE_BUCKET", "redress-code-bucket");
        } else {
            for var in [
                "REGION",
                "APPROVERS",
                "OPERATORS",
                "SUBNETS",
                "SECURITY_GROUPS",
                "CODE_BUCKET",
            ] {
                cmd.env_remove(var);
            }
        }
        let out = cmd.output().expect("run infra/deploy.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };

    for mode in ["ECS", "Lambda"] {
        let (plan, _) = run(mode, true);
        // One command a line (continuations joined), comments dropped.
        let commands: Vec<String> = plan
            .replace("\\\n", " ")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
        let image = format!("{account}.dkr.ecr.eu-west-1.amazonaws.com/redress:v7");
        let steps: Vec<(&str, String)> = [
            ("create the repository", "aws ecr create-repository --repository-name redress".to_string()),
            ("log in to ECR", format!("docker login --username AWS --password-stdin {account}.dkr.ecr.eu-west-1.amazonaws.com")),
            ("build the image", format!("docker build -t {image} .")),
            ("push the image", format!("docker push {image}")),
            ("build the binary", "docker build --target build".to_string()),
            ("upload the code", "aws s3 cp dist/redress-v7.zip s3://redress-code-bucket/redress/redress-v7.zip".to_string()),
            ("deploy the central stack", "--stack-name redress --template-file infra/cloudformation/redress.yaml".to_string()),
            ("deploy the Lambda workers", "--stack-name redress-lambda --template-file infra/cloudformation/lambda.yaml".to_string()),
            ("deploy the member roles", "--stack-name redress-member --template-file infra/cloudformation/member.yaml".to_string()),
            ("deploy Config", "--stack-name redress-config --template-file infra/cloudformation/config.yaml".to_string()),
        ]
        .into_iter()
        .filter(|(what, _)| mode == "Lambda" || !what.contains("Lambda"))
        .collect();
        let mut at = 0;
        for (what, needle) in &steps {
            let found = commands[at..]
                .iter()
                .position(|c| c.contains(needle.as_str()));
            let Some(i) = found else {
                panic!("{mode}: no step `{what}` ({needle}) after command {at}:\n{plan}")
            };
            at += i + 1;
        }
        assert_eq!(
            commands.iter().any(|c| c.contains("lambda.yaml")),
            mode == "Lambda",
            "{mode}: lambda.yaml only in Lambda mode"
        );
        // Every stack's parameters exist in its template; the required ones are passed.
        let templates = crate::iam::templates();
        let mut stacks = 0;
        for c in commands
            .iter()
            .filter(|c| c.starts_with("aws cloudformation deploy"))
        {
            stacks += 1;
            let words: Vec<&str> = c.split_whitespace().collect();
            let file = words[words.iter().position(|w| *w == "--template-file").unwrap() + 1];
            let name = file.rsplit('/').next().unwrap().trim_end_matches(".yaml");
            let params = &templates[name]["Parameters"];
            let from = words
                .iter()
                .position(|w| *w == "--parameter-overrides")
                .unwrap()
                + 1;
            // KEY=VALUE words (a value may be a quoted `$(output ...)` spanning words).
            let given: BTreeSet<&str> = words[from..]
                .iter()
                .filter_map(|w| w.split_once('=').map(|(k, _)| k))
                .filter(|k| {
                    k.starts_with(|c: char| c.is_ascii_uppercase())
                        && k.chars().all(|c| c.is_ascii_alphanumeric())
                })
                .collect();
            for key in &given {
                assert!(
                    params.get(*key).is_some(),
                    "{name}.yaml has no parameter {key}"
                );
            }
            for (key, p) in params.as_object().unwrap() {
                assert!(
                    p.get("Default").is_some() || given.contains(key.as_str()),
                    "{mode}: {name}.yaml's {key} is required and not passed"
                );
            }
            assert!(!c.contains('<'), "{mode}: an unresolved setting in {c}");
            if name == "redress" {
                assert!(
                    c.contains(&format!("ImageUri={image}"))
                        && c.contains(&format!("WorkerMode={mode}")),
                    "{c}"
                );
                assert!(c.contains(&format!("ApproverUserArns=arn:aws:iam::{account}:user/alice,arn:aws:iam::{account}:user/bob")), "{c}");
            }
        }
        assert_eq!(stacks, if mode == "Lambda" { 4 } else { 3 });
    }

    // Missing settings: a dry run whatever was asked, saying what is missing.
    let (plan, said) = run("ECS", false);
    assert!(
        said.contains("missing REGION") && said.contains("CODE_BUCKET") && said.contains("dry run"),
        "{said}"
    );
    assert!(
        plan.contains(
            "--parameter-overrides ImageUri=<ACCOUNT>.dkr.ecr.<REGION>.amazonaws.com/redress:v7"
        ),
        "{plan}"
    );
}
