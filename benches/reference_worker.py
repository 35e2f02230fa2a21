"""What a user would otherwise write: a plain boto3 remediation worker.

The baseline benches/pipeline.py measures redress against. Written the way the AWS
samples write such a worker, fairly and competently: one client per service reused for
every call, batches of 10 with a short long-poll, one batch delete per batch, no
threads. It does the router's and the executor's job in one process, with no
intermediate tasks queue.

It makes the AWS calls per event that redress's executor makes for the same finding
(benches/pipeline.py prints both call mixes and says whether the non-SQS ones match),
with the same safety path:

  0. at start: the account (GetCallerIdentity) and that the ledger table exists
     (DescribeTable), as redress's workers find them at start;
  1. the finding's exception, if any (ledger GetItem `ex#ACCOUNT#REGION#RULE#RESOURCE`);
  2. Config's word: the rule's current result for the resource
     (GetComplianceDetailsByResource) must be NON_COMPLIANT, and the rule itself
     (DescribeConfigRules) must exist with the ARN the event names;
  3. the fleet's breaker (ledger GetItem `breaker#fleet`) must not be open;
  4. the finding's ledger entry (GetItem) must not exist yet: a finding is fixed once;
  5. intent with a lease, written only if the entry is absent (conditional PutItem);
  6. the fix: read the approved baseline and the current value, overwrite the current
     one if they differ, read it back to check and to record its new version;
  7. the outcome, written only while this worker holds the intent's lease
     (conditional PutItem), and the minute's outcome counted on the breaker (UpdateItem);
  8. Config asked to re-evaluate the rule, coalesced: at most one
     StartConfigRulesEvaluation per rule a second, as redress's re-evaluator does;
  9. a look at Config's verdict scheduled: a delayed message (env
     BENCH_RECHECK_AFTER_S, default 60), sent for the whole batch with SendMessageBatch
     before the batch is deleted. When it comes due the worker asks Config again and
     closes the ledger entry (verified, or still non-compliant at the deadline), or
     looks again later, each wait twice the last.

For each message: parse the EventBridge envelope of a Config compliance change, look the
Config rule up in a small severity table, skip COMPLIANT findings, and for the parameter
drift rule go through the steps above.

Usage: reference_worker.py [QUEUE_URL]   (else env REFERENCE_QUEUE_URL, else the queue
named by REDRESS_EVENTS_QUEUE, default "bench-events"). AWS settings come from the
standard environment (AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION, credentials);
the ledger table from REDRESS_LEDGER_TABLE (default "redress-ledger"). Exits when a
receive returns nothing and the queue holds no visible or in-flight messages; prints
one summary line.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import sys
import time

import boto3
from botocore.exceptions import ClientError

REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
LEDGER_TABLE = os.environ.get("REDRESS_LEDGER_TABLE") or "redress-ledger"

BASELINE_PREFIX = "/bench/approved/"
CURRENT_PREFIX = "/bench/current/"
BREAKER_KEY = "breaker#fleet"
LEASE_SECONDS = 12 * 60
# Finished entries are kept this long (the table's TTL attribute), counters an hour.
RETENTION_SECONDS = 400 * 24 * 3600
REEVALUATION_WINDOW_S = 1.0
RECHECK_AFTER_S = int(os.environ.get("BENCH_RECHECK_AFTER_S") or 60)
VERIFY_DEADLINE_S = 15 * 60
MAX_DELAY_S = 900  # SQS's longest DelaySeconds

# Config rule name -> (policy rule id, severity, mode, action)
SEVERITY_TABLE = {
    "ssm-parameter-drift": ("param-drift", "MEDIUM", "auto", "restore_parameter_baseline"),
    "restricted-ssh": ("ssh-open", "HIGH", "approve", "revoke_public_ingress"),
    "ec2-imdsv2-check": ("imdsv2", "LOW", "notify", None),
}

sqs = boto3.client("sqs", region_name=REGION)
ssm = boto3.client("ssm", region_name=REGION)
config = boto3.client("config", region_name=REGION)
dynamodb = boto3.client("dynamodb", region_name=REGION)
ACCOUNT = boto3.client("sts", region_name=REGION).get_caller_identity()["Account"]
dynamodb.describe_table(TableName=LEDGER_TABLE)  # fails here if there is no ledger
# Whose intent an entry is: this process.
HOLDER = f"reference-{os.getpid()}-{secrets.token_hex(8)}"


class Skip(Exception):
    """The finding is not acted on; the message is done."""


def now_rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def s(value: str) -> dict:
    return {"S": value}


def n(value: int) -> dict:
    return {"N": str(value)}


def consistent_get(key: str) -> dict | None:
    return dynamodb.get_item(
        TableName=LEDGER_TABLE, Key={"id": s(key)}, ConsistentRead=True
    ).get("Item")


class Reevaluations:
    """Rules fixed since Config was last asked to re-evaluate them; asked at most once a
    window per rule, off the fix's path."""

    def __init__(self) -> None:
        self.pending: dict[str, float] = {}  # rule -> when first queued

    def request(self, rule: str) -> None:
        self.pending.setdefault(rule, time.monotonic())
        self.flush(force=False)

    def flush(self, force: bool = True) -> None:
        due = [
            r for r, since in self.pending.items()
            if force or time.monotonic() - since >= REEVALUATION_WINDOW_S
        ]
        if due:
            config.start_config_rules_evaluation(ConfigRuleNames=due)
            for r in due:
                del self.pending[r]


