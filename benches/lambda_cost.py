"""Lambda cost: redress's Lambda mode against a Python handler doing the same work.

Usage: .venv/bin/python benches/lambda_cost.py [--invocations K] [--port PORT]
       (default K 50, env LAMBDA_BENCH_INVOCATIONS overrides it; PORT of the private local
       stack, default a free one; env REDRESS_BIN names the binary, default
       target/release/redress)

Both functions run behind the same minimal Lambda Runtime API served here on loopback
(GET .../invocation/next with Lambda-Runtime-Aws-Request-Id and Lambda-Runtime-Deadline-Ms,
POST .../invocation/{id}/response and .../error, POST .../init/error; HTTP/1.1 keep-alive).
It records, per run, process start -> first `next` request (init) and, per invocation,
the time from handing the event out to receiving the response (duration: what Lambda
bills, rounded up to 1 ms).

The events are what Lambda's SQS event source mapping hands the router: K batches of 10
records, each a message really on the events queue of a private local stack (so both
functions can prove the records with ChangeMessageVisibilityBatch, as redress must), whose
body is the Config compliance change of tests/fixtures/events/ssm-parameter-drift.json
with its own resource id. This script plays the event source mapping: it receives the
messages before the function starts, builds the SqsEvent, and after the run deletes the
records the function did not report as failures.

(a) redress: the release binary with no arguments, AWS_LAMBDA_RUNTIME_API set and
    REDRESS_LAMBDA_WORKER=router, the environment infra/cloudformation/lambda.yaml gives
    the router function (policy benches/policy.toml, the three queue names).
(b) python: this file run as `lambda_cost.py function`: a small runtime loop in the shape
    of the AWS Python runtime (import boto3 and set up at init, then next -> handler ->
    response) around a boto3 handler doing the router's work: at init it reads the same
    policy file (tomllib) and resolves the same queues and the events queue's ARN and
    dead-letter queue, and asks whether the ledger table exists; per batch it checks each record's eventSourceARN, proves the
    receipt handles with one ChangeMessageVisibilityBatch, parses and validates each body,
    routes it by the policy (rule by Config rule and resource type, COMPLIANT skipped,
    severity against auto_max_severity), logs one JSON audit line per record, sends the
    tasks with one SendMessageBatch, and answers with batchItemFailures.

Every task must reach the tasks queue and every record be answered as done, or the
benchmark fails. The table is printed and written to bench-results/lambda.txt.
"""

from __future__ import annotations

import json
import os
import sys
import time

# The function side (`lambda_cost.py function`) keeps its imports to what a Lambda
# handler would import, so its init time is its own; the harness imports the rest in
# main().

# --- (b) the Python function ----------------------------------------------------------

SEVERITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"]


