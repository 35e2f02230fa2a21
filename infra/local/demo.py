"""Build and inspect a small demo world on the local AWS stack (infra/local/stack.py),
and play the AWS managed Config rules about it that nothing evaluates locally.

    demo.py create                        build the world; print its ids as one JSON object
    demo.py report --world FILE           describe the world as it is now (FILE: create's JSON)
    demo.py findings --world FILE         the Config findings about it, one JSON object per line
    demo.py config-rules [--fresh]        list the demo's Config rules: redress's own (made by
                                          `redress provision`) and the AWS managed rules the
                                          demo plays (put with PutConfigRule)
    demo.py evaluate --world FILE         put the played rules' findings into Config
                                          (PutEvaluations)
    demo.py reevaluate --world FILE [--since T]
                                          answer the StartConfigRulesEvaluation requests made
                                          since unix time T for the played rules: evaluate the
                                          world again, as they would, and put the results
    demo.py verdict --world FILE          Config's current result for each finding of
                                          redress's rules; exit 1 unless none is NON_COMPLIANT
    demo.py outcome --world FILE --audit FILE
                                          each finding, what redress did, and how it ended
                                          (from the audit records of the runs)

The world (one application, `payments`, and one web server's security group):
  - security group redress-demo-web: TCP 22 and 21 open to the world, 21 also from 10/8,
    443 open to the world (public web traffic, which the default rules leave alone);
  - parameters of the payments app, live under /payments/current/ and approved under
    /payments/approved/: db_pool_size drifted (200, approved 20), allowed_currencies
    missing (a StringList baseline without a live parameter), debug_token unauthorized
    (a SecureString with no baseline; its value is never printed), timeout_ms as approved;
  - an S3 bucket without default encryption;
  - the IAM user redress-demo-approver, whom the demo's policy names as the approver.

Findings start where they start on AWS: as Config evaluations. redress's three custom
rules are real on the local stack: `redress evaluate RULE` asks Config to run one, and the
local Config stand-in invokes the rule's function (`redress evaluate --invocation -`).
Nothing evaluates AWS managed rules locally, so for the bucket (and two findings redress
does not fix) `config-rules` creates managed rules, `evaluate` puts their evaluations, and
`reevaluate` plays them when redress asks Config to look again after a fix. Either way
the local stack's Config stand-in turns every change of compliance into a `Config Rules
Compliance Change` event on the default bus, which EventBridge delivers to redress-events.

`create` can be re-run: it reuses the same-named group (re-adding its rules), puts the
parameters back as described (deleting the live allowed_currencies), reuses the approver
and makes a new bucket.

Environment: AWS_ENDPOINT_URL (default http://127.0.0.1:4599), AWS_REGION (default
us-east-1), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (dummy values; default "testing"),
AWS_SESSION_TOKEN (optional).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import urllib.request
from datetime import datetime, timezone

import boto3
from botocore.exceptions import ClientError

WORLD_OPEN = ("0.0.0.0/0", "::/0")
ENCRYPTION_RUNBOOK = "AWS-EnableS3BucketEncryption"
SG, PARAM, BUCKET = "AWS::EC2::SecurityGroup", "AWS::SSM::Parameter", "AWS::S3::Bucket"
GROUP_NAME = "redress-demo-web"
APP = "payments"
CURRENT, APPROVED = f"/{APP}/current/", f"/{APP}/approved/"
QUARANTINE = "/redress/quarantine/"
APPROVER = "redress-demo-approver"

# redress's own Config rules (`redress provision` creates them; Config runs them).
ADMIN_RULE = "redress-sg-admin-ports"
PRIVILEGED_RULE = "redress-sg-privileged-ports"
DRIFT_RULE = "redress-parameter-drift"
REDRESS_RULES = (ADMIN_RULE, PRIVILEGED_RULE, DRIFT_RULE)


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
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN") or None,
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


def ensure_approver(iam) -> tuple[str, str]:
    """(ARN, access key id) of the demo's approver, created if missing. The secret key is
    dropped unseen: the local stack does not check signatures, so any secret signs."""
    try:
        arn = iam.get_user(UserName=APPROVER)["User"]["Arn"]
    except ClientError as err:
        if error_code(err) != "NoSuchEntity":
            raise
        arn = iam.create_user(UserName=APPROVER)["User"]["Arn"]
    keys = iam.list_access_keys(UserName=APPROVER)["AccessKeyMetadata"]
    if keys:
        return arn, keys[0]["AccessKeyId"]
    return arn, iam.create_access_key(UserName=APPROVER)["AccessKey"]["AccessKeyId"]


def create() -> dict:
    ec2, ssm, s3 = client("ec2"), client("ssm"), client("s3")
    group = ensure_group(
        ec2,
        GROUP_NAME,
        "redress demo: a web server with SSH and FTP open to the world",
        [tcp(22, "0.0.0.0/0"), tcp(21, "0.0.0.0/0"), tcp(21, "10.0.0.0/8"), tcp(443, "0.0.0.0/0")],
    )

    def put(name: str, value: str, kind: str) -> None:
        ssm.put_parameter(Name=name, Value=value, Type=kind, Overwrite=True)

    put(f"{APPROVED}db_pool_size", "20", "String")
    put(f"{CURRENT}db_pool_size", "200", "String")  # drifted
    put(f"{APPROVED}allowed_currencies", "USD,EUR,GBP", "StringList")
    try:  # missing: only its baseline exists
        ssm.delete_parameter(Name=f"{CURRENT}allowed_currencies")
    except ClientError as err:
        if error_code(err) != "ParameterNotFound":
            raise
    put(f"{CURRENT}debug_token", secrets.token_urlsafe(18), "SecureString")  # unauthorized
    put(f"{APPROVED}timeout_ms", "3000", "String")
    put(f"{CURRENT}timeout_ms", "3000", "String")  # as approved

    bucket = f"redress-demo-unencrypted-{secrets.token_hex(4)}"
    where = s3.meta.region_name
    location = {} if where == "us-east-1" else {
        "CreateBucketConfiguration": {"LocationConstraint": where}
    }
    s3.create_bucket(Bucket=bucket, **location)
    # Real S3 gives every new bucket SSE-S3 by default; if the emulator does too,
    # remove it so the bucket starts out without default encryption.
    if bucket_encryption(s3, bucket) is not None:
        s3.delete_bucket_encryption(Bucket=bucket)

    approver, approver_key = ensure_approver(client("iam"))
    return {
        "group": group,
        "drifted": f"{CURRENT}db_pool_size",
        "missing": f"{CURRENT}allowed_currencies",
        "unauthorized": f"{CURRENT}debug_token",
        "bucket": bucket,
        "approver": approver,
        "approver_key": approver_key,
    }


# --- findings --------------------------------------------------------------------


def findings(world: dict) -> list[dict]:
    """What AWS Config reports about the world (and some findings redress does not fix):
    redress's rules' results as they will be, and the played managed rules' ones."""

    def finding(rule, resource, kind, annotation=None, compliance="NON_COMPLIANT"):
        return {
            "rule": rule,
            "resource": resource,
            "type": kind,
            "compliance": compliance,
            "annotation": annotation,
        }

    return [
        finding(ADMIN_RULE, world["group"], SG, "tcp 22 from 0.0.0.0/0"),
        finding(PRIVILEGED_RULE, world["group"], SG, "tcp 21 from 0.0.0.0/0"),
        finding(DRIFT_RULE, world["drifted"], PARAM, "drifted"),
        finding(DRIFT_RULE, world["missing"], PARAM, "missing"),
        finding(DRIFT_RULE, world["unauthorized"], PARAM, "unauthorized"),
        finding(
            "s3-bucket-server-side-encryption-enabled",
            world["bucket"],
            BUCKET,
            "no default encryption",
        ),
        finding("ec2-imdsv2-check", "i-0123456789abcdef0", "AWS::EC2::Instance"),
        finding("cloudtrail-enabled", "management-trail", "AWS::CloudTrail::Trail"),
    ]


