"""AWS Config's evaluations on the local stack: the calls moto's Config lacks.

moto keeps Config rules (PutConfigRule, DescribeConfigRules, DeleteConfigRule) but
holds no evaluation results: PutEvaluations without TestMode raises NotImplemented,
and the compliance queries are missing. This stand-in answers them in Config's own
JSON protocol (X-Amz-Target `StarlingDoveService.<call>`), with the rules moto holds as
the only rules there are:

    StarlingDoveService.PutEvaluations
    StarlingDoveService.GetComplianceDetailsByResource
    StarlingDoveService.GetComplianceDetailsByConfigRule
    StarlingDoveService.DescribeComplianceByConfigRule
    StarlingDoveService.StartConfigRulesEvaluation
    StarlingDoveService.DescribeConfigRuleEvaluationStatus

Results are kept per account (from the signer's access key, as moto decides it) and
region (from the signature): for each (rule, resource type, resource id), the current
evaluation result. Only results of rules that still exist in moto are answered, so
deleting a rule hides its results, and a rule created again under the same name starts
with none (each result remembers the ARN of the rule it was put for).

PutEvaluations. A ResultToken is the rule's name, optionally followed by `:` and
anything (`restricted-ssh` or `restricted-ssh:<uuid>`): the rule is the part before the
first `:`, and a token naming no rule of the caller's account and region answers
InvalidResultTokenException (unless TestMode, which validates and stores nothing).
Requests are checked as Config checks them: model constraints (at most 100 evaluations;
type 1-256, id 1-768 and annotation 1-256 characters; required members; the
ComplianceType enum) answer ValidationException in AWS's "N validation errors
detected: Value ... at 'evaluations.1.member.annotation' failed to satisfy constraint:
..." form; missing or empty Evaluations and an INSUFFICIENT_DATA evaluation answer
InvalidParameterValueException; members of the wrong JSON type answer
SerializationException. An evaluation whose compliance type differs from the current
result of its (rule, resource), including the first one, puts a `Config Rules Compliance
Change` event on the account's default event bus (moto's EventBridge, so rules with SQS
targets deliver it), with the detail Config sends (newEvaluationResult, and
oldEvaluationResult when there was one; ISO 8601 times with milliseconds). The same
compliance again only refreshes the result and sends nothing, as in AWS.

GetComplianceDetailsByResource (100 results a page), GetComplianceDetailsByConfigRule
(Limit 0-100, 0 or absent meaning 10) and DescribeComplianceByConfigRule (100 rules a
page; a rule is NON_COMPLIANT if any resource is, with the count capped at 100, else
COMPLIANT if any resource is, else INSUFFICIENT_DATA) answer in the API's shapes, with
epoch-second timestamps and opaque NextTokens. A NextToken the stand-in did not issue
answers InvalidNextTokenException (InvalidParameterValueException for
GetComplianceDetailsByResource, the only error AWS documents for it); unknown rules
answer NoSuchConfigRuleException; INSUFFICIENT_DATA in the ComplianceTypes filter of
the two GetComplianceDetails calls answers InvalidParameterValueException (AWS: it
"cannot be used as a ComplianceType for filtering results").

StartConfigRulesEvaluation checks ConfigRuleNames (1 to 25 names, each 1 to 128
characters and not blank, else InvalidParameterValueException), requires every rule to
exist in moto (else NoSuchConfigRuleException, as in AWS), records the request, answers
`{}`, and runs each CUSTOM_LAMBDA rule whose function `redress provision` made runnable
(config_invoker.py: Config's invocation events, the handler run as Lambda would run it).
When asked (REDRESS_LOCAL_PERIODIC=<seconds>, see config_invoker.py), a timer runs the
periodic ones too, every <seconds>. DescribeConfigRuleEvaluationStatus answers those
runs' times and last error, whichever started them.

Inspection (GET): /_redress/config-evaluations lists the recorded
StartConfigRulesEvaluation requests, oldest first: [{"config_rule_names": [...],
"account": "...", "region": "...", "time": <unix time>}, ...];
/_redress/config-results lists every current result: [{"account", "region", "rule",
"resource_type", "resource_id", "compliance", "annotation" (or null),
"ordering_timestamp" (unix time)}, ...].

Not emulated:
  - managed rules are never evaluated: their results come only from PutEvaluations;
    custom rules are run only on StartConfigRulesEvaluation, and periodic ones on the
    timer when REDRESS_LOCAL_PERIODIC asks for it (see config_invoker.py);
  - ResultTokens are rule names, not encrypted tokens tied to one invocation;
  - resource types are not checked against the types Config supports (AWS answers
    InvalidParameterValueException for, e.g., AWS::SSM::Parameter);
  - OrderingTimestamp is stored, not used to order: the last PutEvaluations wins;
  - no proactive evaluations (EvaluationMode is always DETECTIVE; a
    ResourceEvaluationId answers InvalidParameterValueException), no aggregators, no
    conformance packs, no SNS delivery channel, no LimitExceededException;
  - ComplianceContributorCount is capped at 100 (CapExceeded beyond);
  - the event envelope is moto's: no top-level `account` (the detail's awsAccountId
    has it), and moto's default SenderId on the SQS message;
  - results and recorded requests live in memory and are lost when the process stops.

ApiError lives here, not in stack.py, because stack.py runs as __main__: importing it
back from this module would load a second copy, whose ApiError its middleware would
not catch.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol, Sequence, TypeVar

from moto.config.models import config_backends
from moto.events.models import events_backends

from config_invoker import RuleRuns

MAX_RULES_PER_EVALUATION = 25
MAX_RULE_NAME_LENGTH = 128
MAX_EVALUATIONS = 100
MAX_TYPE_LENGTH = 256
MAX_ID_LENGTH = 768
MAX_ANNOTATION_LENGTH = 256
MAX_QUERY_RULE_NAME_LENGTH = 64  # GetComplianceDetailsByConfigRule's ConfigRuleName
MAX_LIMIT = 100
DEFAULT_LIMIT = 10
PAGE_SIZE = 100  # where AWS documents none
CONTRIBUTOR_CAP = 100
# The latest time a JSON timestamp may name (datetime's range ends with year 9999).
MAX_EPOCH_SECONDS = 253402300799

COMPLIANCE_TYPES = ("COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE", "INSUFFICIENT_DATA")
EVALUATION_MODE = "DETECTIVE"
DETAIL_TYPE = "Config Rules Compliance Change"

CONFIG_EVALUATIONS_PATH = "/_redress/config-evaluations"
CONFIG_RESULTS_PATH = "/_redress/config-results"


class ApiError(Exception):
    """A JSON-protocol error answer: HTTP 400 with {"__type": code, "message": message}."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Signer(Protocol):
    """Who signed a request (stack.Caller): results and rules are theirs."""

    @property
    def account(self) -> str: ...

    @property
    def region(self) -> str: ...

    @property
    def access_key(self) -> str: ...

    @property
    def endpoint(self) -> str: ...

    def client(self, service: str): ...


