"""The local AWS stack: moto's server plus stand-ins for what moto lacks.

One threaded WSGI server on loopback answers every AWS API call the pipeline makes
locally. moto serves SQS, EventBridge (with delivery to SQS targets), EC2, SSM
Parameter Store and documents, S3, IAM, STS and Config's rule bookkeeping. moto does
not implement SSM Automation executions or Config's evaluations, so a middleware in
front of it answers these JSON-protocol calls itself, speaking the real wire format
(application/x-amz-json-1.1, the call named in X-Amz-Target, errors as HTTP 400 with
a `__type` body):

    AmazonSSM.StartAutomationExecution
    AmazonSSM.GetAutomationExecution
    AmazonSSM.StopAutomationExecution
    AmazonSSM.DescribeAutomationExecutions
    StarlingDoveService.PutEvaluations                    (config_standin.py)
    StarlingDoveService.GetComplianceDetailsByResource    (config_standin.py)
    StarlingDoveService.GetComplianceDetailsByConfigRule  (config_standin.py)
    StarlingDoveService.DescribeComplianceByConfigRule    (config_standin.py)
    StarlingDoveService.StartConfigRulesEvaluation        (config_standin.py)

An execution starts `InProgress`, waits a short delay (env
REDRESS_STANDIN_STEP_DELAY_MS, default 300) in a background thread, applies the
runbook's real effect to the emulated resources by calling this same server
through boto3 (as the caller's access key and region, so it reaches the same moto
account and region), then ends `Success`, or `Failed` with a FailureMessage.
ClientToken idempotency, required/unknown/allowed parameter checks, regional
scoping of executions and the documented error codes follow the real API.

Runbooks: AWS-EnableS3BucketEncryption and AWS-DisablePublicAccessForSecurityGroup
(AWS-owned documents, with their real parameters), and two test-only documents (no
such documents exist in AWS):
  - Redress-Test-AlwaysFail always ends Failed;
  - Redress-Test-Sleep (required parameter Seconds, a whole number 0-600 as a string)
    stays InProgress for at least Seconds (plus the step delay), then ends Success;
    it changes nothing. For testing long runs, e.g. the executor's visibility heartbeat.

Config evaluations: results put with PutEvaluations (a ResultToken is the rule's name)
for the rules moto holds, per account and region; a change of a resource's compliance
puts a `Config Rules Compliance Change` event on the default event bus; the compliance
queries answer from these results; StartConfigRulesEvaluation requires existing rules
and is recorded. GET /_redress/config-evaluations lists the recorded requests, GET
/_redress/config-results the current results. See config_standin.py, which says what
is and is not emulated.

Caller identities, AssumeRole into missing roles (AccessDenied) and the
OrganizationAccountAccessRole of every account: see identity.py.

Not emulated (SSM Automation; for Config see config_standin.py):
  - AutomationAssumeRole is accepted but never checked against IAM;
  - no step-level records or outputs (`Outputs` is always empty);
  - no approval or rate-control modes, no multi-account or multi-region targets;
    `Mode` is always `Auto`, DocumentVersion is always "1";
  - StopAutomationExecution on an execution that has already ended is a no-op;
  - DescribeAutomationExecutions filters only on DocumentNamePrefix, ExecutionId
    and ExecutionStatus, and does not paginate;
  - AWS-DisablePublicAccessForSecurityGroup revokes only the world-open SSH/RDP
    rules that exist; the real runbook fails with InvalidPermission.NotFound on
    some groups outside the default VPC that lack one of the patterns it revokes;
  - executions live in memory and are lost when the process stops.

Every request is also counted by service and action (stats.py, outermost):
GET /_redress/stats shows the counts, POST /_redress/stats/reset zeroes them.

Usage: stack.py [--host 127.0.0.1] [--port N]   (port default: env
REDRESS_LOCAL_PORT, else 4599)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

import identity
import serving
import stats
from config_standin import (
    CONFIG_EVALUATIONS_PATH,
    CONFIG_RESULTS_PATH,
    ApiError,
    ConfigEvaluations,
)
from werkzeug.wrappers import Request

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
DEFAULT_PORT = 4599
DEFAULT_REGION = "us-east-1"

CLIENT_TOKEN_PATTERN = re.compile(
    r"[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}"
)
# SigV4: "Credential=<access key>/<yyyymmdd>/<region>/<service>/aws4_request".
CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/")


class RunbookFailure(Exception):
    """A runbook step failed; the message becomes the execution's FailureMessage."""


