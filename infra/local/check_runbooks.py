"""Checks the local stack's SSM Automation stand-in against the runbook catalog.

    check_runbooks.py [--endpoint URL] [--only DOCUMENT ...]

For every document whose effect the stand-in emulates (runbooks.EFFECTS), it builds a
resource on the emulator that the document would fix, starts the document through the real
StartAutomationExecution API, waits for the execution to end and asserts on the resource
itself (the rule is gone, the bucket is encrypted, ...), not on the execution's status alone.
It also checks that parameters are refused with AWS's wording, that a document outside the
catalog is not found, and that a catalog document without an emulated effect says
"effect not emulated".

Everything runs in an account of its own: the script assumes OrganizationAccountAccessRole
into a random account (identity.py creates it there), so account-level changes (the password
policy, EBS default encryption, the account's public access block) touch nobody else and
several runs can share one stack. Exit 0 when every check passes, 1 otherwise.

Endpoint: --endpoint, else AWS_ENDPOINT_URL, else http://127.0.0.1:$REDRESS_LOCAL_PORT
(default 4599). Start a private stack with `infra/local/stack.sh with python3 ...` or
`.venv/bin/python infra/local/stack.py --port N`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

import runbooks

REGION = "us-east-1"
TERMINAL = {"Success", "Failed", "Cancelled", "TimedOut"}


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass
class World:
    """Clients signed as one account's OrganizationAccountAccessRole."""

    endpoint: str
    account: str
    credentials: dict

    def client(self, service: str):
        client = boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=self.credentials["AccessKeyId"],
            aws_secret_access_key=self.credentials["SecretAccessKey"],
            aws_session_token=self.credentials["SessionToken"],
            config=Config(retries={"max_attempts": 1}),
        )
        if service == "s3control":
            client.meta.events.register("before-sign.s3-control.*", runbooks._strip_account_host)
        return client

    @property
    def role(self) -> str:
        # Any role ARN of the account: the stand-in never checks AutomationAssumeRole against IAM.
        return f"arn:aws:iam::{self.account}:role/redress-automation"

    def name(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def start(self, document: str, parameters: dict[str, list[str]]) -> dict:
        ssm = self.client("ssm")
        execution_id = ssm.start_automation_execution(
            DocumentName=document, Parameters=parameters
        )["AutomationExecutionId"]
        deadline = time.time() + 30
        while time.time() < deadline:
            execution = ssm.get_automation_execution(AutomationExecutionId=execution_id)[
                "AutomationExecution"
            ]
            if execution["AutomationExecutionStatus"] in TERMINAL:
                return execution
            time.sleep(0.1)
        raise CheckFailed(f"{document}: execution {execution_id} did not end within 30 s")

    def succeeds(self, document: str, parameters: dict[str, list[str]]) -> dict:
        execution = self.start(document, parameters)
        expect(
            execution["AutomationExecutionStatus"] == "Success",
            f"{document} ended {execution['AutomationExecutionStatus']}: "
            f"{execution.get('FailureMessage')}",
        )
        return execution

    def fails(self, document: str, parameters: dict[str, list[str]], needle: str) -> None:
        execution = self.start(document, parameters)
        expect(execution["AutomationExecutionStatus"] == "Failed", f"{document} did not fail")
        expect(
            needle in (execution.get("FailureMessage") or ""),
            f"{document}: FailureMessage {execution.get('FailureMessage')!r} lacks {needle!r}",
        )

    def refused(self, document: str, parameters: dict, code: str, message: str) -> None:
        try:
            self.client("ssm").start_automation_execution(
                DocumentName=document, Parameters=parameters
            )
        except ClientError as err:
            error = err.response["Error"]
            expect(error["Code"] == code, f"{document}: error {error['Code']}, wanted {code}")
            expect(
                error["Message"] == message,
                f"{document}: message {error['Message']!r}, wanted {message!r}",
            )
            return
        raise CheckFailed(f"{document}: started, wanted {code}")


def connect(endpoint: str) -> World:
    account = str(random.randint(10**11, 10**12 - 1))
    sts = boto3.session.Session().client(
        "sts", endpoint_url=endpoint, region_name=REGION,
        aws_access_key_id="redress-check-runbooks", aws_secret_access_key="x",
    )
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole",
        RoleSessionName="check-runbooks",
    )["Credentials"]
    return World(endpoint, account, credentials)


