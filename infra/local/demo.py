"""Build and inspect a small demo world on the local AWS stack (infra/local/stack.py),
and play AWS Config's rules about it.

    demo.py create                        build the world; print its ids as one JSON object
    demo.py report --world FILE           describe the world as it is now (FILE: create's JSON)
    demo.py findings --world FILE         the Config findings about it, one JSON object per line
    demo.py config-rules [--fresh]        put the Config rules the findings name (PutConfigRule)
    demo.py evaluate --world FILE         put the findings into Config (PutEvaluations)
    demo.py reevaluate --world FILE [--since T]
                                          answer the StartConfigRulesEvaluation requests made
                                          since unix time T: evaluate the world again, as the
                                          rules would, and put the results into Config
    demo.py outcome --world FILE --audit FILE
                                          each finding, what redress did, and how it ended
                                          (from the audit records of the runs)

The world has three kinds of problem for the pipeline to find:
  - security groups redress-demo-ssh (TCP 22 open to the world, 443 from 10/8) and
    redress-demo-ftp (TCP 21 open to the world and from 10/8, 443 open to the world);
  - the SSM parameter /payments/current/db_pool_size drifted from its approved
    baseline /payments/approved/db_pool_size;
  - an S3 bucket without default encryption.

Findings start where they start on AWS: as Config evaluations. `config-rules` creates
the rules (AWS managed rules, and one custom rule), `evaluate` puts each finding's
evaluation, and the local stack's Config stand-in turns every change of compliance into a
`Config Rules Compliance Change` event on the default bus, which EventBridge delivers to
redress-events. Nothing evaluates rules locally, so after redress fixes something and asks
Config to re-evaluate, `reevaluate` plays the rules: it looks at the resources again and
puts what the managed rule would conclude.

`create` can be re-run: it reuses same-named security groups (re-adding their rules),
overwrites the parameters and makes a new bucket.

Environment: AWS_ENDPOINT_URL (default http://127.0.0.1:4599), AWS_REGION (default
us-east-1), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (dummy values; default "testing").
"""

from __future__ import annotations

import argparse
import io
import json
import os
import secrets
import sys
import urllib.request
import zipfile
from datetime import datetime, timezone

import boto3
from botocore.exceptions import ClientError

WORLD_OPEN = ("0.0.0.0/0", "::/0")
ENCRYPTION_RUNBOOK = "AWS-EnableS3BucketEncryption"
SG_RUNBOOK = "AWS-DisablePublicAccessForSecurityGroup"
SG, PARAM, BUCKET = "AWS::EC2::SecurityGroup", "AWS::SSM::Parameter", "AWS::S3::Bucket"


def endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4599")


def region() -> str:
    return os.environ.get("AWS_REGION", "us-east-1")