# --- Runbooks ------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    required: bool = False
    default: str = ""
    allowed: tuple[str, ...] = ()
    # Returns what is wrong with a value, or None when it is acceptable.
    check: Callable[[str], str | None] | None = None


@dataclass(frozen=True)
class Caller:
    """Who signed a request: an execution's effects run as the same identity."""

    access_key: str
    region: str
    endpoint: str

    @property
    def account(self) -> str:
        """The account the request acts in, as moto decides it from the access key
        (temporary credentials from AssumeRole act in the role's account)."""
        return identity.account_of(self.access_key)

    def client(self, service: str):
        # A session of its own: boto3's shared default session is not thread-safe.
        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            # moto never checks signatures; the access key picks the account.
            aws_access_key_id=self.access_key,
            aws_secret_access_key="redress-local",
            config=Config(retries={"max_attempts": 1}),
        )


@dataclass(frozen=True)
class Runbook:
    parameters: dict[str, Param]
    apply: Callable[[Caller, dict[str, str]], None]


def _client_error(err: ClientError, doing: str) -> RunbookFailure:
    error = err.response.get("Error", {})
    return RunbookFailure(f"{doing} failed: {error.get('Code')}: {error.get('Message')}")


def enable_s3_bucket_encryption(caller: Caller, params: dict[str, str]) -> None:
    bucket = params["BucketName"]
    default_rule = {"SSEAlgorithm": params["SSEAlgorithm"]}
    if params["SSEAlgorithm"] == "aws:kms" and params["KMSMasterKey"]:
        default_rule["KMSMasterKeyID"] = params["KMSMasterKey"]
    try:
        caller.client("s3").put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": default_rule}]
            },
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "NoSuchBucket":
            raise RunbookFailure(f"bucket {bucket} does not exist (NoSuchBucket)") from err
        raise _client_error(err, f"PutBucketEncryption on {bucket}") from err


ADMIN_PORTS = (22, 3389)  # SSH and RDP, the ports the real runbook closes


def disable_public_access_for_security_group(caller: Caller, params: dict[str, str]) -> None:
    group_id = params["GroupId"]
    ec2 = caller.client("ec2")
    try:
        group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "InvalidGroup.NotFound":
            raise RunbookFailure(
                f"security group {group_id} does not exist (InvalidGroup.NotFound)"
            ) from err
        raise _client_error(err, f"DescribeSecurityGroups on {group_id}") from err

    ipv4_sources = {"0.0.0.0/0"}
    if params["IpAddressToBlock"]:
        ipv4_sources.add(params["IpAddressToBlock"])
    # Like the real runbook, revoke exactly the SSH/RDP rules from those sources:
    # other ports, wider port ranges and other source ranges stay as they are.
    to_revoke = []
    for perm in group.get("IpPermissions", []):
        if perm.get("IpProtocol") != "tcp" or perm.get("FromPort") not in ADMIN_PORTS:
            continue
        if perm.get("ToPort") != perm.get("FromPort"):
            continue
        ports = {"IpProtocol": "tcp", "FromPort": perm["FromPort"], "ToPort": perm["ToPort"]}
        for ip_range in perm.get("IpRanges", []):
            if ip_range.get("CidrIp") in ipv4_sources:
                to_revoke.append({**ports, "IpRanges": [{"CidrIp": ip_range["CidrIp"]}]})
        for ip_range in perm.get("Ipv6Ranges", []):
            if ip_range.get("CidrIpv6") == "::/0":
                to_revoke.append({**ports, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]})
    if to_revoke:
        try:
            ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=to_revoke)
        except ClientError as err:
            raise _client_error(err, f"RevokeSecurityGroupIngress on {group_id}") from err


def always_fail(caller: Caller, params: dict[str, str]) -> None:
    raise RunbookFailure("step failed on purpose (test runbook)")


MAX_SLEEP_SECONDS = 600


def sleep_seconds(value: str) -> str | None:
    if not value.isdigit() or not 0 <= int(value) <= MAX_SLEEP_SECONDS:
        return f"is not a whole number of seconds from 0 to {MAX_SLEEP_SECONDS}"
    return None