# --- Security groups ---------------------------------------------------------------


def _group(w: World, rules: list[dict]) -> str:
    ec2 = w.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(
        GroupName=w.name("check"), Description="check_runbooks", VpcId=vpc
    )["GroupId"]
    if rules:
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=rules)
    return group


def _tcp(port: int, v4: list[str] = (), v6: list[str] = (), to: int | None = None) -> dict:
    rule = {"IpProtocol": "tcp", "FromPort": port, "ToPort": to if to is not None else port}
    if v4:
        rule["IpRanges"] = [{"CidrIp": c} for c in v4]
    if v6:
        rule["Ipv6Ranges"] = [{"CidrIpv6": c} for c in v6]
    return rule


def _sources(w: World, group: str) -> set[tuple]:
    """(from port, to port, source) of every ingress range of the group."""
    found = set()
    perms = w.client("ec2").describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    for perm in perms.get("IpPermissions", []):
        for r in perm.get("IpRanges", []):
            found.add((perm.get("FromPort"), perm.get("ToPort"), r["CidrIp"]))
        for r in perm.get("Ipv6Ranges", []):
            found.add((perm.get("FromPort"), perm.get("ToPort"), r["CidrIpv6"]))
    return found


def check_disable_public_access_for_security_group(w: World) -> None:
    group = _group(w, [_tcp(22, ["0.0.0.0/0"]), _tcp(3389, ["0.0.0.0/0"], ["::/0"]), _tcp(443, ["0.0.0.0/0"])])
    w.succeeds("AWS-DisablePublicAccessForSecurityGroup", {"GroupId": [group]})
    expect(_sources(w, group) == {(443, 443, "0.0.0.0/0")}, f"left {_sources(w, group)}")


def check_disable_incoming_ssh(w: World) -> None:
    group = _group(w, [_tcp(22, ["0.0.0.0/0", "10.0.0.0/8"], ["::/0"]), _tcp(20, ["0.0.0.0/0"], to=30)])
    w.succeeds("AWS-DisableIncomingSSHOnPort22", {"SecurityGroupIds": [group]})
    # Exactly port 22 from anywhere goes; the 20-30 range stays, as in the document.
    left = _sources(w, group)
    expect(left == {(22, 22, "10.0.0.0/8"), (20, 30, "0.0.0.0/0")}, f"left {left}")


def check_remove_unrestricted_source_ingress(w: World) -> None:
    group = _group(w, [_tcp(443, ["0.0.0.0/0"]), _tcp(8080, v6=["::/0"]), _tcp(22, ["10.0.0.0/8"])])
    w.succeeds(
        "AWSConfigRemediation-RemoveUnrestrictedSourceIngressRules",
        {"SecurityGroupId": [group], "AutomationAssumeRole": [w.role]},
    )
    expect(_sources(w, group) == {(22, 22, "10.0.0.0/8")}, f"left {_sources(w, group)}")


