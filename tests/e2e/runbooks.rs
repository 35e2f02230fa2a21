//! Every AWS-owned document the AWS-managed pack runs whose effect the local stack emulates
//! fixes a finding end to end: the resource is made broken, Config holds the finding and
//! its event arrives, `redress run --once` runs the pack's rule, and then the resource
//! reads back as the document leaves it, the execution ended Success having changed it
//! (not "effect not emulated"), and Config was asked to evaluate the rule again.
//!
//! One test per document, from one table ([`runbook_tests!`]): the pack's rule, the
//! finding, and two Python snippets run with boto3 as the world's principal (one makes the
//! broken resource, one reads the state the document changes) with the state expected
//! after the fix. The policy is the pack's own `[[rule]]` block, exactly as shipped but for
//! `mode = "auto"` (most of these need approval; approving is tested elsewhere), and the
//! pack itself must route the finding's Config rule to that rule. Config rule names carry
//! the world's prefix, as Security Hub's and conformance packs' copies carry a suffix
//! (the pack's `*name*` globs take them), so re-evaluation requests are this test's own.
//!
//! Account-wide settings (the IAM password policy, EBS encryption by default, the S3
//! account public access block), the pack's fixed log bucket and the RDS instances (the
//! emulator gives every DB instance the same DbiResourceId) live in accounts of their own.

use std::collections::BTreeSet;
use std::time::Duration;

use redress::catalog::Catalog;
use redress::policy::{Policy, Subject};
use serde_json::{json, Value};

use crate::support::{executions, reevaluations_of, root, wait_for, EventBuilder, World, ACCOUNT};

const PACK: &str = "infra/policies/aws-managed.toml";
const ACCOUNT_TYPE: &str = "AWS::::Account";
const SG: &str = "AWS::EC2::SecurityGroup";
const BUCKET: &str = "AWS::S3::Bucket";
const RDS: &str = "AWS::RDS::DBInstance";

/// One document's end-to-end case.
struct Case {
    /// The pack rule's id, which is also the AWS Config managed rule's name.
    rule: &'static str,
    /// The document the pack runs for it.
    document: &'static str,
    /// The finding's resource type; an account-level finding's resource is the account.
    resource_type: &'static str,
    /// An account of its own, where the document changes what other tests share.
    account: Option<&'static str>,
    /// Python: makes the resource in its broken state and prints `{"id": resource id,
    /// ...}` (the resource id Config reports; other keys are for `state`).
    setup: &'static str,
    /// Python: prints the state the document changes (`v` is what `setup` printed).
    state: &'static str,
    /// `state` after the fix, as JSON; `{account}` and `{id}` are filled in.
    fixed: &'static str,
}

/// Generates the table [`CASES`] and one test per case, named after it.
macro_rules! runbook_tests {
    ($($name:ident: $case:expr,)+) => {
        /// Every case, in the order written.
        const CASES: &[Case] = &[$($case),+];
        $(
            #[tokio::test]
            async fn $name() {
                fixes(&$case).await;
            }
        )+
    };
}

/// The world-open and other ingress of a group: sorted (port, source) pairs.
const INGRESS: &str = r#"
g = client("ec2").describe_security_groups(GroupIds=[v["id"]])["SecurityGroups"][0]
print(json.dumps(sorted([p.get("FromPort"), r.get("CidrIp") or r.get("CidrIpv6")]
                        for p in g["IpPermissions"] for r in p.get("IpRanges", []) + p.get("Ipv6Ranges", []))))
"#;

/// A bucket's own Block Public Access settings, or null.
const BUCKET_PUBLIC_ACCESS_BLOCK: &str = r#"
c = unless(["NoSuchPublicAccessBlockConfiguration"], client("s3").get_public_access_block, Bucket=v["id"])
print(json.dumps(c and c["PublicAccessBlockConfiguration"]))
"#;

const ALL_BLOCKED: &str = r#"{"BlockPublicAcls": true, "IgnorePublicAcls": true, "BlockPublicPolicy": true, "RestrictPublicBuckets": true}"#;

