//! The automation role (`redress-automation`, infra/cloudformation/member.yaml's
//! `AutomationRole`) grants what the shipped packs' runbooks need, from the runbook
//! catalog, and no more; and the executors may start exactly those runbooks.
//!
//! "Used" means named by a rule of `infra/policies/*.toml` that can run (a `notify` rule's
//! runbook is never started). What a document needs is the catalog's permissions for it
//! (`actions` and `calls_not_listed`). Each such action is tried on the resource the
//! document acts on ([`RESOURCES`]), in the member account, in two regions, against the
//! role's statements as the templates hold them (read by `crate::iam::templates`, the
//! cfn-lint loader). An action with resource-level permissions must also be refused on the
//! same resource in another account (by its ARN, or by an `aws:ResourceAccount` condition
//! where the ARN has no account, as S3's): scoped, not `*`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, OnceLock};

use redress::catalog::Catalog;
use redress::policy::{Action, Mode, Policy};
use serde_json::Value;

use crate::support::root;

/// The account member.yaml is deployed in, and someone else's.
const MEMBER: &str = "111122223333";
const OTHER: &str = "999999999999";
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

/// What each catalog action acts on, as IAM authorizes it (the Service Authorization
/// Reference's resource types): an example ARN of each resource a call names, or `*`
/// where the action has no resource-level permissions. `{region}`, `{account}` and
/// `{document}` (the runbook) are filled in. An action a pack's runbook needs and this
/// table lacks fails the test: add the ARN of what the document acts on.
const RESOURCES: &[(&[&str], &[&str])] = &[
    (
        &[
            "config:GetResourceConfigHistory",
            "config:ListDiscoveredResources",
            "ec2:DescribeAddresses",
            "ec2:DescribeFlowLogs",
            "ec2:DescribeInstances",
            "ec2:DescribeSecurityGroups",
            "ec2:DescribeSnapshots",
            "ec2:DescribeVolumes",
            "ec2:EnableEbsEncryptionByDefault",
            "ec2:GetEbsEncryptionByDefault",
            "elasticloadbalancing:DescribeLoadBalancerAttributes",
            "elasticloadbalancing:DescribeLoadBalancers",
            "iam:GetAccountPasswordPolicy",
            "iam:UpdateAccountPasswordPolicy",
            "kms:ListKeys",
            "redshift:DescribeClusters",
            "s3:GetAccountPublicAccessBlock",
            "s3:PutAccountPublicAccessBlock",
        ],
        &["*"],
    ),
    (
        &["apigateway:GET", "apigateway:PATCH"],
        &["arn:aws:apigateway:{region}::/restapis/a1b2c3/stages/prod"],
    ),
    (
        &[
            "cloudfront:GetDistribution",
            "cloudfront:GetDistributionConfig",
            "cloudfront:UpdateDistribution",
        ],
        &["arn:aws:cloudfront::{account}:distribution/EDFDVBD6EXAMPLE"],
    ),
    (
        &[
            "cloudtrail:CreateTrail",
            "cloudtrail:GetTrail",
            "cloudtrail:StartLogging",
            "cloudtrail:UpdateTrail",
        ],
        &["arn:aws:cloudtrail:{region}:{account}:trail/redress-trail"],
    ),
    (
        &[
            "dynamodb:DescribeContinuousBackups",
            "dynamodb:UpdateContinuousBackups",
        ],
        &["arn:aws:dynamodb:{region}:{account}:table/orders"],
    ),
    (
        &["ec2:CreateFlowLogs"],
        &[
            "arn:aws:ec2:{region}:{account}:vpc-flow-log/*",
            "arn:aws:ec2:{region}:{account}:vpc/vpc-0123456789abcdef0",
        ],
    ),
    (
        &["ec2:DeleteFlowLogs"],
        &["arn:aws:ec2:{region}:{account}:vpc-flow-log/fl-0123456789abcdef0"],
    ),
    (
        &["ec2:CreateSnapshot"],
        &[
            "arn:aws:ec2:{region}:{account}:volume/vol-0123456789abcdef0",
            "arn:aws:ec2:{region}::snapshot/*",
        ],
    ),
    (
        &["ec2:DeleteSnapshot"],
        &["arn:aws:ec2:{region}::snapshot/snap-0123456789abcdef0"],
    ),
    (
        &["ec2:DeleteVolume"],
        &["arn:aws:ec2:{region}:{account}:volume/vol-0123456789abcdef0"],
    ),
    (
        &[
            "ec2:DeleteSecurityGroup",
            "ec2:RevokeSecurityGroupEgress",
            "ec2:RevokeSecurityGroupIngress",
        ],
        &["arn:aws:ec2:{region}:{account}:security-group/sg-0123456789abcdef0"],
    ),
    (
        &["ec2:ModifyInstanceMetadataOptions"],
        &["arn:aws:ec2:{region}:{account}:instance/i-0123456789abcdef0"],
    ),
    (
        &["ec2:ReleaseAddress"],
        &["arn:aws:ec2:{region}:{account}:elastic-ip/eipalloc-0123456789abcdef0"],
    ),
    (
        &["elasticloadbalancing:ModifyLoadBalancerAttributes"],
        &["arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/app/web/50dc6c495c0c9188"],
    ),
    (
        &["firehose:DescribeDeliveryStream"],
        &["arn:aws:firehose:{region}:{account}:deliverystream/aws-waf-logs-web"],
    ),
    (
        &[
            "iam:DeleteAccessKey",
            "iam:DeleteLoginProfile",
            "iam:GetAccessKeyLastUsed",
            "iam:GetLoginProfile",
            "iam:GetUser",
            "iam:ListAccessKeys",
            "iam:UpdateAccessKey",
        ],
        &["arn:aws:iam::{account}:user/alice"],
    ),
    (
        &[
            "kms:CancelKeyDeletion",
            "kms:DescribeKey",
            "kms:EnableKeyRotation",
            "kms:GetKeyRotationStatus",
        ],
        &["arn:aws:kms:{region}:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
    ),
    (
        &["lambda:InvokeFunction"],
        &["arn:aws:lambda:{region}:{account}:function:rotate-secret"],
    ),
    (
        &["rds:DescribeDBClusters", "rds:ModifyDBCluster"],
        &["arn:aws:rds:{region}:{account}:cluster:orders"],
    ),
    (
        &["rds:DescribeDBInstances", "rds:ModifyDBInstance"],
        &["arn:aws:rds:{region}:{account}:db:orders"],
    ),
    (
        &["redshift:DescribeLoggingStatus", "redshift:EnableLogging"],
        &["arn:aws:redshift:{region}:{account}:cluster:warehouse"],
    ),
    (
        &[
            "s3:DeleteBucketPolicy",
            "s3:GetBucketAcl",
            "s3:GetBucketLocation",
            "s3:GetBucketPolicy",
            "s3:GetBucketPublicAccessBlock",
            "s3:ListBucket",
            "s3:PutBucketAcl",
            "s3:PutBucketLogging",
            "s3:PutBucketPolicy",
            "s3:PutBucketPublicAccessBlock",
            "s3:PutBucketVersioning",
            "s3:PutEncryptionConfiguration",
        ],
        &["arn:aws:s3:::orders-bucket"],
    ),
    (
        &["s3:PutObject"],
        &["arn:aws:s3:::orders-bucket/AWSLogs/111122223333/log.gz"],
    ),
    (
        &[
            "secretsmanager:DescribeSecret",
            "secretsmanager:RotateSecret",
        ],
        &["arn:aws:secretsmanager:{region}:{account}:secret:db-AbCdEf"],
    ),
    (
        &[
            "sns:GetTopicAttributes",
            "sns:Publish",
            "sns:SetTopicAttributes",
        ],
        &["arn:aws:sns:{region}:{account}:alerts"],
    ),
    (
        &["ssm:GetAutomationExecution"],
        &["arn:aws:ssm:{region}:{account}:automation-execution/0123-abcd"],
    ),
    (
        &["ssm:StartAutomationExecution"],
        &["arn:aws:ssm:{region}:{account}:automation-definition/{document}:$DEFAULT"],
    ),
    (
        &[
            "wafv2:GetLoggingConfiguration",
            "wafv2:PutLoggingConfiguration",
        ],
        &["arn:aws:wafv2:{region}:{account}:regional/webacl/web/a1b2c3"],
    ),
];

/// Actions on resources AWS owns (its documents' definitions carry no account): scoped by
/// name, not account. The automation role may not start a document no pack runs.
const AWS_OWNED: &[(&str, &str)] = &[(
    "ssm:StartAutomationExecution",
    "arn:aws:ssm:{region}:{account}:automation-definition/AWS-RunShellScript:$DEFAULT",
)];

/// The runbooks the shipped packs can run, each with the `pack.toml rule-id`s naming it.
fn used_documents() -> BTreeMap<String, Vec<String>> {
    let mut used: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let dir = root().join("infra/policies");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let policy = Policy::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let pack = path.file_name().unwrap().to_string_lossy().into_owned();
        for rule in &policy.rules {
            if let Action::Runbook(r) = &rule.action {
                if policy.mode_of(rule) != Mode::Notify {
                    let by = format!("{pack} {}", rule.id);
                    used.entry(r.document.clone()).or_default().push(by);
                }
            }
        }
    }
    used
}

