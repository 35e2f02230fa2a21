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
    StarlingDoveService.DescribeConfigRuleEvaluationStatus (config_standin.py)

An execution starts `InProgress`, waits a short delay (env
REDRESS_STANDIN_STEP_DELAY_MS, default 300) in a background thread, applies the
runbook's effect to the emulated resources by calling this same server through
boto3 (as the caller's access key and region, so it reaches the same moto account
and region), then ends `Success` with the effect in its Outputs, or `Failed` with a
FailureMessage. ClientToken idempotency, regional scoping of executions and the
documented error codes follow the real API.

Runbooks (runbooks.py): every document of redress's runbook catalog,
infra/runbooks/catalog.json (the AWS-owned documents redress knows, with the
parameters AWS validates against). StartAutomationExecution checks the parameters
against the catalog as AWS does (undeclared, missing required, type, allowed values,
pattern), answering InvalidAutomationExecutionParametersException with AWS's wording
(runbooks.py says which wordings are confirmed); a document outside the catalog is
AutomationDefinitionNotFoundException. The effects of the documents runbooks.EFFECTS
lists (security groups, S3 buckets and the account's public access block, KMS keys,
the IAM password policy, EBS default encryption, IMDSv2, EBS volumes, Elastic IPs,
CloudTrail trails, DynamoDB PITR, SNS encryption, RDS instances) are emulated; every
other catalog document ends Success with Outputs["RedressLocal.Effect"] saying
"effect not emulated: ..." and changes nothing. Two test-only documents (no such
documents exist in AWS):
  - Redress-Test-AlwaysFail always ends Failed;
  - Redress-Test-Sleep (required parameter Seconds, a whole number 0-600 as a string)
    stays InProgress for at least Seconds (plus the step delay), then ends Success;
    it changes nothing. For testing long runs, e.g. the executor's visibility heartbeat.

Config evaluations: results put with PutEvaluations (a ResultToken is the rule's name)
for the rules moto holds, per account and region; a change of a resource's compliance
puts a `Config Rules Compliance Change` event on the default event bus; the compliance
queries answer from these results; StartConfigRulesEvaluation requires existing rules
and is recorded, and runs redress's custom rules (config_invoker.py). With
REDRESS_LOCAL_PERIODIC=<seconds> (or --periodic; default off) a timer also runs the
periodic custom rules every <seconds>, recorded in DescribeConfigRuleEvaluationStatus
as requested runs are. GET /_redress/config-evaluations lists the recorded requests, GET
/_redress/config-results the current results. See config_standin.py, which says what
is and is not emulated.

Caller identities, AssumeRole into missing roles (AccessDenied) and the
OrganizationAccountAccessRole of every account: see identity.py.

Not emulated (SSM Automation; for Config see config_standin.py):
  - AutomationAssumeRole is accepted but never checked against IAM;
  - no step-level records; `Outputs` holds only RedressLocal.Effect, never the
    document's own outputs;
  - no approval or rate-control modes, no multi-account or multi-region targets;
    `Mode` is always `Auto`, DocumentVersion is always "1";
  - StopAutomationExecution on an execution that has already ended is a no-op;
  - DescribeAutomationExecutions filters only on DocumentNamePrefix, ExecutionId
    and ExecutionStatus, and does not paginate;
  - effects follow the documents' steps only as far as runbooks.py says (for
    example AWS-DisablePublicAccessForSecurityGroup revokes only the world-open
    SSH/RDP rules that exist, where the real runbook fails with
    InvalidPermission.NotFound on some groups outside the default VPC);
  - executions live in memory and are lost when the process stops.

Every request is also counted by service and action (stats.py, outermost):
GET /_redress/stats shows the counts, POST /_redress/stats/reset zeroes them.

Usage: stack.py [--host 127.0.0.1] [--port N] [--periodic SECONDS]   (port default:
env REDRESS_LOCAL_PORT, else 4599; periodic default: env REDRESS_LOCAL_PERIODIC, else
off)
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

from botocore.exceptions import BotoCoreError, ClientError
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

import identity
import runbooks
import serving
import stats
from config_invoker import PERIODIC_VARIABLE, Periodic, periodic_interval
from config_standin import (
    CONFIG_EVALUATIONS_PATH,
    CONFIG_RESULTS_PATH,
    ApiError,
    ConfigEvaluations,
)
from runbooks import Caller, RunbookFailure
from werkzeug.wrappers import Request

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"
DEFAULT_PORT = 4599
DEFAULT_REGION = "us-east-1"