def sleep(caller: Caller, params: dict[str, str]) -> None:
    time.sleep(int(params["Seconds"]))


ASSUME_ROLE = Param()  # accepted, never checked against IAM

RUNBOOKS: dict[str, Runbook] = {
    "AWS-EnableS3BucketEncryption": Runbook(
        parameters={
            "AutomationAssumeRole": ASSUME_ROLE,
            "BucketName": Param(required=True),
            "SSEAlgorithm": Param(default="AES256", allowed=("AES256", "aws:kms")),
            "KMSMasterKey": Param(),
        },
        apply=enable_s3_bucket_encryption,
    ),
    "AWS-DisablePublicAccessForSecurityGroup": Runbook(
        parameters={
            "AutomationAssumeRole": ASSUME_ROLE,
            "GroupId": Param(required=True),
            # Documented as an additional IPv4 source to block; read here as one
            # more CIDR whose SSH/RDP rules are revoked.
            "IpAddressToBlock": Param(),
        },
        apply=disable_public_access_for_security_group,
    ),
    # Test-only document (no such document exists in AWS): it always ends Failed,
    # so the pipeline's failure paths can be exercised end to end.
    "Redress-Test-AlwaysFail": Runbook(
        parameters={"AutomationAssumeRole": ASSUME_ROLE},
        apply=always_fail,
    ),
    # Test-only document: stays InProgress for Seconds, then ends Success without any
    # effect, so long runs (the executor's visibility heartbeat) can be exercised.
    "Redress-Test-Sleep": Runbook(
        parameters={
            "AutomationAssumeRole": ASSUME_ROLE,
            "Seconds": Param(required=True, check=sleep_seconds),
        },
        apply=sleep,
    ),
}


def resolve_parameters(document: str, runbook: Runbook, given: dict) -> dict[str, str]:
    """Check the request's parameters against the document and fill in defaults."""

    def invalid(message: str) -> ApiError:
        return ApiError("InvalidAutomationExecutionParametersException", message)

    unknown = sorted(set(given) - set(runbook.parameters))
    if unknown:
        raise invalid(f"Parameters {unknown} are not defined in document {document}.")
    resolved = {}
    for name, spec in runbook.parameters.items():
        values = given.get(name)
        if values is None:
            if spec.required:
                raise invalid(
                    f"Parameter {name} is required by document {document} but was not provided."
                )
            resolved[name] = spec.default
            continue
        if len(values) != 1:
            raise invalid(f"Parameter {name} takes exactly one value, got {len(values)}.")
        if spec.allowed and values[0] not in spec.allowed:
            raise invalid(
                f"Parameter {name} value {values[0]!r} is not one of {list(spec.allowed)}."
            )
        problem = spec.check(values[0]) if spec.check else None
        if problem:
            raise invalid(f"Parameter {name} value {values[0]!r} {problem}.")
        resolved[name] = values[0]
    return resolved


# --- Executions ------------------------------------------------------------------


@dataclass
class Execution:
    id: str
    region: str
    document: str
    parameters: dict[str, str]
    start_time: float
    status: str = "InProgress"
    end_time: float | None = None
    failure_message: str | None = None

    def finish(self, status: str, failure_message: str | None = None) -> None:
        self.status = status
        self.end_time = time.time()
        self.failure_message = failure_message

    def metadata(self) -> dict:
        answer = {
            "AutomationExecutionId": self.id,
            "DocumentName": self.document,
            "DocumentVersion": "1",
            "AutomationExecutionStatus": self.status,
            "ExecutionStartTime": self.start_time,
            "Mode": "Auto",
        }
        if self.end_time is not None:
            answer["ExecutionEndTime"] = self.end_time
        return answer

    def details(self) -> dict:
        answer = self.metadata()
        answer["Parameters"] = {name: [value] for name, value in self.parameters.items()}
        answer["Outputs"] = {}
        if self.failure_message is not None:
            answer["FailureMessage"] = self.failure_message
        return answer


@dataclass(frozen=True)
class TokenUse:
    document: str
    parameters: dict
    execution_id: str


