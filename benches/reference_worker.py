"""What a user would otherwise write: a plain boto3 remediation worker.

The baseline benches/pipeline.py measures redress against. Written the way the AWS
samples write such a worker, fairly and competently: one SQS client and one SSM client
reused for every call, batches of 10 with a short long-poll, one batch delete per batch,
no threads. It does the router's and the executor's job in one process, with no
intermediate tasks queue.

For each message: parse the EventBridge envelope of a Config compliance change, look the
Config rule up in a small severity table, skip COMPLIANT findings, and for the parameter
drift rule read the approved baseline and the current value and overwrite the current
one if they differ.

Usage: reference_worker.py [QUEUE_URL]   (else env REFERENCE_QUEUE_URL, else the queue
named by REDRESS_EVENTS_QUEUE, default "bench-events"). AWS settings come from the
standard environment (AWS_ENDPOINT_URL, AWS_REGION / AWS_DEFAULT_REGION, credentials).
Exits when a receive returns nothing and the queue holds no visible or in-flight
messages; prints one summary line.
"""

from __future__ import annotations

import json
import os
import sys

import boto3
from botocore.exceptions import ClientError

REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

BASELINE_PREFIX = "/bench/approved/"
CURRENT_PREFIX = "/bench/current/"

# Config rule name -> (severity, mode, action)
SEVERITY_TABLE = {
    "ssm-parameter-drift": ("MEDIUM", "auto", "restore_parameter_baseline"),
    "restricted-ssh": ("HIGH", "approve", "revoke_public_ingress"),
    "ec2-imdsv2-check": ("LOW", "notify", None),
}

sqs = boto3.client("sqs", region_name=REGION)
ssm = boto3.client("ssm", region_name=REGION)


def restore_parameter_baseline(current_name: str) -> bool:
    """Overwrite the current parameter with its approved baseline; True if it changed."""
    if not current_name.startswith(CURRENT_PREFIX):
        print(f"skipping {current_name}: not under {CURRENT_PREFIX}", file=sys.stderr)
        return False
    baseline_name = BASELINE_PREFIX + current_name[len(CURRENT_PREFIX) :]
    baseline = ssm.get_parameter(Name=baseline_name)["Parameter"]
    current = ssm.get_parameter(Name=current_name)["Parameter"]
    if current["Value"] == baseline["Value"]:
        return False
    ssm.put_parameter(
        Name=current_name,
        Value=baseline["Value"],
        Type=baseline.get("Type", "String"),
        Overwrite=True,
    )
    return True


def handle(message: dict) -> bool:
    """Process one message; True if it fixed something."""
    event = json.loads(message["Body"])
    detail = event["detail"]
    rule_name = detail["configRuleName"]
    resource_id = detail["resourceId"]
    compliance = detail["newEvaluationResult"]["complianceType"]

    route = SEVERITY_TABLE.get(rule_name)
    if route is None:
        print(f"no policy for rule {rule_name}", file=sys.stderr)
        return False
    severity, mode, action = route
    if compliance == "COMPLIANT":
        return False
    if mode != "auto":
        print(f"{resource_id}: {rule_name} ({severity}) needs {mode}", file=sys.stderr)
        return False
    if action == "restore_parameter_baseline":
        return restore_parameter_baseline(resource_id)
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
            except (ClientError, KeyError, ValueError) as err:
                # Left on the queue: SQS redelivers it after the visibility timeout.
                failed += 1
                print(f"message {message['MessageId']} failed: {err}", file=sys.stderr)
        if done:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done)
                ],
            )

    print(f"reference worker: processed {processed}, fixed {fixed}, failed {failed}")


if __name__ == "__main__":
    main()
