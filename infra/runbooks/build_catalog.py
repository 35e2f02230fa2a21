#!/usr/bin/env python3
"""Build infra/runbooks/catalog.json, redress's runbook catalog, from the reference facts.

    build_catalog.py [--reference PATH] [--check]

The facts come from `../shared/reference/ssm-remediation-documents.json` (beside the
checkout; see its README): 45 AWS-owned SSM Automation documents, their parameters as the
document content AWS validates against declares them, the Config rules they pair with and
how well that pairing is evidenced, the permissions their automation role needs, and the
sources. This script copies those facts, keeps every "unconfirmed" flag, and adds what
redress itself decides:

- a short description of each document (written here, from its remarks and steps);
- `undo`: how redress could put a document's change back, or null with `undo_note` when it
  cannot (conservative: a change that cannot be reversed exactly, or whose reversal would
  destroy data such as backups, is not undoable);
- `emulated`: whether the local stack's SSM Automation stand-in emulates the document's
  effect. The list is read from `EFFECTS` in infra/local/runbooks.py (parsed, not imported,
  so this script needs no virtualenv), so the two cannot drift;
- the test-only documents the local stand-in knows (`Redress-Test-*`, `test_only: true`).

Parameter defaults and allowed values are written as strings, the way StartAutomationExecution
and AWS Config pass them (the document content has JSON booleans and numbers for Boolean and
Integer parameters). Patterns are copied verbatim; consumers decide what their regex engine
can check.

`--check` builds the catalog in memory and exits 1 when the checked-in file differs.
Run from anywhere: paths are relative to this file.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CATALOG = HERE / "catalog.json"
RUNBOOKS_PY = ROOT / "infra" / "local" / "runbooks.py"
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "ssm-remediation-documents.json"
FORMAT = 1

# Short descriptions: what the document changes, in redress's words.
DESCRIPTIONS = {
    "AWS-DisableIncomingSSHOnPort22": "Revokes ingress rules of exactly port 22 from 0.0.0.0/0 and ::/0 on each of the given security groups.",
    "AWS-DisablePublicAccessForSecurityGroup": "Revokes world-open SSH (22) and RDP (3389) ingress of a security group.",
    "AWSConfigRemediation-RemoveUnrestrictedSourceIngressRules": "Revokes every ingress rule of a security group whose source is 0.0.0.0/0 or ::/0, on any port.",
    "AWSConfigRemediation-RemoveVPCDefaultSecurityGroupRules": "Revokes all ingress and egress rules of a VPC's default security group (fails for a group not named default).",
    "AWSConfigRemediation-DeleteUnusedSecurityGroup": "Deletes a non-default security group (does nothing to a default group; fails if the group is in use).",
    "AWS-DisableS3BucketPublicReadWrite": "Turns on all four S3 Block Public Access settings of a bucket.",
    "AWSConfigRemediation-ConfigureS3BucketPublicAccessBlock": "Sets a bucket's four S3 Block Public Access settings (each defaults to true).",
    "AWSConfigRemediation-ConfigureS3PublicAccessBlock": "Sets the account-level S3 Block Public Access settings (each defaults to true).",
    "AWSConfigRemediation-RestrictBucketSSLRequestsOnly": "Adds a bucket-policy statement that denies every request not made over TLS (aws:SecureTransport false).",
    "AWS-EnableS3BucketEncryption": "Sets a bucket's default encryption (SSEAlgorithm, default AES256).",
    "AWS-ConfigureS3BucketLogging": "Turns on server access logging of a bucket into a target bucket and prefix.",
    "AWS-ConfigureS3BucketVersioning": "Sets a bucket's versioning state (Enabled by default, or Suspended).",
    "AWSConfigRemediation-EnableCloudTrailLogFileValidation": "Turns on log file validation for a CloudTrail trail.",
    "AWSConfigRemediation-EnableKeyRotation": "Turns on automatic rotation of a customer-managed KMS key.",
    "AWSConfigRemediation-CancelKeyDeletion": "Cancels the scheduled deletion of a KMS key (the key is left disabled).",
    "AWSConfigRemediation-SetIAMPasswordPolicy": "Replaces the account's IAM password policy with the given settings (its defaults are weak: 6 characters, nothing required).",
    "AWSConfigRemediation-RevokeUnusedIAMUserCredentials": "Deactivates and deletes an IAM user's access keys and deletes its console password when unused longer than MaxCredentialUsageAge days.",
    "AWSConfigRemediation-EnableEbsEncryptionByDefault": "Turns on EBS encryption by default for the account in the Region.",
    "AWSConfigRemediation-DeleteUnusedEBSVolume": "Deletes an unattached EBS volume, after a snapshot unless CreateSnapshot is false.",
    "AWS-ReleaseElasticIP": "Releases an Elastic IP address.",
    "AWSConfigRemediation-EnforceEC2InstanceIMDSv2": "Requires IMDSv2 (session tokens) on an EC2 instance, optionally setting the PUT response hop limit.",
    "AWSConfigRemediation-DisablePublicAccessToRDSInstance": "Makes an RDS DB instance not publicly accessible.",
    "AWSConfigRemediation-EnableRDSInstanceDeletionProtection": "Turns on deletion protection of an RDS DB instance.",
    "AWSConfigRemediation-EnableRDSClusterDeletionProtection": "Turns on deletion protection of an RDS DB cluster.",
    "AWSConfigRemediation-EnableRDSInstanceBackup": "Turns on automated backups of an RDS DB instance with the given retention period.",
    "AWSConfigRemediation-EnableEnhancedMonitoringOnRDSInstance": "Turns on Enhanced Monitoring of an RDS DB instance with the given interval and role.",
    "AWSConfigRemediation-EnableMinorVersionUpgradeOnRDSDBInstance": "Turns on automatic minor version upgrades of an RDS DB instance.",
    "AWSConfigRemediation-EnablePITRForDynamoDbTable": "Turns on point-in-time recovery of a DynamoDB table.",
    "AWSConfigRemediation-EnableELBDeletionProtection": "Turns on deletion protection of an Application, Network or Gateway Load Balancer.",
    "AWSConfigRemediation-EnableCloudFrontDefaultRootObject": "Sets the default root object of a CloudFront distribution.",
    "AWSConfigRemediation-EnableCloudFrontAccessLogs": "Turns on standard access logging of a CloudFront distribution into an S3 bucket (and changes that bucket's ACL).",
    "AWSConfigRemediation-EnableWAFV2Logging": "Turns on logging of a WAFv2 web ACL to a Kinesis Data Firehose stream.",
    "AWSConfigRemediation-EnableAPIGatewayTracing": "Turns on X-Ray tracing of an API Gateway REST API stage.",
    "AWSConfigRemediation-EncryptSNSTopic": "Encrypts an SNS topic with the given KMS key.",
    "AWSConfigRemediation-EnableRedshiftClusterAuditLogging": "Turns on audit logging of a Redshift cluster into an S3 bucket.",
    "AWSConfigRemediation-RotateSecret": "Turns on rotation of a Secrets Manager secret with a rotation Lambda and interval, and rotates it now.",
    "AWS-PublishSNSNotification": "Publishes a message to an SNS topic; changes no resource.",
    "AWS-EnableCloudTrail": "Creates a CloudTrail trail delivering to an existing bucket (does not start logging).",
    "AWSConfigRemediation-EnableCloudTrailEncryptionWithKMS": "Encrypts a CloudTrail trail's log files with a KMS key.",
    "AWSConfigRemediation-EnableVPCFlowLogsToCloudWatch": "Replaces a VPC flow log with one delivering to CloudWatch Logs.",
    "AWSConfigRemediation-CreateCloudTrailMultiRegionTrail": "Creates a multi-Region CloudTrail trail delivering to a bucket and starts logging.",
    "AWS-EnableCloudTrailLogFileValidation": "Turns on log file validation for each of the given CloudTrail trails.",
    "AWS-EnableCloudTrailKmsEncryption": "Encrypts the log files of each of the given CloudTrail trails with a KMS key.",
    "AWS-EnableVPCFlowLogs": "Creates flow logs for each of the given VPCs, to CloudWatch Logs or S3.",
    "AWSConfigRemediation-EnableVPCFlowLogsToS3Bucket": "Replaces a VPC flow log with one delivering to an S3 bucket.",
}

# How redress could put a document's change back. `inverse`: the call that reverses it;
# `needs_before`: what must be read before the change for the inverse to restore the old
# state exactly. Documents absent here are not undoable and need a note in NOT_UNDOABLE.
UNDO = {
    "AWS-DisableIncomingSSHOnPort22": {"inverse": "AuthorizeSecurityGroupIngress with the revoked port-22 permissions", "needs_before": "the groups' ingress permissions"},
    "AWS-DisablePublicAccessForSecurityGroup": {"inverse": "AuthorizeSecurityGroupIngress with the revoked SSH/RDP permissions", "needs_before": "the group's ingress permissions"},
    "AWSConfigRemediation-RemoveUnrestrictedSourceIngressRules": {"inverse": "AuthorizeSecurityGroupIngress with the revoked world-open permissions", "needs_before": "the group's ingress permissions"},
    "AWSConfigRemediation-RemoveVPCDefaultSecurityGroupRules": {"inverse": "AuthorizeSecurityGroupIngress and AuthorizeSecurityGroupEgress with the revoked permissions", "needs_before": "the group's ingress and egress permissions"},
    "AWS-DisableS3BucketPublicReadWrite": {"inverse": "PutPublicAccessBlock with the bucket's earlier settings, or DeletePublicAccessBlock if it had none", "needs_before": "GetPublicAccessBlock of the bucket"},
    "AWSConfigRemediation-ConfigureS3BucketPublicAccessBlock": {"inverse": "PutPublicAccessBlock with the bucket's earlier settings, or DeletePublicAccessBlock if it had none", "needs_before": "GetPublicAccessBlock of the bucket"},
    "AWSConfigRemediation-ConfigureS3PublicAccessBlock": {"inverse": "s3control PutPublicAccessBlock with the account's earlier settings, or DeletePublicAccessBlock if it had none", "needs_before": "s3control GetPublicAccessBlock of the account"},
    "AWSConfigRemediation-RestrictBucketSSLRequestsOnly": {"inverse": "PutBucketPolicy with the earlier policy, or DeleteBucketPolicy if there was none", "needs_before": "GetBucketPolicy of the bucket"},
    "AWS-EnableS3BucketEncryption": {"inverse": "PutBucketEncryption with the earlier configuration, or DeleteBucketEncryption if there was none (objects written meanwhile stay encrypted)", "needs_before": "GetBucketEncryption of the bucket"},
    "AWS-ConfigureS3BucketLogging": {"inverse": "PutBucketLogging with the earlier logging status (empty to turn logging off)", "needs_before": "GetBucketLogging of the bucket"},
    "AWSConfigRemediation-EnableCloudTrailLogFileValidation": {"inverse": "UpdateTrail EnableLogFileValidation=false", "needs_before": "GetTrail (the earlier setting)"},
    "AWS-EnableCloudTrailLogFileValidation": {"inverse": "UpdateTrail EnableLogFileValidation=false on each trail that had it off", "needs_before": "GetTrail of each trail"},
    "AWSConfigRemediation-EnableKeyRotation": {"inverse": "DisableKeyRotation", "needs_before": "GetKeyRotationStatus"},
    "AWSConfigRemediation-SetIAMPasswordPolicy": {"inverse": "UpdateAccountPasswordPolicy with the earlier policy, or DeleteAccountPasswordPolicy if there was none", "needs_before": "GetAccountPasswordPolicy"},
    "AWSConfigRemediation-EnableEbsEncryptionByDefault": {"inverse": "DisableEbsEncryptionByDefault (volumes created meanwhile stay encrypted)", "needs_before": "GetEbsEncryptionByDefault"},
    "AWSConfigRemediation-EnforceEC2InstanceIMDSv2": {"inverse": "ModifyInstanceMetadataOptions with the earlier HttpTokens and hop limit", "needs_before": "the instance's MetadataOptions"},
    "AWSConfigRemediation-DisablePublicAccessToRDSInstance": {"inverse": "ModifyDBInstance PubliclyAccessible=true", "needs_before": "the instance's PubliclyAccessible"},
    "AWSConfigRemediation-EnableRDSInstanceDeletionProtection": {"inverse": "ModifyDBInstance DeletionProtection=false", "needs_before": "the instance's DeletionProtection"},
    "AWSConfigRemediation-EnableRDSClusterDeletionProtection": {"inverse": "ModifyDBCluster DeletionProtection=false", "needs_before": "the cluster's DeletionProtection"},
    "AWSConfigRemediation-EnableEnhancedMonitoringOnRDSInstance": {"inverse": "ModifyDBInstance with the earlier MonitoringInterval (0 turns it off) and role", "needs_before": "the instance's MonitoringInterval and MonitoringRoleArn"},
    "AWSConfigRemediation-EnableMinorVersionUpgradeOnRDSDBInstance": {"inverse": "ModifyDBInstance AutoMinorVersionUpgrade=false (upgrades already applied stay)", "needs_before": "the instance's AutoMinorVersionUpgrade"},
    "AWSConfigRemediation-EnableELBDeletionProtection": {"inverse": "ModifyLoadBalancerAttributes deletion_protection.enabled=false", "needs_before": "DescribeLoadBalancerAttributes"},
    "AWSConfigRemediation-EnableCloudFrontDefaultRootObject": {"inverse": "UpdateDistribution with the earlier DefaultRootObject", "needs_before": "GetDistributionConfig (and its ETag)"},
    "AWSConfigRemediation-EnableWAFV2Logging": {"inverse": "DeleteLoggingConfiguration, or PutLoggingConfiguration with the earlier one", "needs_before": "GetLoggingConfiguration"},
    "AWSConfigRemediation-EnableAPIGatewayTracing": {"inverse": "UpdateStage tracingEnabled=false", "needs_before": "GetStage (the earlier setting)"},
    "AWSConfigRemediation-EncryptSNSTopic": {"inverse": "SetTopicAttributes KmsMasterKeyId with the earlier value (empty for none)", "needs_before": "GetTopicAttributes"},
    "AWSConfigRemediation-EnableRedshiftClusterAuditLogging": {"inverse": "DisableLogging, or EnableLogging with the earlier bucket and prefix", "needs_before": "DescribeLoggingStatus"},
    "AWSConfigRemediation-EnableCloudTrailEncryptionWithKMS": {"inverse": "UpdateTrail with the earlier KmsKeyId (empty string removes encryption; files already written stay encrypted)", "needs_before": "GetTrail"},
    "AWS-EnableCloudTrailKmsEncryption": {"inverse": "UpdateTrail with each trail's earlier KmsKeyId (empty string removes encryption)", "needs_before": "GetTrail of each trail"},
}

NOT_UNDOABLE = {
    "AWSConfigRemediation-DeleteUnusedSecurityGroup": "A deleted security group cannot come back: a new group gets a new id.",
    "AWS-ConfigureS3BucketVersioning": "A bucket that has been versioned can only be suspended, never returned to unversioned; versions written meanwhile stay.",
    "AWSConfigRemediation-CancelKeyDeletion": "Undoing would schedule the key's deletion again, a destructive act with a new waiting period; redress never does it.",
    "AWSConfigRemediation-RevokeUnusedIAMUserCredentials": "Deleted access keys and console passwords cannot be restored.",
    "AWSConfigRemediation-DeleteUnusedEBSVolume": "A deleted volume cannot come back (a new volume from the snapshot gets a new id).",
    "AWS-ReleaseElasticIP": "A released address may not be allocated again.",
    "AWSConfigRemediation-EnableRDSInstanceBackup": "Setting the retention back (to 0) deletes the automated backups taken since; redress does not destroy backups.",
    "AWSConfigRemediation-EnablePITRForDynamoDbTable": "Turning point-in-time recovery off discards the recovery window gained since; redress does not destroy backups.",
    "AWSConfigRemediation-EnableCloudFrontAccessLogs": "It also changes the log bucket's ACL; putting the distribution and the ACL back together is not modelled.",
    "AWSConfigRemediation-RotateSecret": "Rotation replaces the secret's value at once; the old value cannot be made current again safely.",
    "AWS-PublishSNSNotification": "It changes no resource, and a published message cannot be recalled.",
    "AWS-EnableCloudTrail": "Undoing would delete an audit trail; redress never deletes audit trails.",
    "AWSConfigRemediation-CreateCloudTrailMultiRegionTrail": "Undoing would delete an audit trail; redress never deletes audit trails.",
    "AWSConfigRemediation-EnableVPCFlowLogsToCloudWatch": "It deletes the flow log it replaces; the old flow log cannot come back with its id.",
    "AWSConfigRemediation-EnableVPCFlowLogsToS3Bucket": "It deletes the flow log it replaces; the old flow log cannot come back with its id.",
    "AWS-EnableVPCFlowLogs": "The ids of the flow logs it creates are not known from the catalog's facts, so deleting exactly them is not modelled.",
}

# Test-only documents of the local stack (infra/local/stack.py): no such documents exist in AWS.
TEST_DOCUMENTS = [
    {
        "name": "Redress-Test-AlwaysFail",
        "description": "Test only (local stack): always ends Failed, so failure paths can be exercised.",
        "parameters": [
            {"name": "AutomationAssumeRole", "type": "String", "required": False, "default": "", "allowed": None, "pattern": None},
        ],
    },
    {
        "name": "Redress-Test-Sleep",
        "description": "Test only (local stack): stays InProgress for Seconds, then ends Success without any effect.",
        "parameters": [
            {"name": "AutomationAssumeRole", "type": "String", "required": False, "default": "", "allowed": None, "pattern": None},
            {"name": "Seconds", "type": "String", "required": True, "default": None, "allowed": None, "pattern": "^0*([0-9]{1,2}|[1-5][0-9]{2}|600)$"},
        ],
    },
]

CONFIG_GUIDE_PREFIXES = (
    "https://docs.aws.amazon.com/config/",
    "https://github.com/awsdocs/aws-config-developer-guide/",
)


def as_text(value) -> str:
    """A default or allowed value as StartAutomationExecution and Config pass it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def emulated_documents(path: Path = RUNBOOKS_PY) -> set[str]:
    """The keys of the `EFFECTS = {...}` dict literal in infra/local/runbooks.py."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        target = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        elif isinstance(node, ast.AnnAssign):
            target = node.target
        if isinstance(target, ast.Name) and target.id == "EFFECTS":
            if not isinstance(node.value, ast.Dict):
                break
            names = set()
            for key in node.value.keys:
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    raise SystemExit(f"{path}: every EFFECTS key must be a string literal")
                names.add(key.value)
            return names
    raise SystemExit(f"{path}: no `EFFECTS = {{...}}` dict literal found")


# API calls whose IAM action is named differently (Service Authorization Reference), and
# boto3 names that are not API names.
IAM_ACTION_OF_CALL = {
    "s3:PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "s3:PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "s3:GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "s3control:PutPublicAccessBlock": "s3:PutAccountPublicAccessBlock",
    "s3control:GetPublicAccessBlock": "s3:GetAccountPublicAccessBlock",
    "ec2:RevokeIngress": "ec2:RevokeSecurityGroupIngress",  # boto3's SecurityGroup.revoke_ingress
}
IAM_PREFIX_OF_SERVICE = {"elbv2": "elasticloadbalancing"}


def api_call_to_action(call: str) -> str | None:
    """The IAM action an API call of the document's steps needs, as best known:
    `ec2:RevokeSecurityGroupIngress` as is, `script(ec2).describe_security_groups` as
    `ec2:DescribeSecurityGroups`, known renames applied (IAM_ACTION_OF_CALL). Helpers
    (paginators, waiters) and calls whose service is ambiguous (`script(config/iam)...`)
    give None."""
    if call.startswith("script("):
        service, _, method = call[len("script("):].partition(").")
        if "/" in service or method.startswith("get_paginator") or method.startswith("get_waiter"):
            return None
        service = IAM_PREFIX_OF_SERVICE.get(service, service)
        call = f"{service}:{''.join(part.capitalize() for part in method.split('_'))}"
    return IAM_ACTION_OF_CALL.get(call, call)


def parameter(record: dict) -> dict:
    return {
        "name": record["name"],
        "type": record["type"],
        "required": record["required"],
        "default": as_text(record["default"]) if record.get("has_default") else None,
        "allowed": [as_text(v) for v in record["allowed"]] if record["allowed"] is not None else None,
        "pattern": record["pattern"],
    }


def permissions(doc: dict) -> dict:
    listed = doc["assume_role_permissions"]
    calls = [a for a in (api_call_to_action(c) for c in doc["api_calls_in_steps"]) if a]
    calls = list(dict.fromkeys(calls))
    page_unconfirmed = any(u.startswith("assume_role_permissions") for u in doc["unconfirmed"])
    if listed == "unconfirmed":
        return {
            "actions": calls,
            "confirmed": False,
            "basis": (
                "No AWS page lists this document's permissions; these are the IAM actions of "
                "the API calls its steps make (derived here, not confirmed by AWS). "
                + doc["assume_role_permissions_basis"]
            ),
            "calls_not_listed": [],
        }
    return {
        "actions": listed,
        "confirmed": not page_unconfirmed,
        "basis": doc["assume_role_permissions_basis"],
        # IAM actions of API calls the steps make that the page's list does not name (derived
        # as in api_call_to_action): a hint that the page's list is incomplete.
        "calls_not_listed": [c for c in calls if c.lower() not in {a.lower() for a in listed}],
    }


def config_rule(rule: dict) -> dict:
    evidence = [u for u in rule["sources"] if not u.startswith(CONFIG_GUIDE_PREFIXES)]
    rule_pages = [u for u in rule["sources"] if u.startswith("https://docs.aws.amazon.com/config/")]
    return {
        "rule_name": rule["rule_name"],
        "identifier": rule["identifier"],
        "resource_types": rule["rule_resource_types"],
        "pairing": rule["pairing"],
        # An AWS template or solution runs exactly this document for the rule.
        "confirmed": rule["pairing"] == "aws_template",
        "pairing_basis": rule["pairing_basis"],
        "source": evidence[0] if evidence else rule["sources"][0],
        "rule_page": rule_pages[0] if rule_pages else None,
        "sources": rule["sources"],
    }


def resource_id_parameter(doc: dict) -> dict | None:
    candidates = [p for p in doc["parameters"] if p.get("from_event")]
    if not candidates:
        return None
    if len(candidates) > 1:
        raise SystemExit(f"{doc['name']}: more than one parameter takes the resource id")
    record = candidates[0]
    return {
        "name": record["name"],
        "confirmed": record["from_event"] == "resource_id",
        "basis": record.get("from_event_basis")
        or "Likely the resource-ID parameter by meaning; no source confirms it.",
    }


def undo(name: str) -> tuple[dict | None, str | None]:
    if name in UNDO and name in NOT_UNDOABLE:
        raise SystemExit(f"{name}: both undoable and not")
    if name in UNDO:
        return UNDO[name], None
    if name in NOT_UNDOABLE:
        return None, NOT_UNDOABLE[name]
    raise SystemExit(f"{name}: say in UNDO or NOT_UNDOABLE whether it can be undone")


def document(doc: dict, emulated: set[str]) -> dict:
    name = doc["name"]
    if name not in DESCRIPTIONS:
        raise SystemExit(f"{name}: no description in DESCRIPTIONS")
    params = [parameter(p) for p in doc["parameters"]]
    role = next((p for p in params if p["name"] == "AutomationAssumeRole"), None)
    undo_how, undo_note = undo(name)
    return {
        "name": name,
        "description": DESCRIPTIONS[name],
        "owner": doc["owner"],
        "test_only": False,
        "document_version": doc["document_version"],
        "target_type": doc["target_type"],
        "runbook_page": doc["runbook_page"],
        "parameters": params,
        "resource_id_parameter": resource_id_parameter(doc),
        "assume_role_required": bool(role and role["required"]),
        "permissions": permissions(doc),
        "config_rules": [config_rule(r) for r in doc["config_rules"]],
        "undo": undo_how,
        "undo_note": undo_note,
        "emulated": name in emulated,
        "remarks": doc["remarks"],
        "unconfirmed": doc["unconfirmed"],
        "sources": doc["sources"],
        "content_last_changed": doc["content_snapshot"]["content_last_changed_in_dump"],
    }


def test_document(spec: dict, emulated: set[str]) -> dict:
    return {
        "name": spec["name"],
        "description": spec["description"],
        "owner": "redress (local stack only)",
        "test_only": True,
        "document_version": "1",
        "target_type": None,
        "runbook_page": None,
        "parameters": spec["parameters"],
        "resource_id_parameter": None,
        "assume_role_required": False,
        "permissions": {"actions": [], "confirmed": True, "basis": "Test-only document of the local stack; it calls no AWS API.", "calls_not_listed": []},
        "config_rules": [],
        "undo": None,
        "undo_note": "It changes nothing.",
        "emulated": spec["name"] in emulated,
        "remarks": ["No such document exists in AWS; only the local stack's SSM Automation stand-in knows it."],
        "unconfirmed": [],
        "sources": [],
        "content_last_changed": None,
    }


def build(reference: dict, emulated: set[str]) -> dict:
    documents = [document(d, emulated) for d in reference["documents"]]
    documents += [test_document(t, emulated) for t in TEST_DOCUMENTS]
    names = [d["name"] for d in documents]
    unknown = sorted(emulated - set(names))
    if unknown:
        raise SystemExit(f"infra/local/runbooks.py emulates documents the catalog lacks: {unknown}")
    stale = sorted((set(DESCRIPTIONS) | set(UNDO) | set(NOT_UNDOABLE)) - set(names))
    if stale:
        raise SystemExit(f"entries for documents the reference lacks: {stale}")
    snapshot = reference["documents"][0]["content_snapshot"]
    nonexistent = reference["not_existing_names"]
    return {
        "format": FORMAT,
        "about": (
            "redress's runbook catalog: AWS-owned SSM Automation documents redress knows, "
            "with parameters as the document content AWS validates against declares them. "
            "Generated by infra/runbooks/build_catalog.py from "
            "../shared/reference/ssm-remediation-documents.json; do not edit by hand."
        ),
        "source": {
            "reference": "../shared/reference/ssm-remediation-documents.json",
            "dump_commit": snapshot["dump_commit"],
            "dump_date": snapshot["dump_date"],
            "region": snapshot["region"],
        },
        "documents": documents,
        "aws_config_remediation_names": reference["aws_config_remediation_document_names"]["names"],
        "nonexistent_names": {
            "names": nonexistent["names"],
            "basis": nonexistent["basis"],
            "sources": nonexistent["sources"],
        },
        # Names that do not exist, with the real document they are usually meant as.
        "misnamed": {"AWS-EnforceEC2InstanceIMDSv2": "AWSConfigRemediation-EnforceEC2InstanceIMDSv2"},
    }


def render(catalog: dict) -> str:
    return json.dumps(catalog, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--check", action="store_true", help="exit 1 if catalog.json is stale")
    args = parser.parse_args(argv)

    reference = json.loads(args.reference.read_text())
    text = render(build(reference, emulated_documents()))
    if args.check:
        if CATALOG.read_text() != text:
            print(f"{CATALOG} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{CATALOG.name} is up to date")
        return 0
    CATALOG.write_text(text)
    print(f"wrote {CATALOG.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