@dataclass
class Automation:
    """The executions and their idempotency tokens; every access holds `lock`.

    Like SSM's, executions and client tokens are regional: a call only sees those
    started in its own region.
    """

    step_delay: float
    executions: dict[str, Execution] = field(default_factory=dict)
    tokens: dict[tuple[str, str], TokenUse] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, request: dict, caller: Caller) -> dict:
        document = request.get("DocumentName")
        if not isinstance(document, str) or not document:
            raise ApiError("ValidationException", "DocumentName is required.")
        given = request.get("Parameters") or {}
        if not isinstance(given, dict) or not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in given.values()
        ):
            raise ApiError(
                "ValidationException", "Parameters must map names to lists of strings."
            )
        token = request.get("ClientToken")
        if token is not None and not (
            isinstance(token, str) and CLIENT_TOKEN_PATTERN.fullmatch(token)
        ):
            raise ApiError(
                "ValidationException",
                f"1 validation error detected: Value '{token}' at 'clientToken' failed to "
                f"satisfy constraint: Member must satisfy regular expression pattern: "
                f"{CLIENT_TOKEN_PATTERN.pattern}",
            )
        runbook = RUNBOOKS.get(document)
        if runbook is None:
            raise ApiError(
                "AutomationDefinitionNotFoundException",
                f"Automation definition {document} could not be found.",
            )

        with self.lock:
            token_key = (caller.region, token)
            if token is not None and token_key in self.tokens:
                used = self.tokens[token_key]
                if used.document != document or used.parameters != given:
                    raise ApiError(
                        "IdempotentParameterMismatch",
                        f"ClientToken {token} was already used with a different "
                        "document or different parameters.",
                    )
                return {"AutomationExecutionId": used.execution_id}
            parameters = resolve_parameters(document, runbook, given)
            execution = Execution(
                id=str(uuid.uuid4()),
                region=caller.region,
                document=document,
                parameters=parameters,
                start_time=time.time(),
            )
            self.executions[execution.id] = execution
            if token is not None:
                self.tokens[token_key] = TokenUse(document, given, execution.id)

        threading.Thread(
            target=self._run,
            args=(execution, runbook, caller),
            name=f"automation-{execution.id}",
            daemon=True,
        ).start()
        return {"AutomationExecutionId": execution.id}

    def _run(self, execution: Execution, runbook: Runbook, caller: Caller) -> None:
        time.sleep(self.step_delay)
        with self.lock:
            if execution.status != "InProgress":  # stopped while waiting
                return
        try:
            runbook.apply(caller, execution.parameters)
            outcome = ("Success", None)
        except RunbookFailure as failure:
            outcome = ("Failed", str(failure))
        except (ClientError, BotoCoreError) as err:
            outcome = ("Failed", f"{execution.document} step failed: {err}")
        with self.lock:
            # A Stop that landed while the step ran wins, as in SSM: the
            # execution stays Cancelled even though the step's effect happened.
            if execution.status == "InProgress":
                execution.finish(*outcome)

    def _find(self, request: dict, caller: Caller) -> Execution:
        execution_id = request.get("AutomationExecutionId")
        execution = self.executions.get(execution_id) if isinstance(execution_id, str) else None
        if execution is None or execution.region != caller.region:
            raise ApiError(
                "AutomationExecutionNotFoundException",
                f"Automation execution {execution_id} could not be found.",
            )
        return execution

    def get(self, request: dict, caller: Caller) -> dict:
        with self.lock:
            return {"AutomationExecution": self._find(request, caller).details()}

    def stop(self, request: dict, caller: Caller) -> dict:
        with self.lock:
            execution = self._find(request, caller)
            if execution.status == "InProgress":
                execution.finish("Cancelled")
        return {}

    def describe(self, request: dict, caller: Caller) -> dict:
        tests: list[Callable[[Execution], bool]] = [lambda e: e.region == caller.region]
        for entry in request.get("Filters") or []:
            key, values = entry.get("Key"), entry.get("Values") or []
            if not isinstance(values, list) or not values:
                raise ApiError("ValidationException", f"Filter {key} needs at least one value.")
            if key == "DocumentNamePrefix":
                tests.append(lambda e, v=values: any(e.document.startswith(p) for p in v))
            elif key == "ExecutionId":
                tests.append(lambda e, v=values: e.id in v)
            elif key == "ExecutionStatus":
                tests.append(lambda e, v=values: e.status in v)
            else:
                raise ApiError(
                    "InvalidFilterKey",
                    f"Filter key {key} is not supported by the local automation stand-in.",
                )
        with self.lock:
            matching = [e for e in self.executions.values() if all(t(e) for t in tests)]
            matching.sort(key=lambda e: e.start_time, reverse=True)
            return {"AutomationExecutionMetadataList": [e.metadata() for e in matching]}