def python_function() -> None:
    """A Lambda runtime loop around a boto3 router handler (see the module docstring)."""
    import http.client
    import tomllib

    import boto3

    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    base = "/2018-06-01/runtime"
    conn = http.client.HTTPConnection(api)

    def post(path: str, body: bytes) -> None:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        conn.getresponse().read()

    try:
        with open(os.environ["REDRESS_POLICY"], "rb") as f:
            policy = tomllib.load(f)
        sqs = boto3.client("sqs")
        events_url = sqs.get_queue_url(QueueName=os.environ["REDRESS_EVENTS_QUEUE"])["QueueUrl"]
        attributes = sqs.get_queue_attributes(
            QueueUrl=events_url, AttributeNames=["QueueArn", "RedrivePolicy"]
        )["Attributes"]
        events_arn = attributes["QueueArn"]
        redrive = json.loads(attributes.get("RedrivePolicy", "{}"))
        dlq_url = None
        if redrive.get("deadLetterTargetArn"):
            dlq_url = sqs.get_queue_url(
                QueueName=redrive["deadLetterTargetArn"].rsplit(":", 1)[-1]
            )["QueueUrl"]
        tasks_url = sqs.get_queue_url(QueueName=os.environ["REDRESS_TASKS_QUEUE"])["QueueUrl"]
        approvals_url = sqs.get_queue_url(QueueName=os.environ["REDRESS_APPROVALS_QUEUE"])[
            "QueueUrl"
        ]
        # Whether the ledger table is there (redress's router asks, to know who makes
        # approval requests).
        dynamodb = boto3.client("dynamodb")
        try:
            dynamodb.describe_table(
                TableName=os.environ.get("REDRESS_LEDGER_TABLE", "redress-ledger")
            )
        except dynamodb.exceptions.ResourceNotFoundException:
            pass
    except Exception as err:  # the runtime reports any init failure, as Lambda's does
        post(f"{base}/init/error", json.dumps({"errorMessage": str(err)}).encode())
        raise
    auto_max = SEVERITIES.index(policy["routing"]["auto_max_severity"])

    def decide(detail: dict) -> tuple[str, dict | None]:
        """(decision, rule) for a validated detail."""
        if detail["newEvaluationResult"]["complianceType"] != "NON_COMPLIANT":
            return "skip: compliant", None
        for rule in policy.get("rule", []):
            if rule["config_rule"] == detail["configRuleName"] and detail[
                "resourceType"
            ] in rule.get("resource_types", [detail["resourceType"]]):
                if SEVERITIES.index(rule["severity"]) <= auto_max:
                    return "remediate", rule
                return "request_approval", rule
        return "skip: no rule", None

    def validate(body: str) -> dict:
        """The event's detail, or ValueError/KeyError/TypeError if it is not a Config
        compliance change."""
        event = json.loads(body)
        if event.get("detail-type") == "Config Rules Compliance Change":
            detail = event["detail"]
        else:
            raise ValueError(f"not a Config compliance change: {event.get('detail-type')!r}")
        for key in ("configRuleName", "resourceType", "resourceId", "awsAccountId", "awsRegion"):
            if not isinstance(detail[key], str) or not detail[key]:
                raise ValueError(f"detail.{key} missing or empty")
        if detail["messageType"] != "ComplianceChangeNotification":
            raise ValueError(f"messageType {detail['messageType']!r}")
        if detail["newEvaluationResult"]["complianceType"] not in (
            "COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE", "INSUFFICIENT_DATA"
        ):
            raise ValueError("unknown complianceType")
        return detail

    def handler(event: dict, deadline_ms: int) -> dict:
        records = event["Records"]
        failures = []
        proven = []
        for r in records:
            if r.get("eventSourceARN") == events_arn and r.get("receiptHandle"):
                proven.append(r)
            else:
                failures.append(r["messageId"])
        if proven:
            hide_for = max(0, deadline_ms // 1000 - int(time.time())) + 5
            answer = sqs.change_message_visibility_batch(
                QueueUrl=events_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": r["receiptHandle"], "VisibilityTimeout": hide_for}
                    for i, r in enumerate(proven)
                ],
            )
            rejected = {int(f["Id"]) for f in answer.get("Failed", [])}
            failures.extend(proven[i]["messageId"] for i in sorted(rejected))
            proven = [r for i, r in enumerate(proven) if i not in rejected]
        tasks = []  # (messageId, body)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for r in proven:
            try:
                detail = validate(r["body"])
            except (ValueError, KeyError, TypeError) as err:
                # redress copies it to the dead-letter queue; none of these do.
                print(json.dumps({"decision": "dead_lettered", "reason": str(err)}), flush=True)
                failures.append(r["messageId"])
                continue
            decision, rule = decide(detail)
            finding = {
                "account_id": detail["awsAccountId"],
                "region": detail["awsRegion"],
                "resource_type": detail["resourceType"],
                "resource_id": detail["resourceId"],
                "config_rule": detail["configRuleName"],
                "compliance": detail["newEvaluationResult"]["complianceType"],
                "event_id": r["messageId"],
            }
            audit = {"worker": "router", "decision": decision, "finding": finding}
            if rule is not None:
                audit.update(rule_id=rule["id"], severity=rule["severity"])
            print(json.dumps(audit), flush=True)
            if decision == "remediate":
                task = {
                    "version": 1,
                    "rule_id": rule["id"],
                    "severity": rule["severity"],
                    "finding": finding,
                    "generation": 0,
                    "created_at": now,
                }
                tasks.append((r["messageId"], json.dumps(task)))
        for first in range(0, len(tasks), 10):
            chunk = tasks[first : first + 10]
            answer = sqs.send_message_batch(
                QueueUrl=tasks_url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(chunk)],
            )
            failures.extend(chunk[int(f["Id"])][0] for f in answer.get("Failed", []))
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}

    del approvals_url, dlq_url  # resolved at init as redress does; this batch needs neither
    while True:
        conn.request("GET", f"{base}/invocation/next")
        answer = conn.getresponse()
        body = answer.read()
        request_id = answer.getheader("Lambda-Runtime-Aws-Request-Id")
        deadline_ms = int(answer.getheader("Lambda-Runtime-Deadline-Ms"))
        try:
            result = json.dumps(handler(json.loads(body), deadline_ms)).encode()
        except Exception as err:
            post(f"{base}/invocation/{request_id}/error", json.dumps({"errorMessage": str(err)}).encode())
            continue
        post(f"{base}/invocation/{request_id}/response", result)