CLIENT_TOKEN_PATTERN = re.compile(
    r"[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}"
)
# SigV4: "Credential=<access key>/<yyyymmdd>/<region>/<service>/aws4_request".
CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/")


# --- Runbooks ------------------------------------------------------------------
# The documents, their parameter checks and their emulated effects: runbooks.py, from the
# runbook catalog (infra/runbooks/catalog.json).


# --- Executions ------------------------------------------------------------------


@dataclass
class Execution:
    id: str
    region: str
    document: str
    # Every parameter of the document, defaults filled in, as GetAutomationExecution shows them.
    parameters: dict[str, list[str]]
    start_time: float
    status: str = "InProgress"
    end_time: float | None = None
    failure_message: str | None = None
    outputs: dict[str, list[str]] = field(default_factory=dict)

    def finish(
        self,
        status: str,
        failure_message: str | None = None,
        outputs: dict[str, list[str]] | None = None,
    ) -> None:
        self.status = status
        self.end_time = time.time()
        self.failure_message = failure_message
        self.outputs = outputs or {}

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
        answer["Parameters"] = {name: list(values) for name, values in self.parameters.items()}
        answer["Outputs"] = {name: list(values) for name, values in self.outputs.items()}
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
    # The runbook catalog's documents (runbooks.py): what may be started, with what.
    catalog: dict[str, runbooks.Document] = field(default_factory=runbooks.load_catalog)
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
        runbook = self.catalog.get(document)
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
            try:
                parameters = runbooks.resolve_parameters(runbook, given)
            except runbooks.InvalidParameters as err:
                raise ApiError("InvalidAutomationExecutionParametersException", str(err))
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

    def _run(self, execution: Execution, runbook: runbooks.Document, caller: Caller) -> None:
        time.sleep(self.step_delay)
        with self.lock:
            if execution.status != "InProgress":  # stopped while waiting
                return
        try:
            outcome = ("Success", None, runbooks.run(runbook, caller, execution.parameters))
        except RunbookFailure as failure:
            outcome = ("Failed", str(failure), None)
        except (ClientError, BotoCoreError) as err:
            outcome = ("Failed", f"{execution.document} step failed: {err}", None)
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


class SerialDynamoDB:
    """DynamoDB applies a single-item write and its condition atomically; moto's threaded
    server checks the condition and writes in two steps, so two racing conditional
    updates (the fleet's rate-cap counters) could both pass. DynamoDB calls are answered
    one at a time, which restores the guarantee; other services stay concurrent."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            # Drain the answer under the lock: moto may compute it lazily.
            return list(self.app(environ, start_response))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("REDRESS_LOCAL_PORT", DEFAULT_PORT))
    )
    parser.add_argument(
        "--periodic",
        metavar="SECONDS",
        default=os.environ.get(PERIODIC_VARIABLE),
        help="run periodic Config custom rules every SECONDS, whatever their frequency "
        f"(default: env {PERIODIC_VARIABLE}; unset or 0: never, only when "
        "StartConfigRulesEvaluation names them)",
    )
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="exit when standard input closes (lets a test harness tie the stack's "
        "life to its own, even if the harness is killed)",
    )
    args = parser.parse_args(argv)
    try:
        periodic = periodic_interval(args.periodic)
    except ValueError as err:
        parser.error(str(err))

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
            "StarlingDoveService.DescribeConfigRuleEvaluationStatus": (
                config.describe_config_rule_evaluation_status
            ),
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
    app = stats.StatsMiddleware(identity.IdentityMiddleware(SerialDynamoDB(stand_ins)))

    # Threaded: runbook effects call back into this same server while it is
    # still answering the caller's polls.
    server = make_server(
        args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler
    )
    if periodic is not None:
        # After make_server: the socket listens, so the AssumeRole a tick sends waits in
        # its backlog at worst. A daemon thread: it ends with the server.
        Periodic(periodic, endpoint, config.runs, config.run).start()
    serving.serve_forever(
        server, f"redress local stack listening on {endpoint}", args.exit_with_stdin
    )


if __name__ == "__main__":
    main()