def known_config_rules(account: str, region: str) -> dict[str, str]:
    """The rules moto's Config holds for this account and region: name -> rule ARN."""
    for _ in range(3):  # moto may add a rule while we read
        try:
            rules = config_backends[account][region].config_rules
            return {name: rule.config_rule_arn for name, rule in list(rules.items())}
        except KeyError:  # a region moto's Config does not know
            return {}
        except RuntimeError:
            continue
    return {}


def no_such_rule(name: str) -> ApiError:
    return ApiError(
        "NoSuchConfigRuleException",
        f"The ConfigRule '{name}' provided in the request is invalid. "
        "Please check the configRule name",
    )


# --- Request checks ----------------------------------------------------------------


def _render(value: object) -> str:
    """A value as AWS's validation messages show it."""
    if value is None:
        return "null"
    if isinstance(value, list):
        return "'[" + ", ".join(str(v) for v in value) + "]'"
    return f"'{value}'"


class Violations:
    """Model-constraint violations of one request, reported together as AWS's
    front end does: one ValidationException listing them all."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, value: object, path: str, constraint: str) -> None:
        self.messages.append(
            f"Value {_render(value)} at '{path}' failed to satisfy constraint: {constraint}"
        )

    def required(self, value: object, path: str) -> bool:
        """Whether a required member is present (records a violation if not)."""
        if value is None:
            self.add(None, path, "Member must not be null")
            return False
        return True

    def length(self, value: str | list | None, path: str, low: int, high: int) -> None:
        if value is None:
            return
        if len(value) < low:
            self.add(value, path, f"Member must have length greater than or equal to {low}")
        if len(value) > high:
            self.add(value, path, f"Member must have length less than or equal to {high}")

    def enum(self, value: str | None, path: str, allowed: Sequence[str]) -> None:
        if value is not None and value not in allowed:
            self.add(value, path, f"Member must satisfy enum value set: [{', '.join(allowed)}]")

    def check(self) -> None:
        if self.messages:
            count = len(self.messages)
            raise ApiError(
                "ValidationException",
                f"{count} validation error{'s' if count > 1 else ''} detected: "
                + "; ".join(self.messages),
            )


T = TypeVar("T")
JSON_TYPES = {
    str: "a string",
    list: "a list",
    dict: "an object",
    bool: "a boolean",
    int: "an integer",
}


def _typed(value: object, kind: type[T], path: str) -> T | None:
    """A member of the expected JSON type, or None when absent; any other type is a
    SerializationException, as the JSON protocol answers it."""
    if value is None:
        return None
    # JSON true/false are not numbers, though Python's bool is an int.
    if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
        return value
    raise ApiError("SerializationException", f"'{path}' must be {JSON_TYPES[kind]}.")


def _timestamp(value: object, path: str) -> float | None:
    """A JSON-protocol timestamp (epoch seconds, a number), or None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiError("SerializationException", f"'{path}' must be a timestamp in epoch seconds.")
    if not 0 <= value <= MAX_EPOCH_SECONDS:
        raise ApiError("SerializationException", f"'{path}' is not a valid timestamp: {value}.")
    return float(value)