if __name__ == "__main__" and sys.argv[1:2] == ["function"]:
    try:
        python_function()
    except (ConnectionError, OSError):
        sys.exit(0)  # the runtime API went away: the benchmark is over
    sys.exit(0)


# --- The harness ------------------------------------------------------------------------

import argparse  # noqa: E402  (not needed by the function above)
import datetime as dt  # noqa: E402
import math  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402

# The pipeline benchmark's helpers (its directory is on sys.path when run as a script).
from pipeline import (  # noqa: E402
    REGION,
    RESULTS,
    ROOT,
    BenchError,
    Stats,
    bench_main,
    drain,
    machine,
    private_stack,
    proc_cpu_ms,
    provisioned,
    redress_binary,
)

EVENTS_QUEUE = "lambda-bench-events"
TASKS_QUEUE = "lambda-bench-tasks"
APPROVALS_QUEUE = "lambda-bench-approvals"
FIXTURE = ROOT / "tests/fixtures/events/ssm-parameter-drift.json"
BATCH = 10
# The router function's timeout in infra/cloudformation/lambda.yaml.
TIMEOUT_S = 60
MEMORY_SIZES_MB = (128, 1024)
# Lambda gives a function CPU in proportion to its memory: one full vCPU at 1769 MB.
FULL_VCPU_MB = 1769

# Targets from the issue.
TARGET_INIT_MS = 50.0
TARGET_BILLED_RATIO = 10.0


def log(message: str) -> None:
    print(f"[lambda-bench] {message}", file=sys.stderr, flush=True)


@dataclass
class Run:
    """What the runtime API saw of one function."""

    invocations: list[tuple[str, bytes]]  # (request id, event) to hand out, in order
    go: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    first_next: float | None = None  # time.monotonic()
    handed_out: dict[str, float] = field(default_factory=dict)
    answered: dict[str, tuple[float, str, bytes]] = field(default_factory=dict)  # t, kind, body
    init_error: bytes | None = None
    all_answered: threading.Event = field(default_factory=threading.Event)
    first_next_seen: threading.Event = field(default_factory=threading.Event)


