//! IAM matches the code, resources included.
//!
//! Three layers, each catching what the others cannot:
//! - Action names: the executor roles grant exactly the `"service:Action"`s the executor's
//!   code names (workers/src/executor and its AWS seams), plus its queue calls.
//! - A model of infra/cloudformation/*.yaml, resolved for one deployment (the templates are
//!   read through cfn-lint's loader in .venv): identity policies, trust policies and queue
//!   policies, evaluated as IAM does (explicit Deny wins; same-account SQS needs an identity
//!   or a queue-policy Allow; AssumeRole needs the trust policy, and the caller's own policy
//!   too; another account's queue or bus needs both). Every duty is a call some principal
//!   must be able to make, or must not: the router, executor, approver, operator, in ECS
//!   and in Lambda mode, the member role, the Config evaluator, the member accounts'
//!   EventBridge forwarding role and the central bus policy (the organization in, everybody
//!   else out), the people who assume roles (MFA, session name, source identity),
//!   EventBridge, an administrator.
//!   Then every statement, action, resource, principal and condition of those policies is
//!   removed, one at a time, and every scoped resource widened to "*": each change must
//!   break a duty. What the emulator cannot evaluate (queue policies, trust conditions,
//!   SSM/EC2/Config resources) is checked here.
//! - The emulator: redress.yaml deployed with CloudFormation into a moto that enforces IAM
//!   (infra/local/enforced.py, its own process on loopback). The approver and operator roles
//!   are assumed by named users through their trust policies, and every duty moto can
//!   evaluate (SQS calls that name a queue URL, sts:AssumeRole, iam:GetRole) is made with
//!   the role's credentials through the SDK; allowed and denied must match the duties.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{json, Value};

use crate::support::root;

const ACCOUNT: &str = "123456789012";
/// A member account the executor reaches through the member role.
const MEMBER: &str = "111122223333";
/// Someone else's account.
const OTHER: &str = "999999999999";
const REGION: &str = "us-east-1";
/// Another region of the same accounts.
const REGION2: &str = "eu-west-1";
/// The member role's one name: templates, policy comments and README.
const MEMBER_ROLE_NAME: &str = "redress-remediation";

// ------------------------------------------------------------------------------ code

/// The executor's code: its own module and the AWS seams it acts through (the router
/// shares only `ec2.rs`'s DescribeSecurityGroups, which the executor calls too).
const EXECUTOR_SOURCES: &[&str] = &[
    "workers/src/executor",
    "workers/src/aws/ec2.rs",
    "workers/src/aws/ssm.rs",
    "workers/src/aws/iam.rs",
    "workers/src/aws/config.rs",
    "workers/src/aws/compliance.rs",
    "workers/src/aws/targets.rs",
    "workers/src/aws/ledger.rs",
    "workers/src/aws/ledger_counters.rs",
    "workers/src/aws/ledger_exceptions.rs",
    "workers/src/aws/sns.rs",
];

/// Operations named in [`EXECUTOR_SOURCES`] that only other commands make: the executor
/// reads one resource's result and one rule through `aws/compliance.rs`
/// (GetComplianceDetailsByResource, DescribeConfigRules), which `redress sweep` (a rule's
/// results, an aggregator's), `redress emit` (PutEvaluations, for the local stack), the
/// evaluator (PutEvaluations, an oversized item's history, a path's parameters) and
/// `redress evaluate` (the rule's evaluation status) share; and the ledger's index queries
/// are `redress history`'s (approvers and operators).
const NOT_THE_EXECUTORS: &[&str] = &[
    "dynamodb:Query",
    "config:GetComplianceDetailsByConfigRule",
    "config:DescribeAggregateComplianceByConfigRules",
    "config:GetAggregateComplianceDetailsByConfigRule",
    "config:PutEvaluations",
    "config:GetResourceConfigHistory",
    "config:DescribeConfigRuleEvaluationStatus",
    "ssm:GetParametersByPath",
    "sns:CreateTopic",
];

/// What the Config evaluator (config.yaml's function) calls: its three rules' reads, and
/// its reports. GetParameters reads a missing parameter's baseline by name; kms:Decrypt is
/// SSM decrypting SecureStrings for it.
const EVALUATOR_CALLS: &[&str] = &[
    "config:PutEvaluations",
    "config:GetResourceConfigHistory",
    "config:GetComplianceDetailsByConfigRule",
    "ec2:DescribeSecurityGroups",
    "ssm:GetParametersByPath",
    "ssm:GetParameters",
    "kms:Decrypt",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
];

/// `"service:Action"` string literals in these files or folders (the operation names the
/// code gives `AwsError::from_sdk` and its other error paths).
fn operations_in(paths: &[&str]) -> (BTreeSet<String>, String) {
    let mut files = Vec::new();
    for p in paths {
        let path = root().join(p);
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                files.push(entry.unwrap().path());
            }
        } else {
            assert!(
                path.exists(),
                "{p} is gone: update EXECUTOR_SOURCES in tests/e2e/iam.rs"
            );
            files.push(path);
        }
    }
    let mut ops = BTreeSet::new();
    let mut all = String::new();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let src = std::fs::read_to_string(path).unwrap();
        // Every stretch between two quotes (not only every other one: a '"' char literal
        // would shift the pairs); code between literals never looks like service:Action.
        for literal in src.split('"').skip(1) {
            let Some((service, action)) = literal.split_once(':') else {
                continue;
            };
            let service_ok = !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            let action_ok = action.starts_with(|c: char| c.is_ascii_uppercase())
                && action.chars().all(|c| c.is_ascii_alphanumeric());
            if service_ok && action_ok {
                ops.insert(literal.to_string());
            }
        }
        all.push_str(&src);
    }
    (ops, all)
}

/// What the executor's code calls: the operations named in its sources, plus the queue
/// calls of the worker loop. Batch calls are authorized as their single form.
fn executor_calls() -> BTreeSet<String> {
    let (found, src) = operations_in(EXECUTOR_SOURCES);
    let mut ops: BTreeSet<String> = found
        .into_iter()
        .map(|op| op.strip_suffix("Batch").map(str::to_string).unwrap_or(op))
        .filter(|op| !NOT_THE_EXECUTORS.contains(&op.as_str()))
        .collect();
    if src.contains("AutomationAssumeRole") {
        // Starting an automation that assumes a role passes that role to SSM.
        ops.insert("iam:PassRole".into());
    }
    // SecureString parameters: SSM decrypts what the executor reads and encrypts what it
    // writes with the caller's KMS rights.
    if src.contains("with_decryption(true)") {
        ops.insert("kms:Decrypt".into());
    }
    if src.contains("put_parameter()") {
        ops.insert("kms:Encrypt".into());
    }
    for op in [
        "sqs:GetQueueUrl",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
    ] {
        ops.insert(op.into());
    }
    // sts:GetCallerIdentity needs no permission and is never listed.
    ops.remove("sts:GetCallerIdentity");
    ops
}

/// Values of `key = "..."` in the shipped policies (commented-out lines included when
/// `commented`), each with whether its `[[rule]]` is `mode = "notify"` (never executed).
fn policy_values(key: &str, commented: bool) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root().join("infra/policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for block in text.split("[[rule]]") {
            let notify = block.contains("mode = \"notify\"");
            for line in block.lines() {
                let line = line.trim();
                let line = if commented {
                    line.trim_start_matches("# ")
                } else {
                    line
                };
                if line.starts_with('#') {
                    continue;
                }
                let needle = format!("{key} = \"");
                let mut from = 0;
                while let Some(at) = line[from..].find(&needle).map(|i| i + from) {
                    from = at + needle.len();
                    // A whole key: `role` is not the end of `assume_role`.
                    let before = line[..at].chars().last();
                    if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        continue;
                    }
                    let value = line[from..].split('"').next().unwrap();
                    out.push((value.to_string(), notify));
                }
            }
        }
    }
    out
}

// ------------------------------------------------------------------------------ templates

