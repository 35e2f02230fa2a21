"""Running redress's Config custom rules on the local stack, as Config invokes a rule's
Lambda function.

AWS Config invokes a custom rule's function with an event of a documented shape
(version, invokingEvent as a JSON string, ruleParameters, resultToken, eventLeftScope,
configRuleArn/Name/Id, accountId, evaluationMode), and the function reports with
PutEvaluations under the resultToken. moto keeps the rule and its function but never
runs a function. `redress provision` therefore creates each rule's function with the
environment variable REDRESS_LOCAL_HANDLER naming the `redress` binary, and this module
runs `<binary> evaluate --invocation -` with the event on standard input, which is the
same handler Lambda mode serves.

What a run invokes, for StartConfigRulesEvaluation of a CUSTOM_LAMBDA rule (and for a
periodic run):
  - a periodic rule (a ScheduledNotification source detail): one ScheduledNotification;
  - a change-triggered rule scoped to AWS::EC2::SecurityGroup: one
    ConfigurationItemChangeNotification per security group, with a configuration item
    built from EC2's DescribeSecurityGroups (status OK), plus one with status
    ResourceDeleted for each group the rule holds a result for that no longer exists.

Periodic runs, only when asked (REDRESS_LOCAL_PERIODIC=<seconds>, read by stack.py at
start; unset, empty or 0: off, the default): every <seconds>, whatever the rule's
MaximumExecutionFrequency (One_Hour is too slow to watch locally), a timer thread starts
a run of every ACTIVE CUSTOM_LAMBDA rule with a ScheduledNotification source detail, in
every account and region moto holds rules for. There is no caller, so the function runs
as its execution role (AssumeRole into the role `redress provision` created, which
identity.py answers in the role's account). A periodic run is the same run as a requested
one: queued behind a run in progress, recorded in the evaluation status the same way, and
not listed among the StartConfigRulesEvaluation requests. A rule whose role cannot be
assumed gets a failed run in its status; a failure never stops the timer. Failed runs,
requested or periodic, are also logged on standard error.

Not emulated:
  - a requested run's function runs with the credentials of whoever started the
    evaluation, not its execution role; Config's own change triggers (a changed group is
    evaluated when a run is started: the executor starts one after each fix, `redress
    evaluate` does too, or by the timer for periodic rules);
  - other resource types for change-triggered rules; oversized items (items are never
    too large here); Config's recorder (items are built from EC2 when the run starts);
  - a run requested while one is in progress is queued (one more run), where AWS may
    answer LimitExceededException.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

from moto.config.models import config_backends

from runbooks import Caller

HANDLER_VARIABLE = "REDRESS_LOCAL_HANDLER"
SECURITY_GROUP = "AWS::EC2::SecurityGroup"
INVOCATION_TIMEOUT_SECONDS = 120
# Seconds between periodic runs; unset, empty or 0: no periodic runs.
PERIODIC_VARIABLE = "REDRESS_LOCAL_PERIODIC"
SCHEDULED = "ScheduledNotification"
# Signs the AssumeRole of a periodic run (any key will do: trust is not evaluated).
PERIODIC_ACCESS_KEY = "redress-local-config"
NOT_RUNNABLE = "InsufficientPermissionsException"


def _log(message: str) -> None:
    print(f"config stand-in: {message}", file=sys.stderr, flush=True)


def _iso(t: float) -> str:
    moment = datetime.fromtimestamp(t, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _item(account: str, region: str, group: dict | None, group_id: str, now: float) -> dict:
    """A configuration item of a security group (None: deleted), in Config's shape."""
    item = {
        "configurationItemCaptureTime": _iso(now),
        "configurationItemStatus": "OK" if group is not None else "ResourceDeleted",
        "configurationStateId": int(now * 1000),
        "configurationItemVersion": "1.3",
        "awsAccountId": account,
        "awsRegion": region,
        "resourceType": SECURITY_GROUP,
        "resourceId": group_id,
        "ARN": f"arn:aws:ec2:{region}:{account}:security-group/{group_id}",
        "relatedEvents": [],
        "relationships": [],
        "tags": {},
        "configuration": None,
    }
    if group is not None:
        item["resourceName"] = group.get("GroupName")
        item["tags"] = {t["Key"]: t["Value"] for t in group.get("Tags", [])}
        item["configuration"] = {
            "groupId": group_id,
            "groupName": group.get("GroupName"),
            "description": group.get("Description"),
            "vpcId": group.get("VpcId"),
            "ownerId": account,
            "ipPermissions": [_permission(p) for p in group.get("IpPermissions", [])],
            "ipPermissionsEgress": [
                _permission(p) for p in group.get("IpPermissionsEgress", [])
            ],
        }
    return item