def client(service: str):
    return boto3.client(
        service,
        endpoint_url=endpoint(),
        region_name=region(),
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

    def finding(rule, resource, kind, compliance="NON_COMPLIANT", annotation=None):
        return {
            "rule": rule,
            "resource": resource,
            "type": kind,
            "compliance": compliance,
            "annotation": annotation,
        }

    return [
        finding("restricted-ssh", world["ssh_group"], SG, annotation="Port 22 is open to 0.0.0.0/0"),
        finding(
            "restricted-common-ports", world["ftp_group"], SG, annotation="Port 21 is open to 0.0.0.0/0"
        ),
        finding(
            "ssm-parameter-drift",
            world["parameter"],
            PARAM,
            annotation=f"differs from its baseline {world['baseline_parameter']}",
        ),
        finding(
            "s3-bucket-server-side-encryption-enabled",
            world["bucket"],
            BUCKET,
            annotation="no default encryption",
        ),
        finding("ec2-imdsv2-check", "i-0123456789abcdef0", "AWS::EC2::Instance"),
        finding("restricted-ssh", world["ftp_group"], SG, compliance="COMPLIANT"),
        finding("cloudtrail-enabled", "management-trail", "AWS::CloudTrail::Trail"),
    ]


# --- Config rules and evaluations ------------------------------------------------

# The rules the findings name, as AWS managed rules: (source identifier, resource types
# in scope, input parameters). The emulator checks identifiers against AWS's list.
MANAGED_RULES = {
    "restricted-ssh": ("INCOMING_SSH_DISABLED", [SG], None),
    # The managed rule's own default ports, written out so `reevaluate` reads them back
    # from the rule, as the rule does.
    "restricted-common-ports": (
        "RESTRICTED_INCOMING_TRAFFIC",
        [SG],
        {
            "blockedPort1": "20",
            "blockedPort2": "21",
            "blockedPort3": "3389",
            "blockedPort4": "3306",
            "blockedPort5": "4333",
        },
    ),
    "s3-bucket-server-side-encryption-enabled": (
        "S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED",
        [BUCKET],
        None,
    ),
    "ec2-imdsv2-check": ("EC2_IMDSV2_CHECK", ["AWS::EC2::Instance"], None),
    # Periodic and account-wide: no resource types in scope.
    "cloudtrail-enabled": ("CLOUD_TRAIL_ENABLED", [], None),
}

# Parameter drift has no AWS managed rule: it is a custom rule. Config (and the emulator)
# refuses a CUSTOM_LAMBDA rule whose function does not exist, so `config-rules` creates a
# placeholder function for it. Nothing ever invokes it: `evaluate` and `reevaluate` put
# the rule's evaluations, as its function would.
DRIFT_RULE = "ssm-parameter-drift"
DRIFT_FUNCTION = "redress-demo-parameter-drift"
DRIFT_ROLE = "redress-demo-config-rule"


def demo_rule_names() -> list[str]:
    return list(MANAGED_RULES) + [DRIFT_RULE]


def placeholder_function() -> str:
    """The ARN of the drift rule's Lambda function (created, with its role, if missing)."""
    iam, lam = client("iam"), client("lambda")
    try:
        role_arn = iam.get_role(RoleName=DRIFT_ROLE)["Role"]["Arn"]
    except ClientError as err:
        if error_code(err) != "NoSuchEntity":
            raise
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        role_arn = iam.create_role(RoleName=DRIFT_ROLE, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
    try:
        return lam.get_function(FunctionName=DRIFT_FUNCTION)["Configuration"]["FunctionArn"]
    except ClientError as err:
        if error_code(err) != "ResourceNotFoundException":
            raise
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr(
            "index.py",
            "def handler(event, context):\n"
            "    raise NotImplementedError('the redress demo plays this rule')\n",
        )
    return lam.create_function(
        FunctionName=DRIFT_FUNCTION,
        Runtime="python3.12",
        Role=role_arn,
        Handler="index.handler",
        Code={"ZipFile": code.getvalue()},
        Description="placeholder for the redress demo's ssm-parameter-drift Config rule",
    )["FunctionArn"]


def config_rules(fresh: bool) -> list[str]:
    """Puts the demo's Config rules; with `fresh`, deletes them first, so no result of an
    earlier run remains and every evaluation is a change (which is what sends an event)."""
    config = client("config")
    names = demo_rule_names()
    if fresh:
        existing = {r["ConfigRuleName"] for r in all_rules(config)}
        for name in names:
            if name in existing:
                config.delete_config_rule(ConfigRuleName=name)
    for name, (identifier, types, params) in MANAGED_RULES.items():
        rule = {"ConfigRuleName": name, "Source": {"Owner": "AWS", "SourceIdentifier": identifier}}
        if types:
            rule["Scope"] = {"ComplianceResourceTypes": types}
        if params:
            rule["InputParameters"] = json.dumps(params)
        config.put_config_rule(ConfigRule=rule)
    config.put_config_rule(
        ConfigRule={
            "ConfigRuleName": DRIFT_RULE,
            "Description": "A parameter under /payments/current/ differs from its baseline",
            "Source": {
                "Owner": "CUSTOM_LAMBDA",
                "SourceIdentifier": placeholder_function(),
                "SourceDetails": [
                    {
                        "EventSource": "aws.config",
                        "MessageType": "ScheduledNotification",
                        "MaximumExecutionFrequency": "TwentyFour_Hours",
                    }
                ],
            },
        }
    )
    lines = []
    for r in config.describe_config_rules(ConfigRuleNames=names)["ConfigRules"]:
        source = r["Source"]
        kind = (
            f"AWS managed rule {source['SourceIdentifier']}"
            if source["Owner"] == "AWS"
            else f"custom rule (Lambda {source['SourceIdentifier'].rsplit(':', 1)[-1]})"
        )
        lines.append(f"{r['ConfigRuleName']:<42} {kind:<58} {r['ConfigRuleArn']}")
    return lines


def all_rules(config) -> list[dict]:
    rules, token = [], None
    while True:
        page = config.describe_config_rules(**({"NextToken": token} if token else {}))
        rules += page["ConfigRules"]
        token = page.get("NextToken")
        if not token:
            return rules


def put_evaluation(config, rule: str, kind: str, resource: str, compliance: str, annotation):
    """One evaluation of `rule`; locally the ResultToken is the rule's name."""
    evaluation = {
        "ComplianceResourceType": kind,
        "ComplianceResourceId": resource,
        "ComplianceType": compliance,
        "OrderingTimestamp": datetime.now(timezone.utc),
    }
    if annotation:
        evaluation["Annotation"] = annotation[:256]
    config.put_evaluations(Evaluations=[evaluation], ResultToken=rule)


def evaluate(world: dict) -> list[str]:
    """Puts each finding into Config, as its rule's evaluation of the resource."""
    config = client("config")
    lines = []
    for f in findings(world):
        put_evaluation(
            config, f["rule"], f["type"], f["resource"], f["compliance"], f["annotation"]
        )
        line = f"{f['compliance']:<14} {f['rule']:<42} {f['type']} {f['resource']}"
        lines.append(line + (f": {f['annotation']}" if f["annotation"] else ""))
    return lines


# --- playing the rules: what each would conclude now -------------------------------


def tcp_ports_open_to_world(ec2, group_id: str, ports: list[int]) -> list[str] | None:
    """`port from source` for each of `ports` open to the world (TCP, or all traffic);
    None when the group is gone."""
    try:
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    except ClientError as err:
        if error_code(err) == "InvalidGroup.NotFound":
            return None
        raise
    hits = set()
    for perm in group.get("IpPermissions", []):
        sources = [r["CidrIp"] for r in perm.get("IpRanges", [])] + [
            r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])
        ]
        for source in (s for s in sources if s in WORLD_OPEN):
            for port in ports:
                every = perm["IpProtocol"] == "-1"
                tcp_range = perm["IpProtocol"] in ("tcp", "6") and (
                    perm.get("FromPort", 0) <= port <= perm.get("ToPort", 65535)
                )
                if every or tcp_range:
                    hits.add((port, source))
    return [f"Port {port} is open to {source}" for port, source in sorted(hits)]