/// The four templates as JSON, through cfn-lint's loader (short tags become `Fn::`).
pub(crate) fn templates() -> &'static BTreeMap<String, Value> {
    static T: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    T.get_or_init(|| {
        let python = root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "the IAM tests read templates with cfn-lint: run `make venv`"
        );
        let out = Command::new(python)
            .arg("-c")
            .arg(
                "import json, sys\n\
                 from cfnlint.decode import decode\n\
                 out = {}\n\
                 for path in sys.argv[1:]:\n\
                 \x20   template, errors = decode(path)\n\
                 \x20   assert not errors, errors\n\
                 \x20   out[path.rsplit('/', 1)[1].split('.')[0]] = template\n\
                 json.dump(out, sys.stdout)\n",
            )
            .args(
                ["redress", "member", "lambda", "config"]
                    .map(|n| root().join(format!("infra/cloudformation/{n}.yaml"))),
            )
            .output()
            .expect("run .venv/bin/python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

/// A template resolved for one deployment: parameters (defaults, then overrides),
/// conditions and the intrinsic functions the templates use.
struct Stack<'t> {
    t: &'t Value,
    account: String,
    params: BTreeMap<String, Value>,
}

impl<'t> Stack<'t> {
    fn new(t: &'t Value, account: &str, overrides: &[(&str, Value)]) -> Stack<'t> {
        let mut params = BTreeMap::new();
        for (name, p) in t["Parameters"].as_object().unwrap() {
            let kind = p["Type"].as_str().unwrap();
            let list = kind.starts_with("List<") || kind == "CommaDelimitedList";
            if let Some(d) = p.get("Default") {
                let d = d
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| d.to_string());
                let v = if list {
                    Value::from(d.split(',').map(str::to_string).collect::<Vec<_>>())
                } else {
                    Value::from(d)
                };
                params.insert(name.clone(), v);
            }
        }
        for (k, v) in overrides {
            assert!(t["Parameters"].get(*k).is_some(), "no parameter {k}");
            params.insert(k.to_string(), v.clone());
        }
        Stack {
            t,
            account: account.to_string(),
            params,
        }
    }

    /// The value, resolved; `None` for `AWS::NoValue` (dropped from lists and objects).
    fn resolve(&self, v: &Value) -> Option<Value> {
        match v {
            Value::Array(items) => Some(Value::Array(
                items.iter().filter_map(|i| self.resolve(i)).collect(),
            )),
            Value::Object(m)
                if m.len() == 1 && m.keys().next().unwrap().starts_with("Fn::")
                    || m.len() == 1 && m.contains_key("Ref") =>
            {
                let (k, arg) = m.iter().next().unwrap();
                let list = |a: &Value| a.as_array().unwrap().clone();
                match k.as_str() {
                    "Ref" => self.reference(arg.as_str().unwrap()),
                    "Fn::GetAtt" => Some(Value::from(self.get_att(arg))),
                    "Fn::Sub" => Some(Value::from(self.sub(arg))),
                    "Fn::If" => {
                        let a = list(arg);
                        if self.condition(a[0].as_str().unwrap()) {
                            self.resolve(&a[1])
                        } else {
                            self.resolve(&a[2])
                        }
                    }
                    "Fn::Join" => {
                        let a = list(arg);
                        let items = self.resolve(&a[1]).unwrap();
                        let parts: Vec<String> = items
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|i| i.as_str().unwrap().to_string())
                            .collect();
                        Some(Value::from(parts.join(a[0].as_str().unwrap())))
                    }
                    "Fn::Split" => {
                        let a = list(arg);
                        let text = self.resolve(&a[1]).unwrap();
                        Some(Value::from(
                            text.as_str()
                                .unwrap()
                                .split(a[0].as_str().unwrap())
                                .map(str::to_string)
                                .collect::<Vec<_>>(),
                        ))
                    }
                    "Fn::Select" => {
                        let a = list(arg);
                        let i: usize = a[0].as_str().map_or_else(
                            || a[0].as_u64().unwrap() as usize,
                            |s| s.parse().unwrap(),
                        );
                        Some(self.resolve(&a[1]).unwrap()[i].clone())
                    }
                    other => panic!("the IAM model does not resolve {other}"),
                }
            }
            Value::Object(m) => Some(Value::Object(
                m.iter()
                    .filter_map(|(k, v)| self.resolve(v).map(|v| (k.clone(), v)))
                    .collect(),
            )),
            other => Some(other.clone()),
        }
    }

    fn string(&self, v: &Value) -> String {
        match self.resolve(v) {
            Some(Value::String(s)) => s,
            other => panic!("{v} resolves to {other:?}, not a string"),
        }
    }

    fn reference(&self, name: &str) -> Option<Value> {
        Some(Value::from(match name {
            "AWS::NoValue" => return None,
            "AWS::AccountId" => self.account.clone(),
            "AWS::Region" => REGION.to_string(),
            "AWS::Partition" => "aws".to_string(),
            "AWS::StackName" => "redress".to_string(),
            _ => {
                if let Some(p) = self.params.get(name) {
                    return Some(p.clone());
                }
                let r = &self.t["Resources"][name];
                assert!(r.is_object(), "Ref {name}: no parameter value or resource");
                match r["Type"].as_str().unwrap() {
                    "AWS::SQS::Queue" => format!(
                        "https://sqs.{REGION}.amazonaws.com/{}/{}",
                        self.account,
                        self.string(&r["Properties"]["QueueName"])
                    ),
                    "AWS::IAM::Role" => self.arn(name).rsplit('/').next().unwrap().to_string(),
                    "AWS::Logs::LogGroup" => self.string(&r["Properties"]["LogGroupName"]),
                    "AWS::DynamoDB::Table" => self.string(&r["Properties"]["TableName"]),
                    // A topic's Ref is its ARN.
                    "AWS::SNS::Topic" => self.arn(name),
                    _ => name.to_string(),
                }
            }
        }))
    }

    fn get_att(&self, arg: &Value) -> String {
        let (res, attr) = match arg {
            Value::String(s) => s.split_once('.').unwrap(),
            Value::Array(a) => (a[0].as_str().unwrap(), a[1].as_str().unwrap()),
            _ => panic!("GetAtt {arg}"),
        };
        match attr {
            "Arn" => self.arn(res),
            "QueueName" => self.string(&self.t["Resources"][res]["Properties"]["QueueName"]),
            _ => panic!("the IAM model does not resolve GetAtt {res}.{attr}"),
        }
    }

    /// The resource's ARN as AWS forms it (roles without a RoleName: the logical id).
    fn arn(&self, logical: &str) -> String {
        let r = &self.t["Resources"][logical];
        let props = &r["Properties"];
        let a = &self.account;
        match r["Type"].as_str().unwrap() {
            "AWS::SQS::Queue" => {
                format!(
                    "arn:aws:sqs:{REGION}:{a}:{}",
                    self.string(&props["QueueName"])
                )
            }
            "AWS::IAM::Role" => {
                let name = props
                    .get("RoleName")
                    .map(|n| self.string(n))
                    .unwrap_or_else(|| logical.to_string());
                format!("arn:aws:iam::{a}:role/{name}")
            }
            "AWS::Events::Rule" => {
                let bus = props.get("EventBusName").map(|b| self.string(b));
                let name = self.string(&props["Name"]);
                match bus.as_deref() {
                    None | Some("default") => format!("arn:aws:events:{REGION}:{a}:rule/{name}"),
                    Some(bus) => format!("arn:aws:events:{REGION}:{a}:rule/{bus}/{name}"),
                }
            }
            "AWS::DynamoDB::Table" => format!(
                "arn:aws:dynamodb:{REGION}:{a}:table/{}",
                self.string(&props["TableName"])
            ),
            "AWS::SNS::Topic" => format!(
                "arn:aws:sns:{REGION}:{a}:{}",
                self.string(&props["TopicName"])
            ),
            // Generated names: the logical id stands for them.
            "AWS::S3::Bucket" => format!("arn:aws:s3:::{}", logical.to_lowercase()),
            "AWS::KMS::Key" => format!("arn:aws:kms:{REGION}:{a}:key/{logical}"),
            other => panic!("the IAM model has no ARN for {other}"),
        }
    }

    fn sub(&self, arg: &Value) -> String {
        let (text, vars) = match arg {
            Value::String(s) => (s.as_str(), serde_json::Map::new()),
            Value::Array(a) => (a[0].as_str().unwrap(), a[1].as_object().unwrap().clone()),
            _ => panic!("Sub {arg}"),
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = start + rest[start..].find('}').unwrap();
            let name = &rest[start + 2..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str(&format!("${{{literal}}}"));
            } else if let Some(v) = vars.get(name) {
                out.push_str(&self.string(v));
            } else if name.contains('.') && !name.starts_with("AWS::") {
                out.push_str(&self.get_att(&Value::from(name)));
            } else {
                match self.reference(name) {
                    Some(Value::String(s)) => out.push_str(&s),
                    other => panic!("Sub ${{{name}}} is {other:?}"),
                }
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn condition(&self, name: &str) -> bool {
        self.truth(&self.t["Conditions"][name])
    }

    fn truth(&self, v: &Value) -> bool {
        let (k, arg) = v.as_object().unwrap().iter().next().unwrap();
        let a = || arg.as_array().unwrap();
        match k.as_str() {
            "Fn::Not" => !self.truth(&a()[0]),
            "Fn::And" => a().iter().all(|c| self.truth(c)),
            "Fn::Or" => a().iter().any(|c| self.truth(c)),
            "Fn::Equals" => self.resolve(&a()[0]) == self.resolve(&a()[1]),
            "Condition" => self.condition(arg.as_str().unwrap()),
            other => panic!("the IAM model does not evaluate condition {other}"),
        }
    }

    /// Logical ids of the resources of this type that this deployment creates.
    fn of_type(&self, kind: &str) -> Vec<String> {
        self.t["Resources"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["Type"] == kind)
            .filter(|(_, r)| r["Condition"].as_str().is_none_or(|c| self.condition(c)))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

fn statements(doc: &Value) -> Vec<Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

// ------------------------------------------------------------------------------ model

/// Where a policy document lives, for naming mutations.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Doc {
    Identity(String),
    Trust(String),
    Queue(String),
    /// An event bus's resource policy.
    Bus(String),
}

/// Every policy of a deployment, resolved: principal ARN (a role stands for its sessions)
/// → identity statements; role ARN → trust statements; queue ARN → queue policy; bus ARN
/// → bus policy.
#[derive(Clone, Debug, Default)]
struct Model {
    docs: BTreeMap<Doc, Vec<Value>>,
    /// Logical id of each template role, by ARN (for messages and mutation scope).
    roles: BTreeMap<String, String>,
}

impl Model {
    fn add_stack(&mut self, stack: &Stack, prefix: &str) {
        for logical in stack.of_type("AWS::IAM::Role") {
            let arn = stack.arn(&logical);
            let props = stack
                .resolve(&stack.t["Resources"][&logical]["Properties"])
                .unwrap();
            let trust = statements(&props["AssumeRolePolicyDocument"]);
            let mut identity = Vec::new();
            for p in props["Policies"].as_array().into_iter().flatten() {
                identity.extend(statements(&p["PolicyDocument"]));
            }
            self.docs.insert(Doc::Trust(arn.clone()), trust);
            self.docs.insert(Doc::Identity(arn.clone()), identity);
            self.roles.insert(arn, format!("{prefix}{logical}"));
        }
        for logical in stack.of_type("AWS::SQS::QueuePolicy") {
            let props = &stack.t["Resources"][&logical]["Properties"];
            let doc = stack.resolve(&props["PolicyDocument"]).unwrap();
            for q in props["Queues"].as_array().unwrap() {
                let queue = q["Ref"].as_str().expect("Queues: [!Ref Queue]");
                self.docs
                    .insert(Doc::Queue(stack.arn(queue)), statements(&doc));
            }
        }
        for logical in stack.of_type("AWS::Events::EventBusPolicy") {
            let props = stack
                .resolve(&stack.t["Resources"][&logical]["Properties"])
                .unwrap();
            let mut st = props["Statement"].clone();
            st["Sid"] = props["StatementId"].clone();
            let bus = format!(
                "arn:aws:events:{REGION}:{}:event-bus/{}",
                stack.account,
                props["EventBusName"].as_str().unwrap()
            );
            self.docs.entry(Doc::Bus(bus)).or_default().push(st);
        }
    }

    /// A principal outside the templates with these identity statements.
    fn person(&mut self, arn: &str, statements: Value) {
        self.docs.insert(
            Doc::Identity(arn.to_string()),
            statements.as_array().unwrap().clone(),
        );
    }

    fn allowed(&self, c: &Call, resource_policies: bool) -> bool {
        let service = c.who.ends_with(".amazonaws.com");
        let mut ctx: BTreeMap<String, String> = c.ctx.iter().cloned().collect();
        if !service {
            ctx.entry("aws:PrincipalArn".into())
                .or_insert(c.who.clone());
            ctx.entry("aws:PrincipalAccount".into())
                .or_insert(account_of(&c.who));
        }
        let empty = Vec::new();
        let identity = if service {
            &empty
        } else {
            self.docs
                .get(&Doc::Identity(c.who.clone()))
                .unwrap_or(&empty)
        };
        let assume = c.action.starts_with("sts:");
        let resource = if assume {
            self.docs.get(&Doc::Trust(c.resource.clone()))
        } else if c.action.starts_with("sqs:") {
            self.docs.get(&Doc::Queue(c.resource.clone()))
        } else if c.action.starts_with("events:") {
            self.docs.get(&Doc::Bus(c.resource.clone()))
        } else {
            None
        }
        .unwrap_or(&empty);

        let mut by_identity = false;
        for st in identity {
            match applies(st, c, &ctx, false) {
                Some(false) => return false,
                Some(true) => by_identity = true,
                None => {}
            }
        }
        if !resource_policies {
            return by_identity;
        }
        let mut by_resource = false;
        for st in resource {
            match applies(st, c, &ctx, true) {
                Some(false) => return false,
                Some(true) => by_resource = true,
                None => {}
            }
        }
        let has_resource_policy = c.action.starts_with("sqs:") || c.action.starts_with("events:");
        if assume {
            // The trust policy must allow, and the caller's own policy too (a service has none).
            by_resource && (service || by_identity)
        } else if service || account_of(&c.resource) == account_of(&c.who) {
            // In its own account a queue's or bus's Allow suffices.
            by_identity || by_resource
        } else if has_resource_policy {
            // Another account's queue or bus: its policy and the caller's must both allow.
            by_identity && by_resource
        } else {
            by_identity
        }
    }
}

fn account_of(arn: &str) -> String {
    arn.split(':').nth(4).unwrap_or_default().to_string()
}

/// `Some(allow?)` when the statement applies to the call.
fn applies(
    st: &Value,
    c: &Call,
    ctx: &BTreeMap<String, String>,
    resource_policy: bool,
) -> Option<bool> {
    let action = |key: &str| {
        st.get(key)
            .map(|v| any(v, |p| glob(&p.to_lowercase(), &c.action.to_lowercase())))
    };
    let matched = match (action("Action"), action("NotAction")) {
        (Some(m), None) => m,
        (None, Some(m)) => !m,
        _ => panic!("statement without Action: {st}"),
    };
    if !matched {
        return None;
    }
    match (st.get("Resource"), st.get("NotResource")) {
        (Some(r), None) if !any(r, |p| glob(p, &c.resource)) => return None,
        (None, Some(r)) if any(r, |p| glob(p, &c.resource)) => return None,
        _ => {}
    }
    if resource_policy && !principal_matches(&st["Principal"], &c.who) {
        return None;
    }
    if let Some(cond) = st.get("Condition") {
        for (op, keys) in cond.as_object().unwrap() {
            for (key, want) in keys.as_object().unwrap() {
                if !condition_holds(op, key, want, ctx) {
                    return None;
                }
            }
        }
    }
    Some(match st["Effect"].as_str() {
        Some("Allow") => true,
        Some("Deny") => false,
        other => panic!("Effect {other:?}"),
    })
}

fn any(v: &Value, f: impl Fn(&str) -> bool) -> bool {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().any(|x| f(x.as_str().unwrap())),
        _ => panic!("expected a string or a list: {v}"),
    }
}

fn principal_matches(p: &Value, who: &str) -> bool {
    match p {
        Value::String(s) if s == "*" => true,
        Value::Object(m) => m.iter().any(|(kind, v)| match kind.as_str() {
            "AWS" => any(v, |p| {
                p == "*"
                    || p == who
                    || p.ends_with(":root") && account_of(p) == account_of(who)
                    || p == account_of(who)
            }),
            "Service" => any(v, |p| p == who),
            _ => false,
        }),
        _ => panic!("Principal {p}"),
    }
}

/// One condition operator and key, as IAM evaluates it: a missing key fails a positive
/// operator and passes a negated one; `${aws:username}` is replaced from the request.
fn condition_holds(op: &str, key: &str, want: &Value, ctx: &BTreeMap<String, String>) -> bool {
    let wants: Vec<Option<String>> = match want {
        Value::Array(a) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![b.to_string()],
        _ => panic!("condition value {want}"),
    }
    .into_iter()
    .map(|w| {
        if let Some(var) = w.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
            ctx.get(var).cloned()
        } else {
            Some(w)
        }
    })
    .collect();
    let actual = ctx.get(key);
    if op == "Null" {
        let absent = wants[0].as_deref() == Some("true");
        return actual.is_none() == absent;
    }
    // A request here carries one value per key, so ForAnyValue: is plain matching, and
    // ForAllValues: is too, except that a request without the key passes it (as in IAM:
    // every one of no values matches; templates pair it with a "Null" check).
    if let Some(op) = op.strip_prefix("ForAllValues:") {
        return actual.is_none() || condition_holds(op, key, want, ctx);
    }
    let op = op.strip_prefix("ForAnyValue:").unwrap_or(op);
    let (base, negated) = match op {
        "StringEquals"
        | "StringEqualsIgnoreCase"
        | "ArnEquals"
        | "ArnLike"
        | "StringLike"
        | "Bool" => (op, false),
        "StringNotEquals" => ("StringEquals", true),
        "StringNotLike" => ("StringLike", true),
        "ArnNotEquals" => ("ArnEquals", true),
        "ArnNotLike" => ("ArnLike", true),
        other => panic!("the IAM model does not evaluate {other}"),
    };
    let Some(actual) = actual else {
        return negated;
    };
    let hit = wants.iter().flatten().any(|w| match base {
        "StringEquals" | "Bool" => w == actual,
        "StringEqualsIgnoreCase" => w.eq_ignore_ascii_case(actual),
        _ => glob(w, actual),
    });
    hit != negated
}

/// IAM wildcards: `*` any run of characters, `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

// ------------------------------------------------------------------------------ duties

#[derive(Clone, Debug)]
struct Call {
    /// Principal ARN (a role for its sessions) or a service (`events.amazonaws.com`).
    who: String,
    action: String,
    resource: String,
    ctx: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
struct Duty {
    call: Call,
    allowed: bool,
    /// The caller is one of the templates' roles: its own policy must decide alone
    /// (queue policies are a second line, against everybody else).
    role: bool,
}

/// Where the router and executor run (redress.yaml's WorkerMode): exactly one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Ecs,
    Lambda,
}

const MODES: [Mode; 2] = [Mode::Ecs, Mode::Lambda];

/// The organization of the central and member accounts.
const ORG: &str = "o-exampleorg01";

/// The deployment every model check uses, and the names in it.
struct World {
    mode: Mode,
    model: Model,
    /// The router and executor that run (ECS task roles or lambda.yaml's roles).
    router: String,
    executor: String,
    /// The other mode's executor role, by the name the central stack would admit.
    idle_executor: String,
    approver: String,
    operator: String,
    member_role: String,
    sweep: String,
    scheduler: String,
    task_execution: String,
    evaluator: String,
    forwarder: String,
    admin: String,
    /// Someone else's account's administrator, and one in a member account.
    outsider: String,
    insider: String,
    users: BTreeMap<&'static str, String>,
    approvers_sso: String,
    operators_sso: String,
    rule: String,
    bus: String,
}

fn queue(name: &str) -> String {
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:redress-{name}")
}

/// The ledger table redress.yaml creates.
fn ledger_table() -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/redress-ledger")
}

const SOURCES: [&str; 3] = ["events", "tasks", "approvals"];

/// One deployment: redress.yaml in `mode` (and lambda.yaml in Lambda mode), config.yaml,
/// and member.yaml in a member account forwarding to the central bus.
fn world(templates: &BTreeMap<String, Value>, mode: Mode) -> World {
    let user = |n: &str| format!("arn:aws:iam::{ACCOUNT}:user/{n}");
    let approvers_sso = format!("arn:aws:iam::{ACCOUNT}:role/approvers-sso");
    let operators_sso = format!("arn:aws:iam::{ACCOUNT}:role/operators-sso");
    let redress = Stack::new(
        &templates["redress"],
        ACCOUNT,
        &[
            ("ApproverUserArns", json!([user("alice")])),
            ("ApproverFederatedRoleArns", json!([approvers_sso])),
            ("OperatorUserArns", json!([user("olivia")])),
            ("OperatorFederatedRoleArns", json!([operators_sso])),
            (
                "WorkerMode",
                json!(if mode == Mode::Ecs { "ECS" } else { "Lambda" }),
            ),
            ("OrganizationId", json!(ORG)),
        ],
    );
    let lambda = Stack::new(
        &templates["lambda"],
        ACCOUNT,
        &[
            ("EventsQueueArn", json!(queue("events"))),
            ("TasksQueueArn", json!(queue("tasks"))),
            ("ApprovalsQueueArn", json!(queue("approvals"))),
            ("EventsDlqArn", json!(queue("events-dlq"))),
            ("TasksDlqArn", json!(queue("tasks-dlq"))),
            ("LedgerTableArn", json!(ledger_table())),
            (
                "NotificationTopicArn",
                json!(format!(
                    "arn:aws:sns:{REGION}:{ACCOUNT}:redress-notifications"
                )),
            ),
        ],
    );
    let config = Stack::new(
        &templates["config"],
        ACCOUNT,
        &[
            ("CodeS3Bucket", json!("redress-code")),
            ("CodeS3Key", json!("redress.zip")),
        ],
    );
    // The central stack's output: the executor that runs.
    let executor = match mode {
        Mode::Ecs => redress.arn("ExecutorTaskRole"),
        Mode::Lambda => lambda.arn("LambdaExecutorRole"),
    };
    let member = Stack::new(
        &templates["member"],
        MEMBER,
        &[
            ("CentralAccountId", json!(ACCOUNT)),
            ("ExecutorRoleArn", json!([executor])),
            ("SweepRoleArn", json!(redress.arn("SweepTaskRole"))),
            ("CentralRegion", json!(REGION)),
        ],
    );
    let mut model = Model::default();
    model.add_stack(&redress, "redress.yaml ");
    if mode == Mode::Lambda {
        model.add_stack(&lambda, "lambda.yaml ");
    }
    model.add_stack(&config, "config.yaml ");
    model.add_stack(&member, "member.yaml ");
    let admin = format!("arn:aws:iam::{ACCOUNT}:role/Admin");
    let outsider = format!("arn:aws:iam::{OTHER}:role/Admin");
    let insider = format!("arn:aws:iam::{MEMBER}:role/Admin");
    for who in [&admin, &outsider, &insider] {
        model.person(
            who,
            json!([{"Effect": "Allow", "Action": "*", "Resource": "*"}]),
        );
    }
    // The other mode's executor, as if deployed anyway: allowed by its own policy, refused
    // by the queue policies.
    let idle_executor = match mode {
        Mode::Ecs => lambda.arn("LambdaExecutorRole"),
        Mode::Lambda => format!("arn:aws:iam::{ACCOUNT}:role/ExecutorTaskRole"),
    };
    model.person(
        &idle_executor,
        json!([{"Effect": "Allow", "Action": ["sqs:SendMessage", "sts:AssumeRole"], "Resource": "*"}]),
    );
    let mut users = BTreeMap::new();
    for name in ["alice", "olivia", "mallory"] {
        model.person(
            &user(name),
            json!([{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]),
        );
        users.insert(name, user(name));
    }
    for sso in [&approvers_sso, &operators_sso] {
        model.person(
            sso,
            json!([{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"], "Resource": "*"}]),
        );
    }
    let (router, executor) = match mode {
        Mode::Ecs => (
            redress.arn("RouterTaskRole"),
            redress.arn("ExecutorTaskRole"),
        ),
        Mode::Lambda => (
            lambda.arn("LambdaRouterRole"),
            lambda.arn("LambdaExecutorRole"),
        ),
    };
    World {
        mode,
        router,
        executor,
        idle_executor,
        approver: redress.arn("ApproverRole"),
        operator: redress.arn("OperatorRole"),
        member_role: member.arn("RemediationRole"),
        sweep: redress.arn("SweepTaskRole"),
        scheduler: redress.arn("SweepSchedulerRole"),
        task_execution: redress.arn("TaskExecutionRole"),
        evaluator: config.arn("EvaluatorRole"),
        forwarder: member.arn("ForwardingRole"),
        rule: redress.arn("ComplianceChangeRule"),
        bus: format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"),
        model,
        admin,
        outsider,
        insider,
        users,
        approvers_sso,
        operators_sso,
    }
}

/// Who may make which calls on which resources, and who may not. One rule a line:
/// `WHO may|may-not ACTION... @ RESOURCE... [if KEY=VALUE...]`, every combination.
///
/// WHO: `router` and `executor` are the ones the mode runs (ECS task roles or Lambda
/// roles), `ecs-router`, `ecs-executor`, `lambda-router`, `lambda-executor` each in its
/// mode only (a line naming a role the mode lacks is skipped); `idle-executor` the other
/// mode's executor role, deployed anyway; `sweep` the sweep's task role and `scheduler`
/// the role EventBridge Scheduler starts it with; `task-execution` the role ECS pulls the
/// image and writes logs with; `remediator` is the executor and the member role; `member`
/// the member role; `evaluator` config.yaml's function; `forwarder` member.yaml's
/// EventBridge role; `approver`, `operator`; `admin` (a role allowed everything),
/// `outsider` (an administrator of someone else's account), `insider` (one of a member
/// account); the users `alice` (named an approver), `olivia` (an operator), `mallory`
/// (nobody); `approvers-sso` and `operators-sso` (federated people's roles); or a service.
/// RESOURCE: `q:NAME` is the queue redress-NAME, `role:NAME` a role above. Placeholders:
/// {home} the caller's account, {home-region}, {region} (home and another region),
/// {other} someone else's account, {member} a member account, {rule} the
/// compliance-change rule, {bus} the central bus, {org} the organization; from
/// infra/policies/*.toml: {kill-switch}, {baseline} and {current} (parameters under the
/// prefixes), {quarantine} (copies of current ones), {runbook} (runbooks the policies
/// run), {notify-runbook} (those of notify-only rules, never run), {automation-role}
/// (assume_role); {member-role}; {ledger} the ledger table; {topic} the notification topic.
const DUTIES: &str = r#"
router   may     sqs:ReceiveMessage sqs:DeleteMessage sqs:ChangeMessageVisibility sqs:GetQueueUrl sqs:GetQueueAttributes @ q:events
router   may     sqs:SendMessage @ q:tasks q:approvals q:events-dlq
router   may     sqs:GetQueueUrl sqs:GetQueueAttributes @ q:tasks q:approvals q:events-dlq q:tasks-dlq
router   may     ec2:DescribeSecurityGroups @ *
router   may-not sqs:ReceiveMessage sqs:DeleteMessage @ q:tasks q:approvals q:events-dlq
router   may-not sqs:SendMessage @ q:events q:tasks-dlq q:approvals-dlq
router   may-not sqs:GetQueueAttributes @ q:approvals-dlq
router   may-not ssm:GetParameter ssm:PutParameter @ arn:aws:ssm:{home-region}:{home}:parameter{kill-switch}
router   may-not ec2:RevokeSecurityGroupIngress ec2:DescribeTags ssm:StartAutomationExecution ssm:DescribeParameters @ *
router   may-not sts:AssumeRole @ role:member
router   may-not iam:GetRole @ arn:aws:iam::{home}:role/SecOps

executor may     sqs:ReceiveMessage sqs:DeleteMessage sqs:ChangeMessageVisibility sqs:GetQueueUrl sqs:GetQueueAttributes @ q:tasks
executor may     sqs:SendMessage @ q:tasks-dlq q:approvals
executor may     sqs:SendMessage @ q:tasks
executor may     sqs:GetQueueUrl sqs:GetQueueAttributes @ q:events q:events-dlq q:tasks-dlq q:approvals
executor may-not sqs:SendMessage @ q:events q:events-dlq q:approvals-dlq
executor may-not sqs:ReceiveMessage sqs:DeleteMessage @ q:approvals q:events q:tasks-dlq
executor may-not sqs:GetQueueAttributes @ q:approvals-dlq
executor may     ssm:GetParameter @ arn:aws:ssm:{home-region}:{home}:parameter{kill-switch}
executor may-not ssm:PutParameter @ arn:aws:ssm:{home-region}:{home}:parameter{kill-switch}
executor may     iam:GetUser @ arn:aws:iam::{home}:user/alice
executor may     iam:GetRole @ arn:aws:iam::{home}:role/SecOps
executor may-not iam:GetUser @ arn:aws:iam::{other}:user/alice
executor may-not iam:GetRole @ arn:aws:iam::{other}:role/SecOps
executor may     sts:AssumeRole @ role:member
executor may-not sts:AssumeRole @ arn:aws:iam::{member}:role/OrganizationAccountAccessRole
executor may     dynamodb:DescribeTable dynamodb:GetItem dynamodb:PutItem dynamodb:UpdateItem @ {ledger}
router   may     sns:GetTopicAttributes sns:Publish @ {topic}
executor may     sns:GetTopicAttributes sns:Publish @ {topic}
sweep    may     sns:GetTopicAttributes sns:Publish @ {topic}
approver may-not sns:Publish @ {topic}
router   may-not sns:Publish sns:GetTopicAttributes @ arn:aws:sns:{home-region}:{home}:other
executor may-not sns:Publish sns:GetTopicAttributes @ arn:aws:sns:{home-region}:{home}:other
sweep    may-not sns:Publish sns:GetTopicAttributes @ arn:aws:sns:{home-region}:{home}:other
executor may-not dynamodb:DescribeTable dynamodb:GetItem dynamodb:PutItem dynamodb:UpdateItem @ arn:aws:dynamodb:{home-region}:{home}:table/other
executor may-not dynamodb:DeleteItem dynamodb:Scan dynamodb:Query dynamodb:DeleteTable @ {ledger}
member   may-not dynamodb:GetItem dynamodb:PutItem @ {ledger}
router   may-not dynamodb:GetItem dynamodb:PutItem dynamodb:Query @ {ledger} {ledger}/index/by-resource
approver may     dynamodb:Query @ {ledger}/index/by-resource {ledger}/index/by-day {ledger}/index/open
approver may     dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=id
approver may     dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=decision
approver may     dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=decision_reason
approver may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=status
approver may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=reason
approver may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=open
approver may     dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=approved_by
approver may     dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=approved_at
approver may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=change
approver may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=actor
approver may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=times
approver may-not dynamodb:UpdateItem @ {ledger}
approver may-not dynamodb:UpdateItem @ arn:aws:dynamodb:{home-region}:{home}:table/other if dynamodb:Attributes=decision
ecs-router may   dynamodb:DescribeTable @ {ledger}
ecs-router may-not dynamodb:DescribeTable @ arn:aws:dynamodb:{home-region}:{home}:table/other
approver may-not dynamodb:PutItem dynamodb:DeleteItem @ {ledger}
approver may     dynamodb:GetItem @ {ledger}
approver may-not dynamodb:GetItem @ arn:aws:dynamodb:{home-region}:{home}:table/other
approver may     ec2:DescribeSecurityGroups ssm:DescribeParameters @ *
approver may-not dynamodb:Query dynamodb:PutItem dynamodb:Scan @ {ledger}
approver may-not dynamodb:Query @ arn:aws:dynamodb:{home-region}:{home}:table/other/index/by-resource
approver may-not dynamodb:PutItem dynamodb:DeleteItem @ {ledger}/index/by-resource
operator may     dynamodb:Query @ {ledger}/index/by-rule {ledger}/index/by-account
operator may-not dynamodb:Query dynamodb:GetItem dynamodb:PutItem dynamodb:Scan @ {ledger}
operator may-not dynamodb:Query @ arn:aws:dynamodb:{home-region}:{home}:table/other/index/by-rule

remediator may     ec2:DescribeSecurityGroups ec2:DescribeTags ssm:DescribeParameters @ *
remediator may     ec2:RevokeSecurityGroupIngress @ arn:aws:ec2:{region}:{home}:security-group/sg-0123456789abcdef0
remediator may-not ec2:RevokeSecurityGroupIngress @ arn:aws:ec2:{region}:{other}:security-group/sg-0123456789abcdef0
remediator may     ec2:AuthorizeSecurityGroupIngress @ arn:aws:ec2:{region}:{home}:security-group/sg-0123456789abcdef0
remediator may-not ec2:AuthorizeSecurityGroupIngress @ arn:aws:ec2:{region}:{other}:security-group/sg-0123456789abcdef0
remediator may     ssm:GetParameter @ arn:aws:ssm:{region}:{home}:parameter{baseline}
remediator may-not ssm:PutParameter ssm:DeleteParameter @ arn:aws:ssm:{region}:{home}:parameter{baseline}
remediator may     ssm:GetParameter ssm:PutParameter ssm:DeleteParameter @ arn:aws:ssm:{region}:{home}:parameter{current}
remediator may     ssm:GetParameter ssm:PutParameter @ arn:aws:ssm:{region}:{home}:parameter{quarantine}
remediator may     ssm:PutParameter @ arn:aws:ssm:{region}:{home}:parameter{quarantine} if ssm:Overwrite=false
remediator may-not ssm:PutParameter @ arn:aws:ssm:{region}:{home}:parameter{quarantine} if ssm:Overwrite=true
remediator may-not ssm:DeleteParameter @ arn:aws:ssm:{region}:{home}:parameter{quarantine}
remediator may-not ssm:GetParameter ssm:PutParameter ssm:DeleteParameter @ arn:aws:ssm:{region}:{home}:parameter/other/secret
remediator may-not ssm:GetParameter ssm:DeleteParameter @ arn:aws:ssm:{region}:{other}:parameter{current}
remediator may-not ssm:DeleteParameter @ arn:aws:ssm:{home-region}:{home}:parameter{kill-switch}
remediator may     kms:Decrypt kms:Encrypt @ arn:aws:kms:{region}:{home}:key/1234abcd if kms:ViaService=ssm.us-east-1.amazonaws.com
remediator may-not kms:Decrypt kms:Encrypt @ arn:aws:kms:{region}:{home}:key/1234abcd
remediator may-not kms:Decrypt @ arn:aws:kms:{region}:{home}:key/1234abcd if kms:ViaService=s3.us-east-1.amazonaws.com
remediator may-not kms:Decrypt @ arn:aws:kms:{region}:{other}:key/1234abcd if kms:ViaService=ssm.us-east-1.amazonaws.com
remediator may-not kms:Decrypt kms:GenerateDataKey kms:CreateGrant @ *
remediator may     ssm:StartAutomationExecution @ arn:aws:ssm:{region}:{home}:automation-definition/{runbook}:$DEFAULT
remediator may-not ssm:StartAutomationExecution @ arn:aws:ssm:{region}:{home}:automation-definition/{notify-runbook}:$DEFAULT
remediator may-not ssm:StartAutomationExecution @ arn:aws:ssm:{region}:{home}:automation-definition/AWS-RunShellScript:$DEFAULT
remediator may     ssm:GetAutomationExecution @ arn:aws:ssm:{region}:{home}:automation-execution/0123-abcd
remediator may-not ssm:GetAutomationExecution @ arn:aws:ssm:{region}:{other}:automation-execution/0123-abcd
remediator may     config:StartConfigRulesEvaluation @ arn:aws:config:{region}:{home}:config-rule/config-rule-0123
remediator may-not config:StartConfigRulesEvaluation @ arn:aws:config:{region}:{other}:config-rule/config-rule-0123
remediator may     config:DescribeConfigRules @ arn:aws:config:{region}:{home}:config-rule/config-rule-0123
remediator may-not config:DescribeConfigRules @ arn:aws:config:{region}:{other}:config-rule/config-rule-0123
remediator may     config:GetComplianceDetailsByResource @ *
remediator may-not config:PutEvaluations config:PutConfigRule config:DeleteConfigRule config:DeleteEvaluationResults @ *
remediator may     iam:PassRole @ {automation-role} if iam:PassedToService=ssm.amazonaws.com
remediator may-not iam:PassRole @ {automation-role} if iam:PassedToService=ec2.amazonaws.com
remediator may-not iam:PassRole @ arn:aws:iam::{home}:role/Admin if iam:PassedToService=ssm.amazonaws.com
member   may-not sqs:ReceiveMessage sqs:SendMessage @ q:tasks q:approvals
member   may     config:GetComplianceDetailsByConfigRule @ arn:aws:config:{region}:{home}:config-rule/config-rule-0123
member   may-not config:GetComplianceDetailsByConfigRule @ arn:aws:config:{region}:{other}:config-rule/config-rule-0123
executor may-not config:GetComplianceDetailsByConfigRule config:DescribeAggregateComplianceByConfigRules @ *
member   may-not ssm:GetParameter @ arn:aws:ssm:{home-region}:{home}:parameter{kill-switch}

sweep    may     config:DescribeConfigRules config:GetComplianceDetailsByConfigRule @ arn:aws:config:{region}:{home}:config-rule/config-rule-0123
sweep    may-not config:DescribeConfigRules config:GetComplianceDetailsByConfigRule @ arn:aws:config:{region}:{other}:config-rule/config-rule-0123
sweep    may     config:DescribeAggregateComplianceByConfigRules config:GetAggregateComplianceDetailsByConfigRule @ arn:aws:config:{home-region}:{home}:config-aggregator/config-aggregator-0123
sweep    may-not config:DescribeAggregateComplianceByConfigRules config:GetAggregateComplianceDetailsByConfigRule @ arn:aws:config:{home-region}:{other}:config-aggregator/config-aggregator-0123
sweep    may     sts:AssumeRole @ role:member
sweep    may-not sts:AssumeRole @ arn:aws:iam::{member}:role/OrganizationAccountAccessRole
sweep    may     sqs:SendMessage sqs:GetQueueUrl @ q:tasks q:approvals
sweep    may     sqs:ReceiveMessage sqs:ChangeMessageVisibility @ q:approvals
sweep    may-not sqs:ReceiveMessage sqs:ChangeMessageVisibility sqs:DeleteMessage @ q:tasks q:events
sweep    may-not sqs:DeleteMessage @ q:approvals
sweep    may-not sqs:SendMessage @ q:events q:events-dlq q:tasks-dlq q:approvals-dlq
sweep    may     ec2:DescribeSecurityGroups @ *
sweep    may     dynamodb:Query @ {ledger}/index/open
sweep    may-not dynamodb:Query @ {ledger}/index/by-resource {ledger}
sweep    may     dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=id
sweep    may     dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=decision
sweep    may     dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=decision_reason
sweep    may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=status
sweep    may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=reason
sweep    may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=open
sweep    may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=approved_by
sweep    may-not dynamodb:UpdateItem @ {ledger} if dynamodb:Attributes=change
sweep    may-not dynamodb:UpdateItem @ {ledger}
sweep    may-not dynamodb:UpdateItem @ arn:aws:dynamodb:{home-region}:{home}:table/other if dynamodb:Attributes=decision
sweep    may-not dynamodb:PutItem dynamodb:DeleteItem dynamodb:GetItem @ {ledger}
sweep    may-not ec2:RevokeSecurityGroupIngress ssm:StartAutomationExecution ssm:PutParameter iam:PassRole config:StartConfigRulesEvaluation config:GetComplianceDetailsByResource config:PutEvaluations @ *
scheduler may     ecs:RunTask @ arn:aws:ecs:{home-region}:{home}:task-definition/redress-sweep:3 if ecs:cluster=arn:aws:ecs:{home-region}:{home}:cluster/Cluster
scheduler may-not ecs:RunTask @ arn:aws:ecs:{home-region}:{home}:task-definition/redress-sweep:3 if ecs:cluster=arn:aws:ecs:{home-region}:{home}:cluster/other
scheduler may-not ecs:RunTask @ arn:aws:ecs:{home-region}:{home}:task-definition/redress-executor:3 if ecs:cluster=arn:aws:ecs:{home-region}:{home}:cluster/Cluster
scheduler may     iam:PassRole @ role:sweep arn:aws:iam::{home}:role/TaskExecutionRole if iam:PassedToService=ecs-tasks.amazonaws.com
scheduler may-not iam:PassRole @ role:sweep if iam:PassedToService=ec2.amazonaws.com
scheduler may-not iam:PassRole @ role:executor role:router if iam:PassedToService=ecs-tasks.amazonaws.com
scheduler may-not sqs:SendMessage @ q:tasks q:approvals
idle-executor may-not sqs:SendMessage @ q:tasks q:approvals
idle-executor may-not sts:AssumeRole @ role:member

task-execution may     ecr:GetAuthorizationToken @ *
task-execution may     ecr:BatchCheckLayerAvailability ecr:GetDownloadUrlForLayer ecr:BatchGetImage @ arn:aws:ecr:{home-region}:{home}:repository/redress
task-execution may-not ecr:BatchGetImage ecr:GetDownloadUrlForLayer @ arn:aws:ecr:{home-region}:{home}:repository/someone-elses arn:aws:ecr:{home-region}:{other}:repository/redress
task-execution may-not ecr:PutImage ecr:DeleteRepository @ arn:aws:ecr:{home-region}:{home}:repository/redress
task-execution may     logs:CreateLogStream logs:PutLogEvents @ arn:aws:logs:{home-region}:{home}:log-group:/redress/redress:log-stream:executor/redress/0123
task-execution may-not logs:CreateLogStream logs:PutLogEvents @ arn:aws:logs:{home-region}:{home}:log-group:/aws/lambda/redress-evaluator:log-stream:0123
task-execution may-not logs:DeleteLogGroup @ arn:aws:logs:{home-region}:{home}:log-group:/redress/redress:*
task-execution may-not sqs:SendMessage ssm:GetParameter @ *
ecs-tasks.amazonaws.com may     sts:AssumeRole @ role:task-execution

lambda-router   may     logs:CreateLogStream logs:PutLogEvents @ arn:aws:logs:{home-region}:{home}:log-group:/aws/lambda/redress-router:log-stream:0123
lambda-router   may-not logs:CreateLogStream logs:PutLogEvents @ arn:aws:logs:{home-region}:{home}:log-group:/aws/lambda/redress-executor:log-stream:0123
lambda-executor may     logs:CreateLogStream logs:PutLogEvents @ arn:aws:logs:{home-region}:{home}:log-group:/aws/lambda/redress-executor:log-stream:0123
lambda-executor may-not logs:CreateLogStream logs:PutLogEvents @ arn:aws:logs:{home-region}:{home}:log-group:/aws/lambda/redress-router:log-stream:0123

evaluator may     config:PutEvaluations config:GetResourceConfigHistory ec2:DescribeSecurityGroups @ *
evaluator may     config:GetComplianceDetailsByConfigRule @ arn:aws:config:{home-region}:{home}:config-rule/config-rule-0123
evaluator may-not config:GetComplianceDetailsByConfigRule @ arn:aws:config:{home-region}:{other}:config-rule/config-rule-0123
evaluator may     ssm:GetParametersByPath ssm:GetParameters @ arn:aws:ssm:{home-region}:{home}:parameter/payments/current arn:aws:ssm:{home-region}:{home}:parameter/payments/current/db-password arn:aws:ssm:{home-region}:{home}:parameter/payments/approved arn:aws:ssm:{home-region}:{home}:parameter/payments/approved/db-password
evaluator may-not ssm:GetParametersByPath ssm:GetParameters @ arn:aws:ssm:{home-region}:{home}:parameter/other/secret arn:aws:ssm:{home-region}:{other}:parameter/payments/current/db-password arn:aws:ssm:{home-region}:{home}:parameter{kill-switch}
evaluator may-not ssm:GetParameter ssm:PutParameter ssm:DeleteParameter ec2:RevokeSecurityGroupIngress config:PutConfigRule config:DeleteEvaluationResults config:StartConfigRulesEvaluation sqs:SendMessage iam:PassRole sts:AssumeRole kms:Encrypt @ *
evaluator may     kms:Decrypt @ arn:aws:kms:{home-region}:{home}:key/1234abcd if kms:ViaService=ssm.us-east-1.amazonaws.com
evaluator may-not kms:Decrypt @ arn:aws:kms:{home-region}:{home}:key/1234abcd
evaluator may-not kms:Decrypt @ arn:aws:kms:{home-region}:{other}:key/1234abcd if kms:ViaService=ssm.us-east-1.amazonaws.com
evaluator may     logs:CreateLogStream logs:PutLogEvents @ arn:aws:logs:{home-region}:{home}:log-group:/aws/lambda/redress-evaluator:log-stream:0123
evaluator may-not logs:CreateLogStream logs:PutLogEvents @ arn:aws:logs:{home-region}:{home}:log-group:/aws/lambda/redress-executor:log-stream:0123
lambda.amazonaws.com may     sts:AssumeRole @ role:evaluator

forwarder may     events:PutEvents @ {bus} if aws:PrincipalOrgID={org}
forwarder may-not events:PutEvents @ arn:aws:events:{home-region}:{home}:event-bus/default arn:aws:events:{home-region}:{other}:event-bus/default if aws:PrincipalOrgID={org}
forwarder may-not sqs:SendMessage ssm:GetParameter ec2:RevokeSecurityGroupIngress sts:AssumeRole @ *
insider   may     events:PutEvents @ {bus} if aws:PrincipalOrgID={org}
outsider  may-not events:PutEvents @ {bus} if aws:PrincipalOrgID=o-someoneelse0
outsider  may-not events:PutEvents @ {bus}
outsider  may-not sqs:SendMessage @ q:events q:tasks
events.amazonaws.com may     sts:AssumeRole @ role:forwarder if aws:SourceAccount={member} aws:SourceArn=arn:aws:events:{home-region}:{member}:rule/redress-forward-compliance-change
events.amazonaws.com may-not sts:AssumeRole @ role:forwarder if aws:SourceAccount={other} aws:SourceArn=arn:aws:events:{home-region}:{member}:rule/redress-forward-compliance-change
events.amazonaws.com may-not sts:AssumeRole @ role:forwarder if aws:SourceAccount={member} aws:SourceArn=arn:aws:events:{home-region}:{member}:rule/someone-elses

approver may     sqs:ReceiveMessage sqs:ChangeMessageVisibility sqs:DeleteMessage sqs:SendMessage sqs:GetQueueUrl sqs:GetQueueAttributes @ q:approvals
approver may     sqs:SendMessage sqs:GetQueueUrl @ q:tasks
approver may-not sqs:ReceiveMessage sqs:DeleteMessage sqs:GetQueueAttributes @ q:tasks q:events
approver may-not sqs:SendMessage sqs:ReceiveMessage @ q:events q:events-dlq q:tasks-dlq q:approvals-dlq
approver may-not ssm:PutParameter ssm:GetParameter ssm:StartAutomationExecution ec2:RevokeSecurityGroupIngress ec2:AuthorizeSecurityGroupIngress iam:PassRole @ *
approver may-not sts:AssumeRole @ role:member

operator may     sqs:ReceiveMessage sqs:DeleteMessage sqs:ChangeMessageVisibility sqs:GetQueueAttributes sqs:GetQueueUrl sqs:StartMessageMoveTask sqs:ListMessageMoveTasks sqs:ListDeadLetterSourceQueues @ q:events-dlq q:tasks-dlq q:approvals-dlq
operator may     sqs:SendMessage sqs:GetQueueUrl sqs:GetQueueAttributes @ q:events q:tasks q:approvals
operator may-not sqs:ReceiveMessage sqs:DeleteMessage sqs:ChangeMessageVisibility @ q:events q:tasks q:approvals
operator may-not sqs:SendMessage @ q:events-dlq q:tasks-dlq q:approvals-dlq
operator may-not ssm:PutParameter ssm:StartAutomationExecution ec2:RevokeSecurityGroupIngress iam:PassRole @ *

admin    may-not sqs:SendMessage @ q:events q:tasks q:approvals
admin    may     sqs:ReceiveMessage sqs:SetQueueAttributes @ q:events q:tasks q:approvals
admin    may-not sts:AssumeRole @ role:member
events.amazonaws.com may     sqs:SendMessage @ q:events if aws:SourceArn={rule}
events.amazonaws.com may-not sqs:SendMessage @ q:events if aws:SourceArn=arn:aws:events:{home-region}:{home}:rule/someone-elses
events.amazonaws.com may-not sqs:SendMessage @ q:tasks q:approvals if aws:SourceArn={rule}
events.amazonaws.com may     sqs:SendMessage @ q:events-dlq if aws:SourceArn={rule}
events.amazonaws.com may-not sqs:SendMessage @ q:events-dlq if aws:SourceArn=arn:aws:events:{home-region}:{home}:rule/someone-elses

alice    may     sts:AssumeRole @ role:approver if aws:username=alice aws:MultiFactorAuthPresent=true sts:RoleSessionName=alice
alice    may-not sts:AssumeRole @ role:approver if aws:username=alice aws:MultiFactorAuthPresent=false sts:RoleSessionName=alice
alice    may-not sts:AssumeRole @ role:approver if aws:username=alice sts:RoleSessionName=alice
alice    may-not sts:AssumeRole @ role:approver if aws:username=alice aws:MultiFactorAuthPresent=true sts:RoleSessionName=olivia
alice    may-not sts:AssumeRole @ role:operator role:router role:executor role:member if aws:username=alice aws:MultiFactorAuthPresent=true sts:RoleSessionName=alice
olivia   may     sts:AssumeRole @ role:operator if aws:username=olivia aws:MultiFactorAuthPresent=true sts:RoleSessionName=olivia
olivia   may-not sts:AssumeRole @ role:operator if aws:username=olivia aws:MultiFactorAuthPresent=false sts:RoleSessionName=olivia
olivia   may-not sts:AssumeRole @ role:operator if aws:username=olivia aws:MultiFactorAuthPresent=true sts:RoleSessionName=alice
olivia   may-not sts:AssumeRole @ role:approver if aws:username=olivia aws:MultiFactorAuthPresent=true sts:RoleSessionName=olivia
mallory  may-not sts:AssumeRole @ role:approver role:operator role:router role:executor role:sweep if aws:username=mallory aws:MultiFactorAuthPresent=true sts:RoleSessionName=mallory
approvers-sso may     sts:AssumeRole sts:SetSourceIdentity @ role:approver if sts:SourceIdentity=alice@example.com
approvers-sso may-not sts:AssumeRole @ role:approver
approvers-sso may-not sts:AssumeRole @ role:operator if sts:SourceIdentity=alice@example.com
operators-sso may     sts:AssumeRole sts:SetSourceIdentity @ role:operator if sts:SourceIdentity=olivia@example.com
operators-sso may-not sts:AssumeRole @ role:operator
operators-sso may-not sts:AssumeRole @ role:approver if sts:SourceIdentity=olivia@example.com

ecs-tasks.amazonaws.com may     sts:AssumeRole @ role:sweep if aws:SourceAccount={home} aws:SourceArn=arn:aws:ecs:{home-region}:{home}:task/redress/0123
ecs-tasks.amazonaws.com may-not sts:AssumeRole @ role:sweep if aws:SourceAccount={other} aws:SourceArn=arn:aws:ecs:{home-region}:{home}:task/redress/0123
ecs-tasks.amazonaws.com may-not sts:AssumeRole @ role:sweep if aws:SourceAccount={home} aws:SourceArn=arn:aws:ecs:{home-region}:{other}:task/redress/0123
ecs-tasks.amazonaws.com may     sts:AssumeRole @ role:ecs-router role:ecs-executor if aws:SourceAccount={home} aws:SourceArn=arn:aws:ecs:{home-region}:{home}:task/redress/0123
ecs-tasks.amazonaws.com may-not sts:AssumeRole @ role:ecs-router role:ecs-executor if aws:SourceAccount={other} aws:SourceArn=arn:aws:ecs:{home-region}:{home}:task/redress/0123
ecs-tasks.amazonaws.com may-not sts:AssumeRole @ role:ecs-router role:ecs-executor if aws:SourceAccount={home} aws:SourceArn=arn:aws:ecs:{home-region}:{other}:task/redress/0123
ecs-tasks.amazonaws.com may-not sts:AssumeRole @ role:scheduler if aws:SourceAccount={home} aws:SourceArn=arn:aws:ecs:{home-region}:{home}:task/redress/0123
scheduler.amazonaws.com may     sts:AssumeRole @ role:scheduler if aws:SourceAccount={home} aws:SourceArn=arn:aws:scheduler:{home-region}:{home}:schedule/default/redress-sweep
scheduler.amazonaws.com may-not sts:AssumeRole @ role:scheduler if aws:SourceAccount={other} aws:SourceArn=arn:aws:scheduler:{home-region}:{home}:schedule/default/redress-sweep
scheduler.amazonaws.com may-not sts:AssumeRole @ role:scheduler if aws:SourceAccount={home} aws:SourceArn=arn:aws:scheduler:{home-region}:{home}:schedule/default/someone-elses
scheduler.amazonaws.com may-not sts:AssumeRole @ role:sweep role:executor if aws:SourceAccount={home} aws:SourceArn=arn:aws:scheduler:{home-region}:{home}:schedule/default/redress-sweep
ecs-tasks.amazonaws.com may-not sts:AssumeRole @ role:approver role:operator if aws:SourceAccount={home} aws:SourceArn=arn:aws:ecs:{home-region}:{home}:task/redress/0123
lambda.amazonaws.com    may     sts:AssumeRole @ role:lambda-router role:lambda-executor
"#;

/// The duties, expanded for this deployment.
fn duties(w: &World) -> Vec<Duty> {
    let mut vars: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut set = |k: &'static str, v: Vec<String>| {
        assert!(!v.is_empty(), "no value for {{{k}}} in infra/policies");
        vars.insert(k, v);
    };
    set("home-region", vec![REGION.into()]);
    set("region", vec![REGION.into(), REGION2.into()]);
    set("other", vec![OTHER.into()]);
    set("member", vec![MEMBER.into()]);
    set("rule", vec![w.rule.clone()]);
    set("bus", vec![w.bus.clone()]);
    set("org", vec![ORG.into()]);
    set("member-role", vec![MEMBER_ROLE_NAME.into()]);
    set("ledger", vec![ledger_table()]);
    set(
        "topic",
        vec![format!(
            "arn:aws:sns:{REGION}:{ACCOUNT}:redress-notifications"
        )],
    );
    let values = |key: &str| -> Vec<String> {
        let mut v: Vec<String> = policy_values(key, false)
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    set("kill-switch", values("kill_switch_parameter"));
    // A parameter under each prefix ({app} is an application's name).
    let under = |key: &str| -> Vec<String> {
        values(key)
            .iter()
            .map(|p| format!("{}db-password", p.replace("{app}", "payments")))
            .collect()
    };
    set("baseline", under("baseline_prefix"));
    set("current", under("current_prefix"));
    // Copies of current parameters (the executor's quarantine_name), and one of an app
    // whose live values are not under /current/.
    let mut quarantine: Vec<String> = under("current_prefix")
        .iter()
        .map(|c| format!("/redress/quarantine{c}/1700000000-v3"))
        .collect();
    quarantine.push("/redress/quarantine/orders/live/db-password/1700000000-v3".into());
    set("quarantine", quarantine);
    let runbooks = |notify: bool| -> Vec<String> {
        let mut v: Vec<String> = policy_values("runbook", false)
            .into_iter()
            .filter(|(_, n)| *n == notify)
            .map(|(r, _)| r)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let run = runbooks(false);
    // A document one policy only notifies about may be one another policy runs.
    let never_run: Vec<String> = runbooks(true)
        .into_iter()
        .filter(|r| !run.contains(r))
        .collect();
    set("runbook", run);
    set("notify-runbook", never_run);
    set(
        "automation-role",
        values("assume_role")
            .iter()
            .map(|r| r.replace("{account_id}", "{home}"))
            .collect(),
    );

    let (ecs, lambda) = (w.mode == Mode::Ecs, w.mode == Mode::Lambda);
    let only = |on: bool, r: &String| if on { vec![r.clone()] } else { Vec::new() };
    let roles: BTreeMap<&str, Vec<String>> = BTreeMap::from([
        ("router", vec![w.router.clone()]),
        ("executor", vec![w.executor.clone()]),
        ("ecs-router", only(ecs, &w.router)),
        ("ecs-executor", only(ecs, &w.executor)),
        ("lambda-router", only(lambda, &w.router)),
        ("lambda-executor", only(lambda, &w.executor)),
        (
            "remediator",
            vec![w.executor.clone(), w.member_role.clone()],
        ),
        ("member", vec![w.member_role.clone()]),
        ("approver", vec![w.approver.clone()]),
        ("operator", vec![w.operator.clone()]),
        ("sweep", vec![w.sweep.clone()]),
        ("scheduler", vec![w.scheduler.clone()]),
        ("task-execution", vec![w.task_execution.clone()]),
        ("evaluator", vec![w.evaluator.clone()]),
        ("forwarder", vec![w.forwarder.clone()]),
    ]);
    let mut out = Vec::new();
    for line in DUTIES.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.split_whitespace();
        let who = words.next().unwrap();
        let allowed = match words.next() {
            Some("may") => true,
            Some("may-not") => false,
            other => panic!("{line}: may or may-not, not {other:?}"),
        };
        let (template_role, callers): (bool, Vec<String>) = match who {
            _ if who.ends_with(".amazonaws.com") => (false, vec![who.to_string()]),
            "admin" => (false, vec![w.admin.clone()]),
            "outsider" => (false, vec![w.outsider.clone()]),
            "insider" => (false, vec![w.insider.clone()]),
            "idle-executor" => (false, vec![w.idle_executor.clone()]),
            "approvers-sso" => (false, vec![w.approvers_sso.clone()]),
            "operators-sso" => (false, vec![w.operators_sso.clone()]),
            _ if w.users.contains_key(who) => (false, vec![w.users[who].clone()]),
            _ => (
                true,
                roles
                    .get(who)
                    .unwrap_or_else(|| panic!("{line}: who is {who}?"))
                    .clone(),
            ),
        };
        // A role this mode does not deploy, as caller or as resource: not this mode's duty.
        let absent = |name: &str| roles.get(name).is_some_and(Vec::is_empty);
        if absent(who)
            || line
                .split_whitespace()
                .filter_map(|word| word.strip_prefix("role:"))
                .any(absent)
        {
            continue;
        }
        let rest = line[who.len()..].trim_start();
        let rest = rest.split_once(char::is_whitespace).unwrap().1.trim_start();
        let (actions, rest) = rest
            .split_once(" @ ")
            .unwrap_or_else(|| panic!("{line}: no @"));
        let (resources, ctx) = rest.split_once(" if ").unwrap_or((rest, ""));
        for caller in callers {
            let home = if caller.ends_with(".amazonaws.com") {
                ACCOUNT.to_string()
            } else {
                account_of(&caller)
            };
            for resource in resources.split_whitespace() {
                let resource = match resource.split_once(':') {
                    Some(("q", name)) => queue(name),
                    Some(("role", name)) => roles
                        .get(name)
                        .unwrap_or_else(|| panic!("{line}: no role {name}"))[0]
                        .clone(),
                    _ => resource.to_string(),
                };
                let template = format!("{resource}|{ctx}").replace("{home}", &home);
                for expanded in expand(&template, &vars) {
                    let expanded = expanded.replace("{home}", &home);
                    let (resource, ctx) = expanded.split_once('|').unwrap();
                    let ctx: Vec<(String, String)> = ctx
                        .split_whitespace()
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').unwrap();
                            (k.to_string(), v.to_string())
                        })
                        .collect();
                    for action in actions.split_whitespace() {
                        out.push(Duty {
                            call: Call {
                                who: caller.clone(),
                                action: action.to_string(),
                                resource: resource.to_string(),
                                ctx: ctx.clone(),
                            },
                            allowed,
                            role: template_role,
                        });
                    }
                }
            }
        }
    }
    out
}

/// Every combination of the placeholders' values (`{home}` is left for the caller).
fn expand(text: &str, vars: &BTreeMap<&str, Vec<String>>) -> Vec<String> {
    let mut from = 0;
    while let Some(start) = text[from..].find('{').map(|i| i + from) {
        let end = start + text[start..].find('}').unwrap();
        let name = &text[start + 1..end];
        if let Some(values) = vars.get(name) {
            return values
                .iter()
                .flat_map(|v| expand(&format!("{}{v}{}", &text[..start], &text[end + 1..]), vars))
                .collect();
        }
        assert_eq!(name, "home", "unknown placeholder {{{name}}} in {text}");
        from = end + 1;
    }
    vec![text.to_string()]
}

/// Every duty against the model: the verdict, and for the templates' roles the verdict
/// of their own policies alone.
fn check(model: &Model, duties: &[Duty]) -> Result<(), Vec<String>> {
    let mut wrong = Vec::new();
    for d in duties {
        let word = |a: bool| if a { "allowed" } else { "denied" };
        let full = model.allowed(&d.call, true);
        if full != d.allowed {
            wrong.push(format!(
                "{} but should be {}: {:?}",
                word(full),
                word(d.allowed),
                d.call
            ));
        } else if d.role && model.allowed(&d.call, false) != d.allowed {
            wrong.push(format!(
                "{} by its own policy alone, should be {}: {:?}",
                word(!d.allowed),
                word(d.allowed),
                d.call
            ));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong)
    }
}

// ------------------------------------------------------------------------------ tests

#[test]
fn the_executor_roles_grant_exactly_what_the_executor_calls() {
    let needed = executor_calls();
    assert!(
        needed.contains("ec2:RevokeSecurityGroupIngress")
            && needed.contains("ssm:StartAutomationExecution")
    );
    for mode in MODES {
        let w = world(templates(), mode);
        // Lambda's runtime writes the function's logs with its role; the code never does.
        let granted: BTreeSet<String> = granted(&w, &w.executor)
            .into_iter()
            .filter(|a| !a.starts_with("logs:"))
            .collect();
        let missing: Vec<&String> = needed.difference(&granted).collect();
        let extra: Vec<&String> = granted.difference(&needed).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{}: missing from the template: {missing:?}; granted but never called: {extra:?}",
            w.model.roles[&w.executor]
        );
        // Every call of the code is a duty of the executor (so its resources are checked too).
        let duties = duties(&w);
        for op in &needed {
            assert!(
                duties
                    .iter()
                    .any(|d| d.call.who == w.executor && d.allowed && &d.call.action == op),
                "{mode:?}: no executor duty makes {op}"
            );
        }
    }
}

/// The actions a role's identity policy allows.
fn granted(w: &World, role: &str) -> BTreeSet<String> {
    w.model.docs[&Doc::Identity(role.to_string())]
        .iter()
        .filter(|st| st["Effect"] == "Allow")
        .flat_map(|st| match &st["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().to_string()).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn the_evaluator_role_grants_what_the_evaluators_call_and_each_is_a_duty() {
    let w = world(templates(), Mode::Ecs);
    let want: BTreeSet<String> = EVALUATOR_CALLS.iter().map(|a| a.to_string()).collect();
    assert_eq!(granted(&w, &w.evaluator), want, "config.yaml EvaluatorRole");
    // The calls the code names are in its AWS seams (the rest are SSM's and the runtime's).
    let (named, _) = operations_in(&["workers/src/aws"]);
    for op in [
        "config:PutEvaluations",
        "config:GetResourceConfigHistory",
        "ssm:GetParametersByPath",
    ] {
        assert!(
            named.contains(op),
            "no code names {op} any more: update EVALUATOR_CALLS"
        );
    }
    let duties = duties(&w);
    for op in EVALUATOR_CALLS {
        assert!(
            duties
                .iter()
                .any(|d| d.call.who == w.evaluator && d.allowed && d.call.action == *op),
            "no evaluator duty makes {op}"
        );
    }
}

#[test]
fn the_central_bus_admits_the_organization_and_refuses_everyone_else() {
    let w = world(templates(), Mode::Ecs);
    let put = |who: &str, org: Option<&str>| Call {
        who: who.to_string(),
        action: "events:PutEvents".into(),
        resource: w.bus.clone(),
        ctx: org
            .map(|o| vec![("aws:PrincipalOrgID".to_string(), o.to_string())])
            .unwrap_or_default(),
    };
    // A member account's forwarding role, and anyone else in the organization.
    assert!(w.model.allowed(&put(&w.forwarder, Some(ORG)), true));
    assert!(w.model.allowed(&put(&w.insider, Some(ORG)), true));
    // Someone else's account, however much its own policy allows.
    assert!(!w
        .model
        .allowed(&put(&w.outsider, Some("o-someoneelse0")), true));
    assert!(!w.model.allowed(&put(&w.outsider, None), true));
    // Without OrganizationId the bus has no policy: no other account gets in.
    let mut single = world(templates(), Mode::Ecs);
    single.model.docs.retain(|d, _| !matches!(d, Doc::Bus(_)));
    assert!(!single.model.allowed(&put(&w.forwarder, Some(ORG)), true));
    // The forwarding role may put only on the central bus, and only EventBridge, for the
    // member's forwarding rule, assumes it.
    let rule = format!("arn:aws:events:{REGION}:{MEMBER}:rule/redress-forward-compliance-change");
    let assume = |account: &str, rule: &str| Call {
        who: "events.amazonaws.com".into(),
        action: "sts:AssumeRole".into(),
        resource: w.forwarder.clone(),
        ctx: vec![
            ("aws:SourceAccount".into(), account.into()),
            ("aws:SourceArn".into(), rule.into()),
        ],
    };
    assert!(w.model.allowed(&assume(MEMBER, &rule), true));
    assert!(!w.model.allowed(&assume(OTHER, &rule), true));
    assert_eq!(
        granted(&w, &w.forwarder),
        BTreeSet::from(["events:PutEvents".to_string()])
    );
}

#[test]
fn every_duty_is_allowed_and_everything_else_denied() {
    for mode in MODES {
        let w = world(templates(), mode);
        let duties = duties(&w);
        if let Err(wrong) = check(&w.model, &duties) {
            panic!("WorkerMode={mode:?}:\n{}", wrong.join("\n"));
        }
    }
}

#[test]
fn templates_assert_what_the_emulator_cannot() {
    let w = world(templates(), Mode::Ecs);
    // No trust policy admits a whole account without a condition on who the person is.
    for (doc, sts) in &w.model.docs {
        let Doc::Trust(role) = doc else { continue };
        for st in sts {
            let root = st["Principal"]
                .get("AWS")
                .is_some_and(|p| any(p, |p| p.ends_with(":root") || p == "*"));
            assert!(
                !root || st.get("Condition").is_some(),
                "{} trusts a whole account: {st}",
                w.model.roles[role]
            );
        }
    }
    // Parameter Store: prefixes, never every parameter.
    for (doc, sts) in &w.model.docs {
        for st in sts {
            if st
                .get("Action")
                .is_some_and(|a| any(a, |a| a.starts_with("ssm:") && a.ends_with("Parameter")))
            {
                assert!(
                    !any(&st["Resource"], |r| r.ends_with(":parameter/*") || r == "*"),
                    "{doc:?}: {st}"
                );
            }
        }
    }
    // The people's roles name their people, with MFA and session names or source identity.
    for role in [&w.approver, &w.operator] {
        let trust = &w.model.docs[&Doc::Trust(role.clone())];
        assert_eq!(trust.len(), 2, "{trust:?}");
        assert_eq!(
            trust[0]["Condition"]["Bool"]["aws:MultiFactorAuthPresent"],
            "true"
        );
        assert_eq!(
            trust[0]["Condition"]["StringEquals"]["sts:RoleSessionName"],
            "${aws:username}"
        );
        assert_eq!(trust[1]["Condition"]["Null"]["sts:SourceIdentity"], "false");
    }
    // Without named people the stack does not deploy (a CloudFormation rule says so).
    let rules = &templates()["redress"]["Rules"];
    for (rule, params) in [
        (
            "ApproversNamed",
            ["ApproverUserArns", "ApproverFederatedRoleArns"],
        ),
        (
            "OperatorsNamed",
            ["OperatorUserArns", "OperatorFederatedRoleArns"],
        ),
    ] {
        let text = rules[rule].to_string();
        assert!(params.iter().all(|p| text.contains(p)), "{rule}: {text}");
    }
    // Queue policies: each source queue has one, denying every other sender.
    for q in SOURCES {
        let sts = &w.model.docs[&Doc::Queue(queue(q))];
        assert!(
            sts.iter().any(|st| st["Effect"] == "Deny"
                && st["Principal"] == "*"
                && st["Action"] == "sqs:SendMessage"),
            "{q}: {sts:?}"
        );
    }
}

#[test]
fn the_member_role_has_one_name_everywhere() {
    let t = templates();
    for template in ["redress", "lambda", "member"] {
        let default = &t[template]["Parameters"]["MemberRemediationRoleName"]["Default"];
        assert_eq!(
            default, MEMBER_ROLE_NAME,
            "{template}.yaml MemberRemediationRoleName"
        );
    }
    let roles = policy_values("role", true);
    assert!(
        !roles.is_empty(),
        "no [accounts] role line in infra/policies"
    );
    for (role, _) in roles {
        assert_eq!(
            role,
            format!("arn:aws:iam::{{account_id}}:role/{MEMBER_ROLE_NAME}")
        );
    }
    // The prose too: README.md and docs/.
    let mut prose = vec![root().join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root().join("docs")) {
        prose.extend(
            dir.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "md")),
        );
    }
    for path in prose {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("role/redress-member"),
            "{} names the member role redress-member",
            path.display()
        );
    }
}

/// A change to one policy element.
#[derive(Clone, Debug)]
enum Mutation {
    RemoveStatement,
    RemoveAction(usize),
    RemoveResource(usize),
    WidenResource,
    RemoveCondition(String, String),
    RemoveConditionValue(String, String, usize),
    RootPrincipal,
}

/// Elements whose removal changes nothing a duty can see, on purpose.
const BELT_AND_BRACES: &[(&str, &str)] = &[
    // The events queue's Allow for EventBridge names the rule; its Deny does too.
    ("EventBridgeRuleOnly", "aws:SourceArn"),
    // The member role's trust names the executor's role ARN, which fixes the account.
    ("member-trust", "aws:PrincipalAccount"),
];

/// The changes tried on a statement. A queue policy's Resource is its own queue: widening
/// it means nothing.
fn mutations(st: &Value, queue_policy: bool) -> Vec<Mutation> {
    let mut out = vec![Mutation::RemoveStatement];
    let len = |v: Option<&Value>| v.and_then(Value::as_array).map_or(0, Vec::len);
    if len(st.get("Action")) > 1 {
        out.extend((0..len(st.get("Action"))).map(Mutation::RemoveAction));
    }
    if len(st.get("Resource")) > 1 {
        out.extend((0..len(st.get("Resource"))).map(Mutation::RemoveResource));
    }
    if !queue_policy && st["Effect"] == "Allow" && st.get("Resource").is_some_and(|r| r != "*") {
        out.push(Mutation::WidenResource);
    }
    if let Some(cond) = st.get("Condition").and_then(Value::as_object) {
        for (op, keys) in cond {
            for (key, values) in keys.as_object().unwrap() {
                out.push(Mutation::RemoveCondition(op.clone(), key.clone()));
                if values.as_array().is_some_and(|v| v.len() > 1) {
                    for i in 0..values.as_array().unwrap().len() {
                        out.push(Mutation::RemoveConditionValue(op.clone(), key.clone(), i));
                    }
                }
            }
        }
    }
    if st["Principal"].get("AWS").is_some() {
        out.push(Mutation::RootPrincipal);
    }
    out
}

fn apply(sts: &mut Vec<Value>, i: usize, m: &Mutation) {
    let st = &mut sts[i];
    match m {
        Mutation::RemoveStatement => {
            sts.remove(i);
        }
        Mutation::RemoveAction(j) => {
            st["Action"].as_array_mut().unwrap().remove(*j);
        }
        Mutation::RemoveResource(j) => {
            st["Resource"].as_array_mut().unwrap().remove(*j);
        }
        Mutation::WidenResource => st["Resource"] = json!("*"),
        Mutation::RemoveCondition(op, key) => {
            let cond = st["Condition"].as_object_mut().unwrap();
            cond[op].as_object_mut().unwrap().remove(key);
            if cond[op].as_object().unwrap().is_empty() {
                cond.remove(op);
            }
        }
        Mutation::RemoveConditionValue(op, key, j) => {
            st["Condition"][op][key].as_array_mut().unwrap().remove(*j);
        }
        Mutation::RootPrincipal => {
            st["Principal"] = json!({"AWS": format!("arn:aws:iam::{ACCOUNT}:root")})
        }
    }
}

#[test]
fn removing_or_widening_any_policy_element_breaks_a_duty() {
    for mode in MODES {
        mutations_break_duties(mode);
    }
}

fn mutations_break_duties(mode: Mode) {
    let w = world(templates(), mode);
    let duties = duties(&w);
    check(&w.model, &duties).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    // The policies of the workers', people's, evaluator's, forwarding and member roles,
    // ECS's task execution role, and the queue and bus policies. The automation role does
    // what AWS's runbooks need; Config's recorder role holds AWS's managed policy.
    let scope =
        |doc: &Doc| match doc {
            Doc::Identity(r) | Doc::Trust(r) => w.model.roles.get(r).is_some_and(|n| {
                !n.ends_with("AutomationRole") && !n.ends_with("ConfigRecorderRole")
            }),
            Doc::Queue(_) | Doc::Bus(_) => true,
        };
    let mut tried = 0;
    let mut unnoticed = Vec::new();
    for (doc, sts) in w.model.docs.iter().filter(|(d, _)| scope(d)) {
        for (i, st) in sts.iter().enumerate() {
            for m in mutations(st, matches!(doc, Doc::Queue(_) | Doc::Bus(_))) {
                let sid = st["Sid"].as_str().unwrap_or("");
                let exempt = BELT_AND_BRACES.iter().any(|(s, key)| {
                    let site = if matches!(doc, Doc::Trust(r) if r == &w.member_role) {
                        "member-trust"
                    } else {
                        sid
                    };
                    *s == site && matches!(&m, Mutation::RemoveCondition(_, k) if k == key)
                });
                if exempt {
                    continue;
                }
                let mut model = w.model.clone();
                apply(model.docs.get_mut(doc).unwrap(), i, &m);
                tried += 1;
                if check(&model, &duties).is_ok() {
                    let name = match doc {
                        Doc::Identity(r) | Doc::Trust(r) => {
                            format!("{doc:?} ({})", w.model.roles[r])
                        }
                        Doc::Queue(q) | Doc::Bus(q) => format!("{doc:?} {q}"),
                    };
                    unnoticed.push(format!("{name} statement {i} {sid}: {m:?}"));
                }
            }
        }
    }
    assert!(tried > 200, "only {tried} mutations");
    eprintln!(
        "WorkerMode={mode:?}: {tried} mutations of {} policy documents, against {} duties",
        w.model.docs.len(),
        duties.len()
    );
    assert!(
        unnoticed.is_empty(),
        "WorkerMode={mode:?}: {} of {tried} mutations went unnoticed:\n{}",
        unnoticed.len(),
        unnoticed.join("\n")
    );
}

/// `WHO denied|allowed ACTION RESOURCE [KEY=VALUE]`: what the SCP does to a call.
const SCP_CASES: &str = "
owner    denied  ec2:CreateTags              sg     aws:TagKeys=redress:exempt
owner    denied  ec2:CreateTags              sg     aws:TagKeys=Redress:Exempt
owner    denied  ec2:DeleteTags              sg     aws:TagKeys=redress:exempt
owner    denied  tag:TagResources            sg     aws:TagKeys=redress:exempt
owner    denied  tag:UntagResources          sg     aws:TagKeys=redress:exempt
owner    denied  ssm:AddTagsToResource       param  aws:TagKeys=redress:exempt
owner    denied  ssm:RemoveTagsFromResource  param  aws:TagKeys=redress:exempt
owner    denied  ec2:RunInstances            sg     aws:RequestTag/redress:exempt=true
owner    allowed ec2:CreateTags              sg     aws:TagKeys=team
owner    allowed ec2:RunInstances            sg     aws:RequestTag/team=payments
owner    allowed ec2:RevokeSecurityGroupIngress sg
security allowed ec2:CreateTags              sg     aws:TagKeys=redress:exempt
security allowed ec2:DeleteTags              sg     aws:TagKeys=redress:exempt
security allowed ec2:RunInstances            sg     aws:RequestTag/redress:exempt=true
";

#[test]
fn the_scp_reserves_the_exempt_tag_for_the_security_team() {
    let text = std::fs::read_to_string(root().join("infra/scp/reserve-exempt-tag.json")).unwrap();
    let scp = statements(&serde_json::from_str(&text).unwrap());
    for line in SCP_CASES.lines().filter(|l| !l.trim().is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let who = match w[0] {
            "security" => format!("arn:aws:iam::{MEMBER}:role/SECURITY-TEAM-ROLE"),
            _ => format!("arn:aws:iam::{MEMBER}:role/app-team"),
        };
        let resource = match w[3] {
            "sg" => format!("arn:aws:ec2:{REGION}:{MEMBER}:security-group/sg-0123456789abcdef0"),
            _ => format!("arn:aws:ssm:{REGION}:{MEMBER}:parameter/payments/current/db"),
        };
        let ctx: Vec<(String, String)> = w[4..]
            .iter()
            .map(|kv| kv.rsplit_once('=').unwrap())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let call = Call {
            who: who.clone(),
            action: w[2].to_string(),
            resource,
            ctx,
        };
        let mut ctx: BTreeMap<String, String> = call.ctx.iter().cloned().collect();
        ctx.insert("aws:PrincipalArn".into(), who);
        let denied = scp
            .iter()
            .any(|st| applies(st, &call, &ctx, false) == Some(false));
        assert_eq!(denied, w[1] == "denied", "{line}");
    }
}

// ------------------------------------------------------------------------------ emulator

/// The IAM-enforcing emulator with redress.yaml deployed (infra/local/enforced.py).
struct Enforced {
    child: Child,
    info: Value,
}

impl Enforced {
    fn start() -> Enforced {
        let python = root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "the IAM test needs the emulator's virtualenv: run `make venv`"
        );
        let mut child = Command::new(python)
            .arg(root().join("infra/local/enforced.py"))
            .arg("--exit-with-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log()).expect("a log file in the temp dir"))
            .spawn()
            .expect("start infra/local/enforced.py");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(
            !line.is_empty(),
            "infra/local/enforced.py exited before deploying; its log: {}",
            log().display()
        );
        Enforced {
            child,
            info: serde_json::from_str(&line).unwrap(),
        }
    }

    async fn config(&self, key: &str, secret: &str, token: Option<&str>) -> aws_config::SdkConfig {
        let creds = aws_sdk_sqs::config::Credentials::new(
            key,
            secret,
            token.map(str::to_string),
            None,
            "enforced",
        );
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.info["endpoint"].as_str().unwrap())
            .region(aws_config::Region::new(REGION))
            .credentials_provider(creds)
            .load()
            .await
    }

    async fn user(&self, name: &str) -> aws_config::SdkConfig {
        let u = &self.info["users"][name];
        self.config(
            u["access_key_id"].as_str().unwrap(),
            u["secret_access_key"].as_str().unwrap(),
            None,
        )
        .await
    }
}