class RuntimeApi(BaseHTTPRequestHandler):
    """The Lambda Runtime API endpoints a function uses, for the server's `run`."""

    protocol_version = "HTTP/1.1"  # keep-alive, as Lambda's runtime API offers

    def log_message(self, *_args) -> None:  # no access log on stderr
        pass

    @property
    def run(self) -> Run:
        return self.server.run  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        if self.path != "/2018-06-01/runtime/invocation/next":
            return self.reply(404)
        run = self.run
        with run.lock:
            if run.first_next is None:
                run.first_next = time.monotonic()
                run.first_next_seen.set()
        # The harness measures the function's init state before the first event.
        run.go.wait()
        with run.lock:
            pending = run.invocations[len(run.handed_out) :]
            request_id, body = pending[0] if pending else (None, b"")
        if request_id is None:
            # Nothing left: hold the request until the harness ends the function.
            run.stop.wait()
            self.close_connection = True
            return
        deadline_ms = int(time.time() * 1000) + TIMEOUT_S * 1000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
        self.send_header(
            "Lambda-Runtime-Invoked-Function-Arn",
            f"arn:aws:lambda:{REGION}:123456789012:function:redress-router",
        )
        self.end_headers()
        with run.lock:
            run.handed_out[request_id] = time.monotonic()
        self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        at = time.monotonic()
        run = self.run
        if self.path == "/2018-06-01/runtime/init/error":
            with run.lock:
                run.init_error = body
            run.all_answered.set()
            return self.reply(202)
        prefix = "/2018-06-01/runtime/invocation/"
        rest = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
        request_id, _, kind = rest.partition("/")
        if kind not in ("response", "error") or request_id not in run.handed_out:
            return self.reply(404)
        with run.lock:
            run.answered[request_id] = (at, kind, body)
            if len(run.answered) == len(run.invocations):
                run.all_answered.set()
        self.reply(202)

    def reply(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class RuntimeApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A function stopped at the end of its run drops its keep-alive connection.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(run: Run) -> ThreadingHTTPServer:
    server = RuntimeApiServer(("127.0.0.1", 0), RuntimeApi)
    server.run = run  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- The events --------------------------------------------------------------------------


def fixture_event(i: int) -> str:
    """The fixture's compliance change for its own parameter, with a fresh event id."""
    event = json.loads(FIXTURE.read_text())
    resource = f"/bench/current/lambda{i}"
    event["id"] = str(uuid.uuid4())
    event["detail"]["resourceId"] = resource
    for result in ("newEvaluationResult", "oldEvaluationResult"):
        if result in event["detail"]:
            qualifier = event["detail"][result]["evaluationResultIdentifier"][
                "evaluationResultQualifier"
            ]
            qualifier["resourceId"] = resource
    return json.dumps(event)


def receive_batches(sqs, queue_url: str, queue_arn: str, k: int) -> list[tuple[str, bytes]]:
    """Receives k*10 messages (hidden for 15 minutes) and builds k SqsEvents from them,
    the way Lambda's event source mapping does."""
    messages: list[dict] = []
    while len(messages) < k * BATCH:
        got = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, k * BATCH - len(messages)),
            VisibilityTimeout=900,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=1,
        ).get("Messages", [])
        if not got:
            raise BenchError(f"the events queue ran dry at {len(messages)} of {k * BATCH}")
        messages.extend(got)
    invocations = []
    for b in range(k):
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages[b * BATCH : (b + 1) * BATCH]
        ]
        invocations.append((str(uuid.uuid4()), json.dumps({"Records": records}).encode()))
    return invocations


# --- Measuring ---------------------------------------------------------------------------


@dataclass
class Measurement:
    name: str
    init_ms: float
    durations_ms: list[float]
    cpu_init_ms: float  # CPU of the process up to its first `next`
    cpu_total_ms: float  # CPU of the process over the whole run (wait4)
    peak_rss_kib: int  # VmHWM just before the function was stopped
    init_calls: dict[str, int]
    invoke_calls: dict[str, int]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def call_counts(stats) -> dict[str, int]:
    return dict(stats.get().get("counts", {}))


def measure(name: str, argv: list[str], env: dict, stats, invocations) -> Measurement:
    """Starts the function against a fresh runtime API, lets it take every invocation,
    and stops it."""
    run = Run(invocations=invocations)
    server = serve(run)
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}")
    stats.reset()
    log(f"running {name}: {len(invocations)} invocations of {BATCH} records")
    load_before = os.getloadavg()
    with open(RESULTS / f"lambda-{name}.stdout", "wb") as out, open(
        RESULTS / f"lambda-{name}.stderr", "wb"
    ) as err:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        while not run.first_next_seen.wait(0.05):
            if proc.poll() is not None or run.init_error is not None:
                tail = (RESULTS / f"lambda-{name}.stderr").read_text(errors="replace")[-2000:]
                raise BenchError(f"{name} did not reach its first `next` (exit {proc.returncode}, "
                                 f"init error {run.init_error!r}); stderr ends:\n{tail}")
            if time.monotonic() - started > 60:
                raise BenchError(f"{name} did not ask for an invocation within 60 s")
        cpu_init = proc_cpu_ms(proc.pid)
        init_calls = call_counts(stats)
        stats.reset()
        run.go.set()
        if not run.all_answered.wait(TIMEOUT_S * len(invocations)):
            raise BenchError(f"{name} did not answer every invocation")
        if run.init_error is not None:
            raise BenchError(f"{name} reported an init error: {run.init_error!r}")
        peak = vm_hwm_kib(proc.pid)
        load_after = os.getloadavg()
        invoke_calls = call_counts(stats)
        proc.send_signal(signal.SIGTERM)
        run.stop.set()
        _, _, rusage = os.wait4(proc.pid, 0)
        proc.returncode = 0  # reaped above
    finally:
        run.go.set()
        run.stop.set()
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        server.shutdown()
        server.server_close()
    durations = []
    for request_id, _ in invocations:
        at, kind, body = run.answered[request_id]
        if kind != "response":
            raise BenchError(f"{name} answered {request_id} with an error: {body[:500]!r}")
        failures = json.loads(body).get("batchItemFailures") or []
        if failures:
            raise BenchError(f"{name} reported {len(failures)} failed records in {request_id}: "
                             f"{failures[:3]}; see bench-results/lambda-{name}.stderr")
        durations.append((at - run.handed_out[request_id]) * 1000)
    return Measurement(
        name=name,
        init_ms=(run.first_next - started) * 1000,
        durations_ms=durations,
        cpu_init_ms=cpu_init,
        cpu_total_ms=(rusage.ru_utime + rusage.ru_stime) * 1000,
        peak_rss_kib=peak,
        init_calls=init_calls,
        invoke_calls=invoke_calls,
        load_before=load_before,
        load_after=load_after,
    )