def _compliance_filter(request: dict, violations: Violations, refused: str | None) -> set[str]:
    """The ComplianceTypes filter of a query (all types when absent); `refused` is a
    type the call does not filter on (InvalidParameterValueException)."""
    given = _typed(request.get("ComplianceTypes"), list, "complianceTypes") or []
    violations.length(given, "complianceTypes", 0, 3)
    for i, value in enumerate(given, 1):
        path = f"complianceTypes.{i}.member"
        violations.enum(_typed(value, str, path), path, COMPLIANCE_TYPES)
    violations.check()
    if refused is not None and refused in given:
        raise ApiError(
            "InvalidParameterValueException",
            f"{refused} cannot be used as a ComplianceType for filtering results.",
        )
    return set(given) or set(COMPLIANCE_TYPES)


# --- Pagination --------------------------------------------------------------------


def _paginate(
    items: list[T],
    key: Callable[[T], list[str]],
    scope: list[str],
    token: str | None,
    size: int,
    invalid_token: str,
) -> tuple[list[T], str | None]:
    """One page of `items` (sorted by `key`) and the token of the next, if any.

    A token holds the scope it was issued for (the call and what it asked about) and
    the key of the last item returned, so the next page starts after it even if
    results were added or removed in between.
    """
    items = sorted(items, key=key)
    start = 0
    if token is not None:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        except (ValueError, binascii.Error):
            decoded = None
        if (
            not isinstance(decoded, list)
            or len(decoded) != 2
            or decoded[0] != scope
            or not isinstance(decoded[1], list)
        ):
            raise ApiError(invalid_token, "The nextToken provided is invalid")
        after = decoded[1]
        start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
    page = items[start : start + size]
    if start + size >= len(items):
        return page, None
    next_token = base64.urlsafe_b64encode(json.dumps([scope, key(page[-1])]).encode()).decode()
    return page, next_token


# --- Results -----------------------------------------------------------------------