/// A DB instance alone in its account (see the module's doc), with `settings`.
macro_rules! db_instance {
    ($settings:literal) => {
        concat!(
            r#"
name = prefix + "-db"
db = client("rds").create_db_instance(
    DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro", Engine="postgres",
    MasterUsername="redress", MasterUserPassword="redress-e2e-password-1", AllocatedStorage=20, "#,
            $settings,
            r#")["DBInstance"]
print(json.dumps({"id": db["DbiResourceId"], "name": name}))
"#
        )
    };
}

/// One setting of the DB instance `setup` made.
macro_rules! db_setting {
    ($setting:literal) => {
        concat!(
            r#"print(json.dumps(client("rds").describe_db_instances(DBInstanceIdentifier=v["name"])["DBInstances"][0][""#,
            $setting,
            r#""]))"#
        )
    };
}

runbook_tests! {
    remove_unrestricted_source_ingress_rules: Case {
        rule: "vpc-sg-open-only-to-authorized-ports",
        document: "AWSConfigRemediation-RemoveUnrestrictedSourceIngressRules",
        resource_type: SG,
        account: None,
        setup: r#"
ec2 = client("ec2")
g = ec2.create_security_group(GroupName=prefix + "-open", Description="redress e2e")["GroupId"]
ec2.authorize_security_group_ingress(GroupId=g, IpPermissions=[
    {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}])
print(json.dumps({"id": g}))
"#,
        state: INGRESS,
        fixed: r#"[[22, "10.0.0.0/8"]]"#,
    },
    remove_vpc_default_security_group_rules: Case {
        rule: "vpc-default-security-group-closed",
        document: "AWSConfigRemediation-RemoveVPCDefaultSecurityGroupRules",
        resource_type: SG,
        account: None,
        setup: r#"
ec2 = client("ec2")
vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16", TagSpecifications=[
    {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": prefix}]}])["Vpc"]["VpcId"]
g = ec2.describe_security_groups(Filters=[
    {"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
ec2.authorize_security_group_ingress(GroupId=g, IpPermissions=[
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
print(json.dumps({"id": g}))
"#,
        state: r#"
g = client("ec2").describe_security_groups(GroupIds=[v["id"]])["SecurityGroups"][0]
print(json.dumps({"ingress": len(g["IpPermissions"]), "egress": len(g["IpPermissionsEgress"])}))
"#,
        fixed: r#"{"ingress": 0, "egress": 0}"#,
    },
    delete_unused_security_group: Case {
        rule: "ec2-security-group-attached-to-eni",
        document: "AWSConfigRemediation-DeleteUnusedSecurityGroup",
        resource_type: SG,
        account: None,
        setup: r#"
g = client("ec2").create_security_group(GroupName=prefix + "-unused", Description="redress e2e")["GroupId"]
print(json.dumps({"id": g}))
"#,
        state: r#"
found = client("ec2").describe_security_groups(Filters=[{"Name": "group-id", "Values": [v["id"]]}])["SecurityGroups"]
print(json.dumps(bool(found)))
"#,
        fixed: "false",
    },
    enable_s3_bucket_encryption: Case {
        rule: "s3-bucket-server-side-encryption-enabled",
        document: "AWS-EnableS3BucketEncryption",
        resource_type: BUCKET,
        account: None,
        // A new bucket is encrypted by default (as in AWS since 2023): take it away.
        setup: r#"
s3, b = client("s3"), prefix + "-plain"
s3.create_bucket(Bucket=b)
s3.delete_bucket_encryption(Bucket=b)
print(json.dumps({"id": b}))
"#,
        state: r#"
c = unless(["ServerSideEncryptionConfigurationNotFoundError"], client("s3").get_bucket_encryption, Bucket=v["id"])
print(json.dumps(c and c["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]))
"#,
        fixed: r#""AES256""#,
    },
    restrict_bucket_ssl_requests_only: Case {
        rule: "s3-bucket-ssl-requests-only",
        document: "AWSConfigRemediation-RestrictBucketSSLRequestsOnly",
        resource_type: BUCKET,
        account: None,
        setup: r#"
b = prefix + "-http"
client("s3").create_bucket(Bucket=b)
print(json.dumps({"id": b}))
"#,
        state: r#"
p = unless(["NoSuchBucketPolicy"], client("s3").get_bucket_policy, Bucket=v["id"])
statements = json.loads(p["Policy"])["Statement"] if p else []
print(json.dumps([s["Effect"] for s in statements if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}]))
"#,
        fixed: r#"["Deny"]"#,
    },
    disable_s3_bucket_public_read_write: Case {
        rule: "s3-bucket-public-read-prohibited",
        document: "AWS-DisableS3BucketPublicReadWrite",
        resource_type: BUCKET,
        account: None,
        setup: r#"
b = prefix + "-public"
client("s3").create_bucket(Bucket=b)
print(json.dumps({"id": b}))
"#,
        state: BUCKET_PUBLIC_ACCESS_BLOCK,
        fixed: ALL_BLOCKED,
    },
    configure_s3_bucket_public_access_block: Case {
        rule: "s3-bucket-level-public-access-prohibited",
        document: "AWSConfigRemediation-ConfigureS3BucketPublicAccessBlock",
        resource_type: BUCKET,
        account: None,
        setup: r#"
s3, b = client("s3"), prefix + "-open-block"
s3.create_bucket(Bucket=b)
s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={
    "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False, "RestrictPublicBuckets": False})
print(json.dumps({"id": b}))
"#,
        state: BUCKET_PUBLIC_ACCESS_BLOCK,
        fixed: ALL_BLOCKED,
    },
    configure_s3_account_public_access_block: Case {
        rule: "s3-account-level-public-access-blocks",
        document: "AWSConfigRemediation-ConfigureS3PublicAccessBlock",
        resource_type: ACCOUNT_TYPE,
        account: Some("610000000001"),
        setup: r#"print(json.dumps({"id": account}))"#,
        state: r#"
c = unless(["NoSuchPublicAccessBlockConfiguration"], client("s3control").get_public_access_block, AccountId=account)
print(json.dumps(c and c["PublicAccessBlockConfiguration"]))
"#,
        fixed: ALL_BLOCKED,
    },
    configure_s3_bucket_logging: Case {
        rule: "s3-bucket-logging-enabled",
        document: "AWS-ConfigureS3BucketLogging",
        resource_type: BUCKET,
        // The pack's log bucket has a fixed name in each account and Region.
        account: Some("610000000002"),
        setup: r#"
s3, b, logs = client("s3"), prefix + "-unlogged", account + "-us-east-1-s3-access-logs"
s3.create_bucket(Bucket=logs)
s3.put_bucket_acl(Bucket=logs, ACL="log-delivery-write")
s3.create_bucket(Bucket=b)
print(json.dumps({"id": b}))
"#,
        state: r#"
on = client("s3").get_bucket_logging(Bucket=v["id"]).get("LoggingEnabled")
print(json.dumps(on and [on["TargetBucket"], on["TargetPrefix"]]))
"#,
        fixed: r#"["{account}-us-east-1-s3-access-logs", "{id}/"]"#,
    },
    configure_s3_bucket_versioning: Case {
        rule: "s3-bucket-versioning-enabled",
        document: "AWS-ConfigureS3BucketVersioning",
        resource_type: BUCKET,
        account: None,
        setup: r#"
b = prefix + "-unversioned"
client("s3").create_bucket(Bucket=b)
print(json.dumps({"id": b}))
"#,
        state: r#"print(json.dumps(client("s3").get_bucket_versioning(Bucket=v["id"]).get("Status")))"#,
        fixed: r#""Enabled""#,
    },
    enable_ebs_encryption_by_default: Case {
        rule: "ec2-ebs-encryption-by-default",
        document: "AWSConfigRemediation-EnableEbsEncryptionByDefault",
        resource_type: ACCOUNT_TYPE,
        account: Some("610000000003"),
        setup: r#"print(json.dumps({"id": account}))"#,
        state: r#"print(json.dumps(client("ec2").get_ebs_encryption_by_default()["EbsEncryptionByDefault"]))"#,
        fixed: "true",
    },
    enforce_ec2_instance_imdsv2: Case {
        rule: "ec2-imdsv2-check",
        document: "AWSConfigRemediation-EnforceEC2InstanceIMDSv2",
        resource_type: "AWS::EC2::Instance",
        account: None,
        setup: r#"
i = client("ec2").run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
    MetadataOptions={"HttpTokens": "optional"},
    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": prefix}]}])["Instances"][0]["InstanceId"]
print(json.dumps({"id": i}))
"#,
        state: r#"
i = client("ec2").describe_instances(InstanceIds=[v["id"]])["Reservations"][0]["Instances"][0]
print(json.dumps(i["MetadataOptions"]["HttpTokens"]))
"#,
        fixed: r#""required""#,
    },
    delete_unused_ebs_volume: Case {
        rule: "ec2-volume-inuse-check",
        document: "AWSConfigRemediation-DeleteUnusedEBSVolume",
        resource_type: "AWS::EC2::Volume",
        account: None,
        setup: r#"
vol = client("ec2").create_volume(AvailabilityZone="us-east-1a", Size=1,
    TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": prefix}]}])["VolumeId"]
print(json.dumps({"id": vol}))
"#,
        // The pack keeps a snapshot (CreateSnapshot = true).
        state: r#"
ec2, only = client("ec2"), [{"Name": "volume-id", "Values": [v["id"]]}]
print(json.dumps({"volumes": len(ec2.describe_volumes(Filters=only)["Volumes"]),
                  "snapshots": len(ec2.describe_snapshots(Filters=only)["Snapshots"])}))
"#,
        fixed: r#"{"volumes": 0, "snapshots": 1}"#,
    },
    release_elastic_ip: Case {
        rule: "eip-attached",
        document: "AWS-ReleaseElasticIP",
        resource_type: "AWS::EC2::EIP",
        account: None,
        setup: r#"
a = client("ec2").allocate_address(Domain="vpc",
    TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [{"Key": "Name", "Value": prefix}]}])["AllocationId"]
print(json.dumps({"id": a}))
"#,
        state: r#"
found = client("ec2").describe_addresses(Filters=[{"Name": "allocation-id", "Values": [v["id"]]}])["Addresses"]
print(json.dumps(len(found)))
"#,
        fixed: "0",
    },
    set_iam_password_policy: Case {
        rule: "iam-password-policy",
        document: "AWSConfigRemediation-SetIAMPasswordPolicy",
        resource_type: ACCOUNT_TYPE,
        account: Some("610000000004"),
        setup: r#"print(json.dumps({"id": account}))"#,
        // What the managed rule checks with its default parameters.
        state: r#"
p = unless(["NoSuchEntity"], client("iam").get_account_password_policy)
keys = ["MinimumPasswordLength", "RequireUppercaseCharacters", "RequireLowercaseCharacters",
        "RequireSymbols", "RequireNumbers", "PasswordReusePrevention", "MaxPasswordAge"]
print(json.dumps(p and {k: p["PasswordPolicy"].get(k) for k in keys}))
"#,
        fixed: r#"{"MinimumPasswordLength": 14, "RequireUppercaseCharacters": true, "RequireLowercaseCharacters": true,
                   "RequireSymbols": true, "RequireNumbers": true, "PasswordReusePrevention": 24, "MaxPasswordAge": 90}"#,
    },
    enable_key_rotation: Case {
        rule: "cmk-backing-key-rotation-enabled",
        document: "AWSConfigRemediation-EnableKeyRotation",
        resource_type: "AWS::KMS::Key",
        account: None,
        setup: r#"print(json.dumps({"id": client("kms").create_key(Description=prefix)["KeyMetadata"]["KeyId"]}))"#,
        state: r#"print(json.dumps(client("kms").get_key_rotation_status(KeyId=v["id"])["KeyRotationEnabled"]))"#,
        fixed: "true",
    },
    cancel_key_deletion: Case {
        rule: "kms-cmk-not-scheduled-for-deletion",
        document: "AWSConfigRemediation-CancelKeyDeletion",
        resource_type: "AWS::KMS::Key",
        account: None,
        setup: r#"
kms = client("kms")
key = kms.create_key(Description=prefix)["KeyMetadata"]["KeyId"]
kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
print(json.dumps({"id": key}))
"#,
        // The document cancels the deletion and leaves the key disabled, as AWS does.
        state: r#"print(json.dumps(client("kms").describe_key(KeyId=v["id"])["KeyMetadata"]["KeyState"]))"#,
        fixed: r#""Disabled""#,
    },
    enable_cloudtrail_log_file_validation: Case {
        rule: "cloud-trail-log-file-validation-enabled",
        document: "AWSConfigRemediation-EnableCloudTrailLogFileValidation",
        resource_type: "AWS::CloudTrail::Trail",
        account: None,
        setup: r#"
client("s3").create_bucket(Bucket=prefix + "-trail-logs")
client("cloudtrail").create_trail(Name=prefix + "-trail", S3BucketName=prefix + "-trail-logs")
print(json.dumps({"id": prefix + "-trail"}))
"#,
        state: r#"print(json.dumps(client("cloudtrail").get_trail(Name=v["id"])["Trail"]["LogFileValidationEnabled"]))"#,
        fixed: "true",
    },
    disable_public_access_to_rds_instance: Case {
        rule: "rds-instance-public-access-check",
        document: "AWSConfigRemediation-DisablePublicAccessToRDSInstance",
        resource_type: RDS,
        account: Some("610000000005"),
        setup: db_instance!("PubliclyAccessible=True"),
        state: db_setting!("PubliclyAccessible"),
        fixed: "false",
    },
    enable_rds_instance_deletion_protection: Case {
        rule: "rds-instance-deletion-protection-enabled",
        document: "AWSConfigRemediation-EnableRDSInstanceDeletionProtection",
        resource_type: RDS,
        account: Some("610000000006"),
        setup: db_instance!("DeletionProtection=False"),
        state: db_setting!("DeletionProtection"),
        fixed: "true",
    },
    enable_minor_version_upgrade_on_rds_instance: Case {
        rule: "rds-automatic-minor-version-upgrade-enabled",
        document: "AWSConfigRemediation-EnableMinorVersionUpgradeOnRDSDBInstance",
        resource_type: RDS,
        account: Some("610000000007"),
        setup: db_instance!("AutoMinorVersionUpgrade=False"),
        state: db_setting!("AutoMinorVersionUpgrade"),
        fixed: "true",
    },
    enable_pitr_for_dynamodb_table: Case {
        rule: "dynamodb-pitr-enabled",
        document: "AWSConfigRemediation-EnablePITRForDynamoDbTable",
        resource_type: "AWS::DynamoDB::Table",
        account: None,
        setup: r#"
t = prefix + "-table"
client("dynamodb").create_table(TableName=t, BillingMode="PAY_PER_REQUEST",
    KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
print(json.dumps({"id": t}))
"#,
        state: r#"
d = client("dynamodb").describe_continuous_backups(TableName=v["id"])["ContinuousBackupsDescription"]
print(json.dumps(d["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]))
"#,
        fixed: r#""ENABLED""#,
    },
}

/// The pack's `[[rule]]` block for `id`, exactly as written but for `mode = "auto"`, as
/// a policy of its own.
fn pack_rule_auto(pack: &str, id: &str) -> String {
    let lines: Vec<&str> = pack.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == format!("id = \"{id}\""))
        .unwrap_or_else(|| panic!("{PACK} has no rule {id}"));
    let start = (0..at)
        .rev()
        .find(|&i| lines[i].trim() == "[[rule]]")
        .unwrap();
    let end = (at..lines.len())
        .find(|&i| lines[i].trim().is_empty() || lines[i].starts_with('['))
        .unwrap_or(lines.len());
    let mut block: Vec<String> = lines[start..end]
        .iter()
        .filter(|l| !l.trim_start().starts_with("mode ="))
        .map(|l| l.to_string())
        .collect();
    block.push("mode = \"auto\"".into());
    block.join("\n") + "\n"
}

/// Runs the case's finding through `redress run --once` and checks the world afterwards.
async fn fixes(case: &Case) {
    let text = std::fs::read_to_string(root().join(PACK)).unwrap();
    let pack = Policy::from_toml(&text, PACK).unwrap_or_else(|e| panic!("{PACK}: {e}"));
    let shipped = pack
        .rule(case.rule)
        .unwrap_or_else(|| panic!("{PACK} has no rule {}", case.rule));
    let policy = pack_rule_auto(&text, case.rule);
    let mine =
        Policy::from_toml(&policy, "the test's policy").unwrap_or_else(|e| panic!("{e}\n{policy}"));
    assert_eq!(
        mine.rules[0].action, shipped.action,
        "the test runs the pack's action"
    );
    assert_eq!(
        shipped.action.label(),
        case.document,
        "{PACK} {} runs another document",
        case.rule
    );

    // Short: bucket names and DB identifiers start with the prefix (at most 63
    // characters, no "--").
    let test = format!(
        "rb-{}",
        case.rule[..case.rule.len().min(20)].trim_end_matches('-')
    );
    let w = match case.account {
        Some(account) => World::in_account(&test, &policy, account).await,
        None => World::new(&test, &policy).await,
    };
    let account = case.account.unwrap_or(ACCOUNT);
    // The managed rule as a conformance pack or Security Hub names its copy.
    let config_rule = format!("{}-{}", case.rule, w.prefix);
    assert_eq!(
        pack.find(&Subject::of(&config_rule, case.resource_type))
            .map(|r| r.id.as_str()),
        Some(case.rule),
        "{PACK} routes {config_rule} ({}) to another rule",
        case.resource_type
    );

    let made = w.boto3(case.setup, &json!({}));
    let id = made["id"].as_str().expect("setup prints the resource id");
    let fixed: Value =
        serde_json::from_str(&case.fixed.replace("{account}", account).replace("{id}", id))
            .expect("the case's fixed state is JSON");
    let before = w.boto3(case.state, &made);
    assert_ne!(before, fixed, "the resource is not broken to begin with");

    w.send_event(&EventBuilder::new(&config_rule, case.resource_type, id).account(account))
        .await;
    let records = w.run_once(&[]);

    let after = w.boto3(case.state, &made);
    assert_eq!(
        after, fixed,
        "{} did not fix {id}: {records:#?}",
        case.document
    );
    let done = executions(&records);
    let [run] = done.as_slice() else {
        panic!("one execution expected: {records:#?}")
    };
    assert_eq!(run["outcome"], "succeeded", "{run:#}");
    assert_eq!(run["rule"], case.rule);
    assert_eq!(run["resource_id"], id);
    assert_eq!(run["action"], case.document);
    let execution_id = run["execution_id"].as_str().expect("an execution id");
    let execution = w
        .clients
        .ssm
        .get_automation_execution()
        .automation_execution_id(execution_id)
        .send()
        .await
        .unwrap()
        .automation_execution
        .unwrap();
    assert_eq!(execution.document_name(), Some(case.document));
    assert_eq!(
        execution.automation_execution_status().map(|s| s.as_str()),
        Some("Success")
    );
    let effect = execution
        .outputs()
        .and_then(|o| o.get("RedressLocal.Effect"))
        .and_then(|e| e.first())
        .cloned()
        .unwrap_or_default();
    assert!(
        !effect.is_empty() && !effect.starts_with("effect not emulated"),
        "{}: {effect:?}",
        case.document
    );

    wait_for(
        Duration::from_secs(10),
        "a StartConfigRulesEvaluation of the finding's rule",
        || async {
            let asked: Vec<Value> = reevaluations_of(&config_rule)
                .into_iter()
                .filter(|r| r["account"] == account)
                .collect();
            if asked.is_empty() {
                Err("none yet")
            } else {
                Ok(())
            }
        },
    )
    .await;
}

/// Every document the pack runs whose effect the local stack emulates has a case here.
#[test]
fn every_emulated_document_the_pack_runs_has_a_case() {
    let text = std::fs::read_to_string(root().join(PACK)).unwrap();
    let pack = Policy::from_toml(&text, PACK).unwrap();
    let catalog = Catalog::shipped();
    let emulated: BTreeSet<String> = pack
        .rules
        .iter()
        .filter(|r| pack.mode_of(r) != redress::policy::Mode::Notify)
        .map(|r| r.action.label())
        .filter(|d| catalog.get(d).is_some_and(|d| d.emulated && !d.test_only))
        .collect();
    let covered: BTreeSet<String> = CASES.iter().map(|c| c.document.to_string()).collect();
    let missing: Vec<&String> = emulated.difference(&covered).collect();
    assert!(missing.is_empty(), "no end-to-end case for {missing:?}");
    assert!(CASES.len() >= 12, "only {} cases", CASES.len());
    let documents: BTreeSet<&str> = CASES.iter().map(|c| c.document).collect();
    assert_eq!(documents.len(), CASES.len(), "one case per document");
}