def settle(sqs, urls: dict[str, str], invocations, name: str) -> None:
    """Does what the event source mapping does after a successful answer (deletes the
    records), then checks every record became one task."""
    for _, body in invocations:
        records = json.loads(body)["Records"]
        answer = sqs.delete_message_batch(
            QueueUrl=urls["events"],
            Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(records)],
        )
        if answer.get("Failed"):
            raise BenchError(f"deleting {name}'s records failed: {answer['Failed'][:3]}")
    tasks = drain(sqs, urls["tasks"])
    expected = len(invocations) * BATCH
    if tasks != expected:
        raise BenchError(f"{name} sent {tasks} tasks for {expected} records")
    left = drain(sqs, urls["approvals"]) + drain(sqs, urls["events"])
    if left:
        raise BenchError(f"{name} left {left} messages on the events or approvals queue")


# --- Report ------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def billed_ms(m: Measurement) -> float:
    """Mean billed duration per batch: each invocation rounded up to 1 ms."""
    return statistics.fmean(math.ceil(d) for d in m.durations_ms)


def gb_s_per_million(m: Measurement, memory_mb: int) -> float:
    return billed_ms(m) / 1000 * (memory_mb / 1024) * (1e6 / BATCH)


def cpu_per_batch_ms(m: Measurement) -> float:
    return (m.cpu_total_ms - m.cpu_init_ms) / len(m.durations_ms)


def modeled_billed_ms(m: Measurement, memory_mb: int) -> float:
    """Mean billed duration per batch if the CPU part ran at Lambda's CPU share for the
    memory size and the rest (waiting on AWS) stayed as measured."""
    cpu = cpu_per_batch_ms(m)
    waiting = max(0.0, statistics.fmean(m.durations_ms) - cpu)
    return math.ceil(waiting + cpu * max(1.0, FULL_VCPU_MB / memory_mb))


def calls(counts: dict[str, int], per: int) -> str:
    return ", ".join(f"{k} {v / per:g}" for k, v in sorted(counts.items())) or "-"