def _iso(t: float) -> str:
    """ISO 8601 with milliseconds, as Config's notifications write times."""
    moment = datetime.fromtimestamp(t, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a PutEvaluations request, checked."""

    resource_type: str
    resource_id: str
    compliance: str
    annotation: str | None
    ordering_timestamp: float


@dataclass(frozen=True)
class Result:
    """The current evaluation result of one (rule, resource)."""

    rule: str
    rule_arn: str  # of the rule it was put for: a rule created again has none
    resource_type: str
    resource_id: str
    compliance: str
    annotation: str | None
    ordering_timestamp: float
    recorded_time: float
    invoked_time: float

    def api(self) -> dict:
        """As the API's EvaluationResult."""
        answer: dict = {
            "EvaluationResultIdentifier": {
                "EvaluationResultQualifier": {
                    "ConfigRuleName": self.rule,
                    "ResourceType": self.resource_type,
                    "ResourceId": self.resource_id,
                    "EvaluationMode": EVALUATION_MODE,
                },
                "OrderingTimestamp": round(self.ordering_timestamp, 3),
            },
            "ComplianceType": self.compliance,
            "ResultRecordedTime": round(self.recorded_time, 3),
            "ConfigRuleInvokedTime": round(self.invoked_time, 3),
        }
        if self.annotation is not None:
            answer["Annotation"] = self.annotation
        return answer

    def notification(self) -> dict:
        """As a compliance-change notification's newEvaluationResult/oldEvaluationResult."""
        answer: dict = {
            "evaluationResultIdentifier": {
                "evaluationResultQualifier": {
                    "configRuleName": self.rule,
                    "resourceType": self.resource_type,
                    "resourceId": self.resource_id,
                    "evaluationMode": EVALUATION_MODE,
                },
                "orderingTimestamp": _iso(self.ordering_timestamp),
            },
            "complianceType": self.compliance,
            "resultRecordedTime": _iso(self.recorded_time),
            "configRuleInvokedTime": _iso(self.invoked_time),
        }
        if self.annotation is not None:
            answer["annotation"] = self.annotation
        return answer


def compliance_change_detail(
    account: str, region: str, new: Result, old: Result | None, now: float
) -> dict:
    """The `detail` of a Config Rules Compliance Change event, in Config's field order."""
    detail = {
        "resourceId": new.resource_id,
        "awsRegion": region,
        "awsAccountId": account,
        "configRuleName": new.rule,
        "recordVersion": "1.0",
        "configRuleARN": new.rule_arn,
        "messageType": "ComplianceChangeNotification",
        "newEvaluationResult": new.notification(),
        "notificationCreationTime": _iso(now),
        "resourceType": new.resource_type,
    }
    if old is not None:
        detail["oldEvaluationResult"] = old.notification()
    return detail


def put_compliance_change(account: str, region: str, detail: dict) -> None:
    """Put the event on the account's default bus through moto's EventBridge, which
    wraps it (id, time, account, region) and delivers it to matching rules' targets.

    Delivered from a thread of its own: the identity module stamps SQS messages with
    the SenderId of the request thread's signer, and Config, not the PutEvaluations
    caller, sends these events (moto's default sender id stands in for Config's).
    """
    entry = {
        "Source": "aws.config",
        "DetailType": DETAIL_TYPE,
        "Detail": json.dumps(detail),
        "EventBusName": "default",
    }
    failures: list[object] = []

    def deliver() -> None:
        try:
            answer = events_backends[account][region].put_events([entry])
            failures.extend(a for a in answer if "ErrorCode" in a)
        except Exception as err:  # reported below, in the caller's thread
            failures.append(err)

    sender = threading.Thread(target=deliver, name="config-compliance-change", daemon=True)
    sender.start()
    sender.join()
    if failures:
        raise ApiError("InternalFailure", f"Could not send the compliance change: {failures[0]}")


# --- The stand-in ------------------------------------------------------------------


@dataclass
class ConfigEvaluations:
    """Evaluation results and StartConfigRulesEvaluation requests; every access
    holds `lock`."""

    # (account, region) -> (rule, resource type, resource id) -> current result.
    results: dict[tuple[str, str], dict[tuple[str, str, str], Result]] = field(
        default_factory=dict
    )
    requests: list[dict] = field(default_factory=list)
    # Runs of custom rules (redress's evaluators) and their status.
    runs: RuleRuns = field(default_factory=RuleRuns)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _live(self, account: str, region: str, rules: dict[str, str]) -> list[Result]:
        """The results of rules that still exist (as the rule they were put for);
        call with `lock` held."""
        stored = self.results.get((account, region), {})
        return [r for r in stored.values() if rules.get(r.rule) == r.rule_arn]

    # PutEvaluations

    def put_evaluations(self, request: dict, caller: Signer) -> dict:
        violations = Violations()
        token = _typed(request.get("ResultToken"), str, "resultToken")
        violations.required(token, "resultToken")
        test_mode = _typed(request.get("TestMode"), bool, "testMode") or False
        evaluations = _typed(request.get("Evaluations"), list, "evaluations")
        violations.length(evaluations, "evaluations", 0, MAX_EVALUATIONS)
        checked: list[Evaluation] = []
        for i, given in enumerate(evaluations or [], 1):
            path = f"evaluations.{i}.member"
            member = _typed(given, dict, path) or {}
            resource_type = _typed(
                member.get("ComplianceResourceType"), str, f"{path}.complianceResourceType"
            )
            resource_id = _typed(
                member.get("ComplianceResourceId"), str, f"{path}.complianceResourceId"
            )
            compliance = _typed(member.get("ComplianceType"), str, f"{path}.complianceType")
            annotation = _typed(member.get("Annotation"), str, f"{path}.annotation")
            ordering = _timestamp(member.get("OrderingTimestamp"), f"{path}.orderingTimestamp")
            violations.required(resource_type, f"{path}.complianceResourceType")
            violations.length(resource_type, f"{path}.complianceResourceType", 1, MAX_TYPE_LENGTH)
            violations.required(resource_id, f"{path}.complianceResourceId")
            violations.length(resource_id, f"{path}.complianceResourceId", 1, MAX_ID_LENGTH)
            violations.required(compliance, f"{path}.complianceType")
            violations.enum(compliance, f"{path}.complianceType", COMPLIANCE_TYPES)
            violations.length(annotation, f"{path}.annotation", 1, MAX_ANNOTATION_LENGTH)
            violations.required(ordering, f"{path}.orderingTimestamp")
            # Complete unless a violation was recorded (and check() raises below).
            if (
                resource_type is not None
                and resource_id is not None
                and compliance is not None
                and ordering is not None
            ):
                checked.append(
                    Evaluation(resource_type, resource_id, compliance, annotation, ordering)
                )
        violations.check()

        if not checked:
            raise ApiError(
                "InvalidParameterValueException",
                "The Evaluations object in your request cannot be null. "
                "Add the required parameters and try again.",
            )
        account, region = caller.account, caller.region
        rule = (token or "").split(":", 1)[0]
        rule_arn = known_config_rules(account, region).get(rule)
        if rule_arn is None and not test_mode:
            raise ApiError("InvalidResultTokenException", "The resultToken provided is invalid")
        if any(e.compliance == "INSUFFICIENT_DATA" for e in checked):
            raise ApiError(
                "InvalidParameterValueException",
                "The ComplianceType INSUFFICIENT_DATA is not valid for PutEvaluations. "
                "Valid values: COMPLIANT, NON_COMPLIANT, NOT_APPLICABLE.",
            )
        if test_mode or rule_arn is None:
            return {"FailedEvaluations": []}

        with self.lock:
            stored = self.results.setdefault((account, region), {})
            for evaluation in checked:
                key = (rule, evaluation.resource_type, evaluation.resource_id)
                old = stored.get(key)
                if old is not None and old.rule_arn != rule_arn:
                    old = None  # put for a deleted rule of the same name
                now = time.time()
                new = Result(
                    rule=rule,
                    rule_arn=rule_arn,
                    resource_type=evaluation.resource_type,
                    resource_id=evaluation.resource_id,
                    compliance=evaluation.compliance,
                    annotation=evaluation.annotation,
                    ordering_timestamp=evaluation.ordering_timestamp,
                    recorded_time=now,
                    invoked_time=now,
                )
                stored[key] = new
                # Still under the lock, so events leave in the order results changed.
                if old is None or old.compliance != new.compliance:
                    detail = compliance_change_detail(account, region, new, old, now)
                    put_compliance_change(account, region, detail)
        return {"FailedEvaluations": []}

    # Queries

    def get_compliance_details_by_resource(self, request: dict, caller: Signer) -> dict:
        violations = Violations()
        resource_type = _typed(request.get("ResourceType"), str, "resourceType")
        resource_id = _typed(request.get("ResourceId"), str, "resourceId")
        evaluation_id = _typed(request.get("ResourceEvaluationId"), str, "resourceEvaluationId")
        token = _typed(request.get("NextToken"), str, "nextToken")
        violations.length(resource_type, "resourceType", 1, MAX_TYPE_LENGTH)
        violations.length(resource_id, "resourceId", 1, MAX_ID_LENGTH)
        violations.length(evaluation_id, "resourceEvaluationId", 1, 128)
        wanted = _compliance_filter(request, violations, refused="INSUFFICIENT_DATA")
        if evaluation_id is not None:
            raise ApiError(
                "InvalidParameterValueException",
                "ResourceEvaluationId (proactive evaluation) is not supported by the local "
                "Config stand-in; give ResourceType and ResourceId.",
            )
        if resource_type is None or resource_id is None:
            raise ApiError(
                "InvalidParameterValueException",
                "Provide either a ResourceEvaluationId or a ResourceType and ResourceId.",
            )
        account, region = caller.account, caller.region
        rules = known_config_rules(account, region)
        with self.lock:
            found = [
                r
                for r in self._live(account, region, rules)
                if r.resource_type == resource_type
                and r.resource_id == resource_id
                and r.compliance in wanted
            ]
        page, next_token = _paginate(
            found,
            key=lambda r: [r.rule],
            scope=["GetComplianceDetailsByResource", resource_type, resource_id],
            token=token,
            size=PAGE_SIZE,
            # The call's only documented error.
            invalid_token="InvalidParameterValueException",
        )
        return self._answer("EvaluationResults", [r.api() for r in page], next_token)

    def get_compliance_details_by_config_rule(self, request: dict, caller: Signer) -> dict:
        violations = Violations()
        rule = _typed(request.get("ConfigRuleName"), str, "configRuleName")
        limit = _typed(request.get("Limit"), int, "limit")
        token = _typed(request.get("NextToken"), str, "nextToken")
        if violations.required(rule, "configRuleName"):
            violations.length(rule, "configRuleName", 1, MAX_QUERY_RULE_NAME_LENGTH)
        if limit is not None and limit < 0:
            violations.add(limit, "limit", "Member must have value greater than or equal to 0")
        if limit is not None and limit > MAX_LIMIT:
            violations.add(
                limit, "limit", f"Member must have value less than or equal to {MAX_LIMIT}"
            )
        wanted = _compliance_filter(request, violations, refused="INSUFFICIENT_DATA")
        account, region = caller.account, caller.region
        rules = known_config_rules(account, region)
        if rule not in rules:
            raise no_such_rule(str(rule))
        with self.lock:
            found = [
                r
                for r in self._live(account, region, rules)
                if r.rule == rule and r.compliance in wanted
            ]
        page, next_token = _paginate(
            found,
            key=lambda r: [r.resource_type, r.resource_id],
            scope=["GetComplianceDetailsByConfigRule", str(rule)],
            token=token,
            size=limit or DEFAULT_LIMIT,
            invalid_token="InvalidNextTokenException",
        )
        return self._answer("EvaluationResults", [r.api() for r in page], next_token)

    def describe_compliance_by_config_rule(self, request: dict, caller: Signer) -> dict:
        violations = Violations()
        names = _typed(request.get("ConfigRuleNames"), list, "configRuleNames") or []
        token = _typed(request.get("NextToken"), str, "nextToken")
        violations.length(names, "configRuleNames", 0, MAX_RULES_PER_EVALUATION)
        for i, name in enumerate(names, 1):
            path = f"configRuleNames.{i}.member"
            violations.length(_typed(name, str, path), path, 1, MAX_RULE_NAME_LENGTH)
        # The Compliance type has no NOT_APPLICABLE: filtering on it matches nothing.
        wanted = _compliance_filter(request, violations, refused=None)
        account, region = caller.account, caller.region
        rules = known_config_rules(account, region)
        for name in names:
            if name not in rules:
                raise no_such_rule(name)
        with self.lock:
            live = self._live(account, region, rules)
        compliance = []
        for name in sorted(set(names) if names else rules):
            verdict = self._rule_compliance([r for r in live if r.rule == name])
            if verdict["ComplianceType"] in wanted:
                compliance.append({"ConfigRuleName": name, "Compliance": verdict})
        page, next_token = _paginate(
            compliance,
            key=lambda c: [c["ConfigRuleName"]],
            scope=["DescribeComplianceByConfigRule"],
            token=token,
            size=PAGE_SIZE,
            invalid_token="InvalidNextTokenException",
        )
        return self._answer("ComplianceByConfigRules", page, next_token)

    @staticmethod
    def _rule_compliance(results: list[Result]) -> dict:
        """A rule's compliance from its resources' results, as Config sums it up."""
        noncompliant = sum(r.compliance == "NON_COMPLIANT" for r in results)
        if noncompliant:
            return {
                "ComplianceType": "NON_COMPLIANT",
                "ComplianceContributorCount": {
                    "CappedCount": min(noncompliant, CONTRIBUTOR_CAP),
                    "CapExceeded": noncompliant > CONTRIBUTOR_CAP,
                },
            }
        if any(r.compliance == "COMPLIANT" for r in results):
            return {"ComplianceType": "COMPLIANT"}
        # No results, or only NOT_APPLICABLE ones (the Compliance type has no such value).
        return {"ComplianceType": "INSUFFICIENT_DATA"}

    @staticmethod
    def _answer(member: str, items: list, next_token: str | None) -> dict:
        answer: dict = {member: items}
        if next_token is not None:
            answer["NextToken"] = next_token
        return answer

    # StartConfigRulesEvaluation

    def start(self, request: dict, caller: Signer) -> dict:
        names = request.get("ConfigRuleNames")
        if (
            not isinstance(names, list)
            or not 1 <= len(names) <= MAX_RULES_PER_EVALUATION
            or not all(
                isinstance(n, str) and 1 <= len(n) <= MAX_RULE_NAME_LENGTH and n.strip()
                for n in names
            )
        ):
            raise ApiError(
                "InvalidParameterValueException",
                f"ConfigRuleNames must list 1 to {MAX_RULES_PER_EVALUATION} Config rule "
                f"names, each of 1 to {MAX_RULE_NAME_LENGTH} characters and not blank.",
            )
        account = caller.account
        known = known_config_rules(account, caller.region)
        for name in names:
            if name not in known:
                raise no_such_rule(name)
        with self.lock:
            self.requests.append(
                {
                    "config_rule_names": list(names),
                    "account": account,
                    "region": caller.region,
                    "time": time.time(),
                }
            )
        for name in names:
            self.run(caller, name)
        return {}

    def run(self, caller: Signer, name: str) -> None:
        """Starts a run of a rule (a StartConfigRulesEvaluation, or the periodic timer),
        with the resources it holds results for (a gone one is reported deleted)."""
        known = known_config_rules(caller.account, caller.region)
        with self.lock:
            previously = sorted(
                r.resource_id
                for r in self._live(caller.account, caller.region, known)
                if r.rule == name
            )
        self.runs.start(caller, name, previously)

    def describe_config_rule_evaluation_status(self, request: dict, caller: Signer) -> dict:
        names = _typed(request.get("ConfigRuleNames"), list, "configRuleNames") or []
        known = known_config_rules(caller.account, caller.region)
        for name in names:
            if name not in known:
                raise no_such_rule(name)
        listed = self.runs.describe(
            caller.account, caller.region, list(names) or sorted(known), known
        )
        return {"ConfigRulesEvaluationStatus": listed}

    # Inspection views

    def recorded(self) -> list[dict]:
        """GET /_redress/config-evaluations."""
        with self.lock:
            return [dict(r, config_rule_names=list(r["config_rule_names"])) for r in self.requests]

    def current_results(self) -> list[dict]:
        """GET /_redress/config-results: the results of rules that still exist."""
        with self.lock:
            scopes = list(self.results)
        listed: list[dict] = []
        for account, region in scopes:
            rules = known_config_rules(account, region)
            with self.lock:
                live = self._live(account, region, rules)
            listed.extend(
                {
                    "account": account,
                    "region": region,
                    "rule": r.rule,
                    "resource_type": r.resource_type,
                    "resource_id": r.resource_id,
                    "compliance": r.compliance,
                    "annotation": r.annotation,
                    "ordering_timestamp": r.ordering_timestamp,
                }
                for r in live
            )
        fields = ("account", "region", "rule", "resource_type", "resource_id")
        listed.sort(key=lambda r: tuple(r[f] for f in fields))
        return listed