/// What the catalog says the document's automation role needs.
fn needs(catalog: &Catalog, document: &str) -> BTreeSet<String> {
    let d = catalog
        .get(document)
        .unwrap_or_else(|| panic!("a pack runs {document}, which the runbook catalog lacks"));
    d.permissions
        .actions
        .iter()
        .chain(&d.permissions.calls_not_listed)
        .cloned()
        .collect()
}

/// The template value with the pseudo parameters `!Sub` and `!Ref` name filled in for the
/// member account; anything else these policies might use (a parameter, another
/// function) fails loudly, as this test would not know what it resolves to.
fn resolved(v: &Value) -> Value {
    match v {
        Value::Array(items) => items.iter().map(resolved).collect(),
        Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
            let text = m["Fn::Sub"].as_str().expect("!Sub of a plain string");
            let out = text
                .replace("${AWS::Partition}", "aws")
                .replace("${AWS::AccountId}", MEMBER);
            assert!(
                !out.contains("${"),
                "the automation role test resolves only ${{AWS::Partition}} and ${{AWS::AccountId}}: {text}"
            );
            Value::from(out)
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("Ref") => match m["Ref"].as_str() {
            Some("AWS::AccountId") => Value::from(MEMBER),
            Some("AWS::Partition") => Value::from("aws"),
            _ => panic!("the automation role test resolves only pseudo parameters: {v}"),
        },
        Value::Object(m) => {
            if let Some(k) = m.keys().find(|k| k.starts_with("Fn::")) {
                panic!("the automation role test does not resolve {k}: {v}");
            }
            m.iter().map(|(k, v)| (k.clone(), resolved(v))).collect()
        }
        other => other.clone(),
    }
}