reevaluations = Reevaluations()
# Looks at Config to send after the batch: (message body, delay in seconds).
rechecks: list[tuple[str, int]] = []


def verify_with_config(detail: dict) -> None:
    """Raises Skip unless Config holds the resource NON_COMPLIANT under the rule the
    event names, with the ARN it names."""
    rule = detail["configRuleName"]
    results = config.get_compliance_details_by_resource(
        ResourceType=detail["resourceType"], ResourceId=detail["resourceId"]
    )["EvaluationResults"]
    current = next(
        (r for r in results
         if r["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ConfigRuleName"] == rule),
        None,
    )
    try:
        rules = config.describe_config_rules(ConfigRuleNames=[rule])["ConfigRules"]
    except config.exceptions.NoSuchConfigRuleException:
        rules = []
    if not rules:
        raise Skip(f"no such Config rule {rule}")
    if rules[0]["ConfigRuleArn"] != detail.get("configRuleARN", rules[0]["ConfigRuleArn"]):
        raise Skip(f"{rule} is {rules[0]['ConfigRuleArn']}, not the rule the event names")
    if current is None or current["ComplianceType"] != "NON_COMPLIANT":
        raise Skip(f"Config does not hold {detail['resourceId']} NON_COMPLIANT under {rule}")


def entry_id(rule_id: str, detail: dict) -> str:
    """The finding's ledger entry: one per (rule, resource, evaluation)."""
    evaluated = detail["newEvaluationResult"].get("resultRecordedTime", "")
    identity = "\x1f".join([
        rule_id, detail["configRuleName"], detail["awsAccountId"], detail["awsRegion"],
        detail["resourceType"], detail["resourceId"], evaluated,
    ])
    return "le-" + hashlib.sha256(identity.encode()).hexdigest()[:20]


def ledger_item(
    entry: str, rule_id: str, severity: str, detail: dict, event_id: str, status: str,
    at: float,
) -> dict:
    """The entry's item as redress's ledger lays it out."""
    today = dt.datetime.fromtimestamp(at, dt.timezone.utc).strftime("%Y-%m-%d")
    return {
        "id": s(entry),
        "version": n(1),
        "status": s(status),
        "rule_id": s(rule_id),
        "severity": s(severity),
        "at": s(now_rfc3339(at)),
        "actor": {"M": {"kind": s("automatic")}},
        "finding": {"M": {
            "account_id": s(detail["awsAccountId"]),
            "region": s(detail["awsRegion"]),
            "resource_type": s(detail["resourceType"]),
            "resource_id": s(detail["resourceId"]),
            "config_rule_name": s(detail["configRuleName"]),
            "config_rule_arn": s(detail.get("configRuleARN", "")),
            "compliance": s(detail["newEvaluationResult"]["complianceType"]),
            "evaluation_time": s(detail["newEvaluationResult"].get("resultRecordedTime", "")),
            "event_id": s(event_id),
        }},
        "action": {"M": {"remediate": {"M": {"fix": {"M": {
            "fix": s("restore_parameter_baseline"),
            "baseline_prefix": s(BASELINE_PREFIX),
            "current_prefix": s(CURRENT_PREFIX),
        }}}}}},
        "by_account": s(detail["awsAccountId"]),
        "by_rule": s(rule_id),
        "by_resource": s(detail["resourceId"]),
        "by_day": s(today),
        "times": {"M": {"decided_at": s(now_rfc3339(at)), "updated_at": s(now_rfc3339(at))}},
    }