# --- Config rules and evaluations ------------------------------------------------

# The AWS managed rules the demo plays: (source identifier, resource types in scope).
# The emulator checks identifiers against AWS's list.
MANAGED_RULES = {
    "s3-bucket-server-side-encryption-enabled": (
        "S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED",
        [BUCKET],
    ),
    "ec2-imdsv2-check": ("EC2_IMDSV2_CHECK", ["AWS::EC2::Instance"]),
    # Periodic and account-wide: no resource types in scope.
    "cloudtrail-enabled": ("CLOUD_TRAIL_ENABLED", []),
}


def config_rules(fresh: bool) -> list[str]:
    """Puts the played managed rules (with `fresh`, deleting them first, so no result of
    an earlier run remains and every evaluation is a change, which is what sends an
    event); lists them after redress's own rules, which `redress provision` made."""
    config = client("config")
    if fresh:
        existing = {r["ConfigRuleName"] for r in all_rules(config)}
        for name in MANAGED_RULES:
            if name in existing:
                config.delete_config_rule(ConfigRuleName=name)
    for name, (identifier, types) in MANAGED_RULES.items():
        rule = {"ConfigRuleName": name, "Source": {"Owner": "AWS", "SourceIdentifier": identifier}}
        if types:
            rule["Scope"] = {"ComplianceResourceTypes": types}
        config.put_config_rule(ConfigRule=rule)
    names = list(REDRESS_RULES) + list(MANAGED_RULES)
    held = {r["ConfigRuleName"]: r for r in all_rules(config)}
    lines = []
    for name in names:
        r = held.get(name)
        if r is None:
            lines.append(f"{name:<42} missing: run `redress provision`")
            continue
        source = r["Source"]
        kind = (
            f"AWS managed rule {source['SourceIdentifier']}"
            if source["Owner"] == "AWS"
            else f"custom rule (Lambda {source['SourceIdentifier'].rsplit(':', 1)[-1]})"
        )
        lines.append(f"{name:<42} {kind:<50} {r['ConfigRuleArn']}")
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
    """Puts each played rule's finding into Config, as the rule's evaluation."""
    config = client("config")
    lines = []
    for f in findings(world):
        if f["rule"] not in MANAGED_RULES:
            continue
        put_evaluation(
            config, f["rule"], f["type"], f["resource"], f["compliance"], f["annotation"]
        )
        line = f"{f['compliance']:<14} {f['rule']:<42} {f['type']} {f['resource']}"
        lines.append(line + (f": {f['annotation']}" if f["annotation"] else ""))
    return lines