def check_remove_vpc_default_security_group_rules(w: World) -> None:
    ec2 = w.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.21.0.0/16")["Vpc"]["VpcId"]
    default = ec2.describe_security_groups(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": ["default"]}]
    )["SecurityGroups"][0]["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=default, IpPermissions=[_tcp(22, ["0.0.0.0/0"])])
    document = "AWSConfigRemediation-RemoveVPCDefaultSecurityGroupRules"
    w.succeeds(document, {"GroupId": [default], "AutomationAssumeRole": [w.role]})
    group = ec2.describe_security_groups(GroupIds=[default])["SecurityGroups"][0]
    expect(not group["IpPermissions"] and not group["IpPermissionsEgress"], f"rules left: {group}")
    other = _group(w, [_tcp(22, ["0.0.0.0/0"])])
    w.fails(document, {"GroupId": [other], "AutomationAssumeRole": [w.role]}, "not a default security group")
    expect(_sources(w, other) == {(22, 22, "0.0.0.0/0")}, "a non-default group was changed")


def check_delete_unused_security_group(w: World) -> None:
    group = _group(w, [])
    w.succeeds(
        "AWSConfigRemediation-DeleteUnusedSecurityGroup",
        {"GroupId": [group], "AutomationAssumeRole": [w.role]},
    )
    try:
        w.client("ec2").describe_security_groups(GroupIds=[group])
    except ClientError as err:
        expect(err.response["Error"]["Code"] == "InvalidGroup.NotFound", str(err))
        return
    raise CheckFailed(f"{group} still exists")


# --- S3 ------------------------------------------------------------------------------


def _bucket(w: World) -> str:
    bucket = w.name("redress-check")
    w.client("s3").create_bucket(Bucket=bucket)
    return bucket


def check_enable_s3_bucket_encryption(w: World) -> None:
    bucket = _bucket(w)
    w.succeeds("AWS-EnableS3BucketEncryption", {"BucketName": [bucket], "SSEAlgorithm": ["AES256"]})
    rules = w.client("s3").get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    expect(rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256", f"{rules}")


def _public_access_block(w: World, bucket: str) -> dict:
    return w.client("s3").get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]


def check_disable_s3_bucket_public_read_write(w: World) -> None:
    bucket = _bucket(w)
    w.succeeds("AWS-DisableS3BucketPublicReadWrite", {"S3BucketName": [bucket]})
    expect(all(_public_access_block(w, bucket).values()), f"{_public_access_block(w, bucket)}")


def check_configure_s3_bucket_public_access_block(w: World) -> None:
    bucket = _bucket(w)
    w.succeeds(
        "AWSConfigRemediation-ConfigureS3BucketPublicAccessBlock",
        {"BucketName": [bucket], "BlockPublicPolicy": ["false"], "AutomationAssumeRole": [w.role]},
    )
    settings = _public_access_block(w, bucket)
    expect(
        settings == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False, "RestrictPublicBuckets": True},
        f"{settings}",
    )


def check_configure_s3_account_public_access_block(w: World) -> None:
    w.succeeds(
        "AWSConfigRemediation-ConfigureS3PublicAccessBlock",
        {"AccountId": [w.account], "AutomationAssumeRole": [w.role]},
    )
    settings = w.client("s3control").get_public_access_block(AccountId=w.account)["PublicAccessBlockConfiguration"]
    expect(all(settings.values()), f"{settings}")


def check_restrict_bucket_ssl_requests_only(w: World) -> None:
    bucket = _bucket(w)
    s3 = w.client("s3")
    existing = {
        "Sid": "ReadForAuditors", "Effect": "Allow", "Action": "s3:GetObject",
        "Principal": {"AWS": f"arn:aws:iam::{w.account}:root"}, "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [existing]}))
    w.succeeds(
        "AWSConfigRemediation-RestrictBucketSSLRequestsOnly",
        {"BucketName": [bucket], "AutomationAssumeRole": [w.role]},
    )
    statements = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    expect(len(statements) == 2 and statements[0]["Sid"] == "ReadForAuditors", f"{statements}")
    deny = statements[1]
    expect(
        deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}},
        f"{deny}",
    )


def check_configure_s3_bucket_versioning(w: World) -> None:
    bucket = _bucket(w)
    w.succeeds("AWS-ConfigureS3BucketVersioning", {"BucketName": [bucket]})
    status = w.client("s3").get_bucket_versioning(Bucket=bucket).get("Status")
    expect(status == "Enabled", f"versioning {status}")


def check_configure_s3_bucket_logging(w: World) -> None:
    bucket, target = _bucket(w), _bucket(w)
    w.client("s3").put_bucket_acl(Bucket=target, ACL="log-delivery-write")
    w.succeeds(
        "AWS-ConfigureS3BucketLogging",
        {"BucketName": [bucket], "TargetBucket": [target], "TargetPrefix": ["logs/"]},
    )
    logging = w.client("s3").get_bucket_logging(Bucket=bucket).get("LoggingEnabled") or {}
    expect(logging.get("TargetBucket") == target and logging.get("TargetPrefix") == "logs/", f"{logging}")


# --- CloudTrail --------------------------------------------------------------------


def _trail(w: World) -> str:
    bucket, name = _bucket(w), w.name("check-trail")
    w.client("cloudtrail").create_trail(Name=name, S3BucketName=bucket)
    return name


