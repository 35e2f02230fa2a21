"""Every template in infra/cloudformation/, deployed into a private moto (for tests/e2e/templates.rs).

A process of its own on 127.0.0.1 (the stacks use fixed names: queues, member roles, the
default bus's rules, so never the shared local stack). It deploys, with moto's
CloudFormation:

  central account 123456789012, us-east-1: redress.yaml (WorkerMode=ECS, an organization id),
      member.yaml (the central account's own roles; no forwarding in the central region),
      config.yaml;
  central account, us-west-2: redress.yaml (WorkerMode=Lambda) and lambda.yaml;
  member account 111122223333, us-east-1: member.yaml (roles, and a forwarding rule);
  member account, eu-west-1: member.yaml (forwarding rule only) and config.yaml.

moto's CloudFormation skips resource types it does not implement. For those the API can
hold (AWS Config's recorder, delivery channel and rules, the bus policy, queue and bucket
policies) this script does what CloudFormation would: it resolves the resource's
properties (parameters, conditions, Ref, GetAtt, Sub, If, Join, Select, Split) against the
deployed stack and makes the service call. It reports which resources were created by
moto's CloudFormation, which were put this way ("emulated") and which were skipped.

It also reports whether the central rule's event pattern (moto's matcher) accepts a
member-account-shaped event from another region. Then it prints one JSON line on stdout
and serves until stdin closes (--exit-with-stdin) or it is interrupted.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "infra/cloudformation"
CENTRAL = "123456789012"
MEMBER = "111122223333"
ORG = "o-exampleorg01"
CODE_BUCKET = "redress-code-{account}"
CODE_KEY = "redress.zip"

# Skipped types whose state this script puts through the service's API.
EMULATED = (
    "AWS::Config::ConfigurationRecorder",
    "AWS::Config::DeliveryChannel",
    "AWS::Config::ConfigRule",
    "AWS::Events::EventBusPolicy",
    "AWS::SQS::QueuePolicy",
    "AWS::S3::BucketPolicy",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin closes")
    args = ap.parse_args()

    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)
    os.environ["AWS_ACCESS_KEY_ID"] = "test"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "test"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

    import logging

    import boto3
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    def session(creds: dict | None) -> "boto3.Session":
        creds = creds or {"AccessKeyId": "test", "SecretAccessKey": "test", "SessionToken": None}
        return boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds.get("SessionToken"),
        )

    central = session(None)
    member_creds = central.client("sts", endpoint_url=endpoint, region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole",
        RoleSessionName="templates-test",
    )["Credentials"]
    member = session(member_creds)
    sessions = {CENTRAL: central, MEMBER: member}

    def client(account: str, service: str, region: str):
        return sessions[account].client(service, endpoint_url=endpoint, region_name=region)

    # The evaluator's and the workers' code: moto needs it to exist, never runs it.
    for account in (CENTRAL, MEMBER):
        s3 = client(account, "s3", "us-east-1")
        bucket = CODE_BUCKET.format(account=account)
        s3.create_bucket(Bucket=bucket)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("bootstrap", "#!/bin/sh\n# placeholder: moto never runs it\n")
            z.writestr("policy.toml", (ROOT / "infra/policies/default.toml").read_text())
        s3.put_object(Bucket=bucket, Key=CODE_KEY, Body=buf.getvalue())

    people = {
        "ApproverUserArns": f"arn:aws:iam::{CENTRAL}:user/alice",
        "OperatorUserArns": f"arn:aws:iam::{CENTRAL}:user/olivia",
    }
    network = {
        "ImageUri": f"{CENTRAL}.dkr.ecr.us-east-1.amazonaws.com/redress:test",
        "VpcSubnets": "subnet-0123456789abcdef0",
        "SecurityGroupIds": "sg-0123456789abcdef0",
    }
    code = lambda account: {"CodeS3Bucket": CODE_BUCKET.format(account=account), "CodeS3Key": CODE_KEY}

    stacks = []

    def deploy(account, region, name, template, params):
        st = Deployed(client, account, region, name, template, params)
        st.create()
        stacks.append(st)
        return st

    ecs = deploy(
        CENTRAL, "us-east-1", "redress", "redress",
        {**network, **people, "OrganizationId": ORG},
    )
    lam = deploy(
        CENTRAL, "us-west-2", "redress", "redress",
        {**network, **people, "WorkerMode": "Lambda"},
    )
    queues = {k: lam.outputs[k] for k in ("EventsQueueArn", "TasksQueueArn", "ApprovalsQueueArn", "EventsDlqArn", "TasksDlqArn", "LedgerTableArn", "NotificationTopicArn")}
    deploy(CENTRAL, "us-west-2", "redress-lambda", "lambda", {**code(CENTRAL), **queues})
    member_params = {
        "CentralAccountId": CENTRAL,
        "ExecutorRoleArn": ecs.outputs["ExecutorRoleArn"],
        "SweepRoleArn": ecs.outputs["SweepTaskRoleArn"],
        "CentralRegion": "us-east-1",
        "RolesRegion": "us-east-1",
    }
    deploy(CENTRAL, "us-east-1", "redress-member", "member", member_params)
    deploy(CENTRAL, "us-east-1", "redress-config", "config", code(CENTRAL))
    deploy(MEMBER, "us-east-1", "redress-member", "member", member_params)
    deploy(MEMBER, "eu-west-1", "redress-member", "member", member_params)
    deploy(MEMBER, "eu-west-1", "redress-config", "config", code(MEMBER))

    # The central rule's pattern, by moto's EventBridge matcher, against events as a member
    # account's forwarding rule delivers them (AWS keeps their account and region).
    from moto.events.models import EventPattern

    rule = client(CENTRAL, "events", "us-east-1").describe_rule(Name="redress-events-compliance-change")
    pattern = EventPattern.load(rule["EventPattern"])
    shaped = {
        "version": "0",
        "id": "7bd5b5e7-0000-0000-0000-000000000000",
        "detail-type": "Config Rules Compliance Change",
        "source": "aws.config",
        "account": MEMBER,
        "time": "2024-01-01T00:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {"configRuleName": "redress-sg-admin-ports", "awsAccountId": MEMBER, "awsRegion": "eu-west-1"},
    }
    other_source = dict(shaped, source="aws.s3")

    print(
        json.dumps(
            {
                "endpoint": endpoint,
                "central": CENTRAL,
                "member": MEMBER,
                "organization": ORG,
                "member_credentials": {
                    "access_key_id": member_creds["AccessKeyId"],
                    "secret_access_key": member_creds["SecretAccessKey"],
                    "session_token": member_creds["SessionToken"],
                },
                "stacks": [s.report() for s in stacks],
                "central_pattern": rule["EventPattern"],
                "central_rule_matches_member_event": pattern.matches_event(shaped),
                "central_rule_matches_other_source": pattern.matches_event(other_source),
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


class Deployed:
    """One stack: created with moto's CloudFormation, skipped resources emulated."""

    def __init__(self, client, account, region, name, template, params):
        from cfnlint.decode import decode

        self.client = lambda service: client(account, service, region)
        self.account, self.region, self.name, self.template = account, region, name, template
        self.params_in = params
        self.t, errors = decode(str(TEMPLATES / f"{template}.yaml"))
        assert not errors, errors
        self.params = {}
        for k, p in self.t.get("Parameters", {}).items():
            if "Default" in p:
                self.params[k] = str(p["Default"])
        self.params.update(params)
        self.outputs: dict = {}
        self.physical: dict = {}
        self.created: dict = {}
        self.skipped: dict = {}
        self.emulated: list = []
        self.status = None

    def create(self) -> None:
        cfn = self.client("cloudformation")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cfn.create_stack(
                StackName=self.name,
                TemplateBody=(TEMPLATES / f"{self.template}.yaml").read_text(),
                Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in self.params_in.items()],
                Capabilities=["CAPABILITY_NAMED_IAM"],
            )
            stack = wait_for_stack(cfn, self.name)
        self.status = stack["StackStatus"]
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        for r in cfn.list_stack_resources(StackName=self.name)["StackResourceSummaries"]:
            if not r["LogicalResourceId"]:
                continue  # moto lists an unnamed entry; no resource of the template
            self.physical[r["LogicalResourceId"]] = r["PhysicalResourceId"]
            self.created[r["LogicalResourceId"]] = r["ResourceType"]
        noted = {str(w.message) for w in caught}
        for logical, res in self.t["Resources"].items():
            if logical in self.created or not self.exists(logical):
                continue
            kind = res["Type"]
            assert any(kind in m for m in noted), f"{self.name}: {logical} ({kind}) missing, moto gave no reason"
            self.skipped[logical] = kind
        # In dependency order enough for these templates: recorder, channel, then the rest.
        order = sorted(self.skipped, key=lambda l: EMULATED.index(self.skipped[l]) if self.skipped[l] in EMULATED else 99)
        for logical in order:
            if self.skipped[logical] in EMULATED:
                self.emulate(logical)
                self.emulated.append(logical)

    def report(self) -> dict:
        return {
            "name": self.name,
            "template": self.template,
            "account": self.account,
            "region": self.region,
            "status": self.status,
            "outputs": self.outputs,
            "created": self.created,
            "physical": self.physical,
            "skipped": self.skipped,
            "emulated": self.emulated,
        }

    # ------------------------------------------------------------------ emulation

    def emulate(self, logical: str) -> None:
        res = self.t["Resources"][logical]
        props = self.resolve(res.get("Properties", {}))
        kind = res["Type"]
        if kind == "AWS::Config::ConfigurationRecorder":
            rg = props.get("RecordingGroup", {})
            self.client("config").put_configuration_recorder(
                ConfigurationRecorder={
                    "name": props.get("Name", "default"),
                    "roleARN": props["RoleARN"],
                    "recordingGroup": {
                        "allSupported": bool(rg.get("AllSupported")),
                        "includeGlobalResourceTypes": bool(rg.get("IncludeGlobalResourceTypes")),
                    },
                }
            )
        elif kind == "AWS::Config::DeliveryChannel":
            channel = {"name": props.get("Name", "default"), "s3BucketName": props["S3BucketName"]}
            if "S3KmsKeyArn" in props:
                channel["s3KmsKeyArn"] = props["S3KmsKeyArn"]
            freq = props.get("ConfigSnapshotDeliveryProperties", {}).get("DeliveryFrequency")
            if freq:
                channel["configSnapshotDeliveryProperties"] = {"deliveryFrequency": freq}
            self.client("config").put_delivery_channel(DeliveryChannel=channel)
        elif kind == "AWS::Config::ConfigRule":
            rule = {
                "ConfigRuleName": props["ConfigRuleName"],
                "Source": props["Source"],
                "ConfigRuleState": "ACTIVE",
            }
            for k in ("Description", "Scope", "MaximumExecutionFrequency"):
                if k in props:
                    rule[k] = props[k]
            if "InputParameters" in props:
                rule["InputParameters"] = json.dumps(props["InputParameters"])
            self.client("config").put_config_rule(ConfigRule=rule)
        elif kind == "AWS::Events::EventBusPolicy":
            statement = dict(props["Statement"], Sid=props["StatementId"])
            self.client("events").put_permission(
                EventBusName=props["EventBusName"],
                Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
            )
        elif kind == "AWS::SQS::QueuePolicy":
            for url in props["Queues"]:
                self.client("sqs").set_queue_attributes(
                    QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
                )
        elif kind == "AWS::S3::BucketPolicy":
            self.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))

    def exists(self, logical: str) -> bool:
        cond = self.t["Resources"][logical].get("Condition")
        return cond is None or self.condition(cond)

    def condition(self, name: str) -> bool:
        return self.truth(self.t["Conditions"][name])

    def truth(self, v) -> bool:
        (k, arg), = v.items()
        if k == "Fn::Not":
            return not self.truth(arg[0])
        if k == "Fn::And":
            return all(self.truth(c) for c in arg)
        if k == "Fn::Or":
            return any(self.truth(c) for c in arg)
        if k == "Fn::Equals":
            return self.resolve(arg[0]) == self.resolve(arg[1])
        if k == "Condition":
            return self.condition(arg)
        raise ValueError(f"condition {k}")

    NO_VALUE = object()

    def resolve(self, v):
        if isinstance(v, list):
            return [x for x in (self.resolve(i) for i in v) if x is not self.NO_VALUE]
        if isinstance(v, dict):
            if len(v) == 1:
                (k, arg), = v.items()
                if k == "Ref":
                    return self.ref(arg)
                if k == "Fn::GetAtt":
                    res, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                    return self.get_att(res, attr)
                if k == "Fn::Sub":
                    return self.sub(arg)
                if k == "Fn::If":
                    return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
                if k == "Fn::Join":
                    return arg[0].join(self.resolve(arg[1]))
                if k == "Fn::Select":
                    return self.resolve(arg[1])[int(self.resolve(arg[0]))]
                if k == "Fn::Split":
                    return self.resolve(arg[1]).split(arg[0])
                if k.startswith("Fn::"):
                    raise ValueError(f"{k} is not resolved here")
            out = {}
            for k, x in v.items():
                x = self.resolve(x)
                if x is not self.NO_VALUE:
                    out[k] = x
            return out
        return v

    def ref(self, name: str):
        pseudo = {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::StackName": self.name,
        }
        if name == "AWS::NoValue":
            return self.NO_VALUE
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            kind = self.t["Parameters"][name]["Type"]
            value = self.params[name]
            return value.split(",") if kind.startswith("List<") or kind == "CommaDelimitedList" else value
        if name in self.physical:
            return self.physical[name]
        # A skipped resource: what CloudFormation's Ref would give for the ones used here.
        props = self.t["Resources"][name].get("Properties", {})
        return self.resolve(props.get("Name", props.get("ConfigRuleName", name)))

    def get_att(self, logical: str, attr: str):
        kind = self.t["Resources"][logical]["Type"]
        phys = self.physical[logical]
        if kind == "AWS::SQS::Queue":
            if attr == "QueueName":
                return phys.rsplit("/", 1)[1]
            return self.client("sqs").get_queue_attributes(QueueUrl=phys, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        if attr != "Arn":
            raise ValueError(f"GetAtt {logical}.{attr}")
        if kind == "AWS::IAM::Role":
            return self.client("iam").get_role(RoleName=phys)["Role"]["Arn"]
        if kind == "AWS::Lambda::Function":
            return self.client("lambda").get_function(FunctionName=phys)["Configuration"]["FunctionArn"]
        if kind == "AWS::S3::Bucket":
            return f"arn:aws:s3:::{phys}"
        if kind == "AWS::KMS::Key":
            # Formed, not read: moto's CloudFormation stores the key policy as an object,
            # which its DescribeKey then fails to parse.
            return f"arn:aws:kms:{self.region}:{self.account}:key/{phys}"
        if kind == "AWS::Events::Rule":
            name = phys.rsplit("/", 1)[-1] if phys.startswith("arn:") else phys
            return self.client("events").describe_rule(Name=name)["Arn"]
        raise ValueError(f"GetAtt {logical}.Arn of {kind}")

    def sub(self, arg) -> str:
        text, names = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        out, rest = "", text
        while "${" in rest:
            start = rest.index("${")
            end = rest.index("}", start)
            out += rest[:start]
            name = rest[start + 2 : end]
            if name.startswith("!"):
                out += "${" + name[1:] + "}"
            elif name in names:
                out += self.resolve(names[name])
            elif "." in name and not name.startswith("AWS::"):
                out += self.get_att(*name.split(".", 1))
            else:
                out += self.ref(name)
            rest = rest[end + 1 :]
        return out + rest


def wait_for_stack(cfn, name: str) -> dict:
    deadline = time.time() + 60
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