# --- playing the managed rules: what each would conclude now -----------------------

# The managed rules `reevaluate` can judge again.
PLAYED = ("s3-bucket-server-side-encryption-enabled",)


def judge(name: str, resource: str) -> tuple[str, str | None, str]:
    """(compliance, annotation, why) as the played rule would evaluate the resource now."""
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


def config_get(path: str):
    with urllib.request.urlopen(endpoint().rstrip("/") + path, timeout=10) as response:
        return json.load(response)


def reevaluate(world: dict, since: float) -> list[str]:
    """Answers the StartConfigRulesEvaluation requests made since `since`: redress's own
    rules Config has run already (the stand-in invokes their function); each played rule
    evaluates the world's resources again and the result goes into Config (a change of
    compliance sends an event, as on AWS)."""
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
    lines = [f"StartConfigRulesEvaluation was called for: {', '.join(asked)}"]
    for name in asked:
        targets = [f for f in findings(world) if f["rule"] == name]
        if name in REDRESS_RULES:
            lines.append(f"  {name}: redress's own rule; Config ran it (the stand-in invoked it)")
            continue
        if name not in PLAYED or not targets:
            lines.append(f"  {name}: not a rule this demo plays; its results stay as they were")
            continue
        for f in targets:
            compliance, annotation, why = judge(name, f["resource"])
            put_evaluation(config, name, f["type"], f["resource"], compliance, annotation)
            lines.append(f"  {compliance:<14} {name:<42} {f['resource']}: {why}")
    return lines


# --- verdict: has the loop closed? ---------------------------------------------------


def verdict(world: dict) -> tuple[bool, list[str]]:
    """Config's current result of each finding of redress's rules, and whether none is
    NON_COMPLIANT (a deleted resource is NOT_APPLICABLE, as Config reports it)."""
    config = client("config")
    closed, lines = True, []
    for f in findings(world):
        if f["rule"] not in REDRESS_RULES:
            continue
        results = config.get_compliance_details_by_resource(
            ResourceType=f["type"], ResourceId=f["resource"]
        )["EvaluationResults"]
        now = next(
            (
                r["ComplianceType"]
                for r in results
                if r["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ConfigRuleName"]
                == f["rule"]
            ),
            "no result",
        )
        ok = now in ("COMPLIANT", "NOT_APPLICABLE")
        closed &= ok
        note = "" if now != "NOT_APPLICABLE" else " (deleted: Config evaluates it no more)"
        lines.append(f"  {now:<14} {f['rule']:<30} {f['resource']}{note}")
    head = (
        "Closed: none of the demo's findings under redress's rules is NON_COMPLIANT any more"
        if closed
        else "NOT closed: some finding under redress's rules is still open"
    )
    return closed, [head] + lines


# --- outcome: each finding from start to end -------------------------------------


def outcome(world: dict, records: list[dict]) -> list[str]:
    """A row per finding: what redress did and how it ended, from the audit records.

    A finding's records are those of its event (the first record naming its rule and
    resource): the router's decision, the approval, the executor's fix, and the closure
    check's verdict carry the same event id. Later events about the resource (Config's
    COMPLIANT after the fix) are other events."""
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
        approved = next((r for r in records if r["decision"] == "approved"), None)
        if approved is not None:
            done += f", approved by {(approved.get('actor') or '?').rsplit('/', 1)[-1]}"
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