def restore_parameter_baseline(current_name: str) -> tuple[dict, dict] | None:
    """Overwrites the current parameter with its approved baseline, then reads it back:
    (before, after) of the parameter, or None if it already matched."""
    if not current_name.startswith(CURRENT_PREFIX):
        raise Skip(f"{current_name}: not under {CURRENT_PREFIX}")
    baseline_name = BASELINE_PREFIX + current_name[len(CURRENT_PREFIX) :]
    baseline = ssm.get_parameter(Name=baseline_name, WithDecryption=True)["Parameter"]
    current = ssm.get_parameter(Name=current_name, WithDecryption=True)["Parameter"]
    if current["Value"] == baseline["Value"]:
        return None
    ssm.put_parameter(
        Name=current_name,
        Value=baseline["Value"],
        Type=baseline.get("Type", "String"),
        Overwrite=True,
    )
    after = ssm.get_parameter(Name=current_name, WithDecryption=True)["Parameter"]
    if after["Value"] != baseline["Value"]:
        raise RuntimeError(f"{current_name} does not hold its baseline after the fix")
    return current, after


def remediate(rule_id: str, severity: str, detail: dict, event_id: str) -> bool:
    """The safety path and the fix (see the module docstring); True if it fixed."""
    resource = detail["resourceId"]
    exception = consistent_get(f"ex#{ACCOUNT}#{REGION}#{rule_id}#{resource}")
    if exception is not None:
        raise Skip(f"{resource}: excepted from {rule_id}")
    verify_with_config(detail)
    breaker = consistent_get(BREAKER_KEY) or {}
    if int(breaker.get("open_until", {}).get("N", "0")) > time.time():
        raise Skip("the fleet's breaker is open")
    entry = entry_id(rule_id, detail)
    if consistent_get(entry) is not None:
        raise Skip(f"{resource}: already in the ledger as {entry}")

    start = time.time()
    intent = ledger_item(entry, rule_id, severity, detail, event_id, "intent", start)
    intent["open"] = s("intent")
    intent["lease"] = {"M": {
        "holder": s(HOLDER), "expires_at": s(now_rfc3339(start + LEASE_SECONDS)),
    }}
    try:
        dynamodb.put_item(
            TableName=LEDGER_TABLE, Item=intent,
            ConditionExpression="attribute_not_exists(#id)",
            ExpressionAttributeNames={"#id": "id"},
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        raise Skip(f"{resource}: another worker recorded {entry} first")

    changed = restore_parameter_baseline(resource)
    done = time.time()
    outcome = ledger_item(entry, rule_id, severity, detail, event_id, "succeeded", start)
    outcome["times"]["M"]["fixed_at"] = s(now_rfc3339(done))
    outcome["ttl"] = n(int(done) + RETENTION_SECONDS)
    if changed is None:
        outcome["reason"] = s(f"{resource} already matched its baseline")
    else:
        before, after = changed
        outcome["reason"] = s(f"{resource} restored from {BASELINE_PREFIX}{resource[len(CURRENT_PREFIX):]}")
        outcome["change"] = {"M": {
            "kind": s("restore_parameter"),
            "name": s(resource),
            "before": {"M": {"version": n(before["Version"]), "value_type": s(before["Type"])}},
            "after": {"M": {"version": n(after["Version"]), "value_type": s(after["Type"])}},
        }}
    dynamodb.put_item(
        TableName=LEDGER_TABLE, Item=outcome,
        ConditionExpression="#status = :intent AND #lease.#holder = :holder",
        ExpressionAttributeNames={"#status": "status", "#lease": "lease", "#holder": "holder"},
        ExpressionAttributeValues={":intent": s("intent"), ":holder": s(HOLDER)},
    )
    minute = int(done) // 60
    dynamodb.update_item(
        TableName=LEDGER_TABLE,
        Key={"id": s(BREAKER_KEY)},
        UpdateExpression="ADD #outcome :one SET #ttl = :ttl",
        ExpressionAttributeNames={"#outcome": f"ok_{minute}", "#ttl": "ttl"},
        ExpressionAttributeValues={":one": n(1), ":ttl": n((minute + 61) * 60)},
        ReturnValues="ALL_NEW",
    )
    reevaluations.request(detail["configRuleName"])
    rechecks.append((json.dumps({
        "recheck": {"entry": entry, "fixed_at": done, "wait": RECHECK_AFTER_S},
        "detail": detail,
    }), RECHECK_AFTER_S))
    return changed is not None


def close(recheck: dict, detail: dict) -> None:
    """A scheduled look at Config after a fix: closes the entry or looks again later."""
    results = config.get_compliance_details_by_resource(
        ResourceType=detail["resourceType"], ResourceId=detail["resourceId"]
    )["EvaluationResults"]
    current = next(
        (r["ComplianceType"] for r in results
         if r["EvaluationResultIdentifier"]["EvaluationResultQualifier"]["ConfigRuleName"]
         == detail["configRuleName"]),
        None,
    )
    overdue = time.time() - recheck["fixed_at"] >= VERIFY_DEADLINE_S
    if current != "COMPLIANT" and not overdue:
        wait = min(2 * recheck["wait"], MAX_DELAY_S)
        rechecks.append((json.dumps({"recheck": dict(recheck, wait=wait), "detail": detail}), wait))
        return
    status = "verified" if current == "COMPLIANT" else "still_non_compliant"
    try:
        dynamodb.update_item(
            TableName=LEDGER_TABLE,
            Key={"id": s(recheck["entry"])},
            UpdateExpression="SET #status = :status, #times.#closed = :at",
            ConditionExpression="#status = :succeeded",
            ExpressionAttributeNames={"#status": "status", "#times": "times", "#closed": "closed_at"},
            ExpressionAttributeValues={
                ":status": s(status), ":succeeded": s("succeeded"), ":at": s(now_rfc3339(time.time())),
            },
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        pass  # closed already (a redelivered look)


def handle(message: dict) -> bool:
    """Process one message; True if it fixed something."""
    event = json.loads(message["Body"])
    if "recheck" in event:
        close(event["recheck"], event["detail"])
        return False
    detail = event["detail"]
    rule_name = detail["configRuleName"]
    resource_id = detail["resourceId"]
    compliance = detail["newEvaluationResult"]["complianceType"]

    route = SEVERITY_TABLE.get(rule_name)
    if route is None:
        print(f"no policy for rule {rule_name}", file=sys.stderr)
        return False
    rule_id, severity, mode, action = route
    if compliance == "COMPLIANT":
        return False
    if mode != "auto":
        print(f"{resource_id}: {rule_name} ({severity}) needs {mode}", file=sys.stderr)
        return False
    if action != "restore_parameter_baseline":
        return False
    try:
        return remediate(rule_id, severity, detail, event["id"])
    except Skip as why:
        print(f"{resource_id}: not fixed: {why}", file=sys.stderr)
        return False


def queue_is_empty(queue_url: str) -> bool:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]) == 0
        and int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 0
    )