def _validation(w: World, trail: str) -> bool:
    return w.client("cloudtrail").get_trail(Name=trail)["Trail"]["LogFileValidationEnabled"]


def check_enable_cloudtrail_log_file_validation(w: World) -> None:
    trail = _trail(w)
    w.succeeds(
        "AWSConfigRemediation-EnableCloudTrailLogFileValidation",
        {"TrailName": [trail], "AutomationAssumeRole": [w.role]},
    )
    expect(_validation(w, trail), "log file validation still off")


def check_enable_cloudtrail_log_file_validation_aws(w: World) -> None:
    trails = [_trail(w), _trail(w)]
    w.succeeds("AWS-EnableCloudTrailLogFileValidation", {"TrailNames": trails})
    expect(all(_validation(w, t) for t in trails), "log file validation still off")


def check_enable_cloudtrail(w: World) -> None:
    bucket, name = _bucket(w), w.name("check-trail")
    w.succeeds("AWS-EnableCloudTrail", {"TrailName": [name], "S3BucketName": [bucket]})
    trail = w.client("cloudtrail").get_trail(Name=name)["Trail"]
    expect(trail["S3BucketName"] == bucket, f"{trail}")


# --- KMS, IAM, EC2 account settings -------------------------------------------------


def check_enable_key_rotation(w: World) -> None:
    kms = w.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    w.succeeds("AWSConfigRemediation-EnableKeyRotation", {"KeyId": [key], "AutomationAssumeRole": [w.role]})
    expect(kms.get_key_rotation_status(KeyId=key)["KeyRotationEnabled"], "rotation still off")


def check_cancel_key_deletion(w: World) -> None:
    kms = w.client("kms")
    key = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    w.succeeds("AWSConfigRemediation-CancelKeyDeletion", {"KeyId": [key], "AutomationAssumeRole": [w.role]})
    state = kms.describe_key(KeyId=key)["KeyMetadata"]["KeyState"]
    expect(state == "Disabled", f"key state {state}")


def check_set_iam_password_policy(w: World) -> None:
    w.succeeds(
        "AWSConfigRemediation-SetIAMPasswordPolicy",
        {
            "AutomationAssumeRole": [w.role], "MinimumPasswordLength": ["14"],
            "RequireSymbols": ["true"], "RequireNumbers": ["true"], "PasswordReusePrevention": ["24"],
            "MaxPasswordAge": ["90"],
        },
    )
    policy = w.client("iam").get_account_password_policy()["PasswordPolicy"]
    expect(
        policy["MinimumPasswordLength"] == 14 and policy["RequireSymbols"] and policy["RequireNumbers"]
        and policy.get("PasswordReusePrevention") == 24 and policy.get("MaxPasswordAge") == 90,
        f"{policy}",
    )


def check_enable_ebs_encryption_by_default(w: World) -> None:
    ec2 = w.client("ec2")
    expect(not ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"], "already on")
    w.succeeds("AWSConfigRemediation-EnableEbsEncryptionByDefault", {"AutomationAssumeRole": [w.role]})
    expect(ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"], "still off")


# --- EC2 resources -----------------------------------------------------------------


def check_enforce_imdsv2(w: World) -> None:
    ec2 = w.client("ec2")
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, MetadataOptions={"HttpTokens": "optional"})["Instances"][0]["InstanceId"]
    w.succeeds(
        "AWSConfigRemediation-EnforceEC2InstanceIMDSv2",
        {"InstanceId": [instance], "AutomationAssumeRole": [w.role], "HttpPutResponseHopLimit": ["2"]},
    )
    options = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["MetadataOptions"]
    expect(options["HttpTokens"] == "required" and options["HttpPutResponseHopLimit"] == 2, f"{options}")


def check_delete_unused_ebs_volume(w: World) -> None:
    ec2 = w.client("ec2")
    volume = ec2.create_volume(AvailabilityZone=f"{REGION}a", Size=1)["VolumeId"]
    w.succeeds("AWSConfigRemediation-DeleteUnusedEBSVolume", {"VolumeId": [volume], "AutomationAssumeRole": [w.role]})
    expect(not ec2.describe_volumes(Filters=[{"Name": "volume-id", "Values": [volume]}])["Volumes"], "volume left")
    snapshots = ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [volume]}])["Snapshots"]
    expect(len(snapshots) == 1, f"snapshots {snapshots}")


