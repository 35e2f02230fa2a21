//! Test harness: one local stack per test process (or the one `make test` started), and
//! per test its own queues, event bus, policy and resources, so tests run in parallel.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_ec2::types::{IpPermission, IpRange};
use redress::ledger::{AttrValue, LedgerEntry};
use redress::message::{Finding, Task};
use redress::policy::Severity;
use redress_workers::aws::ledger;
use redress_workers::aws::sqs::{Outbound, Queue, Received};

pub const REGION: &str = "us-east-1";
/// The account moto answers for with dummy credentials.
pub const ACCOUNT: &str = "123456789012";

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct OwnStack {
    _child: Child,
    // Held open for the life of the test process: when the process ends, however it
    // ends, the pipe closes and the stack exits (`--exit-with-stdin`).
    _stdin: ChildStdin,
}

static STACK: OnceLock<(String, Mutex<Option<OwnStack>>)> = OnceLock::new();

/// Endpoint of the local stack: `REDRESS_E2E_ENDPOINT` if set, else one started here.
pub fn endpoint() -> &'static str {
    &STACK
        .get_or_init(|| {
            if let Ok(ep) = std::env::var("REDRESS_E2E_ENDPOINT") {
                return (ep, Mutex::new(None));
            }
            let python = root().join(".venv/bin/python");
            assert!(
                python.exists(),
                "end-to-end tests need the local stack's virtualenv: run `make test` (it creates .venv)"
            );
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free loopback port");
            let mut child = Command::new(python)
                .arg(root().join("infra/local/stack.py"))
                .args(["--port", &port.to_string(), "--exit-with-stdin"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the local stack");
            let stdin = child.stdin.take().expect("piped stdin");
            wait_until_blocking(
                Duration::from_secs(30),
                &format!("the local stack to listen on port {port}"),
                || TcpStream::connect(("127.0.0.1", port)).is_ok(),
            );
            (
                format!("http://127.0.0.1:{port}"),
                Mutex::new(Some(OwnStack {
                    _child: child,
                    _stdin: stdin,
                })),
            )
        })
        .0
}

/// SDK configuration for the local stack.
pub async fn sdk_config() -> aws_config::SdkConfig {
    sdk_config_as("test").await
}

/// SDK configuration for the local stack, as the user behind `access_key`.
pub async fn sdk_config_as(access_key: &str) -> aws_config::SdkConfig {
    sdk_config_with(
        aws_sdk_sqs::config::Credentials::new(access_key, "test", None, None, "e2e"),
        REGION,
    )
    .await
}

/// SDK configuration for the local stack with these credentials, in this region.
pub async fn sdk_config_with(
    credentials: aws_sdk_sqs::config::Credentials,
    region: &str,
) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(credentials)
        .load()
        .await
}

/// An IAM user created in the local stack.
pub struct IamUser {
    /// `arn:aws:iam::ACCOUNT:user/NAME`.
    pub arn: String,
    /// `AIDA…`: what STS answers as UserId and SQS stamps as SenderId.
    pub user_id: String,
    /// Its access key id (any secret works on the local stack).
    pub access_key: String,
}