def main() -> None:
    if len(sys.argv) > 1:
        queue_url = sys.argv[1]
    elif os.environ.get("REFERENCE_QUEUE_URL"):
        queue_url = os.environ["REFERENCE_QUEUE_URL"]
    else:
        name = os.environ.get("REDRESS_EVENTS_QUEUE", "bench-events")
        queue_url = sqs.get_queue_url(QueueName=name)["QueueUrl"]

    processed = fixed = failed = 0
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        if not messages:
            if queue_is_empty(queue_url):
                break
            continue

        done = []
        for message in messages:
            try:
                if handle(message):
                    fixed += 1
                processed += 1
                done.append(message)
            except (ClientError, KeyError, ValueError, RuntimeError) as err:
                # Left on the queue: SQS redelivers it after the visibility timeout.
                failed += 1
                print(f"message {message['MessageId']} failed: {err}", file=sys.stderr)
        # The looks at Config are sent before the batch is acknowledged: none is lost.
        while rechecks:
            chunk, rechecks[:] = rechecks[:10], rechecks[10:]
            sqs.send_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "MessageBody": body, "DelaySeconds": delay}
                    for i, (body, delay) in enumerate(chunk)
                ],
            )
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done)
                ],
            )

    reevaluations.flush()
    print(f"reference worker: processed {processed}, fixed {fixed}, failed {failed}")


if __name__ == "__main__":
    main()
