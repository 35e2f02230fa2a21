"""Build and inspect a small demo world on the local AWS stack (infra/local/stack.py).

    demo.py create                 build the world; print its ids as one JSON object
    demo.py report --world FILE    describe the world as it is now (FILE: create's JSON)
    demo.py findings --world FILE  the Config findings about it, one JSON object per line

The world has three kinds of problem for the pipeline to find:
  - security groups redress-demo-ssh (TCP 22 open to the world, 443 from 10/8) and
    redress-demo-ftp (TCP 21 open to the world and from 10/8, 443 open to the world);
  - the SSM parameter /payments/current/db_pool_size drifted from its approved
    baseline /payments/approved/db_pool_size;
  - an S3 bucket without default encryption.

`create` can be re-run: it reuses same-named security groups (re-adding their rules),
overwrites the parameters and makes a new bucket.

Environment: AWS_ENDPOINT_URL (default http://127.0.0.1:4599), AWS_REGION (default
us-east-1), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (dummy values; default "testing").
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

import boto3
from botocore.exceptions import ClientError

WORLD_OPEN = ("0.0.0.0/0", "::/0")
ENCRYPTION_RUNBOOK = "AWS-EnableS3BucketEncryption"
SG_RUNBOOK = "AWS-DisablePublicAccessForSecurityGroup"


def client(service: str):
    return boto3.client(
        service,
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4599"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )


def error_code(err: ClientError) -> str:
    return err.response.get("Error", {}).get("Code", "")


# --- create ----------------------------------------------------------------------


def tcp(port: int, cidr: str) -> dict:
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}


def ensure_group(ec2, name: str, description: str, rules: list[dict]) -> str:
    """The id of the group `name` (created if missing) after adding `rules` to it."""
    default_vpcs = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
    vpc = {"VpcId": default_vpcs[0]["VpcId"]} if default_vpcs else {}
    filters = [{"Name": "group-name", "Values": [name]}]
    if vpc:
        filters.append({"Name": "vpc-id", "Values": [vpc["VpcId"]]})
    existing = ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
    if existing:
        group_id = existing[0]["GroupId"]
    else:
        group_id = ec2.create_security_group(GroupName=name, Description=description, **vpc)[
            "GroupId"
        ]
    # One rule per call: a single duplicate would fail a batched call as a whole.
    for rule in rules:
        try:
            ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[rule])
        except ClientError as err:
            if error_code(err) != "InvalidPermission.Duplicate":
                raise
    return group_id


def create() -> dict:
    ec2, ssm, s3 = client("ec2"), client("ssm"), client("s3")
    ssh_group = ensure_group(
        ec2,
        "redress-demo-ssh",
        "redress demo: SSH open to the world",
        [tcp(22, "0.0.0.0/0"), tcp(443, "10.0.0.0/8")],
    )
    ftp_group = ensure_group(
        ec2,
        "redress-demo-ftp",
        "redress demo: FTP open to the world",
        [tcp(21, "0.0.0.0/0"), tcp(21, "10.0.0.0/8"), tcp(443, "0.0.0.0/0")],
    )

    baseline, current = "/payments/approved/db_pool_size", "/payments/current/db_pool_size"
    ssm.put_parameter(Name=baseline, Value="20", Type="String", Overwrite=True)
    ssm.put_parameter(Name=current, Value="200", Type="String", Overwrite=True)

    bucket = f"redress-demo-unencrypted-{secrets.token_hex(4)}"
    region = s3.meta.region_name
    location = {} if region == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": region}
    }
    s3.create_bucket(Bucket=bucket, **location)
    # Real S3 gives every new bucket SSE-S3 by default; if the emulator does too,
    # remove it so the bucket starts out without default encryption.
    if bucket_encryption(s3, bucket) is not None:
        s3.delete_bucket_encryption(Bucket=bucket)

    return {
        "ssh_group": ssh_group,
        "ftp_group": ftp_group,
        "parameter": current,
        "baseline_parameter": baseline,
        "bucket": bucket,
    }


# --- findings --------------------------------------------------------------------


def findings(world: dict) -> list[dict]:
    """What AWS Config would report about the world (and some it would not act on)."""
    sg, param, bucket = "AWS::EC2::SecurityGroup", "AWS::SSM::Parameter", "AWS::S3::Bucket"

    def finding(rule, resource, kind, compliance="NON_COMPLIANT", annotation=None):
        return {
            "rule": rule,
            "resource": resource,
            "type": kind,
            "compliance": compliance,
            "annotation": annotation,
        }

    return [
        finding("restricted-ssh", world["ssh_group"], sg, annotation="Port 22 is open to 0.0.0.0/0"),
        finding(
            "restricted-common-ports", world["ftp_group"], sg, annotation="Port 21 is open to 0.0.0.0/0"
        ),
        finding("ssm-parameter-drift", world["parameter"], param),
        finding("s3-bucket-server-side-encryption-enabled", world["bucket"], bucket),
        finding("ec2-imdsv2-check", "i-0123456789abcdef0", "AWS::EC2::Instance"),
        finding("restricted-ssh", world["ftp_group"], sg, compliance="COMPLIANT"),
        finding("cloudtrail-enabled", "management-trail", "AWS::CloudTrail::Trail"),
    ]


# --- report ----------------------------------------------------------------------


def bucket_encryption(s3, bucket: str) -> str | None:
    """The bucket's default encryption algorithm(s), or None when it has none."""
    try:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
            "Rules"
        ]
    except ClientError as err:
        if error_code(err) == "ServerSideEncryptionConfigurationNotFoundError":
            return None
        raise
    return ", ".join(r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules)