def blocked_ports(rule: dict) -> list[int]:
    """RESTRICTED_INCOMING_TRAFFIC's ports: blockedPort1-5 and blockedPorts, from the rule."""
    params = json.loads(rule.get("InputParameters") or "{}")
    ports = [
        int(v)
        for k, v in sorted(params.items())
        if k.startswith("blockedPort") and k[-1].isdigit()
    ]
    ports += [int(p) for p in params.get("blockedPorts", "").split(",") if p.strip()]
    return ports or [20, 21, 3389, 3306, 4333]


def judge(rule: dict, resource: str, world: dict) -> tuple[str, str | None, str]:
    """(compliance, annotation, why) as the rule would evaluate the resource now."""
    name = rule["ConfigRuleName"]
    if name in ("restricted-ssh", "restricted-common-ports"):
        ports = [22] if name == "restricted-ssh" else blocked_ports(rule)
        hits = tcp_ports_open_to_world(client("ec2"), resource, ports)
        if hits is None:
            return "NOT_APPLICABLE", None, "the security group is gone"
        if hits:
            return "NON_COMPLIANT", "; ".join(hits), "; ".join(hits)
        if len(ports) == 1:
            return "COMPLIANT", None, f"port {ports[0]} is not open to the world"
        listed = ", ".join(str(p) for p in ports)
        return "COMPLIANT", None, f"none of ports {listed} is open to the world"
    if name == DRIFT_RULE:
        ssm = client("ssm")
        current = parameter_value(ssm, resource)
        baseline = parameter_value(ssm, world["baseline_parameter"])
        if current is None:
            return "NOT_APPLICABLE", None, "the parameter is gone"
        if current == baseline:
            return "COMPLIANT", None, f"= {current}, as its baseline"
        note = f"= {current}, baseline {baseline}"
        return "NON_COMPLIANT", note, note
    if name == "s3-bucket-server-side-encryption-enabled":
        try:
            encryption = bucket_encryption(client("s3"), resource)
        except ClientError as err:
            if error_code(err) == "NoSuchBucket":
                return "NOT_APPLICABLE", None, "the bucket is gone"
            raise
        if encryption:
            return "COMPLIANT", None, f"default encryption {encryption}"
        return "NON_COMPLIANT", "no default encryption", "no default encryption"
    raise KeyError(name)