/// Every statement of a role's inline policies, resolved.
fn role_statements(template: &Value, logical: &str) -> Vec<Value> {
    let role = &template["Resources"][logical];
    assert_eq!(role["Type"], "AWS::IAM::Role", "{logical}");
    role["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| strings_or_objects(&p["PolicyDocument"]["Statement"]))
        .map(|st| resolved(&st))
        .collect()
}

/// A string or a list of strings.
fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().map(|s| s.as_str().unwrap()).collect(),
        Value::Null => Vec::new(),
        other => panic!("expected a string or a list: {other}"),
    }
}

/// IAM's wildcards (`*`, `?`) over the whole text. Each pattern is compiled once: the
/// tests here match thousands of times.
fn wildcard(pattern: &str, text: &str) -> bool {
    static COMPILED: OnceLock<Mutex<HashMap<String, globset::GlobMatcher>>> = OnceLock::new();
    let mut compiled = COMPILED.get_or_init(Default::default).lock().unwrap();
    compiled
        .entry(pattern.to_string())
        .or_insert_with(|| {
            globset::GlobBuilder::new(pattern)
                .literal_separator(false)
                .backslash_escape(false)
                .build()
                .unwrap_or_else(|e| panic!("{pattern}: {e}"))
                .compile_matcher()
        })
        .is_match(text)
}

/// Whether the statements allow `action` on `resource` owned by `account`, as IAM
/// evaluates an identity policy: an explicit Deny wins, else some Allow must apply. Only
/// the elements these policies use are understood; others fail loudly.
fn allowed(statements: &[Value], action: &str, resource: &str, account: &str) -> bool {
    let ctx = BTreeMap::from([("aws:ResourceAccount", account)]);
    let mut allow = false;
    for st in statements {
        for unknown in ["NotAction", "NotResource", "Principal"] {
            assert!(st.get(unknown).is_none(), "{unknown} is not modelled: {st}");
        }
        let action_hit = strings(&st["Action"])
            .iter()
            .any(|p| wildcard(&p.to_lowercase(), &action.to_lowercase()));
        let resource_hit = strings(&st["Resource"])
            .iter()
            .any(|p| wildcard(p, resource));
        if !action_hit || !resource_hit || !conditions_hold(st, &ctx) {
            continue;
        }
        match st["Effect"].as_str() {
            Some("Deny") => return false,
            Some("Allow") => allow = true,
            other => panic!("Effect {other:?}: {st}"),
        }
    }
    allow
}