def check_release_elastic_ip(w: World) -> None:
    ec2 = w.client("ec2")
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    w.succeeds("AWS-ReleaseElasticIP", {"AllocationId": [allocation]})
    left = ec2.describe_addresses(Filters=[{"Name": "allocation-id", "Values": [allocation]}])["Addresses"]
    expect(not left, f"address left: {left}")


# --- DynamoDB, SNS, RDS ------------------------------------------------------------


def check_enable_pitr(w: World) -> None:
    ddb = w.client("dynamodb")
    table = w.name("check-table")
    ddb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
    )
    w.succeeds("AWSConfigRemediation-EnablePITRForDynamoDbTable", {"TableName": [table], "AutomationAssumeRole": [w.role]})
    status = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
    expect(status == "ENABLED", f"PITR {status}")


def check_encrypt_sns_topic(w: World) -> None:
    topic = w.client("sns").create_topic(Name=w.name("check-topic"))["TopicArn"]
    key = w.client("kms").create_key()["KeyMetadata"]["Arn"]
    w.succeeds(
        "AWSConfigRemediation-EncryptSNSTopic",
        {"TopicArn": [topic], "KmsKeyArn": [key], "AutomationAssumeRole": [w.role]},
    )
    attributes = w.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]
    expect(attributes.get("KmsMasterKeyId") == key, f"{attributes.get('KmsMasterKeyId')}")


def _db(w: World, **settings) -> tuple[World, str, str]:
    """A DB instance in an account of its own: moto gives every instance the same
    DbiResourceId, so the RDS documents need the instance alone in its account."""
    w = connect(w.endpoint)
    rds = w.client("rds")
    name = w.name("check-db")
    instance = rds.create_db_instance(
        DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro", Engine="postgres",
        MasterUsername="check", MasterUserPassword="check-password-1", AllocatedStorage=20, **settings,
    )["DBInstance"]
    return w, name, instance["DbiResourceId"]


def _db_setting(w: World, name: str, setting: str):
    return w.client("rds").describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0][setting]


def check_disable_public_access_to_rds(w: World) -> None:
    w, name, resource = _db(w, PubliclyAccessible=True)
    w.succeeds("AWSConfigRemediation-DisablePublicAccessToRDSInstance", {"DbiResourceId": [resource], "AutomationAssumeRole": [w.role]})
    expect(_db_setting(w, name, "PubliclyAccessible") is False, "still publicly accessible")
    # A second instance makes the resource id ambiguous locally: the step refuses to guess.
    other = w.name("check-db")
    w.client("rds").create_db_instance(
        DBInstanceIdentifier=other, DBInstanceClass="db.t3.micro", Engine="postgres",
        MasterUsername="check", MasterUserPassword="check-password-1", AllocatedStorage=20,
        PubliclyAccessible=True,
    )
    w.fails(
        "AWSConfigRemediation-DisablePublicAccessToRDSInstance",
        {"DbiResourceId": [resource], "AutomationAssumeRole": [w.role]},
        "same DbiResourceId",
    )
    expect(_db_setting(w, other, "PubliclyAccessible") is True, "the other instance was changed")


def check_enable_rds_deletion_protection(w: World) -> None:
    w, name, resource = _db(w, DeletionProtection=False)
    w.succeeds(
        "AWSConfigRemediation-EnableRDSInstanceDeletionProtection",
        {"DbInstanceResourceId": [resource], "AutomationAssumeRole": [w.role], "ApplyImmediately": ["true"]},
    )
    expect(_db_setting(w, name, "DeletionProtection") is True, "deletion protection still off")


def check_enable_rds_minor_version_upgrade(w: World) -> None:
    w, name, resource = _db(w, AutoMinorVersionUpgrade=False)
    w.succeeds(
        "AWSConfigRemediation-EnableMinorVersionUpgradeOnRDSDBInstance",
        {"DbiResourceId": [resource], "AutomationAssumeRole": [w.role]},
    )
    expect(_db_setting(w, name, "AutoMinorVersionUpgrade") is True, "still off")