def report(r: Measurement, p: Measurement, binary: str, machine: str) -> str:
    def ratio(py: float, rd: float) -> str:
        return f"{py / rd:.1f}x" if rd else "-"

    k = len(r.durations_ms)
    rows = []  # (metric, redress, python, ratio, target)
    init_ok = r.init_ms <= TARGET_INIT_MS
    rows.append((
        "init ms",
        f"{r.init_ms:.1f}",
        f"{p.init_ms:.1f}",
        ratio(p.init_ms, r.init_ms),
        f"redress <= {TARGET_INIT_MS:.0f} ms: " + ("met" if init_ok else "NOT met"),
    ))
    rows.append(("  CPU ms in init", f"{r.cpu_init_ms:.0f}", f"{p.cpu_init_ms:.0f}",
                 ratio(p.cpu_init_ms, r.cpu_init_ms), "(/proc, 10 ms ticks)"))
    for label, f in (("duration ms, median", lambda m: statistics.median(m.durations_ms)),
                     ("duration ms, p90", lambda m: percentile(m.durations_ms, 90)),
                     ("duration ms, max", lambda m: max(m.durations_ms))):
        rows.append((label, f"{f(r):.2f}", f"{f(p):.2f}", ratio(f(p), f(r)), ""))
    achieved = billed_ms(p) / billed_ms(r)
    rows.append((
        "billed ms/batch, mean",
        f"{billed_ms(r):.2f}",
        f"{billed_ms(p):.2f}",
        f"{achieved:.1f}x",
        f">= {TARGET_BILLED_RATIO:.0f}x lower than python: "
        + ("met" if achieved >= TARGET_BILLED_RATIO else "NOT met"),
    ))
    for mb in MEMORY_SIZES_MB:
        rows.append((
            f"GB-s per 1M events, {mb} MB",
            f"{gb_s_per_million(r, mb):.1f}",
            f"{gb_s_per_million(p, mb):.1f}",
            ratio(gb_s_per_million(p, mb), gb_s_per_million(r, mb)),
            "",
        ))
    cpu_r, cpu_p = cpu_per_batch_ms(r), cpu_per_batch_ms(p)
    rows.append(("CPU ms/batch", f"{cpu_r:.2f}", f"{cpu_p:.2f}", ratio(cpu_p, cpu_r),
                 "(wait4 total minus init; less sensitive to a busy machine)"))
    for mb in MEMORY_SIZES_MB:
        mr, mp = modeled_billed_ms(r, mb), modeled_billed_ms(p, mb)
        rows.append((f"model: billed ms/batch, {mb} MB", f"{mr:.0f}", f"{mp:.0f}", ratio(mp, mr),
                     f"(CPU x {max(1.0, FULL_VCPU_MB / mb):.1f}; see below)"))
        gr = mr / 1000 * (mb / 1024) * (1e6 / BATCH)
        gp = mp / 1000 * (mb / 1024) * (1e6 / BATCH)
        rows.append((f"model: GB-s per 1M, {mb} MB", f"{gr:.1f}", f"{gp:.1f}", ratio(gp, gr), ""))
    rows.append(("peak RSS MiB", f"{r.peak_rss_kib / 1024:.1f}", f"{p.peak_rss_kib / 1024:.1f}",
                 ratio(p.peak_rss_kib, r.peak_rss_kib), "(VmHWM; must fit the memory size)"))
    sqs_r = sum(v for c, v in r.invoke_calls.items() if c.startswith("sqs:")) / k
    sqs_p = sum(v for c, v in p.invoke_calls.items() if c.startswith("sqs:")) / k
    rows.append(("SQS calls/batch", f"{sqs_r:g}", f"{sqs_p:g}", "", "(counted by the local stack)"))

    header = ("", "redress", "python", "python/redress", "target (issue)")
    widths = [max(len(row[c]) for row in rows + [header]) for c in range(5)]

    def line(row) -> str:
        cells = [row[0].ljust(widths[0])] + [row[c].rjust(widths[c]) for c in (1, 2, 3)]
        return "  ".join(cells + [row[4]]).rstrip()

    def load(m: Measurement) -> str:
        return "{:.2f} {:.2f} {:.2f} -> {:.2f} {:.2f} {:.2f}".format(*m.load_before, *m.load_after)

    out = [
        f"redress Lambda cost benchmark, {k} invocations of {BATCH} SQS records "
        f"({dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')})",
        f"redress binary: {binary}"
        + ("  (DEBUG build: not representative)" if "/debug/" in binary else "  (release build)"),
        f"machine: {machine}",
        f"load average during redress: {load(r)}; during python: {load(p)}",
        "",
        line(header),
        line(tuple("-" * w for w in widths[:4]) + ("-" * len(header[4]),)),
        *(line(row) for row in rows),
        "",
        "Both functions run as the router behind the same local Lambda runtime API (this",
        "script, HTTP/1.1 keep-alive) against the same private local stack; each record is a",
        "real message of the events queue (tests/fixtures/events/ssm-parameter-drift.json,",
        "its own resource id) that benches/policy.toml routes to a task. python = boto3",
        "handler in a minimal runtime loop doing the same work (see lambda_cost.py).",
        "init = process start to its first `next` request (queues resolved, policy loaded).",
        "duration = event handed out to response received; billed = each rounded up to 1 ms;",
        f"GB-s per 1M events = mean billed s/batch x memory GB x (1e6 / {BATCH}).",
        "Locally the CPU is not throttled by memory size as on Lambda (a full vCPU at",
        f"{FULL_VCPU_MB} MB, so 128 MB gets about 1/14 of one, 1024 MB about 0.58): the measured",
        "GB-s rows understate a function's cost at small sizes, the more so the more CPU it",
        "burns per batch. The model rows stretch the measured CPU per batch by that factor",
        "and keep the rest of the mean duration (waiting on the stack) as measured: an",
        "estimate, not a measurement. The local emulator closes its connection after every",
        "answer, so every AWS call pays a TCP connect, and both functions wait on the same",
        "emulator answers (the same calls per batch), which bounds the duration ratio. Init",
        "is billed once per execution environment and is not in the per-event figures.",
        "",
        f"redress calls at init:      {calls(r.init_calls, 1)}",
        f"python calls at init:       {calls(p.init_calls, 1)}",
        f"redress calls per batch:    {calls(r.invoke_calls, k)}",
        f"python calls per batch:     {calls(p.invoke_calls, k)}",
    ]
    return "\n".join(out) + "\n"