# --- WSGI ------------------------------------------------------------------------

Handler = Callable[[dict, Caller], dict]


class StandInMiddleware:
    """Answers the JSON-protocol calls the stand-ins implement (chosen by X-Amz-Target)
    and their GET inspection endpoints (chosen by path); passes everything else to moto."""

    def __init__(
        self,
        app,
        endpoint: str,
        handlers: dict[str, Handler],
        views: dict[str, Callable[[], object]],
    ) -> None:
        self.app = app
        self.endpoint = endpoint
        self.handlers = handlers
        self.views = views

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        view = self.views.get(environ.get("PATH_INFO", ""))
        if view is not None and environ.get("REQUEST_METHOD") == "GET":
            return self._respond(start_response, "200 OK", view(), "application/json")
        handler = self.handlers.get(environ.get("HTTP_X_AMZ_TARGET", ""))
        if handler is None:
            return self.app(environ, start_response)
        try:
            try:
                request = json.loads(Request(environ).get_data() or b"{}")
            except ValueError as err:
                raise ApiError("SerializationException", f"Request body is not JSON: {err}")
            if not isinstance(request, dict):
                raise ApiError("SerializationException", "Request body must be a JSON object.")
            return self._respond(start_response, "200 OK", handler(request, self._caller(environ)))
        except ApiError as err:
            return self._respond(
                start_response, "400 Bad Request", {"__type": err.code, "message": err.message}
            )

    def _caller(self, environ: dict) -> Caller:
        scope = CREDENTIAL_SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if scope:
            return Caller(scope.group(1), scope.group(2), self.endpoint)
        region = os.environ.get("AWS_REGION") or DEFAULT_REGION
        return Caller("testing", region, self.endpoint)

    @staticmethod
    def _respond(
        start_response, status: str, payload: object, content_type: str = JSON_CONTENT_TYPE
    ) -> list[bytes]:
        body = json.dumps(payload).encode()
        start_response(
            status,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                ("x-amzn-RequestId", str(uuid.uuid4())),
            ],
        )
        return [body]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("REDRESS_LOCAL_PORT", DEFAULT_PORT))
    )
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="exit when standard input closes (lets a test harness tie the stack's "
        "life to its own, even if the harness is killed)",
    )
    args = parser.parse_args(argv)

    step_delay = int(os.environ.get("REDRESS_STANDIN_STEP_DELAY_MS", "300")) / 1000
    endpoint = f"http://{args.host}:{args.port}"
    moto_app = DomainDispatcherApplication(create_backend_app)
    identity.install()
    # Outermost: stats counts every call (GET /_redress/stats, POST /_redress/stats/reset).
    automation = Automation(step_delay=step_delay)
    config = ConfigEvaluations()
    stand_ins = StandInMiddleware(
        moto_app,
        endpoint,
        handlers={
            "AmazonSSM.StartAutomationExecution": automation.start,
            "AmazonSSM.GetAutomationExecution": automation.get,
            "AmazonSSM.StopAutomationExecution": automation.stop,
            "AmazonSSM.DescribeAutomationExecutions": automation.describe,
            "StarlingDoveService.StartConfigRulesEvaluation": config.start,
            "StarlingDoveService.PutEvaluations": config.put_evaluations,
            "StarlingDoveService.GetComplianceDetailsByResource": (
                config.get_compliance_details_by_resource
            ),
            "StarlingDoveService.GetComplianceDetailsByConfigRule": (
                config.get_compliance_details_by_config_rule
            ),
            "StarlingDoveService.DescribeComplianceByConfigRule": (
                config.describe_compliance_by_config_rule
            ),
        },
        views={
            CONFIG_EVALUATIONS_PATH: config.recorded,
            CONFIG_RESULTS_PATH: config.current_results,
        },
    )
    app = stats.StatsMiddleware(identity.IdentityMiddleware(stand_ins))

    # Threaded: runbook effects call back into this same server while it is
    # still answering the caller's polls.
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    serving.serve_forever(
        server, f"redress local stack listening on {endpoint}", args.exit_with_stdin
    )


if __name__ == "__main__":
    main()