# --- Test documents ----------------------------------------------------------------


def check_always_fail(w: World) -> None:
    w.fails("Redress-Test-AlwaysFail", {}, "failed on purpose")


def check_sleep(w: World) -> None:
    execution = w.succeeds("Redress-Test-Sleep", {"Seconds": ["0"]})
    expect("nothing changed" in execution["Outputs"][runbooks.EFFECT_OUTPUT][0], f"{execution['Outputs']}")


EFFECT_CHECKS: dict[str, Callable[[World], None]] = {
    "AWS-DisablePublicAccessForSecurityGroup": check_disable_public_access_for_security_group,
    "AWS-DisableIncomingSSHOnPort22": check_disable_incoming_ssh,
    "AWSConfigRemediation-RemoveUnrestrictedSourceIngressRules": check_remove_unrestricted_source_ingress,
    "AWSConfigRemediation-RemoveVPCDefaultSecurityGroupRules": check_remove_vpc_default_security_group_rules,
    "AWSConfigRemediation-DeleteUnusedSecurityGroup": check_delete_unused_security_group,
    "AWS-EnableS3BucketEncryption": check_enable_s3_bucket_encryption,
    "AWS-DisableS3BucketPublicReadWrite": check_disable_s3_bucket_public_read_write,
    "AWSConfigRemediation-ConfigureS3BucketPublicAccessBlock": check_configure_s3_bucket_public_access_block,
    "AWSConfigRemediation-ConfigureS3PublicAccessBlock": check_configure_s3_account_public_access_block,
    "AWSConfigRemediation-RestrictBucketSSLRequestsOnly": check_restrict_bucket_ssl_requests_only,
    "AWS-ConfigureS3BucketVersioning": check_configure_s3_bucket_versioning,
    "AWS-ConfigureS3BucketLogging": check_configure_s3_bucket_logging,
    "AWSConfigRemediation-EnableCloudTrailLogFileValidation": check_enable_cloudtrail_log_file_validation,
    "AWS-EnableCloudTrailLogFileValidation": check_enable_cloudtrail_log_file_validation_aws,
    "AWS-EnableCloudTrail": check_enable_cloudtrail,
    "AWSConfigRemediation-EnableKeyRotation": check_enable_key_rotation,
    "AWSConfigRemediation-CancelKeyDeletion": check_cancel_key_deletion,
    "AWSConfigRemediation-SetIAMPasswordPolicy": check_set_iam_password_policy,
    "AWSConfigRemediation-EnableEbsEncryptionByDefault": check_enable_ebs_encryption_by_default,
    "AWSConfigRemediation-EnforceEC2InstanceIMDSv2": check_enforce_imdsv2,
    "AWSConfigRemediation-DeleteUnusedEBSVolume": check_delete_unused_ebs_volume,
    "AWS-ReleaseElasticIP": check_release_elastic_ip,
    "AWSConfigRemediation-EnablePITRForDynamoDbTable": check_enable_pitr,
    "AWSConfigRemediation-EncryptSNSTopic": check_encrypt_sns_topic,
    "AWSConfigRemediation-DisablePublicAccessToRDSInstance": check_disable_public_access_to_rds,
    "AWSConfigRemediation-EnableRDSInstanceDeletionProtection": check_enable_rds_deletion_protection,
    "AWSConfigRemediation-EnableMinorVersionUpgradeOnRDSDBInstance": check_enable_rds_minor_version_upgrade,
    "Redress-Test-AlwaysFail": check_always_fail,
    "Redress-Test-Sleep": check_sleep,
}


# --- Parameter checks and the rest ------------------------------------------------

INVALID = "InvalidAutomationExecutionParametersException"