/// The launcher's stderr (moto's warnings, a failed deployment's reasons).
fn log() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("redress-enforced-{}.log", std::process::id()))
}

impl Drop for Enforced {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, PartialEq)]
enum Verdict {
    Allowed,
    Denied,
    Other(String),
}

fn verdict<T, E>(
    r: Result<T, aws_sdk_sqs::error::SdkError<E, aws_sdk_sqs::config::http::HttpResponse>>,
) -> Verdict
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::fmt::Debug,
{
    use aws_sdk_sqs::error::ProvideErrorMetadata;
    match r {
        Ok(_) => Verdict::Allowed,
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let code = e.code().unwrap_or_default().to_string();
            if status == Some(403) || code.starts_with("AccessDenied") {
                Verdict::Denied
            } else if code == "ReceiptHandleIsInvalid" {
                // Past authorization: the probe's receipt handle is not a real one.
                Verdict::Allowed
            } else {
                Verdict::Other(format!("{code} (HTTP {status:?}): {e:?}"))
            }
        }
    }
}

/// A session of the role, as `who` (through the role's trust policy).
async fn assume(
    sts: &aws_sdk_sts::Client,
    role: &str,
    session: &str,
) -> Result<(String, String, String), Verdict> {
    let r = sts
        .assume_role()
        .role_arn(role)
        .role_session_name(session)
        .send()
        .await;
    match r {
        Ok(out) => {
            let c = out.credentials().unwrap();
            Ok((
                c.access_key_id().to_string(),
                c.secret_access_key().to_string(),
                c.session_token().to_string(),
            ))
        }
        Err(e) => Err(verdict::<(), _>(Err(e))),
    }
}