def _permission(p: dict) -> dict:
    """One EC2 permission as Config writes it (camelCase, both range forms)."""
    v4 = [r["CidrIp"] for r in p.get("IpRanges", []) if "CidrIp" in r]
    answer = {
        "ipProtocol": p.get("IpProtocol"),
        "ipRanges": v4,
        "ipv4Ranges": [{"cidrIp": c} for c in v4],
        "ipv6Ranges": [{"cidrIpv6": r["CidrIpv6"]} for r in p.get("Ipv6Ranges", [])],
        "prefixListIds": [],
        "userIdGroupPairs": [],
    }
    if "FromPort" in p:
        answer["fromPort"] = p["FromPort"]
    if "ToPort" in p:
        answer["toPort"] = p["ToPort"]
    return answer


@dataclass
class RuleRuns:
    """Runs of custom rules and their evaluation status; every access holds `lock`."""

    # (account, region, rule) -> DescribeConfigRuleEvaluationStatus fields.
    status: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    running: set[tuple[str, str, str]] = field(default_factory=set)
    again: set[tuple[str, str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, caller, name: str, previously: list[str]) -> None:
        """Runs the rule in a thread of its own, or queues one more run."""
        key = (caller.account, caller.region, name)
        with self.lock:
            if key in self.running:
                self.again.add(key)
                return
            self.running.add(key)
        threading.Thread(
            target=self._loop, args=(caller, name, previously, key), daemon=True,
            name=f"config-rule-{name}",
        ).start()

    def _loop(self, caller, name: str, previously: list[str], key) -> None:
        while True:
            self._run(caller, name, previously)
            with self.lock:
                if key not in self.again:
                    self.running.discard(key)
                    return
                self.again.discard(key)

    def _run(self, caller, name: str, previously: list[str]) -> None:
        account, region = caller.account, caller.region
        started = time.time()
        try:
            rule = config_backends[account][region].config_rules[name]
        except KeyError:
            return
        source = rule.source
        if source.owner != "CUSTOM_LAMBDA":
            return  # managed rules are never evaluated locally
        function = _function(account, region, source.source_identifier)
        handler = (function.environment_vars or {}).get(HANDLER_VARIABLE) if function else None
        if not handler:
            self._record(account, region, name, started, NOT_RUNNABLE,
                         f"the function {source.source_identifier} cannot be run locally "
                         f"(its environment names no {HANDLER_VARIABLE}; run `redress provision`)")
            return
        errors = []
        for invoking in self._invocations(caller, rule, previously, started):
            event = {
                "version": "1.0",
                "invokingEvent": json.dumps(invoking),
                "ruleParameters": rule.input_parameters or "{}",
                "resultToken": f"{name}:{uuid.uuid4()}",
                "eventLeftScope": False,
                "executionRoleArn": f"arn:aws:iam::{account}:role/config-role",
                "configRuleArn": rule.config_rule_arn,
                "configRuleName": name,
                "configRuleId": rule.config_rule_id,
                "accountId": account,
                "evaluationMode": "DETECTIVE",
            }
            error = self._invoke(caller, handler, event)
            if error:
                errors.append(error)
        if errors:
            self._record(account, region, name, started, "Lambda.FunctionError", errors[0])
        else:
            self._record(account, region, name, started, None, None)

    def _invocations(self, caller, rule, previously: list[str], now: float) -> list[dict]:
        kinds = {d.message_type for d in (rule.source.source_details or [])}
        account, region = caller.account, caller.region
        if SCHEDULED in kinds:
            return [{
                "awsAccountId": account,
                "notificationCreationTime": _iso(now),
                "messageType": SCHEDULED,
                "recordVersion": "1.0",
            }]
        scope = rule.scope.compliance_resource_types if rule.scope else None
        if "ConfigurationItemChangeNotification" not in kinds or SECURITY_GROUP not in (scope or []):
            return []
        groups = {}
        for page in caller.client("ec2").get_paginator("describe_security_groups").paginate():
            for g in page["SecurityGroups"]:
                groups[g["GroupId"]] = g
        items = [_item(account, region, g, gid, now) for gid, g in sorted(groups.items())]
        items += [_item(account, region, None, gid, now) for gid in previously if gid not in groups]
        return [{
            "configurationItemDiff": None,
            "configurationItem": item,
            "notificationCreationTime": _iso(now),
            "messageType": "ConfigurationItemChangeNotification",
            "recordVersion": "1.3",
        } for item in items]

    @staticmethod
    def _invoke(caller, handler: str, event: dict) -> str | None:
        """Runs the handler; the last line it wrote to stderr when it fails."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("AWS_PROFILE", "AWS_SESSION_TOKEN")}
        env.update({
            "AWS_ACCESS_KEY_ID": caller.access_key,
            "AWS_SECRET_ACCESS_KEY": "redress-local",
            "AWS_REGION": caller.region,
            "AWS_ENDPOINT_URL": caller.endpoint,
            "REDRESS_LOG_FORMAT": "json",
        })
        try:
            done = subprocess.run(
                [handler, "evaluate", "--invocation", "-"], input=json.dumps(event),
                capture_output=True, text=True, env=env, timeout=INVOCATION_TIMEOUT_SECONDS,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"the function could not run: {err}"
        if done.returncode == 0:
            return None
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return (lines[-1] if lines else f"exit code {done.returncode}")[:1000]

    def failed(self, account: str, region: str, name: str, code: str, message: str) -> None:
        """Records a run that could not start (a periodic run's role, say) as failed."""
        self._record(account, region, name, time.time(), code, message)

    def _record(self, account, region, name, started, code, message) -> None:
        if code is not None:
            _log(f"run of {name} ({account}, {region}) failed: {code}: {message}")
        now = time.time()
        with self.lock:
            s = self.status.setdefault((account, region, name), {
                "ConfigRuleName": name,
                "FirstActivatedTime": round(started, 3),
                "FirstEvaluationStarted": True,
            })
            s["LastSuccessfulInvocationTime" if code is None else "LastFailedInvocationTime"] = round(started, 3)
            if code is None:
                s["LastSuccessfulEvaluationTime"] = round(now, 3)
            else:
                s["LastFailedEvaluationTime"] = round(now, 3)
                s["LastErrorCode"] = code
                s["LastErrorMessage"] = message

    def describe(self, account: str, region: str, names: list[str], known: dict) -> list[dict]:
        with self.lock:
            return [
                dict(self.status.get((account, region, n), {"ConfigRuleName": n}),
                     ConfigRuleArn=known[n], ConfigRuleId=known[n].rsplit("/", 1)[-1])
                for n in names
            ]


def _function(account: str, region: str, identifier: str):
    """moto's Lambda function behind a rule (by ARN or name), None when it is gone."""
    from moto.awslambda.utils import get_backend

    try:
        return get_backend(account, region).get_function(identifier)
    except Exception:  # moto raises its own not-found errors
        return None


# --- Periodic runs -------------------------------------------------------------------


def periodic_interval(value: str | None) -> float | None:
    """Seconds between periodic runs from REDRESS_LOCAL_PERIODIC's value; None (off)
    when unset, empty or 0. Anything else that is not a positive number is refused."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{PERIODIC_VARIABLE}={value!r}: give seconds between runs (0: off)")
    return seconds or None


def periodic_rules() -> Iterator[tuple[str, str, object]]:
    """(account, region, moto's rule) of every ACTIVE CUSTOM_LAMBDA rule with a
    ScheduledNotification source detail, in every account and region moto holds."""
    # Snapshots: requests on other threads may add accounts, regions and rules.
    for account, regions in list(config_backends.items()):
        for region, backend in list(regions.items()):
            for rule in list(backend.config_rules.values()):
                source = rule.source
                kinds = {d.message_type for d in (source.source_details or [])}
                if (source.owner == "CUSTOM_LAMBDA" and SCHEDULED in kinds
                        and rule.config_rule_state == "ACTIVE"):
                    yield account, region, rule


class Periodic:
    """The timer that runs periodic custom rules every `interval` seconds (a daemon
    thread: it ends with the stack). `run(caller, name)` starts one run, as
    StartConfigRulesEvaluation does."""

    def __init__(self, interval: float, endpoint: str, runs: RuleRuns,
                 run: Callable[[Caller, str], None]) -> None:
        self.interval = interval
        self.endpoint = endpoint
        self.runs = runs
        self.run = run

    def start(self) -> None:
        _log(f"periodic custom rules run every {self.interval:g} s ({PERIODIC_VARIABLE})")
        threading.Thread(target=self._loop, daemon=True, name="config-periodic").start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.tick()
            except Exception:  # never let one bad tick end the timer
                _log("periodic runs failed:\n" + traceback.format_exc().rstrip())

    def tick(self) -> None:
        """Starts a run of every periodic rule."""
        for account, region, rule in periodic_rules():
            name = rule.config_rule_name
            try:
                caller = self._caller(account, region, rule)
            except Exception as err:  # recorded in the rule's status, and logged
                self.runs.failed(account, region, name, NOT_RUNNABLE, str(err)[:1000])
                continue
            self.run(caller, name)

    def _caller(self, account: str, region: str, rule) -> Caller:
        """Credentials of the rule's function's execution role, in the rule's account."""
        identifier = rule.source.source_identifier
        function = _function(account, region, identifier)
        if function is None:
            raise LookupError(f"the function {identifier} is gone; run `redress provision`")
        sts = Caller(PERIODIC_ACCESS_KEY, region, self.endpoint).client("sts")
        try:
            answer = sts.assume_role(RoleArn=function.role, RoleSessionName="redress-local-config")
        except Exception as err:
            raise RuntimeError(
                f"the execution role {function.role} of {identifier} could not be assumed: {err}"
            ) from err
        caller = Caller(answer["Credentials"]["AccessKeyId"], region, self.endpoint)
        if caller.account != account:  # would run against another account's resources
            raise RuntimeError(
                f"the execution role {function.role} of {identifier} is not in {account}"
            )
        return caller
