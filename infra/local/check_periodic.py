"""Checks the local Config stand-in's periodic runs (REDRESS_LOCAL_PERIODIC).

    .venv/bin/python infra/local/check_periodic.py

Starts two private stacks of its own on free loopback ports (stack.py --exit-with-stdin,
so they end with this script however it ends): one with periodic runs every second, one
without. The rules' functions name small Python handlers written to a temporary
directory instead of the `redress` binary, so the check needs no build: a handler that
records the invocation it answered and who it ran as, then puts one COMPLIANT evaluation
with the invocation's result token; and one that always fails.

With periodic runs, without anyone calling StartConfigRulesEvaluation:
  - a periodic custom rule runs again and again (its evaluation status advances), with
    one ScheduledNotification a run, as the function's execution role, and its
    evaluation reaches the results;
  - a change-triggered rule is never run by the timer;
  - a failing handler's runs are recorded (Lambda.FunctionError, its last stderr line)
    and logged, and the timer keeps running the other rules;
  - a rule whose function's role is gone records a failed run (role not assumed);
  - a periodic rule in another account (111111111111) runs there;
  - no StartConfigRulesEvaluation request is recorded.
Without (the default): the periodic rule never runs until StartConfigRulesEvaluation
names it, and that run's status has the same fields as a periodic run's.
A value that is not a number of seconds stops the stack at start with an error.

Exit 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import boto3
from botocore.config import Config

from config_invoker import PERIODIC_VARIABLE, periodic_interval

HERE = Path(__file__).resolve().parent
REGION = "us-east-1"
MEMBER = "111111111111"
EMPTY_ZIP = bytes([0x50, 0x4B, 0x05, 0x06] + [0] * 18)
LAMBDA_TRUST = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                   "Action": "sts:AssumeRole"}],
})
# What the recording handler runs: {log} is where it appends one JSON line a run.
RECORDING_HANDLER = """#!{python}
import json, os, sys, time
import boto3
# The stand-in sets AWS_REGION, which the Rust SDK reads and boto3 does not.
region = os.environ["AWS_REGION"]
event = json.load(sys.stdin)
invoking = json.loads(event["invokingEvent"])
who = boto3.client("sts", region_name=region).get_caller_identity()
boto3.client("config", region_name=region).put_evaluations(
    ResultToken=event["resultToken"],
    Evaluations=[{{
        "ComplianceResourceType": "AWS::::Account",
        "ComplianceResourceId": who["Account"],
        "ComplianceType": "COMPLIANT",
        "OrderingTimestamp": time.time(),
    }}],
)
with open({log!r}, "a") as f:
    f.write(json.dumps({{
        "rule": event["configRuleName"], "message_type": invoking["messageType"],
        "event_account": event["accountId"], "account": who["Account"], "arn": who["Arn"],
    }}) + "\\n")