/// The SQS calls moto authorizes against the queue (those with a QueueUrl).
const EMULATED_SQS: &[&str] = &[
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
    "sqs:ListDeadLetterSourceQueues",
];

async fn probe(cfg: &aws_config::SdkConfig, call: &Call) -> Option<Verdict> {
    let account = |r: &str| account_of(r);
    if EMULATED_SQS.contains(&call.action.as_str()) {
        let name = call.resource.rsplit(':').next().unwrap();
        let url = format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}");
        let sqs = aws_sdk_sqs::Client::new(cfg);
        return Some(match call.action.as_str() {
            "sqs:SendMessage" => verdict(
                sqs.send_message()
                    .queue_url(&url)
                    .message_body("iam probe")
                    .send()
                    .await,
            ),
            "sqs:ReceiveMessage" => verdict(
                sqs.receive_message()
                    .queue_url(&url)
                    .visibility_timeout(0)
                    .send()
                    .await,
            ),
            "sqs:DeleteMessage" => verdict(
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle("iam-probe")
                    .send()
                    .await,
            ),
            "sqs:ChangeMessageVisibility" => verdict(
                sqs.change_message_visibility()
                    .queue_url(&url)
                    .receipt_handle("iam-probe")
                    .visibility_timeout(0)
                    .send()
                    .await,
            ),
            "sqs:GetQueueAttributes" => verdict(
                sqs.get_queue_attributes()
                    .queue_url(&url)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                    .send()
                    .await,
            ),
            "sqs:ListDeadLetterSourceQueues" => verdict(
                sqs.list_dead_letter_source_queues()
                    .queue_url(&url)
                    .send()
                    .await,
            ),
            _ => unreachable!(),
        });
    }
    match call.action.as_str() {
        // A role in another account is unknown here: moto checks the caller's policy only.
        "sts:AssumeRole" if account(&call.resource) != ACCOUNT => {
            let sts = aws_sdk_sts::Client::new(cfg);
            Some(verdict(
                sts.assume_role()
                    .role_arn(&call.resource)
                    .role_session_name("iam-probe")
                    .send()
                    .await,
            ))
        }
        // moto authorizes GetRole against the role when it exists (SecOps does).
        "iam:GetRole" if account(&call.resource) == ACCOUNT => {
            let iam = aws_sdk_iam::Client::new(cfg);
            let name = call.resource.rsplit('/').next().unwrap();
            Some(verdict(iam.get_role().role_name(name).send().await))
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_enforcing_iam_allows_each_duty_and_denies_the_rest() {
    let started = Instant::now();
    let emu = Enforced::start();
    let info = &emu.info;
    let out = &info["outputs"];
    let deployed = |k: &str| out[k].as_str().unwrap().to_string();
    let skipped: Vec<&str> = info["skipped_resource_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        skipped.contains(&"AWS::SQS::QueuePolicy"),
        "moto now deploys queue policies: evaluate them here too ({skipped:?})"
    );

    // The deployed role policies are the model's (its resolution of the template is right).
    let w = world(templates(), Mode::Ecs);
    for (logical, model_arn) in [
        ("RouterTaskRole", &w.router),
        ("ExecutorTaskRole", &w.executor),
        ("ApproverRole", &w.approver),
        ("OperatorRole", &w.operator),
    ] {
        let deployed: Vec<Value> = info["role_policies"][logical]["policies"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(statements)
            .collect();
        assert_eq!(
            normalized(&deployed),
            normalized(&w.model.docs[&Doc::Identity(model_arn.clone())]),
            "{logical}: deployed policy differs from the model's"
        );
    }

    // People assume their roles through the trust policies (principals; moto ignores the
    // conditions, which the model checks).
    let (approver, operator) = (deployed("ApproverRoleArn"), deployed("OperatorRoleArn"));
    let mut sessions: BTreeMap<String, aws_config::SdkConfig> = BTreeMap::new();
    for (user, role, allowed) in [
        ("alice", &approver, true),
        ("alice", &operator, false),
        ("olivia", &operator, true),
        ("olivia", &approver, false),
        ("mallory", &approver, false),
        ("mallory", &operator, false),
    ] {
        let sts = aws_sdk_sts::Client::new(&emu.user(user).await);
        match assume(&sts, role, user).await {
            Ok((k, s, t)) => {
                assert!(allowed, "{user} assumed {role}");
                let model_role = if role == &approver {
                    &w.approver
                } else {
                    &w.operator
                };
                sessions.insert(model_role.clone(), emu.config(&k, &s, Some(&t)).await);
            }
            Err(v) => assert!(!allowed && v == Verdict::Denied, "{user} → {role}: {v:?}"),
        }
    }
    for (logical, model_role) in [
        ("RouterTaskRole", &w.router),
        ("ExecutorTaskRole", &w.executor),
    ] {
        let s = &info["sessions"][logical];
        let cfg = emu
            .config(
                s["access_key_id"].as_str().unwrap(),
                s["secret_access_key"].as_str().unwrap(),
                s["session_token"].as_str(),
            )
            .await;
        sessions.insert(model_role.clone(), cfg);
    }

    // Every duty of the four roles that moto can evaluate, with the role's credentials.
    let mut wrong = Vec::new();
    let mut ran: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    for d in duties(&w).iter().filter(|d| d.role) {
        let Some(cfg) = sessions.get(&d.call.who) else {
            continue;
        };
        let Some(v) = probe(cfg, &d.call).await else {
            continue;
        };
        let who = w.model.roles[&d.call.who].as_str();
        let counts = ran.entry(who).or_default();
        if d.allowed {
            counts.0 += 1
        } else {
            counts.1 += 1
        }
        let expected = if d.allowed {
            Verdict::Allowed
        } else {
            Verdict::Denied
        };
        if v != expected {
            wrong.push(format!(
                "{who}: {} on {}: {v:?}, expected {expected:?}",
                d.call.action, d.call.resource
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the emulator disagrees:\n{}",
        wrong.join("\n")
    );
    for (who, (allowed, denied)) in &ran {
        assert!(
            *allowed >= 3 && *denied >= 3,
            "{who}: only {allowed} allowed and {denied} denied calls ran"
        );
    }
    assert_eq!(ran.len(), 4, "{ran:?}");
    eprintln!(
        "enforced emulator: {ran:?} (allowed, denied) calls in {:?}",
        started.elapsed()
    );
}

/// Statements with Action and Resource as sorted lists, for comparison.
fn normalized(sts: &[Value]) -> Vec<Value> {
    let list = |v: &Value| {
        let mut l: Vec<String> = match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
            _ => Vec::new(),
        };
        l.sort();
        Value::from(l)
    };
    let mut out: Vec<Value> = sts
        .iter()
        .map(|st| {
            let mut st = st.clone();
            for k in ["Action", "Resource"] {
                if st.get(k).is_some() {
                    st[k] = list(&st[k]);
                }
            }
            st
        })
        .collect();
    out.sort_by_key(|v| v.to_string());
    out
}