# --- Main --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--invocations",
        type=int,
        default=int(os.environ.get("LAMBDA_BENCH_INVOCATIONS", "50")),
        help=f"batches of {BATCH} records per function (default: env LAMBDA_BENCH_INVOCATIONS, else 50)",
    )
    parser.add_argument("--port", type=int, default=0, help="local stack port (default: a free one)")
    args = parser.parse_args()
    k = args.invocations
    if k < 1:
        parser.error("--invocations must be at least 1")

    binary = redress_binary()
    RESULTS.mkdir(exist_ok=True)
    with private_stack(args.port) as endpoint:
        stack = provisioned(binary, endpoint, {
            "REDRESS_POLICY": str(ROOT / "benches/policy.toml"),
            "REDRESS_EVENTS_QUEUE": EVENTS_QUEUE,
            "REDRESS_TASKS_QUEUE": TASKS_QUEUE,
            "REDRESS_APPROVALS_QUEUE": APPROVALS_QUEUE,
        })
        # What Lambda sets for every function (lambda_runtime reads them at start).
        function_env = dict(
            stack.env,
            REDRESS_LAMBDA_WORKER="router",
            AWS_LAMBDA_FUNCTION_NAME="redress-router",
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
            AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/redress-router",
            AWS_LAMBDA_LOG_STREAM_NAME="bench",
        )

        sqs = stack.client("sqs")
        urls = {
            "events": sqs.get_queue_url(QueueName=EVENTS_QUEUE)["QueueUrl"],
            "tasks": sqs.get_queue_url(QueueName=TASKS_QUEUE)["QueueUrl"],
            "approvals": sqs.get_queue_url(QueueName=APPROVALS_QUEUE)["QueueUrl"],
        }
        events_arn = sqs.get_queue_attributes(QueueUrl=urls["events"], AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        stats = Stats(endpoint)

        measured = {}
        for name, argv in (
            ("redress", [binary]),
            ("python", [sys.executable, str(Path(__file__).resolve()), "function"]),
        ):
            log(f"seeding {k * BATCH} events for {name}")
            for first in range(0, k * BATCH, 10):
                answer = sqs.send_message_batch(
                    QueueUrl=urls["events"],
                    Entries=[{"Id": str(j), "MessageBody": fixture_event(first + j)} for j in range(10)],
                )
                if answer.get("Failed"):
                    raise BenchError(f"seeding failed: {answer['Failed'][:3]}")
            invocations = receive_batches(sqs, urls["events"], events_arn, k)
            measured[name] = measure(name, argv, function_env, stats, invocations)
            settle(sqs, urls, invocations, name)
            m = measured[name]
            log(f"{name}: init {m.init_ms:.1f} ms, median {statistics.median(m.durations_ms):.2f} ms")

        table = report(measured["redress"], measured["python"], binary, machine())
        print(table, end="")
        (RESULTS / "lambda.txt").write_text(table)
        log(f"written to {RESULTS / 'lambda.txt'}")
    return 0


if __name__ == "__main__":
    bench_main(main)