PLAYED = (
    "restricted-ssh",
    "restricted-common-ports",
    DRIFT_RULE,
    "s3-bucket-server-side-encryption-enabled",
)


def config_get(path: str):
    with urllib.request.urlopen(endpoint().rstrip("/") + path, timeout=10) as response:
        return json.load(response)


def reevaluate(world: dict, since: float) -> list[str]:
    """Answers the StartConfigRulesEvaluation requests made since `since`: every resource
    of the world each named rule covers is evaluated again and the result put into Config
    (a change of compliance sends an event, as on AWS)."""
    account = client("sts").get_caller_identity()["Account"]
    asked: list[str] = []
    for request in config_get("/_redress/config-evaluations"):
        mine = (request["account"], request["region"]) == (account, region())
        if request["time"] < since or not mine:
            continue
        for name in request["config_rule_names"]:
            if name not in asked:
                asked.append(name)
    if not asked:
        return ["Nobody asked Config to re-evaluate a rule."]
    config = client("config")
    rules = {r["ConfigRuleName"]: r for r in all_rules(config)}
    lines = [f"StartConfigRulesEvaluation was called for: {', '.join(asked)}"]
    for name in asked:
        targets = [f for f in findings(world) if f["rule"] == name]
        if name not in PLAYED or name not in rules or not targets:
            lines.append(f"  {name}: not a rule this demo plays; its results stay as they were")
            continue
        for f in targets:
            compliance, annotation, why = judge(rules[name], f["resource"], world)
            put_evaluation(config, name, f["type"], f["resource"], compliance, annotation)
            lines.append(f"  {compliance:<14} {name:<42} {f['resource']}: {why}")
    return lines


# --- outcome: each finding from start to end -------------------------------------


def outcome(world: dict, records: list[dict]) -> list[str]:
    """A row per finding: what redress did and how it ended, from the audit records.

    A finding's records are those of its event (the first record naming its rule and
    resource): the router's decision, the executor's fix, and the closure check's verdict
    carry the same event id. Later events about the resource (Config's COMPLIANT after
    the fix) are other events."""
    by_event: dict[str, list[dict]] = {}
    for r in records:
        by_event.setdefault(r.get("event_id") or "", []).append(r)
    rows, ends = [], []
    claimed = set()
    for f in findings(world):
        first = next(
            (
                r
                for r in records
                if r.get("config_rule") == f["rule"]
                and r.get("resource_id") == f["resource"]
                and r.get("event_id") not in claimed
            ),
            None,
        )
        subject = f"{f['rule']} on {f['resource']}"
        if f["compliance"] != "NON_COMPLIANT":
            subject += f" ({f['compliance']})"
        if first is None:
            rows.append((subject, "-", "no audit record: the event never reached redress"))
            ends.append("not seen")
            continue
        claimed.add(first.get("event_id"))
        done, end, label = fate(by_event.get(first.get("event_id") or "", [first]))
        rows.append((subject, done, end))
        ends.append(label)
    # Messages that were never findings (the injection attempt).
    for r in records:
        if r.get("decision") == "dead_lettered" and not r.get("config_rule"):
            subject = f"malformed message {r.get('event_id') or ''}".strip()
            rows.append((subject, "nothing", f"dead-lettered: {r.get('reason', '')}"))
            ends.append("dead-lettered")
    header = ("FINDING", "WHAT REDRESS DID", "")
    width = [max(len(row[i]) for row in rows + [header]) for i in (0, 1)]
    lines = [f"{'FINDING':<{width[0]}}  {'WHAT REDRESS DID':<{width[1]}}  END"]
    lines += [f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows]
    counts: dict[str, int] = {}
    for e in ends:
        counts[e] = counts.get(e, 0) + 1
    lines.append(
        f"Summary: {len(ends)} messages: "
        + ", ".join(f"{n} {label}" for label, n in counts.items())
    )
    return lines