/// One test's world: unique queue names, bus, policy file and clients.
pub struct World {
    pub prefix: String,
    pub dir: PathBuf,
    pub clients: redress_workers::aws::Clients,
    /// Whom redress runs as: [`ACCOUNT`]'s test user, or a role in the world's own account.
    credentials: aws_sdk_sqs::config::Credentials,
    /// The world's own ledger table, once [`World::use_ledger`] made it.
    ledger: OnceLock<String>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl World {
    /// Provisions queues and an event bus named after the test, with this policy.
    pub async fn new(test: &str, policy: &str) -> World {
        World::with_credentials(test, policy, credentials_in(ACCOUNT).await).await
    }

    /// A world in an account of its own: redress, its queues and the Config rules
    /// `provision` creates live there. redress's own Config rules evaluate every resource
    /// of their account, so a test that runs them needs an account no other test uses.
    pub async fn in_account(test: &str, policy: &str, account: &str) -> World {
        World::with_credentials(test, policy, credentials_in(account).await).await
    }

    async fn with_credentials(
        test: &str,
        policy: &str,
        credentials: aws_sdk_sqs::config::Credentials,
    ) -> World {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("e2e-{test}-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join("redress-e2e").join(&prefix);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("policy.toml"), policy).unwrap();
        let world = World {
            prefix,
            dir,
            clients: redress_workers::aws::Clients::new(
                &sdk_config_with(credentials.clone(), REGION).await,
            ),
            credentials,
            ledger: OnceLock::new(),
        };
        let out = world.redress(&["provision"]);
        assert!(
            out.status.success(),
            "provision failed: {}",
            text(&out.stderr)
        );
        world
    }

    pub fn queue_name(&self, which: &str) -> String {
        format!("{}-{which}", self.prefix)
    }

    /// Runs the redress binary with this world's settings.
    pub fn redress(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run redress")
    }

    /// The redress command as the world's own principal, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let c = &self.credentials;
        let mut cmd = self.command_as(c.access_key_id(), args);
        cmd.env("AWS_SECRET_ACCESS_KEY", c.secret_access_key());
        if let Some(token) = c.session_token() {
            cmd.env("AWS_SESSION_TOKEN", token);
        }
        cmd
    }

    /// Runs the redress binary as another principal: on the local stack each access key
    /// is its own IAM user (`arn:aws:sts::123456789012:user/<key>`).
    pub fn redress_as(&self, access_key: &str, args: &[&str]) -> Output {
        self.command_as(access_key, args)
            .output()
            .expect("run redress")
    }

    /// The redress command with this world's settings, not yet started.
    pub fn command_as(&self, access_key: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redress"));
        cmd.args(args)
            .current_dir(root())
            .env("AWS_ENDPOINT_URL", endpoint())
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", access_key)
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("REDRESS_POLICY", self.dir.join("policy.toml"))
            .env("REDRESS_EVENTS_QUEUE", self.queue_name("events"))
            .env("REDRESS_TASKS_QUEUE", self.queue_name("tasks"))
            .env("REDRESS_APPROVALS_QUEUE", self.queue_name("approvals"))
            .env("REDRESS_EVENT_BUS", format!("{}-bus", self.prefix))
            .env("REDRESS_LOG_FORMAT", "json")
            .env("REDRESS_POLL_INTERVAL_MS", "100")
            // No ledger unless a test asks for its own table (`use_ledger`): the stack
            // is shared, and a killed executor's lease would hold its finding.
            .env(
                "REDRESS_LEDGER_TABLE",
                self.ledger.get().map_or("", String::as_str),
            )
            .env_remove("REDRESS_DRY_RUN")
            .stdin(Stdio::null());
        cmd
    }

    /// `redress run --once` (plus `extra`), asserting it exits 0; returns its audit records.
    pub fn run_once(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["run", "--once"];
        args.extend_from_slice(extra);
        let out = self.redress(&args);
        assert!(
            out.status.success(),
            "redress run --once failed ({:?}): {}",
            out.status,
            text(&out.stderr)
        );
        audit(&out)
    }

    /// Gives the world a ledger table of its own, `<prefix>-ledger`, provisioned: every
    /// command the world runs from then on records there. Returns the table.
    pub fn use_ledger(&self) -> ledger::LedgerTable {
        let name = self
            .ledger
            .get_or_init(|| format!("{}-ledger", self.prefix));
        let out = self.redress(&["provision"]);
        assert!(out.status.success(), "provision: {}", text(&out.stderr));
        ledger::LedgerTable::new(self.clients.dynamodb.clone(), name)
    }

    /// Every entry of the world's ledger table, read by a scan (not through the indexes
    /// redress reads), in decision order.
    pub async fn ledger_scan(&self) -> Vec<LedgerEntry> {
        let name = self.ledger.get().expect("use_ledger first");
        let items: Vec<_> = self
            .clients
            .dynamodb
            .scan()
            .table_name(name)
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .expect("scan the ledger");
        let mut entries = Vec::new();
        for stored in &items {
            let item: redress::ledger::Item = stored
                .iter()
                .map(|(k, v)| (k.clone(), ledger::from_sdk(v).unwrap()))
                .collect();
            // Entries only: undo exceptions and fleet counters share the table.
            if matches!(item.get("id"), Some(AttrValue::S(id)) if id.starts_with("le-")) {
                entries.push(LedgerEntry::from_item(&item).expect("a ledger entry"));
            }
        }
        entries.sort_by(|a, b| (a.times.decided_at, &a.id).cmp(&(b.times.decided_at, &b.id)));
        entries
    }

    /// Replaces the world's policy file (for policies that name its resources).
    pub fn set_policy(&self, policy: &str) {
        std::fs::write(self.dir.join("policy.toml"), policy).unwrap();
    }

    /// `approvals list --json`.
    pub fn approval_list(&self) -> serde_json::Value {
        let out = self.redress(&["approvals", "list", "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Ids of the waiting approval requests.
    pub fn approval_ids(&self) -> Vec<String> {
        let doc = self.approval_list();
        doc["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Sets a queue's visibility timeout (seconds).
    pub async fn set_visibility(&self, which: &str, seconds: u32) {
        let q = self.queue(which).await;
        self.clients
            .sqs
            .set_queue_attributes()
            .queue_url(&q.url)
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                seconds.to_string(),
            )
            .send()
            .await
            .unwrap();
    }

    /// (visible, in flight) messages on a queue.
    pub async fn depth(&self, which: &str) -> (u64, u64) {
        let d = self.queue(which).await.depth().await.unwrap();
        (d.visible, d.invisible)
    }

    /// Tags an EC2 resource.
    pub async fn tag(&self, resource_id: &str, key: &str, value: &str) {
        self.clients
            .ec2
            .create_tags()
            .resources(resource_id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }

    pub async fn queue(&self, which: &str) -> Queue {
        Queue::resolve(&self.clients.sqs, &self.queue_name(which))
            .await
            .unwrap()
    }

    /// Takes every message off a queue (received and deleted), so counts are exact and
    /// nothing reappears later.
    pub async fn drain(&self, which: &str) -> Vec<Received> {
        let q = self.queue(which).await;
        let mut all = Vec::new();
        loop {
            let batch = q.receive(10, 0).await.unwrap();
            if batch.is_empty() {
                return all;
            }
            let handles: Vec<&str> = batch.iter().map(|m| m.receipt_handle.as_str()).collect();
            let failed = q.delete_batch(&handles).await.unwrap();
            assert!(failed.is_empty(), "{failed:?}");
            all.extend(batch);
        }
    }

    pub async fn send(&self, which: &str, body: &str) {
        self.queue(which).await.send(body).await.unwrap();
    }

    /// Sends a message as this IAM user (SQS stamps their id as its SenderId).
    pub async fn send_as(&self, user: &IamUser, which: &str, body: &str) {
        let sqs = aws_sdk_sqs::Client::new(&sdk_config_as(&user.access_key).await);
        Queue::resolve(&sqs, &self.queue_name(which))
            .await
            .unwrap()
            .send(body)
            .await
            .unwrap();
    }

    /// Sends many messages (ten per call), each with these string attributes.
    pub async fn send_many(&self, which: &str, bodies: &[String], attrs: &[(&str, &str)]) {
        let q = self.queue(which).await;
        let attrs: std::collections::HashMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for chunk in bodies.chunks(10) {
            let batch: Vec<Outbound> = chunk
                .iter()
                .map(|b| Outbound {
                    attributes: attrs.clone(),
                    ..Outbound::body(b.clone())
                })
                .collect();
            let failed = q.send_batch(&batch).await.unwrap();
            assert!(failed.is_empty(), "{failed:?}");
        }
    }

    /// A security group with the given (port, cidr) TCP ingress rules.
    pub async fn security_group(&self, name: &str, rules: &[(i32, &str)]) -> String {
        security_group_with(&self.clients.ec2, &format!("{}-{name}", self.prefix), rules).await
    }

    /// The group's TCP ingress as sorted (port, cidr) pairs.
    pub async fn ingress(&self, group_id: &str) -> Vec<(i32, String)> {
        ingress_with(&self.clients.ec2, group_id).await
    }

    pub async fn put_parameter(&self, name: &str, value: &str) {
        self.clients
            .ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }

    /// A new IAM user in the local stack (`CreateUser`, `CreateAccessKey`), named after
    /// `who` and unique to this world, with its ARN and unique id as IAM reports them.
    pub async fn iam_user(&self, who: &str) -> IamUser {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{who}-{}-{n}", std::process::id());
        let iam = aws_sdk_iam::Client::new(&sdk_config().await);
        let user = iam
            .create_user()
            .user_name(&name)
            .send()
            .await
            .unwrap()
            .user
            .unwrap();
        let key = iam
            .create_access_key()
            .user_name(&name)
            .send()
            .await
            .unwrap()
            .access_key
            .unwrap();
        IamUser {
            arn: user.arn,
            user_id: user.user_id,
            access_key: key.access_key_id,
        }
    }

    pub async fn parameter(&self, name: &str) -> String {
        self.read_parameter(name).await.value().unwrap().to_string()
    }

    /// A parameter's type (`String`, `StringList`, `SecureString`).
    pub async fn parameter_type(&self, name: &str) -> String {
        let p = self.read_parameter(name).await;
        p.r#type().unwrap().as_str().to_string()
    }

    async fn read_parameter(&self, name: &str) -> aws_sdk_ssm::types::Parameter {
        let out = self
            .clients
            .ssm
            .get_parameter()
            .name(name)
            .send()
            .await
            .unwrap();
        out.parameter.unwrap()
    }
}

impl World {
    /// Makes AWS Config hold the event's evaluation, as if the rule had just evaluated
    /// the resource: the event's Config rule is created in its account and region unless
    /// it exists (see [`config_rule`]), and the evaluation (compliance, annotation,
    /// `resultRecordedTime` as ordering time) is put with `PutEvaluations`. Returns the
    /// event carrying the rule's real ARN. The local stack then puts its own event of the
    /// change on that account's default bus, where nothing in a test stack listens unless
    /// a test makes it (see `config.rs`): the event the test sends is the one handled.
    pub async fn config_holds(&self, e: &EventBuilder) -> EventBuilder {
        self.config_holds_all(std::slice::from_ref(e))
            .await
            .remove(0)
    }

    /// [`config_holds`](Self::config_holds) for many events: one `PutEvaluations` per
    /// rule, account and region and 100 evaluations.
    pub async fn config_holds_all(&self, events: &[EventBuilder]) -> Vec<EventBuilder> {
        let mut by_rule: std::collections::BTreeMap<RuleKey, Vec<usize>> = Default::default();
        for (i, e) in events.iter().enumerate() {
            by_rule
                .entry((e.account.clone(), e.region.clone(), e.config_rule.clone()))
                .or_default()
                .push(i);
        }
        let mut held = events.to_vec();
        for ((account, region, rule), members) in by_rule {
            let first = &events[members[0]];
            let arn = config_rule(&account, &region, &rule, &first.resource_type).await;
            let evaluations: Vec<Evaluation> = members
                .iter()
                .map(|&i| Evaluation::of(&events[i]))
                .collect();
            put_evaluations(&account, &region, &rule, &evaluations).await;
            for i in members {
                held[i] = held[i].clone().rule_arn(&arn);
            }
        }
        held
    }

    /// A finding Config holds, on the events queue as EventBridge delivers it: the event
    /// after [`config_holds`](Self::config_holds). Returns the body sent.
    pub async fn send_event(&self, e: &EventBuilder) -> String {
        let body = self.config_holds(e).await.build();
        self.send("events", &body).await;
        body
    }

    /// [`send_event`](Self::send_event) for many events (ten per `SendMessageBatch`).
    pub async fn send_events(&self, events: &[EventBuilder]) -> Vec<String> {
        let bodies: Vec<String> = self
            .config_holds_all(events)
            .await
            .iter()
            .map(EventBuilder::build)
            .collect();
        self.send_many("events", &bodies, &[]).await;
        bodies
    }

    /// The Config rule `name` of [`ACCOUNT`] and [`REGION`] for resources of this type,
    /// created unless it exists (see [`config_rule`]); returns its ARN.
    pub async fn config_rule(&self, name: &str, resource_type: &str) -> String {
        config_rule(ACCOUNT, REGION, name, resource_type).await
    }

    /// Makes the world's events queue receive what AWS Config (the local stack's) puts on
    /// the default event bus of [`ACCOUNT`] and [`REGION`] for these Config rules, as a
    /// deployment's EventBridge rule does: a rule on the **default** bus whose pattern
    /// names only these Config rules (so other tests' findings stay out; give them names
    /// with the world's prefix), targeting the events queue, which the queue's policy lets
    /// that rule send to. Returns the EventBridge rule's ARN.
    pub async fn listen_to_default_bus(&self, config_rules: &[&str]) -> String {
        let pattern = serde_json::json!({
            "source": ["aws.config"],
            "detail-type": ["Config Rules Compliance Change"],
            "detail": {"configRuleName": config_rules},
        });
        let name = format!("{}-default-bus", self.prefix);
        let eb = &self.clients.eventbridge;
        let rule_arn = eb
            .put_rule()
            .name(&name)
            .event_bus_name("default")
            .event_pattern(pattern.to_string())
            .description("redress e2e: this world's Config rules")
            .send()
            .await
            .unwrap()
            .rule_arn
            .unwrap();
        let q = self.queue("events").await;
        let attrs = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(&q.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap_or_default();
        let queue_arn = attrs[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
        eb.put_targets()
            .rule(&name)
            .event_bus_name("default")
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("events-queue")
                    .arn(&queue_arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        // The queue's policy (provision lets only its own rule send) lets this rule too.
        let mut policy: serde_json::Value = attrs
            .get(&aws_sdk_sqs::types::QueueAttributeName::Policy)
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_else(|| serde_json::json!({"Version": "2012-10-17", "Statement": []}));
        policy["Statement"]
            .as_array_mut()
            .expect("a policy's statements")
            .push(serde_json::json!({
                "Sid": "DefaultBusConfigRules",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }));
        q.set_attribute("Policy", policy.to_string()).await.unwrap();
        rule_arn
    }

    /// Messages of a queue sent with a delay that has not passed yet (closure checks
    /// waiting to ask Config).
    pub async fn delayed(&self, which: &str) -> u64 {
        self.queue(which).await.depth().await.unwrap().delayed
    }
}

/// One evaluation for `PutEvaluations`.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub resource_type: String,
    pub resource_id: String,
    /// `COMPLIANT`, `NON_COMPLIANT`, `NOT_APPLICABLE`.
    pub compliance: String,
    pub annotation: Option<String>,
    /// The ordering timestamp (now when `None`).
    pub at: Option<std::time::SystemTime>,
}

impl Evaluation {
    /// The evaluation an event reports: its resource, compliance, annotation and time.
    pub fn of(e: &EventBuilder) -> Evaluation {
        let v = e.json();
        let result = &v["detail"]["newEvaluationResult"];
        Evaluation {
            resource_type: e.resource_type.clone(),
            resource_id: e.resource_id.clone(),
            compliance: e.compliance.clone(),
            annotation: result["annotation"].as_str().map(str::to_string),
            at: result["resultRecordedTime"]
                .as_str()
                .and_then(redress::time::parse_rfc3339),
        }
    }

    /// `compliance` of a resource, now, without annotation.
    pub fn new(resource_type: &str, resource_id: &str, compliance: &str) -> Evaluation {
        Evaluation {
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
            compliance: compliance.into(),
            annotation: None,
            at: None,
        }
    }
}

/// Credentials that act in `account`: [`ACCOUNT`]'s own test user, or for another account
/// the `OrganizationAccountAccessRole` AWS Organizations puts in every member account
/// (the local stack creates it on first use; see `infra/local/identity.py`).
pub async fn credentials_in(account: &str) -> aws_sdk_sqs::config::Credentials {
    use aws_sdk_sqs::config::Credentials;
    if account == ACCOUNT {
        return Credentials::new("test", "test", None, None, "e2e");
    }
    let sts = aws_sdk_sts::Client::new(&sdk_config().await);
    let out = sts
        .assume_role()
        .role_arn(format!(
            "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
        ))
        .role_session_name("e2e-setup")
        .send()
        .await
        .unwrap_or_else(|e| panic!("assume the organization role in {account}: {e:?}"));
    let c = out.credentials().expect("AssumeRole returns credentials");
    Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "e2e-organization",
    )
}

/// AWS Config in that account and region.
pub async fn config_client(account: &str, region: &str) -> aws_sdk_config::Client {
    aws_sdk_config::Client::new(&sdk_config_with(credentials_in(account).await, region).await)
}

/// The AWS managed rule a local Config rule is created as: the local stack never
/// evaluates rules itself (tests put the evaluations), so the identifier only has to be a
/// real one. A custom rule (`CUSTOM_LAMBDA`) would need a Lambda function. AWS has no
/// managed rule for Parameter Store values (redress's drift rule is its own custom rule),
/// so a managed rule of Systems Manager stands in for those.
fn managed_rule(name: &str, resource_type: &str) -> &'static str {
    match resource_type {
        "AWS::EC2::SecurityGroup" if name.contains("ssh") || name.contains("admin") => {
            "INCOMING_SSH_DISABLED"
        }
        "AWS::EC2::SecurityGroup" => "RESTRICTED_INCOMING_TRAFFIC",
        "AWS::S3::Bucket" => "S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED",
        "AWS::EC2::Instance" => "EC2_IMDSV2_CHECK",
        _ => "SSM_DOCUMENT_TAGGED",
    }
}

/// (account, region, Config rule name).
type RuleKey = (String, String, String);

/// Config rules this process has seen: their ARNs.
static CONFIG_RULES: OnceLock<tokio::sync::Mutex<HashMap<RuleKey, String>>> = OnceLock::new();

/// The ARN of the Config rule `name` in that account and region, created as an AWS
/// managed rule (`PutConfigRule`) unless it exists. Tests share rules by name: creation is
/// serialised within the process, so two tests never create one name at once (the
/// second would replace the first, and the first's evaluations with it). A rule name
/// only one test may see (for its re-evaluation requests, its events on the default
/// bus, or a rule that must not exist) includes the world's prefix.
pub async fn config_rule(account: &str, region: &str, name: &str, resource_type: &str) -> String {
    let mut known = CONFIG_RULES.get_or_init(Default::default).lock().await;
    let key = (account.to_string(), region.to_string(), name.to_string());
    if let Some(arn) = known.get(&key) {
        return arn.clone();
    }
    let config = config_client(account, region).await;
    let arn = match describe_config_rule(&config, name).await {
        Some(arn) => arn,
        None => {
            config
                .put_config_rule()
                .config_rule(
                    aws_sdk_config::types::ConfigRule::builder()
                        .config_rule_name(name)
                        .description("redress e2e")
                        .source(
                            aws_sdk_config::types::Source::builder()
                                .owner(aws_sdk_config::types::Owner::Aws)
                                .source_identifier(managed_rule(name, resource_type))
                                .build()
                                .unwrap(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap_or_else(|e| panic!("PutConfigRule {name} in {account}/{region}: {e:?}"));
            describe_config_rule(&config, name)
                .await
                .unwrap_or_else(|| panic!("Config rule {name} missing after PutConfigRule"))
        }
    };
    known.insert(key, arn.clone());
    arn
}

/// The ARN of the rule of that name, or `None` when Config has no such rule.
pub async fn describe_config_rule(config: &aws_sdk_config::Client, name: &str) -> Option<String> {
    match config
        .describe_config_rules()
        .config_rule_names(name)
        .send()
        .await
    {
        Ok(out) => out
            .config_rules()
            .first()
            .and_then(|r| r.config_rule_arn())
            .map(str::to_string),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_config_rule_exception()) =>
        {
            None
        }
        Err(e) => panic!("DescribeConfigRules {name}: {e:?}"),
    }
}

/// Puts evaluations of the rule `rule` in that account and region, as the rule would
/// (`PutEvaluations`; on the local stack the ResultToken names the rule), 100 a call.
pub async fn put_evaluations(account: &str, region: &str, rule: &str, evaluations: &[Evaluation]) {
    let config = config_client(account, region).await;
    for chunk in evaluations.chunks(100) {
        let mut call = config.put_evaluations().result_token(rule);
        for e in chunk {
            let at = e.at.unwrap_or_else(std::time::SystemTime::now);
            call = call.evaluations(
                aws_sdk_config::types::Evaluation::builder()
                    .compliance_resource_type(&e.resource_type)
                    .compliance_resource_id(&e.resource_id)
                    .compliance_type(aws_sdk_config::types::ComplianceType::from(
                        e.compliance.as_str(),
                    ))
                    .set_annotation(e.annotation.clone())
                    .ordering_timestamp(aws_sdk_config::primitives::DateTime::from(at))
                    .build()
                    .unwrap(),
            );
        }
        let out = call
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutEvaluations {rule} in {account}/{region}: {e:?}"));
        assert!(
            out.failed_evaluations().is_empty(),
            "PutEvaluations {rule}: {:?}",
            out.failed_evaluations()
        );
    }
}

/// `StartConfigRulesEvaluation` requests the local stack recorded
/// (`GET /_redress/config-evaluations`) that name this rule.
pub fn reevaluations_of(rule: &str) -> Vec<serde_json::Value> {
    let all = stack_get("/_redress/config-evaluations");
    all.as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["config_rule_names"]
                .as_array()
                .is_some_and(|names| names.iter().any(|n| n == rule))
        })
        .cloned()
        .collect()
}

/// A security group named `name` with these (port, cidr) TCP ingress rules, through
/// this EC2 client (its account and region).
pub async fn security_group_with(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    rules: &[(i32, &str)],
) -> String {
    let id = ec2
        .create_security_group()
        .group_name(name)
        .description("redress e2e")
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    for (port, cidr) in rules {
        ec2.authorize_security_group_ingress()
            .group_id(&id)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(*port)
                    .to_port(*port)
                    .ip_ranges(IpRange::builder().cidr_ip(*cidr).build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    id
}

/// A group with one world-open TCP permission over the ports `from..=to`.
pub async fn security_group_range(w: &World, name: &str, from: i32, to: i32) -> String {
    let id = w.security_group(name, &[]).await;
    w.clients
        .ec2
        .authorize_security_group_ingress()
        .group_id(&id)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(from)
                .to_port(to)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    id
}

/// The group's TCP ingress as sorted (port, cidr) pairs, through this EC2 client.
pub async fn ingress_with(ec2: &aws_sdk_ec2::Client, group_id: &str) -> Vec<(i32, String)> {
    let out = ec2
        .describe_security_groups()
        .group_ids(group_id)
        .send()
        .await
        .unwrap();
    let mut rules: Vec<(i32, String)> = out
        .security_groups()
        .iter()
        .flat_map(|g| g.ip_permissions())
        .flat_map(|p| {
            p.ip_ranges().iter().map(|r| {
                (
                    p.from_port().unwrap_or(-1),
                    r.cidr_ip().unwrap_or_default().to_string(),
                )
            })
        })
        .collect();
    rules.sort();
    rules
}

/// A compliance-change event (EventBridge form), NON_COMPLIANT, for a resource in this
/// account and region: shorthand for [`EventBuilder`] with a compliance.
pub fn event(
    config_rule: &str,
    resource_type: &str,
    resource_id: &str,
    compliance: &str,
) -> String {
    EventBuilder::new(config_rule, resource_type, resource_id)
        .compliance(compliance)
        .build()
}

/// The one way tests make compliance-change events: the fixture
/// `events/sg-ssh-open-noncompliant.json` (EventBridge form) with a fresh event id, no
/// old result, recorded now, and every field that names the rule, resource, account or
/// region set consistently (`configRuleARN` is a made-up rule of the event's account and
/// region until [`World::config_holds`] gives it the real one).
///
/// An event made here is hand-made: the executor acts only on what AWS Config holds, so
/// a finding that must be fixed is sent with [`World::send_event`] (or made true with
/// [`World::config_holds`] first); one sent with [`World::send`] alone is one Config
/// never reported.
///
/// ```ignore
/// EventBuilder::new("restricted-ssh", SG, &sg)
///     .compliance("COMPLIANT")
///     .account("111111111111")
///     .region("us-west-2")
///     .annotation("text")
///     .build()
/// ```
#[derive(Debug, Clone)]
pub struct EventBuilder {
    config_rule: String,
    resource_type: String,
    resource_id: String,
    compliance: String,
    account: String,
    region: String,
    annotation: Option<String>,
    recorded_at: Option<String>,
    /// `configRuleARN`; a made-up ARN of the event's account and region when `None`
    /// ([`World::config_holds`] sets the real one).
    rule_arn: Option<String>,
}

impl EventBuilder {
    /// A NON_COMPLIANT finding of `config_rule` on the resource, in [`ACCOUNT`] and
    /// [`REGION`].
    pub fn new(config_rule: &str, resource_type: &str, resource_id: &str) -> EventBuilder {
        EventBuilder {
            config_rule: config_rule.into(),
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
            compliance: "NON_COMPLIANT".into(),
            account: ACCOUNT.into(),
            region: REGION.into(),
            annotation: None,
            recorded_at: None,
            rule_arn: None,
        }
    }

    /// `configRuleARN` (a rule of the event's account and region, or the event is
    /// invalid).
    pub fn rule_arn(mut self, arn: &str) -> EventBuilder {
        self.rule_arn = Some(arn.into());
        self
    }

    /// The `configRuleARN` the event carries.
    pub fn arn(&self) -> String {
        self.rule_arn.clone().unwrap_or_else(|| {
            format!(
                "arn:aws:config:{}:{}:config-rule/config-rule-q2b7xk",
                self.region, self.account
            )
        })
    }

    /// `COMPLIANT`, `NON_COMPLIANT`, ... (any text: bad values make bad events).
    pub fn compliance(mut self, compliance: &str) -> EventBuilder {
        self.compliance = compliance.into();
        self
    }

    /// The resource's account (envelope and detail).
    pub fn account(mut self, account: &str) -> EventBuilder {
        self.account = account.into();
        self
    }

    /// The resource's region (envelope and detail).
    pub fn region(mut self, region: &str) -> EventBuilder {
        self.region = region.into();
        self
    }

    /// The rule's annotation (the fixture's own otherwise).
    pub fn annotation(mut self, annotation: &str) -> EventBuilder {
        self.annotation = Some(annotation.into());
        self
    }

    /// `resultRecordedTime`, which identifies the evaluation (now otherwise).
    pub fn recorded_at(mut self, time: &str) -> EventBuilder {
        self.recorded_at = Some(time.into());
        self
    }

    /// The event as a JSON value.
    pub fn json(&self) -> serde_json::Value {
        let template = std::fs::read_to_string(
            root().join("tests/fixtures/events/sg-ssh-open-noncompliant.json"),
        )
        .unwrap();
        let mut v: serde_json::Value = serde_json::from_str(&template).unwrap();
        let id = format!(
            "e2e-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        v["id"] = id.into();
        v["account"] = self.account.as_str().into();
        v["region"] = self.region.as_str().into();
        let d = &mut v["detail"];
        d["resourceId"] = self.resource_id.as_str().into();
        d["resourceType"] = self.resource_type.as_str().into();
        d["configRuleName"] = self.config_rule.as_str().into();
        d["awsAccountId"] = self.account.as_str().into();
        d["awsRegion"] = self.region.as_str().into();
        d["configRuleARN"] = self.arn().into();
        let result = &mut d["newEvaluationResult"];
        let q = &mut result["evaluationResultIdentifier"]["evaluationResultQualifier"];
        q["resourceId"] = self.resource_id.as_str().into();
        q["resourceType"] = self.resource_type.as_str().into();
        q["configRuleName"] = self.config_rule.as_str().into();
        result["complianceType"] = self.compliance.as_str().into();
        result["resultRecordedTime"] = self
            .recorded_at
            .clone()
            .unwrap_or_else(redress::time::now_rfc3339)
            .into();
        if let Some(a) = &self.annotation {
            result["annotation"] = a.as_str().into();
        }
        if let Some(old) = d.as_object_mut() {
            old.remove("oldEvaluationResult");
        }
        v
    }

    /// The event as the body of a queue message.
    pub fn build(&self) -> String {
        self.json().to_string()
    }

    /// The finding the router would copy out of the event (which must be valid).
    pub fn finding(&self) -> Finding {
        let e = redress::event::parse_message(&self.build())
            .unwrap_or_else(|e| panic!("not a valid event: {e}: {self:?}"));
        Finding::from_event(&e)
    }

    /// A task for the event's finding under a policy rule, as a router makes it.
    pub fn task(&self, rule_id: &str, severity: Severity) -> Task {
        Task::new(rule_id, severity, self.finding())
    }
}

/// Rules from `tests/fixtures/policies/NAME.toml`, joined in the order given, with every
/// `${key}` replaced by its value. A placeholder left unreplaced is an error, so a
/// fixture cannot silently keep one.
pub fn policy_fixtures(names: &[&str], vars: &[(&str, &str)]) -> String {
    let mut policy = String::new();
    for name in names {
        let path = root().join(format!("tests/fixtures/policies/{name}.toml"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("policy fixture {}: {e}", path.display()));
        policy.push('\n');
        policy.push_str(&text);
    }
    for (key, value) in vars {
        let placeholder = format!("${{{key}}}");
        assert!(
            policy.contains(&placeholder),
            "no {placeholder} in policy fixtures {names:?}"
        );
        policy = policy.replace(&placeholder, value);
    }
    assert!(
        !policy.contains("${"),
        "policy fixtures {names:?} left a placeholder unreplaced: {policy}"
    );
    policy
}

/// One policy fixture without placeholders, e.g. `policy_fixture("ssh-low")`.
pub fn policy_fixture(name: &str) -> String {
    policy_fixtures(&[name], &[])
}

/// A record's `reason`, or "".
pub fn reason(r: &serde_json::Value) -> &str {
    r["reason"].as_str().unwrap_or_default()
}

/// The records `seen` so far and then those of `redress run --once` again and again (a
/// draining run does not wait for a closure check's delay) until one is a record
/// `wanted` picks; returns it and every record. (A run may handle closure checks whose
/// delay ends while it still has work: with delays as short as these tests', even the run
/// that fixed the finding may write the record.)
pub async fn run_until(
    w: &World,
    mut seen: Vec<serde_json::Value>,
    what: &str,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    if let Some(hit) = seen.iter().find(|r| wanted(r)).cloned() {
        return (hit, seen);
    }
    let found = wait_for(Duration::from_secs(60), what, || {
        let records = w.run_once(&[]);
        let hit = records.iter().find(|r| wanted(r)).cloned();
        seen.extend(records);
        let so_far: Vec<String> = seen
            .iter()
            .map(|r| format!("{} {}", r["decision"], reason(r)))
            .collect();
        async move { hit.ok_or(so_far) }
    })
    .await;
    (found, seen)
}

/// How often [`wait_until`] and friends look again.
const POLL: Duration = Duration::from_millis(50);

/// Waits until `probe` answers `Ok`, looking again every 50 ms, and returns its value;
/// panics after `timeout`, naming `what` and the last `Err` it saw (the state so far).
/// Tests wait on what they can observe (queue depths, records, listings), never on a
/// fixed sleep.
pub async fn wait_for<T, E, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    E: Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for {what}; last seen: {last:?}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until `condition` holds, looking again every 50 ms; panics after `timeout`,
/// naming `what`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(timeout, what, || {
        let holds = condition();
        async move {
            if holds.await {
                Ok(())
            } else {
                Err("not yet")
            }
        }
    })
    .await
}

/// [`wait_until`] for code that cannot await (start-up of helper processes).
pub fn wait_until_blocking(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
        std::thread::sleep(POLL);
    }
}

/// A command run as the world's principal (so in the world's account) against the test
/// stack, as `make run` runs the demo's scripts.
fn demo_command(w: &World, program: &Path) -> Command {
    let c = &w.credentials;
    let mut cmd = Command::new(program);
    cmd.current_dir(root())
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", c.access_key_id())
        .env("AWS_SECRET_ACCESS_KEY", c.secret_access_key())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null());
    match c.session_token() {
        Some(token) => cmd.env("AWS_SESSION_TOKEN", token),
        None => cmd.env_remove("AWS_SESSION_TOKEN"),
    };
    cmd
}

/// `infra/local/demo.py` in the world's account; its standard output.
fn demo(w: &World, args: &[&str]) -> String {
    let out = demo_command(w, &root().join(".venv/bin/python"))
        .arg(root().join("infra/local/demo.py"))
        .args(args)
        .output()
        .expect("run demo.py");
    assert!(
        out.status.success(),
        "demo.py {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Builds the demo world (`make run`'s) in the world's account; returns the file holding
/// its ids.
pub fn demo_world(w: &World) -> PathBuf {
    let path = w.dir.join("world.json");
    std::fs::write(&path, demo(w, &["create"])).unwrap();
    path
}

/// The demo world's state, as `make run` reports it.
pub fn demo_report(w: &World, world: &Path) -> String {
    demo(w, &["report", "--world", world.to_str().unwrap()])
}

/// One finding about the demo world, as Config reports it (`demo.py findings`).
#[derive(Debug, Clone)]
pub struct DemoFinding {
    pub rule: String,
    pub resource: String,
    pub resource_type: String,
    pub compliance: String,
    pub annotation: Option<String>,
}

/// The demo world's findings.
pub fn demo_findings(w: &World, world: &Path) -> Vec<DemoFinding> {
    demo(w, &["findings", "--world", world.to_str().unwrap()])
        .lines()
        .map(|l| {
            let f: serde_json::Value = serde_json::from_str(l).unwrap();
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            DemoFinding {
                rule: s("rule"),
                resource: s("resource"),
                resource_type: s("type"),
                compliance: s("compliance"),
                annotation: f["annotation"].as_str().map(str::to_string),
            }
        })
        .collect()
}

/// `make run`'s demo (`infra/local/demo.sh`) against the world: its queues, its account,
/// this build's binary, its files (world, policy, logs, audit records) in the world's
/// directory. The events of the demo's Config rules reach the world's events queue only
/// if the test makes them (`listen_to_default_bus`), as `redress provision` does for
/// `make run`.
pub fn demo_run(w: &World) -> Output {
    demo_command(w, &root().join("infra/local/demo.sh"))
        .env("REDRESS_BIN", env!("CARGO_BIN_EXE_redress"))
        .env("REDRESS_DEMO_STATE", &w.dir)
        .env("REDRESS_EVENTS_QUEUE", w.queue_name("events"))
        .env("REDRESS_TASKS_QUEUE", w.queue_name("tasks"))
        .env("REDRESS_APPROVALS_QUEUE", w.queue_name("approvals"))
        .env("REDRESS_POLL_INTERVAL_MS", "100")
        .env(
            "REDRESS_LEDGER_TABLE",
            w.ledger.get().map_or("", String::as_str),
        )
        .env_remove("REDRESS_POLICY")
        .env_remove("REDRESS_DRY_RUN")
        .env_remove("REDRESS_LOG_FORMAT")
        .output()
        .expect("run demo.sh")
}

/// GET a path on the local stack (its `/_redress/...` inspection endpoints).
pub fn stack_get(path: &str) -> serde_json::Value {
    http_get_json(endpoint(), path)
}

/// GET `base` + `path` and parse the JSON body.
pub fn http_get_json(base: &str, path: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {response}"))
}

/// Sends a signal to a child process (SIGTERM, SIGKILL).
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {}", child.id());
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Audit records from a run's stderr.
pub fn audit(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "audit")
        .collect()
}

/// Log records (not audit records) from a run's stderr in the JSON log format, e.g.
/// `{"level":"WARN","fields":{"message":"...","grace":"1s"},"target":"..."}`.
pub fn logs(out: &Output) -> Vec<serde_json::Value> {
    text(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] != "audit" && v["fields"].is_object())
        .collect()
}

/// Audit records written by the executor.
pub fn executions(records: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    records
        .iter()
        .filter(|r| r["worker"] == "executor")
        .collect()
}

/// What every [`World::boto3`] snippet starts with: `client(service)` signed as the
/// world's principal, `json`, `prefix` (the world's), `account` (the principal's), `v`
/// (the values the test passes) and `unless(codes, call, **kwargs)` (the call's answer,
/// or None when it fails with one of those error codes).
const BOTO3_PRELUDE: &str = r#"
import json, os, re
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

def unless(codes, call, **kwargs):
    try:
        return call(**kwargs)
    except ClientError as e:
        if e.response["Error"]["Code"] in codes:
            return None
        raise

prefix = os.environ["REDRESS_E2E_PREFIX"]
v = json.loads(os.environ["REDRESS_E2E_VARS"])

def _loopback(request, **_):
    # S3 Control puts the account in front of the host, which does not resolve on loopback.
    request.url = re.sub(r"^(https?://)\d{12}\.", r"\1", request.url)

def client(service):
    c = boto3.session.Session().client(
        service, endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ["AWS_REGION"], config=Config(retries={"max_attempts": 2}))
    if service == "s3control":
        c.meta.events.register("before-sign.s3-control.*", _loopback)
    return c

account = client("sts").get_caller_identity()["Account"]
"#;

impl World {
    /// Runs a Python snippet with boto3 against the local stack as the world's own
    /// principal (so in the world's account), for the services the tests have no Rust
    /// SDK client for (S3, KMS, CloudTrail, RDS, ...), and returns the JSON document the
    /// snippet prints on its last line. The snippet sees what [`BOTO3_PRELUDE`] defines,
    /// `v` being `vars`.
    pub fn boto3(&self, script: &str, vars: &serde_json::Value) -> serde_json::Value {
        let out = demo_command(self, &root().join(".venv/bin/python"))
            .arg("-c")
            .arg(format!("{BOTO3_PRELUDE}\n{script}"))
            .env("REDRESS_E2E_PREFIX", &self.prefix)
            .env("REDRESS_E2E_VARS", vars.to_string())
            .output()
            .expect("run .venv/bin/python");
        assert!(
            out.status.success(),
            "boto3 snippet failed: {}\n{script}",
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("boto3 snippet printed no JSON ({e}): {stdout:?}\n{script}"))
    }
}