def check_parameter_errors(w: World) -> None:
    w.refused(
        "AWS-EnableS3BucketEncryption", {"BucketName": ["b"], "KMSMasterKey": ["k"]},
        INVALID, "Undefined execution inputs: [KMSMasterKey]",
    )
    w.refused(
        "AWSConfigRemediation-EnableEbsEncryptionByDefault", {},
        INVALID, "Missing required parameter: AutomationAssumeRole in user inputs.",
    )
    w.refused(
        "AWS-ConfigureS3BucketVersioning", {"BucketName": ["b"], "VersioningState": ["On"]},
        INVALID, 'Parameter "VersioningState" has value "On" not found in [Enabled, Suspended].',
    )
    w.refused(
        "AWS-DisableIncomingSSHOnPort22", {"SecurityGroupIds": ["sg-12345678", "default"]},
        INVALID,
        'Parameter "SecurityGroupIds" has value "default" that does not match the allowed '
        "pattern ^sg-[a-z0-9]{8,17}$.",
    )
    w.refused(
        "AWSConfigRemediation-ConfigureS3BucketPublicAccessBlock",
        {"BucketName": ["b"], "AutomationAssumeRole": [w.role], "BlockPublicAcls": ["yes"]},
        INVALID, 'Parameter "BlockPublicAcls" of type Boolean has value "yes" that is not true or false.',
    )
    w.refused(
        "AWSConfigRemediation-SetIAMPasswordPolicy",
        {"AutomationAssumeRole": [w.role], "MinimumPasswordLength": ["fourteen"]},
        INVALID, 'Parameter "MinimumPasswordLength" of type Integer has value "fourteen" that is not an integer.',
    )
    w.refused(
        "AWSConfigRemediation-SetIAMPasswordPolicy",
        {"AutomationAssumeRole": [w.role], "MinimumPasswordLength": ["14", "15"]},
        INVALID, 'Parameter "MinimumPasswordLength" of type Integer takes one value, got 2.',
    )
    # A Java-only pattern (`[\w-\/...]`) is still checked.
    w.refused(
        "AWSConfigRemediation-EnablePITRForDynamoDbTable",
        {"TableName": ["t1x"], "AutomationAssumeRole": ["arn:aws:iam::123456789012:user/x"]},
        INVALID,
        'Parameter "AutomationAssumeRole" has value "arn:aws:iam::123456789012:user/x" that does '
        "not match the allowed pattern ^arn:aws[a-z0-9-]*:iam::\\d{12}:role\\/[\\w-\\/.@+=,]{1,1017}$.",
    )


def check_unknown_document(w: World) -> None:
    w.refused(
        "AWS-EnforceEC2InstanceIMDSv2", {"InstanceId": ["i-12345678"]},
        "AutomationDefinitionNotFoundException",
        "Automation definition AWS-EnforceEC2InstanceIMDSv2 could not be found.",
    )


def check_not_emulated(w: World) -> None:
    execution = w.succeeds(
        "AWSConfigRemediation-EnableWAFV2Logging",
        {
            "AutomationAssumeRole": [w.role],
            "WebAclArn": [f"arn:aws:wafv2:{REGION}:{w.account}:regional/webacl/check/abc"],
            "LogDestinationConfigs": [f"arn:aws:firehose:{REGION}:{w.account}:deliverystream/aws-waf-logs-check"],
        },
    )
    said = execution["Outputs"].get(runbooks.EFFECT_OUTPUT, [""])[0]
    expect(said.startswith("effect not emulated"), f"outputs {execution['Outputs']}")


OTHER_CHECKS: dict[str, Callable[[World], None]] = {
    "parameter errors": check_parameter_errors,
    "unknown document": check_unknown_document,
    "effect not emulated": check_not_emulated,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{os.environ.get('REDRESS_LOCAL_PORT', '4599')}"
    parser.add_argument("--endpoint", default=default)
    parser.add_argument("--only", nargs="*", help="run only these checks (document names or check names)")
    args = parser.parse_args(argv)

    missing = sorted(set(runbooks.EFFECTS) - set(EFFECT_CHECKS))
    if missing:
        print(f"no check for emulated documents: {missing}", file=sys.stderr)
        return 1
    checks = {**EFFECT_CHECKS, **OTHER_CHECKS}
    if args.only:
        checks = {name: fn for name, fn in checks.items() if name in args.only}
    world = connect(args.endpoint)
    print(f"checking {len(checks)} runbook checks at {args.endpoint} in account {world.account}")
    failed = 0
    for name, check in checks.items():
        try:
            check(world)
            print(f"ok    {name}")
        except (CheckFailed, ClientError) as err:
            failed += 1
            print(f"FAIL  {name}: {err}")
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