"""
# DescribeConfigRuleEvaluationStatus's fields for a rule whose runs have all succeeded.
SUCCESS_FIELDS = {
    "ConfigRuleName", "ConfigRuleArn", "ConfigRuleId", "FirstActivatedTime",
    "FirstEvaluationStarted", "LastSuccessfulInvocationTime", "LastSuccessfulEvaluationTime",
}
FAILING_HANDLER = """#!{python}
import sys
print("boom: the check's failing handler", file=sys.stderr)
sys.exit(3)
"""


class CheckFailed(Exception):
    pass


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def wait_for(what: str, seconds: float, probe: Callable[[], object]) -> object:
    """The first truthy answer of `probe`, polled until `seconds` pass."""
    deadline = time.time() + seconds
    while True:
        answer = probe()
        if answer:
            return answer
        if time.time() > deadline:
            raise CheckFailed(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    """A private stack.py; its stderr goes to `log`."""

    process: subprocess.Popen
    endpoint: str
    log: Path

    @staticmethod
    def start(workdir: Path, name: str, periodic: str | None) -> "Stack":
        port = free_port()
        log = workdir / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", PERIODIC_VARIABLE)}
        if periodic is not None:
            env[PERIODIC_VARIABLE] = periodic
        process = subprocess.Popen(
            [sys.executable, str(HERE / "stack.py"), "--port", str(port), "--exit-with-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log.open("w"), env=env,
        )
        stack = Stack(process, f"http://127.0.0.1:{port}", log)

        def listening() -> bool:
            expect(process.poll() is None, f"stack.py exited: {log.read_text()[-2000:]}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(f"stack.py on port {port}", 30, listening)
        return stack

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def client(self, service: str, credentials: dict | None = None):
        keys = credentials or {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint, region_name=REGION,
            config=Config(retries={"max_attempts": 1}), **keys,
        )

    def view(self, path: str) -> list:
        with urllib.request.urlopen(self.endpoint + path) as answer:
            return json.load(answer)


def handler(workdir: Path, name: str, text: str) -> Path:
    """An executable handler script."""
    path = workdir / name
    path.write_text(text.format(python=sys.executable, log=str(workdir / f"{name}.jsonl")))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def records(handler_path: Path) -> list[dict]:
    """What the recording handler at this path wrote, one entry a run."""
    log = handler_path.with_name(handler_path.name + ".jsonl")
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def custom_rule(stack: Stack, name: str, handler_path: Path, periodic: bool = True,
                credentials: dict | None = None) -> str:
    """A role, a function naming the handler, and a custom rule bound to it, as
    `redress provision` creates them; the role's name."""
    iam = stack.client("iam", credentials)
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=LAMBDA_TRUST)
    function = stack.client("lambda", credentials).create_function(
        FunctionName=name, Runtime="provided.al2023", Handler="bootstrap",
        Role=role["Role"]["Arn"], Code={"ZipFile": EMPTY_ZIP},
        Environment={"Variables": {"REDRESS_LOCAL_HANDLER": str(handler_path)}},
    )
    if periodic:
        details = [{"EventSource": "aws.config", "MessageType": "ScheduledNotification",
                    "MaximumExecutionFrequency": "One_Hour"}]
        extra: dict = {"MaximumExecutionFrequency": "One_Hour"}
    else:
        details = [{"EventSource": "aws.config",
                    "MessageType": "ConfigurationItemChangeNotification"}]
        extra = {"Scope": {"ComplianceResourceTypes": ["AWS::EC2::SecurityGroup"]}}
    stack.client("config", credentials).put_config_rule(ConfigRule={
        "ConfigRuleName": name,
        "Source": {"Owner": "CUSTOM_LAMBDA", "SourceIdentifier": function["FunctionArn"],
                   "SourceDetails": details},
        **extra,
    })
    return role["Role"]["RoleName"]


def status(stack: Stack, name: str, credentials: dict | None = None) -> dict:
    answer = stack.client("config", credentials).describe_config_rule_evaluation_status(
        ConfigRuleNames=[name]
    )
    return answer["ConfigRulesEvaluationStatus"][0]


def member_credentials(stack: Stack) -> dict:
    """Credentials in the member account (its OrganizationAccountAccessRole)."""
    creds = stack.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{MEMBER}:role/OrganizationAccountAccessRole",
        RoleSessionName="check-periodic",
    )["Credentials"]
    return {"aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"]}


# --- Checks ------------------------------------------------------------------------


def check_interval_values(_workdir: Path) -> None:
    for off in (None, "", " ", "0", "0.0"):
        expect(periodic_interval(off) is None, f"{off!r} should mean off")
    expect(periodic_interval("5") == 5.0, "5 should be 5 s")
    expect(periodic_interval("0.5") == 0.5, "0.5 should be 0.5 s")
    for bad in ("-1", "abc", "nan", "inf", "5s"):
        try:
            periodic_interval(bad)
        except ValueError as err:
            expect(PERIODIC_VARIABLE in str(err), f"{bad!r}: {err}")
        else:
            raise CheckFailed(f"{bad!r} should be refused")


def check_bad_value_stops_the_stack(workdir: Path) -> None:
    env = dict(os.environ, **{PERIODIC_VARIABLE: "hourly"})
    done = subprocess.run(
        [sys.executable, str(HERE / "stack.py"), "--port", str(free_port())],
        capture_output=True, text=True, env=env, timeout=60,
    )
    expect(done.returncode == 2, f"exit code {done.returncode}: {done.stderr[-500:]}")
    expect(f"{PERIODIC_VARIABLE}='hourly'" in done.stderr, done.stderr[-500:])