def fate(records: list[dict]) -> tuple[str, str, str]:
    """(what was done, how it ended, a short label) from one event's audit records."""
    decisions = [r["decision"] for r in records]
    fixes = [r for r in records if r.get("worker") == "executor" and r.get("outcome")]
    done = "nothing"
    if fixes:
        fix = fixes[-1]
        done = f"{fix.get('action', 'fix')}: {fix['outcome']}"
    last = records[-1]
    reason = last.get("reason") or ""
    if "verified" in decisions:
        r = next(r for r in records if r["decision"] == "verified")
        secs = r.get("time_to_remediate_secs")
        ttr = f" (time to remediate {secs}s)" if secs is not None else ""
        return done, f"verified by Config{ttr}", "verified"
    if "still_non_compliant" in decisions:
        end = "Config still reports NON_COMPLIANT after the fix: sent for approval"
        return done, end, "still non-compliant"
    if last["decision"] == "approval_requested":
        approval = reason.replace("approval id ", "")
        if not fixes:
            done = "asked a person"
        end = f"waiting for approval ({approval}, {last.get('severity', '?')})"
        return done, end, "waiting for approval"
    if last["decision"] in ("skipped", "exempt_by_tag"):
        return done, f"skipped: {reason}", "skipped"
    if last["decision"] == "dead_lettered":
        return done, f"dead-lettered: {reason}", "dead-lettered"
    if fixes and fixes[-1]["outcome"] == "already_compliant":
        return done, "already compliant, says Config", "already compliant"
    if fixes and fixes[-1]["outcome"] == "succeeded":
        return done, "fixed; Config has not confirmed it yet", "awaiting confirmation"
    return done, f"{last['decision']}: {reason}".rstrip(": "), last["decision"]


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
    for name, text in [
        ("report", "describe the demo world as it is now"),
        ("findings", "the findings about the world, one JSON object per line"),
        ("evaluate", "put the findings into Config as evaluations (after config-rules)"),
        ("reevaluate", "answer Config re-evaluation requests by evaluating the world again"),
        ("outcome", "each finding, what redress did and how it ended"),
    ]:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--world", required=True, help="the JSON that create printed")
        if name == "reevaluate":
            sub.add_argument(
                "--since", type=float, default=0.0, help="only requests made after this unix time"
            )
        if name == "outcome":
            sub.add_argument("--audit", required=True, help="audit records (JSON lines)")
    rules_parser = commands.add_parser(
        "config-rules", help="put the Config rules the findings name"
    )
    rules_parser.add_argument(
        "--fresh", action="store_true", help="delete them first (drops earlier results)"
    )
    args = parser.parse_args(argv)

    if args.command == "create":
        print(json.dumps(create()))
        return 0
    if args.command == "config-rules":
        print("\n".join(config_rules(args.fresh)))
        return 0
    with open(args.world) as f:
        world = json.load(f)
    if args.command == "report":
        print("\n".join(report(world)))
    elif args.command == "findings":
        for f in findings(world):
            print(json.dumps(f))
    elif args.command == "evaluate":
        print("\n".join(evaluate(world)))
    elif args.command == "reevaluate":
        print("\n".join(reevaluate(world, args.since)))
    else:
        with open(args.audit) as f:
            records = [json.loads(line) for line in f if line.strip()]
        print("\n".join(outcome(world, records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