/// A statement's conditions against the request's context (`StringEquals` only; a key the
/// request lacks fails it).
fn conditions_hold(st: &Value, ctx: &BTreeMap<&str, &str>) -> bool {
    let Some(cond) = st.get("Condition").and_then(Value::as_object) else {
        return true;
    };
    cond.iter().all(|(op, keys)| {
        assert_eq!(op, "StringEquals", "condition operator not modelled: {st}");
        keys.as_object().unwrap().iter().all(|(key, want)| {
            ctx.get(key.as_str())
                .is_some_and(|have| strings(want).contains(have))
        })
    })
}

/// The example resources of an action, for this document, account and region.
fn resources(action: &str, document: &str, account: &str, region: &str) -> Option<Vec<String>> {
    let (_, arns) = RESOURCES
        .iter()
        .find(|(actions, _)| actions.contains(&action))?;
    Some(
        arns.iter()
            .map(|arn| {
                arn.replace("{region}", region)
                    .replace("{account}", account)
                    .replace("{document}", document)
            })
            .collect(),
    )
}

/// What is wrong with the automation role for the documents the packs use: a needed
/// action not allowed on its resource, allowed in another account, or granted without
/// any document needing it. Empty when the role is right.
fn automation_role_problems(
    statements: &[Value],
    used: &BTreeMap<String, Vec<String>>,
) -> BTreeSet<String> {
    let catalog = Catalog::shipped();
    assert!(!used.is_empty(), "no pack runs a runbook");
    let mut problems = BTreeSet::new();
    let mut union = BTreeSet::new();
    for (document, by) in used {
        for action in needs(catalog, document) {
            for region in REGIONS {
                let Some(mine) = resources(&action, document, MEMBER, region) else {
                    problems.insert(format!(
                        "{document} ({}) needs {action}, which RESOURCES in tests/e2e/automation_role.rs lacks",
                        by.join(", ")
                    ));
                    break;
                };
                for resource in &mine {
                    if !allowed(statements, &action, resource, MEMBER) {
                        problems.insert(format!(
                            "{document} ({}) needs {action} on {resource}: not granted",
                            by.join(", ")
                        ));
                    }
                }
                if mine.iter().any(|r| r == "*") {
                    continue;
                }
                if let Some((_, not_run)) = AWS_OWNED.iter().find(|(a, _)| *a == action) {
                    let not_run = not_run
                        .replace("{region}", region)
                        .replace("{account}", MEMBER);
                    if allowed(statements, &action, &not_run, MEMBER) {
                        problems.insert(format!(
                            "{action} is granted on {not_run}, which no pack runs"
                        ));
                    }
                    continue;
                }
                for resource in resources(&action, document, OTHER, region).unwrap() {
                    if allowed(statements, &action, &resource, OTHER) {
                        problems.insert(format!(
                            "{action} is granted on {resource}, another account's: scope it to the role's account"
                        ));
                    }
                }
            }
            union.insert(action);
        }
    }
    let granted: BTreeSet<String> = statements
        .iter()
        .filter(|st| st["Effect"] == "Allow")
        .flat_map(|st| strings(&st["Action"]))
        .map(str::to_string)
        .collect();
    for extra in granted.difference(&union) {
        problems.insert(format!(
            "{extra} is granted, but no runbook the packs run needs it"
        ));
    }
    problems
}

#[test]
fn the_automation_role_grants_what_the_packs_runbooks_need_and_no_more() {
    let member = &crate::iam::templates()["member"];
    let statements = role_statements(member, "AutomationRole");
    let problems = automation_role_problems(&statements, &used_documents());
    assert!(
        problems.is_empty(),
        "member.yaml AutomationRole, against infra/runbooks/catalog.json and infra/policies/*.toml:\n{}",
        Vec::from_iter(problems).join("\n")
    );
}