def report_group(ec2, group_id: str) -> list[str]:
    try:
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    except ClientError as err:
        if error_code(err) == "InvalidGroup.NotFound":
            return [f"Security group {group_id}: not found"]
        raise
    lines = [f"Security group {group['GroupName']} ({group_id}):"]
    # By port number (all traffic first), then source.
    sources = [
        (perm.get("FromPort", -1), ports(perm), source)
        for perm in group.get("IpPermissions", [])
        for source in [r["CidrIp"] for r in perm.get("IpRanges", [])]
        + [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", [])]
        + [p["GroupId"] for p in perm.get("UserIdGroupPairs", [])]
    ]
    if not sources:
        lines.append("    no ingress rules")
    for _, port_text, source in sorted(sources):
        exposure = "open to the world" if source in WORLD_OPEN else "not open to the world"
        lines.append(f"    {port_text:<12} from {source:<14} {exposure}")
    return lines


def parameters_under(ssm, path: str) -> dict[str, dict]:
    """Every parameter under `path`, by name (decrypted, to compare; never printed)."""
    found: dict[str, dict] = {}
    for page in ssm.get_paginator("get_parameters_by_path").paginate(
        Path=path, Recursive=True, WithDecryption=True
    ):
        for p in page["Parameters"]:
            found[p["Name"]] = p
    return found


def shown(p: dict | None) -> str:
    """A parameter as the report shows it: its type and value, never a SecureString's."""
    if p is None:
        return "(none)"
    if p["Type"] == "SecureString":
        return "SecureString (value not shown)"
    return f"{p['Type']} {p['Value']}"


def report_parameters(ssm) -> list[str]:
    current, approved = parameters_under(ssm, CURRENT), parameters_under(ssm, APPROVED)
    names = sorted({n[len(CURRENT):] for n in current} | {n[len(APPROVED):] for n in approved})
    rows = []
    for name in names:
        live, base = current.get(CURRENT + name), approved.get(APPROVED + name)
        if live is None:
            state = "missing"
        elif base is None:
            state = "unauthorized"
        elif (live["Value"], live["Type"]) != (base["Value"], base["Type"]):
            state = "drifted"
        else:
            state = "as approved"
        rows.append((name, shown(live), shown(base), state))
    header = ("NAME", "CURRENT", "APPROVED", "STATE")
    width = [max(len(r[i]) for r in rows + [header]) for i in range(3)]
    lines = [f"Parameters of the {APP} app ({CURRENT} against the approved {APPROVED}):"]
    lines += [
        f"    {a:<{width[0]}}  {b:<{width[1]}}  {c:<{width[2]}}  {d}"
        for a, b, c, d in [header] + rows
    ]
    kept = parameters_under(ssm, QUARANTINE)
    if kept:
        lines.append(f"Quarantine copies ({QUARANTINE}: deleted parameters, restorable):")
        lines += [f"    {name}  {shown(p)}" for name, p in sorted(kept.items())]
    else:
        lines.append(f"Quarantine copies ({QUARANTINE}): none")
    return lines


def report(world: dict) -> list[str]:
    ec2, ssm, s3 = client("ec2"), client("ssm"), client("s3")
    lines = report_group(ec2, world["group"])
    lines += report_parameters(ssm)

    # Only executions that targeted this world (others may share the stack).
    bucket = world["bucket"]
    runs = [
        r
        for r in executions()
        if any(v and v[0] == bucket for v in r.get("Parameters", {}).values())
    ]
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
    lines.append(f"Approver: {world['approver']} (the one approver the demo's policy names)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create", help="build the demo world and print its ids as JSON")
    for name, text in [
        ("report", "describe the demo world as it is now"),
        ("findings", "the findings about the world, one JSON object per line"),
        ("evaluate", "put the played rules' findings into Config (after config-rules)"),
        ("reevaluate", "answer Config re-evaluation requests for the played rules"),
        ("verdict", "Config's results for redress's rules' findings; exit 1 if any is open"),
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
        "config-rules", help="put the played managed rules; list every rule of the demo"
    )
    rules_parser.add_argument(
        "--fresh", action="store_true", help="delete the played rules first (drops their results)"
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
    elif args.command == "verdict":
        closed, lines = verdict(world)
        print("\n".join(lines))
        return 0 if closed else 1
    else:
        with open(args.audit) as f:
            records = [json.loads(line) for line in f if line.strip()]
        print("\n".join(outcome(world, records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
