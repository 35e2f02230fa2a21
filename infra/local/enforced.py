"""An emulator that enforces IAM, with redress's central stack deployed in it.

For tests/e2e/iam.rs. moto's server checks every request against the caller's IAM
identity policies once its "initial no-auth action count" is used up; the switch is
process-wide, so this is a process of its own, never the shared local stack.

What it does, on 127.0.0.1 only:
  1. starts moto's server (IAM not yet enforced);
  2. creates IAM users with access keys: `admin` (everything), `alice` (named as an
     approver), `olivia` (named as an operator) and `mallory` (named nowhere); the last
     three may call sts:AssumeRole on any role, so trust policies decide; and a role
     `SecOps` (what an approvers list names; the executor looks it up);
  3. deploys the template (default infra/cloudformation/redress.yaml) with moto's
     CloudFormation, naming alice and olivia in ApproverUserArns and OperatorUserArns;
  4. assumes the router and executor task roles as ECS would (their trust policies name
     the service ecs-tasks.amazonaws.com, which nothing here can act as);
  5. turns enforcement on and prints one JSON line on stdout: the endpoint, the stack's
     outputs, the users' keys, the two task-role sessions, the resource types moto's
     CloudFormation skipped and the inline role policies as moto holds them.

moto enforces identity policies (Allow, Deny, Action, Resource; of Conditions only
StringEquals on sts:ExternalId) for SQS (resource: the queue named by QueueUrl; calls
without QueueUrl, such as GetQueueUrl and StartMessageMoveTask, are checked against "*"),
IAM (the role named by RoleName, else "*"), STS (AssumeRole: the role; then the trust
policy's AWS principals, exactly, when the role exists) and S3. Every other service is
checked against "*". It never evaluates queue policies (its CloudFormation skips
AWS::SQS::QueuePolicy), trust conditions (MFA, session names, source identity) or
service principals.

Two defects of moto's CloudFormation are worked around, on the IAM roles it creates:
it stores inline policies as objects, which its enforcement cannot read (they are put
back as JSON text), and it leaves a null where AWS::NoValue removes a list item (from a
trust policy's `!If [..., !Ref AWS::NoValue]` statements; the nulls are dropped). The
content is otherwise what CloudFormation deployed.

Usage: enforced.py [--port N] [--template FILE] [--exit-with-stdin]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
PEOPLE = ("alice", "olivia", "mallory")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0, help="0: a free one")
    ap.add_argument("--template", default=str(ROOT / "infra/cloudformation/redress.yaml"))
    ap.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin closes")
    args = ap.parse_args()

    # Nothing here may reach a real AWS endpoint or credential.
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "bootstrap"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "bootstrap"
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    import logging

    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto import settings
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    settings.INITIAL_NO_AUTH_ACTION_COUNT = float("inf")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    def client(service: str, key: str = "bootstrap", secret: str = "bootstrap", token=None):
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
        )

    iam = client("iam")
    users = {}
    for name in ("admin",) + PEOPLE:
        iam.create_user(UserName=name)
        if name == "admin":
            statement = {"Effect": "Allow", "Action": "*", "Resource": "*"}
        else:
            statement = {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}
        iam.put_user_policy(
            UserName=name,
            PolicyName="test",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        users[name] = {
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
            "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"],
        }

    # A role an approvers list could name: the executor resolves such names with iam:GetRole.
    iam.create_role(
        RoleName="SecOps",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )

    cfn = client("cloudformation")
    parameters = {
        "ImageUri": "example.invalid/redress:test",
        "VpcSubnets": "subnet-0123456789abcdef0",
        "SecurityGroupIds": "sg-0123456789abcdef0",
        "ApproverUserArns": users["alice"]["arn"],
        "OperatorUserArns": users["olivia"]["arn"],
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfn.create_stack(
            StackName="redress",
            TemplateBody=Path(args.template).read_text(),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],
        )
        stack = wait_for_stack(cfn, "redress")
    skipped = sorted(
        {
            str(w.message).split("Tried to parse ")[1].split(" but")[0]
            for w in caught
            if "Tried to parse" in str(w.message)
        }
    )
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    # moto's CloudFormation keeps inline role policies as objects; its enforcement reads
    # JSON text. Same content, as text.
    from moto.iam.models import iam_backends

    roles = {
        r["PhysicalResourceId"]: r["LogicalResourceId"]
        for r in cfn.list_stack_resources(StackName="redress")["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::IAM::Role"
    }
    policies = {}
    for role in iam_backends[ACCOUNT]["aws"].roles.values():
        if role.name not in roles:
            continue
        docs = {}
        for name, doc in list(role.policies.items()):
            doc = _without_nulls(json.loads(doc) if isinstance(doc, str) else doc)
            role.policies[name] = json.dumps(doc)
            docs[name] = doc
        trust = _without_nulls(json.loads(role.assume_role_policy_document))
        role.assume_role_policy_document = json.dumps(trust)
        policies[roles[role.name]] = {"arn": role.arn, "trust": trust, "policies": docs}

    sts = client("sts")
    sessions = {}
    for logical in ("RouterTaskRole", "ExecutorTaskRole"):
        creds = sts.assume_role(RoleArn=outputs[f"{logical}Arn"], RoleSessionName="ecs-task")[
            "Credentials"
        ]
        sessions[logical] = {
            "access_key_id": creds["AccessKeyId"],
            "secret_access_key": creds["SecretAccessKey"],
            "session_token": creds["SessionToken"],
        }

    # From here on, every request needs a key this emulator issued, and its policies decide.
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0

    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "region": REGION,
                "account": ACCOUNT,
                "outputs": outputs,
                "users": users,
                "sessions": sessions,
                "skipped_resource_types": skipped,
                "role_policies": policies,
            }
        ),
        flush=True,
    )

    if args.exit_with_stdin:
        threading.Thread(target=_exit_on_eof, daemon=True).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _without_nulls(value):
    """AWS::NoValue removes a list item; moto's CloudFormation leaves a null there."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def wait_for_stack(cfn, name: str) -> dict:
    deadline = time.time() + 30
    while True:
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        status = stack["StackStatus"]
        if status == "CREATE_COMPLETE":
            return stack
        if not status.endswith("IN_PROGRESS") or time.time() > deadline:
            events = cfn.describe_stack_events(StackName=name)["StackEvents"]
            reasons = [
                f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                for e in events
                if e.get("ResourceStatusReason")
            ]
            sys.exit(f"stack {name}: {status}; {reasons[:5]}")
        time.sleep(0.1)


def _exit_on_eof() -> None:
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