def executions() -> list[dict]:
    """Every automation execution, newest first, with its parameters."""
    ssm = client("ssm")
    listed = ssm.describe_automation_executions()["AutomationExecutionMetadataList"]
    return [
        ssm.get_automation_execution(AutomationExecutionId=e["AutomationExecutionId"])[
            "AutomationExecution"
        ]
        for e in listed
    ]


def runs_on(runs: list[dict], document: str, parameter: str, value: str) -> list[dict]:
    return [
        r
        for r in runs
        if r["DocumentName"] == document and r.get("Parameters", {}).get(parameter) == [value]
    ]


def describe_runs(runs: list[dict]) -> str:
    if not runs:
        return "no automation execution targeted it"
    return "; ".join(
        f"runbook {r['DocumentName']} {r['AutomationExecutionStatus']}" for r in runs
    )


def ports(perm: dict) -> str:
    protocol = perm["IpProtocol"]
    if protocol == "-1":
        return "all traffic"
    low, high = perm.get("FromPort"), perm.get("ToPort")
    return f"{protocol} {low}" if low == high else f"{protocol} {low}-{high}"


def report_group(ec2, group_id: str, runs: list[dict]) -> list[str]:
    try:
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    except ClientError as err:
        if error_code(err) == "InvalidGroup.NotFound":
            return [f"Security group {group_id}: not found"]
        raise
    lines = [
        f"Security group {group['GroupName']} ({group_id}): "
        f"{describe_runs(runs_on(runs, SG_RUNBOOK, 'GroupId', group_id))}"
    ]
    sources = [
        (ports(perm), source)
        for perm in group.get("IpPermissions", [])
        for source in [r["CidrIp"] for r in perm.get("IpRanges", [])]
        + [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])]
        + [p["GroupId"] for p in perm.get("UserIdGroupPairs", [])]
    ]
    if not sources:
        lines.append("    no ingress rules")
    for port_text, source in sorted(sources):
        exposure = "open to the world" if source in WORLD_OPEN else "not open to the world"
        lines.append(f"    {port_text:<12} from {source:<14} {exposure}")
    return lines


def parameter_value(ssm, name: str) -> str | None:
    try:
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as err:
        if error_code(err) == "ParameterNotFound":
            return None
        raise


def report(world: dict) -> list[str]:
    ec2, ssm, s3 = client("ec2"), client("ssm"), client("s3")
    # Only executions that targeted this world (others may share the stack).
    mine = {world["ssh_group"], world["ftp_group"], world["bucket"]}
    runs = [
        r
        for r in executions()
        if any(v and v[0] in mine for v in r.get("Parameters", {}).values())
    ]
    lines = []
    for key in ("ssh_group", "ftp_group"):
        lines += report_group(ec2, world[key], runs)

    current = parameter_value(ssm, world["parameter"])
    baseline = parameter_value(ssm, world["baseline_parameter"])
    if current is None or baseline is None:
        verdict = "cannot compare: a parameter is missing"
    else:
        verdict = "matches the baseline" if current == baseline else "differs from the baseline"
    lines.append(
        f"Parameter {world['parameter']} = {current or '(not set)'} "
        f"(baseline {world['baseline_parameter']} = {baseline or '(not set)'}: {verdict})"
    )

    bucket = world["bucket"]
    try:
        encryption = bucket_encryption(s3, bucket)
        state = f"default encryption {encryption}" if encryption else "no default encryption"
    except ClientError as err:
        if error_code(err) != "NoSuchBucket":
            raise
        state = "not found"
    lines.append(
        f"Bucket {bucket}: {state} "
        f"({describe_runs(runs_on(runs, ENCRYPTION_RUNBOOK, 'BucketName', bucket))})"
    )

    lines.append("Automation executions:" if runs else "Automation executions: none")
    for r in runs:
        targets = ", ".join(
            f"{name}={values[0]}"
            for name, values in sorted(r.get("Parameters", {}).items())
            if values and values[0] and name != "AutomationAssumeRole"
        )
        line = f"    {r['DocumentName']} {r['AutomationExecutionStatus']}"
        line += f" (id {r['AutomationExecutionId']}" + (f"; {targets})" if targets else ")")
        if r.get("FailureMessage"):
            line += f": {r['FailureMessage']}"
        lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create", help="build the demo world and print its ids as JSON")
    report_parser = commands.add_parser("report", help="describe the demo world as it is now")
    report_parser.add_argument("--world", required=True, help="the JSON that create printed")
    findings_parser = commands.add_parser("findings", help="the findings about the world")
    findings_parser.add_argument("--world", required=True, help="the JSON that create printed")
    args = parser.parse_args(argv)

    if args.command == "create":
        print(json.dumps(create()))
        return 0
    with open(args.world) as f:
        world = json.load(f)
    if args.command == "report":
        print("\n".join(report(world)))
    else:
        for f in findings(world):
            print(json.dumps(f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