def check_periodic_runs(workdir: Path) -> None:
    stack = Stack.start(workdir, "periodic", "1")
    try:
        recording = handler(workdir, "recording", RECORDING_HANDLER)
        failing = handler(workdir, "failing", FAILING_HANDLER)
        role = custom_rule(stack, "check-periodic", recording)
        custom_rule(stack, "check-change", recording, periodic=False)
        custom_rule(stack, "check-failing", failing)
        custom_rule(stack, "check-no-role", recording)
        stack.client("iam").delete_role(RoleName="check-no-role-role")
        member = member_credentials(stack)
        member_handler = handler(workdir, "member", RECORDING_HANDLER)
        member_role = custom_rule(stack, "check-member", member_handler, credentials=member)

        first = wait_for("a periodic run of check-periodic", 30,
                         lambda: status(stack, "check-periodic").get("LastSuccessfulInvocationTime"))
        failed = wait_for("a failed run of check-failing", 30,
                          lambda: status(stack, "check-failing").get("LastFailedInvocationTime"))
        # The timer goes on after a failed run: a later successful one.
        wait_for("check-periodic to run again after check-failing failed", 30,
                 lambda: status(stack, "check-periodic")["LastSuccessfulInvocationTime"]
                 > max(first, failed))

        ran = records(recording)
        expect(len(ran) >= 2, f"the handler ran {len(ran)} times")
        expect({r["rule"] for r in ran} == {"check-periodic"},
               f"rules run: {sorted({r['rule'] for r in ran})} (check-change is not periodic)")
        expect(all(r["message_type"] == "ScheduledNotification" for r in ran), str(ran))
        expect(all(r["arn"].startswith(f"arn:aws:sts::{r['account']}:assumed-role/{role}/")
                   for r in ran), f"not run as the execution role {role}: {ran}")
        expect("FirstEvaluationStarted" not in status(stack, "check-change"),
               f"check-change was run: {status(stack, 'check-change')}")

        failing_status = status(stack, "check-failing")
        expect(failing_status.get("LastErrorCode") == "Lambda.FunctionError", str(failing_status))
        expect("boom" in failing_status.get("LastErrorMessage", ""), str(failing_status))
        no_role = wait_for("a failed run of check-no-role", 30,
                           lambda: status(stack, "check-no-role").get("LastErrorCode") and
                           status(stack, "check-no-role"))
        expect(no_role["LastErrorCode"] == "InsufficientPermissionsException", str(no_role))
        expect("could not be assumed" in no_role["LastErrorMessage"], str(no_role))
        expect("LastSuccessfulInvocationTime" not in no_role, str(no_role))

        in_member = wait_for("a periodic run of check-member", 30, lambda: records(member_handler))
        expect(all(r["event_account"] == MEMBER and r["account"] == MEMBER
                   and f"assumed-role/{member_role}/" in r["arn"] for r in in_member),
               f"the member account's rule ran elsewhere: {in_member}")
        expect(status(stack, "check-member", member).get("LastSuccessfulInvocationTime"),
               "check-member's status shows no run")

        requests = stack.view("/_redress/config-evaluations")
        expect(requests == [], f"StartConfigRulesEvaluation was recorded: {requests}")
        results = [r for r in stack.view("/_redress/config-results") if r["rule"] == "check-periodic"]
        expect([r["compliance"] for r in results] == ["COMPLIANT"], f"results: {results}")
        log = stack.log.read_text()
        expect("run of check-failing" in log and "boom" in log, f"failure not logged: {log[-2000:]}")
        expect("periodic custom rules run every 1 s" in log, f"start not logged: {log[-2000:]}")
        expect(stack.process.poll() is None, "the stack died")
        fields = set(status(stack, "check-periodic"))
        expect(fields == SUCCESS_FIELDS, f"status fields {sorted(fields)}")
    finally:
        stack.stop()


def check_off_by_default(workdir: Path) -> None:
    stack = Stack.start(workdir, "off", None)
    try:
        recording = handler(workdir, "off-recording", RECORDING_HANDLER)
        custom_rule(stack, "check-periodic", recording)
        time.sleep(3)
        expect(records(recording) == [], f"ran without being asked: {records(recording)}")
        expect("LastSuccessfulInvocationTime" not in status(stack, "check-periodic"),
               str(status(stack, "check-periodic")))
        stack.client("config").start_config_rules_evaluation(ConfigRuleNames=["check-periodic"])
        done = wait_for("the requested run", 30,
                        lambda: "LastSuccessfulInvocationTime" in status(stack, "check-periodic")
                        and status(stack, "check-periodic"))
        expect(len(records(recording)) == 1, f"runs: {records(recording)}")
        # The same fields as after periodic runs: they are recorded alike.
        expect(set(done) == SUCCESS_FIELDS, f"status fields {sorted(done)}")
        expect("periodic custom rules run every" not in stack.log.read_text(),
               "the timer started though not asked")
    finally:
        stack.stop()


CHECKS: dict[str, Callable[[Path], None]] = {
    "interval values": check_interval_values,
    "a bad value stops the stack": check_bad_value_stops_the_stack,
    "periodic runs": check_periodic_runs,
    "off by default": check_off_by_default,
}


def main() -> int:
    failed = 0
    with tempfile.TemporaryDirectory(prefix="check-periodic-") as tmp:
        for name, check in CHECKS.items():
            try:
                check(Path(tmp))
                print(f"ok    {name}")
            except Exception as err:  # a failed check, or the stack answering an error
                failed += 1
                print(f"FAIL  {name}: {type(err).__name__}: {err}")
    print(f"{len(CHECKS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