/// The test above notices each element of the role changing: removing any action (or
/// its whole statement) leaves a document without a permission it needs; widening a
/// scoped statement to every resource, or dropping its account condition, lets the role
/// act in other accounts or on other documents.
#[test]
fn removing_or_widening_any_element_of_the_automation_role_is_noticed() {
    let member = &crate::iam::templates()["member"];
    let statements = role_statements(member, "AutomationRole");
    let used = used_documents();
    let mut changes: Vec<(String, Vec<Value>)> = Vec::new();
    for (i, st) in statements.iter().enumerate() {
        let sid = &st["Sid"];
        for (j, action) in strings(&st["Action"]).into_iter().enumerate() {
            let mut changed = statements.clone();
            match changed[i]["Action"].as_array_mut() {
                Some(actions) if actions.len() > 1 => {
                    actions.remove(j);
                }
                _ => {
                    changed.remove(i);
                }
            }
            changes.push((format!("removing {action} from {sid}"), changed));
        }
        // Where a condition keeps the statement in this account (the ARNs carry none),
        // the ARN only names the type the actions act on anyway: dropping the condition
        // is the change that matters.
        if st["Resource"] != "*" && st.get("Condition").is_none() {
            let mut changed = statements.clone();
            changed[i]["Resource"] = Value::from("*");
            changes.push((format!("widening {sid} to every resource"), changed));
        }
        if st.get("Condition").is_some() {
            let mut changed = statements.clone();
            changed[i].as_object_mut().unwrap().remove("Condition");
            changes.push((format!("dropping {sid}'s condition"), changed));
        }
    }
    assert!(changes.len() > 50, "only {} changes", changes.len());
    for (what, changed) in &changes {
        assert!(
            !automation_role_problems(changed, &used).is_empty(),
            "{what} went unnoticed"
        );
    }
}

/// `arn:aws:ssm:*:*:automation-definition/NAME:*` → NAME: a grant per document, any
/// version, in the executor's own account.
fn definition(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:aws:ssm:*:*:automation-definition/")?
        .strip_suffix(":*")
        .filter(|name| !name.contains('*'))
}

/// Every role but the automation role that may start automations, in every template
/// that has one: `template.yaml Role` and the documents it may start.
fn executor_grants() -> Vec<(String, BTreeSet<String>)> {
    let mut out = Vec::new();
    for (name, t) in crate::iam::templates() {
        for (logical, r) in t["Resources"].as_object().unwrap() {
            if r["Type"] != "AWS::IAM::Role" || logical == "AutomationRole" {
                continue;
            }
            let raw = r["Properties"]["Policies"].as_array().into_iter().flatten();
            let starts: Vec<Value> = raw
                .flat_map(|p| strings_or_objects(&p["PolicyDocument"]["Statement"]))
                .filter(|st| strings(&st["Action"]).contains(&"ssm:StartAutomationExecution"))
                .map(|st| resolved(&st))
                .collect();
            if starts.is_empty() {
                continue;
            }
            let mut documents = BTreeSet::new();
            for st in &starts {
                assert_eq!(st["Effect"], "Allow", "{name}.yaml {logical}: {st}");
                for arn in strings(&st["Resource"]) {
                    let d = definition(arn).unwrap_or_else(|| {
                        panic!("{name}.yaml {logical}: {arn} is not one runbook's definition")
                    });
                    documents.insert(d.to_string());
                }
            }
            out.push((format!("{name}.yaml {logical}"), documents));
        }
    }
    out
}

/// A statement list (or one statement) as a list.
fn strings_or_objects(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

#[test]
fn every_executor_may_start_exactly_the_runbooks_the_packs_run() {
    let used: BTreeSet<String> = used_documents().into_keys().collect();
    let grants = executor_grants();
    let holders: Vec<&str> = grants.iter().map(|(who, _)| who.as_str()).collect();
    assert!(
        holders.contains(&"member.yaml RemediationRole"),
        "no StartAutomationExecution grant found in member.yaml: {holders:?}"
    );
    let mut wrong = Vec::new();
    for (who, documents) in &grants {
        let missing: Vec<&String> = used.difference(documents).collect();
        let extra: Vec<&String> = documents.difference(&used).collect();
        if !missing.is_empty() || !extra.is_empty() {
            wrong.push(format!(
                "{who}: missing {missing:?}; never run by a pack {extra:?}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "executors may start runbooks other than the packs':\n{}",
        wrong.join("\n")
    );
}
