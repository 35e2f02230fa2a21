"""Whole-pipeline benchmark: redress against a plain boto3 worker, on the local stack.

Usage: .venv/bin/python benches/pipeline.py [--events N]
       (default 1000; env BENCH_EVENTS overrides the default; env REDRESS_BIN names the
       binary, default target/release/redress)

Starts a private local stack (infra/local/stack.py, with its request counter) and a
keep-alive front for it (infra/local/keepalive.py: moto closes the connection after
every answer, AWS does not), provisions the bench queues and ledger table, and creates
the Config rule the events name, holding every bench parameter NON_COMPLIANT (redress
checks Config before it fixes anything). Then, first through the keep-alive front and
then against the bare stack, it seeds N drifted SSM parameters and N Config
compliance-change events on the events queue, runs `redress run --once` until it has
drained everything, and measures it: wall time, CPU (user + system, from wait4's
rusage), peak RSS, AWS calls counted by the stack, client TCP connections (counted by
the front), and start-up time (process start to its first ReceiveMessage on the events
queue); then re-seeds the same drift with fresh events and measures
benches/reference_worker.py the same way. Both must fix every parameter and schedule one
look at Config's verdict per fix (delayed messages, purged after each run: see
RECHECK_AFTER_S), or the benchmark fails. The tables are printed and written to
bench-results/pipeline.txt, keep-alive first.

The helpers the other Python benches share live here too: `private_stack`,
`provisioned` (environment, `redress provision`, boto3 clients), `redress_binary` and
`bench_main`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import socket
import platform
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
ACCOUNT = "123456789012"
REGION = "us-east-1"
EVENTS_QUEUE = "bench-events"
TASKS_QUEUE = "bench-tasks"
APPROVALS_QUEUE = "bench-approvals"
LEDGER_TABLE = "bench-ledger"
BASELINE_PREFIX = "/bench/approved/"
CURRENT_PREFIX = "/bench/current/"
RULE = "ssm-parameter-drift"
# What the events named before the bench created a real rule (approvals.py's events still
# do: its router only asks for approval and never checks Config).
PLACEHOLDER_RULE_ARN = f"arn:aws:config:{REGION}:{ACCOUNT}:config-rule/config-rule-bench01"
# The AWS managed rule the bench's Config rule stands on: AWS has none for SSM parameter
# values, and the local stack keeps whatever results are put for any rule
# (tests/e2e/support.rs `managed_rule` does the same).
MANAGED_RULE = "SSM_DOCUMENT_TAGGED"

# When both workers first look at Config after a fix, to see it agree (redress's
# `[config] recheck_after`, the reference's BENCH_RECHECK_AFTER_S): longer than a run, so
# each run ends with one look per fix scheduled (a delayed message) and none made. The
# local stack's Config never re-evaluates the bench's managed rule, so a look could only
# find it NON_COMPLIANT; the bench counts the scheduled looks, then purges them.
RECHECK_AFTER_S = 600

# Targets from the issue.
TARGET_CPU_RATIO = 20.0  # worker CPU per event at least 20x lower than Python
TARGET_CALL_CPU_RATIO = 10.0  # CPU per AWS call at least 10x lower, on keep-alive endpoints
TARGET_RSS_RATIO = 5.0  # peak RSS at least 5x lower
TARGET_SQS_PER_EVENT = 0.3  # at most 0.3 SQS calls per event, at saturation

# Every bench's boto3 clients: a few retries, as a careful harness would.
CLIENT_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"})
# Inherited settings that would point a bench's workers elsewhere than its private stack.
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "REDRESS_DRY_RUN")


class BenchError(Exception):
    pass


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def bench_main(main: Callable[[], int]) -> None:
    """Runs a bench's main and exits with its code; a BenchError is reported, exit 1."""
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"benchmark FAILED: {err}", file=sys.stderr)
        sys.exit(1)


def redress_binary() -> str:
    """The redress binary to measure: env REDRESS_BIN, default target/release/redress."""
    binary = os.environ.get("REDRESS_BIN", "target/release/redress")
    binary = str((ROOT / binary).resolve()) if not os.path.isabs(binary) else binary
    if not os.access(binary, os.X_OK):
        raise BenchError(f"redress binary {binary} not found (set REDRESS_BIN or build it)")
    return binary


# --- The stack -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(script: str, port: int, args: list[str], what: str) -> subprocess.Popen:
    """Starts infra/local/SCRIPT on loopback PORT, logging to bench-results/WHAT.log, and
    waits until it accepts connections. Its stdin is kept open: when this process dies,
    the server exits."""
    RESULTS.mkdir(exist_ok=True)
    server_log = open(RESULTS / f"{what}.log", "wb")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "infra/local" / script), "--port", str(port), *args,
         "--exit-with-stdin"],
        stdin=subprocess.PIPE,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise BenchError(f"{what} exited with {server.returncode}; see {RESULTS}/{what}.log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise BenchError(f"{what} did not accept connections within 60 s")


def start_stack(port: int) -> subprocess.Popen:
    return start_server("stack.py", port, [], "stack")


def stop_stack(stack: subprocess.Popen) -> None:
    if stack.poll() is not None:
        return
    try:
        stack.stdin.close()
        stack.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        stack.terminate()
        try:
            stack.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stack.kill()
            stack.wait()


@contextlib.contextmanager
def private_stack(port: int = 0) -> Iterator[str]:
    """A private local stack on PORT (0: a free one) for the block; yields its endpoint."""
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log(f"starting local stack on {endpoint}")
    stack = start_stack(port)
    try:
        yield endpoint
    finally:
        stop_stack(stack)


@dataclass
class Front:
    """The keep-alive front (infra/local/keepalive.py) before a stack."""

    endpoint: str
    process: subprocess.Popen

    def cpu_s(self) -> float:
        """CPU the front has used so far (user + system)."""
        return proc_cpu_ms(self.process.pid) / 1000


@contextlib.contextmanager
def keepalive_front(upstream: str) -> Iterator[Front]:
    """A keep-alive front for the stack at UPSTREAM, for the block."""
    port = free_port()
    log(f"starting keep-alive front on 127.0.0.1:{port}")
    process = start_server("keepalive.py", port, ["--upstream", upstream], "keepalive")
    try:
        yield Front(f"http://127.0.0.1:{port}", process)
    finally:
        stop_stack(process)


def proc_cpu_ms(pid: int) -> float:
    """utime + stime of a live process, from /proc (clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


@dataclass
class Provisioned:
    """A stack `redress provision` has set up: the workers' environment and boto3 clients."""

    endpoint: str
    env: dict[str, str]
    session: boto3.session.Session

    def client(self, service: str, endpoint: str | None = None):
        """A boto3 client of the stack (or of ENDPOINT, e.g. its keep-alive front)."""
        return self.session.client(
            service, endpoint_url=endpoint or self.endpoint, config=CLIENT_CONFIG
        )


def provisioned(binary: str, endpoint: str, extra_env: dict[str, str]) -> Provisioned:
    """Provisions the stack at ENDPOINT with `redress provision`, in the environment every
    bench gives its workers (test credentials, the region, JSON logs, nothing inherited
    that points elsewhere) plus EXTRA_ENV (queues, policy, ledger table)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in UNSET and not key.startswith("AWS_LAMBDA_")
    }
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,  # older botocore reads only this one
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_EC2_METADATA_DISABLED="true",
        REDRESS_LOG_FORMAT="json",
    )
    env.update(extra_env)
    provision = subprocess.run(
        [binary, "provision"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if provision.returncode != 0:
        raise BenchError(f"redress provision failed:\n{provision.stdout}{provision.stderr}")
    session = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
    )
    return Provisioned(endpoint, env, session)


class Stats:
    """A counter endpoint: the stack's (/_redress/stats) or the front's (/_keepalive/stats)."""

    def __init__(self, endpoint: str, path: str = "/_redress/stats") -> None:
        self.url = endpoint + path

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def get(self) -> dict:
        with urllib.request.urlopen(self.url, timeout=10) as answer:
            return json.load(answer)


# --- Seeding ---------------------------------------------------------------------


def seed_parameters(ssm, n: int, baseline: bool) -> None:
    for i in range(n):
        if baseline:
            ssm.put_parameter(
                Name=f"{BASELINE_PREFIX}p{i}", Value="1", Type="String", Overwrite=True
            )
        ssm.put_parameter(Name=f"{CURRENT_PREFIX}p{i}", Value="2", Type="String", Overwrite=True)


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def make_event(i: int, recorded: dt.datetime, rule_arn: str = PLACEHOLDER_RULE_ARN) -> dict:
    """An EventBridge-delivered Config compliance change of RULE_ARN's rule (the shape of
    tests/fixtures/events/ssm-parameter-drift.json)."""
    resource = f"{CURRENT_PREFIX}p{i}"
    qualifier = {
        "configRuleName": RULE,
        "resourceType": "AWS::SSM::Parameter",
        "resourceId": resource,
        "evaluationMode": "DETECTIVE",
    }
    invoked = recorded - dt.timedelta(milliseconds=460)
    ordering = recorded - dt.timedelta(milliseconds=750)
    old = recorded - dt.timedelta(days=3)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Config Rules Compliance Change",
        "source": "aws.config",
        "account": ACCOUNT,
        "time": iso(recorded + dt.timedelta(seconds=4)).split(".")[0] + "Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "resourceId": resource,
            "awsRegion": REGION,
            "awsAccountId": ACCOUNT,
            "configRuleName": RULE,
            "recordVersion": "1.0",
            "configRuleARN": rule_arn,
            "messageType": "ComplianceChangeNotification",
            "newEvaluationResult": {
                "evaluationResultIdentifier": {
                    "evaluationResultQualifier": qualifier,
                    "orderingTimestamp": iso(ordering),
                },
                "complianceType": "NON_COMPLIANT",
                "resultRecordedTime": iso(recorded),
                "configRuleInvokedTime": iso(invoked),
            },
            "notificationCreationTime": iso(recorded + dt.timedelta(seconds=4)),
            "resourceType": "AWS::SSM::Parameter",
            "oldEvaluationResult": {
                "evaluationResultIdentifier": {
                    "evaluationResultQualifier": dict(qualifier),
                    "orderingTimestamp": iso(old - dt.timedelta(milliseconds=750)),
                },
                "complianceType": "COMPLIANT",
                "resultRecordedTime": iso(old),
                "configRuleInvokedTime": iso(old - dt.timedelta(milliseconds=460)),
            },
        },
    }


def send_events(sqs, queue_url: str, n: int, start: dt.datetime, rule_arn: str) -> None:
    events = [make_event(i, start + dt.timedelta(milliseconds=i), rule_arn) for i in range(n)]
    for first in range(0, n, 10):
        batch = events[first : first + 10]
        answer = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(j), "MessageBody": json.dumps(e)} for j, e in enumerate(batch)],
        )
        if answer.get("Failed"):
            raise BenchError(f"send_message_batch failed: {answer['Failed']}")


def config_rule(config) -> str:
    """The ARN of the bench's Config rule, created unless it exists."""
    def arn() -> str | None:
        try:
            rules = config.describe_config_rules(ConfigRuleNames=[RULE])["ConfigRules"]
        except config.exceptions.NoSuchConfigRuleException:
            return None
        return rules[0]["ConfigRuleArn"] if rules else None

    found = arn()
    if found is None:
        config.put_config_rule(ConfigRule={
            "ConfigRuleName": RULE,
            "Description": "redress pipeline bench",
            "Scope": {"ComplianceResourceTypes": ["AWS::SSM::Parameter"]},
            "Source": {"Owner": "AWS", "SourceIdentifier": MANAGED_RULE},
        })
        found = arn()
    if found is None:
        raise BenchError(f"Config rule {RULE} missing after PutConfigRule")
    return found


def hold_non_compliant(config, sqs, events_url: str, n: int) -> None:
    """Puts a NON_COMPLIANT result of the bench's rule for every bench parameter, as the
    rule would (on the local stack the result token names the rule), so redress's check
    before a fix finds what the events say. Config announces each new result with a
    compliance change on the default bus, which provisioning routes to the events queue;
    those are drained: each measured run gets events of its own."""
    now = dt.datetime.now(dt.timezone.utc)
    for first in range(0, n, 100):
        answer = config.put_evaluations(
            ResultToken=RULE,
            Evaluations=[
                {
                    "ComplianceResourceType": "AWS::SSM::Parameter",
                    "ComplianceResourceId": f"{CURRENT_PREFIX}p{i}",
                    "ComplianceType": "NON_COMPLIANT",
                    "OrderingTimestamp": now,
                }
                for i in range(first, min(first + 100, n))
            ],
        )
        if answer.get("FailedEvaluations"):
            raise BenchError(f"put_evaluations failed: {answer['FailedEvaluations'][:3]}")
    drained = drain(sqs, events_url)
    log(f"held {n} parameters NON_COMPLIANT in Config; drained {drained} announcements")


def drain(sqs, queue_url: str) -> int:
    """Receives and deletes everything on the queue; returns how many."""
    n = 0
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return n
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
        )
        n += len(got)


def verify_fixed(ssm, n: int, who: str) -> None:
    wrong = []
    for first in range(0, n, 10):
        names = [f"{CURRENT_PREFIX}p{i}" for i in range(first, min(first + 10, n))]
        answer = ssm.get_parameters(Names=names)
        values = {p["Name"]: p["Value"] for p in answer["Parameters"]}
        wrong.extend(f"{name}={values.get(name)!r}" for name in names if values.get(name) != "1")
    if wrong:
        raise BenchError(
            f"{who} left {len(wrong)} of {n} parameters drifted, e.g. {', '.join(wrong[:5])}"
        )


LAST_PURGE: dict[str, float] = {}  # queue name -> time.monotonic() of its last purge


def purge_delayed(sqs, n: int, who: str) -> None:
    """Checks the run scheduled one look at Config per fix (delayed messages, on any bench
    queue), then purges them: they would come due in a later run."""
    delayed = {}
    for url in sqs.list_queues(QueueNamePrefix="bench-").get("QueueUrls", []):
        count = int(sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]["ApproximateNumberOfMessagesDelayed"])
        if count:
            name = url.rsplit("/", 1)[-1]
            delayed[name] = count
            # SQS (and moto) allow one purge of a queue a minute.
            time.sleep(max(0.0, LAST_PURGE.get(name, -1e9) + 61 - time.monotonic()))
            sqs.purge_queue(QueueUrl=url)
            LAST_PURGE[name] = time.monotonic()
    if sum(delayed.values()) != n:
        raise BenchError(f"{who} scheduled {delayed} looks at Config after {n} fixes, not {n}")


def queue_depths(sqs) -> dict[str, int]:
    depths = {}
    for url in sqs.list_queues(QueueNamePrefix="bench-").get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        depths[url.rsplit("/", 1)[-1]] = int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )
    return depths


# --- Measuring -------------------------------------------------------------------


@dataclass
class Measurement:
    events: int
    wall_s: float
    cpu_s: float
    peak_rss_kib: int
    sqs_calls: int
    startup_s: float | None
    counts: dict[str, int]
    # Sampled from /proc every 20 ms while the worker ran (0 if /proc could not tell):
    # anonymous memory (heap, stacks) and file-backed pages (the executable and
    # libraries mapped in), the two parts of RSS.
    peak_anon_kib: int = 0
    peak_file_kib: int = 0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # Through the keep-alive front: the client connections it accepted from the worker,
    # and the CPU the front itself used meanwhile. None against the bare stack.
    connections: int | None = None
    front_cpu_s: float | None = None

    def calls(self) -> int:
        return sum(self.counts.values())


# ru_maxrss of a child is never below the RSS of the process it was forked from: at exec
# Linux keeps the larger of the old and new address spaces' high-water marks. This process
# holds boto3 (~50 MiB), so children are spawned through a small launcher (python -I -S,
# no site packages, a few MiB) that forks, execs the worker, wait4()s it and writes the
# spawn time, wall time and rusage to a file. The launcher's own size is still a floor
# under the peak RSS measured; `rss_floor_kib` measures it with /bin/true.
LAUNCHER = r"""
import os, sys, time
result, argv = sys.argv[1], sys.argv[2:]
spawned = time.time()
start = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
wall = time.monotonic() - start
with open(result, "w") as f:
    f.write("%r %r %r %r %d\n" % (spawned, wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


class RssSampler(threading.Thread):
    """Samples RssAnon and RssFile of the launcher's child (the worker) from
    /proc/PID/status every 20 ms, keeping the highest of each."""

    def __init__(self, launcher_pid: int) -> None:
        super().__init__(daemon=True)
        self.launcher_pid = launcher_pid
        self.stop = threading.Event()
        self.anon_kib = 0
        self.file_kib = 0

    def child(self) -> int | None:
        path = f"/proc/{self.launcher_pid}/task/{self.launcher_pid}/children"
        try:
            pids = Path(path).read_text().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    def run(self) -> None:
        pid = None
        while not self.stop.wait(0.02):
            pid = pid or self.child()
            if pid is None:
                continue
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            fields = dict(
                line.split(":", 1) for line in status.splitlines() if ":" in line
            )
            try:
                anon = int(fields["RssAnon"].split()[0])
                file = int(fields["RssFile"].split()[0])
            except (KeyError, ValueError, IndexError):
                continue
            # Before its exec the child is a copy of the launcher, smaller than either
            # worker, so it cannot raise the maximum.
            self.anon_kib = max(self.anon_kib, anon)
            self.file_kib = max(self.file_kib, file)


def launch(
    argv: list[str], env: dict, stdout, stderr, result: Path, sampler: list | None = None
) -> tuple[int, float, float, float, int]:
    """Run argv through the launcher: (exit code, spawn time, wall s, CPU s, peak RSS KiB).
    If `sampler` is a list, an RssSampler that watched the worker is appended to it."""
    launcher = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", LAUNCHER, str(result), *argv],
        env=env,
        cwd=ROOT,
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
    )
    watcher = RssSampler(launcher.pid)
    watcher.start()
    code = launcher.wait()
    watcher.stop.set()
    watcher.join()
    if sampler is not None:
        sampler.append(watcher)
    try:
        spawned, wall, utime, stime, maxrss = result.read_text().split()
    except (OSError, ValueError) as err:
        raise BenchError(f"launcher for {argv[0]} exited {code} without a result: {err}")
    return code, float(spawned), float(wall), float(utime) + float(stime), int(maxrss)


def rss_floor_kib() -> int:
    """The peak RSS the launcher reports for a process that allocates nothing."""
    result = RESULTS / "floor.result"
    _, _, _, _, maxrss = launch(
        ["/bin/true"], dict(os.environ), subprocess.DEVNULL, subprocess.DEVNULL, result
    )
    return maxrss


def measure(
    name: str, argv: list[str], env: dict, stats: Stats, n: int, front: Front | None = None
) -> Measurement:
    """Runs a worker to completion and measures it (see Measurement); with FRONT, the
    worker talks to the stack through it (env must say so)."""
    stats.reset()
    front_stats = Stats(front.endpoint, "/_keepalive/stats") if front else None
    if front_stats:
        front_stats.reset()
        front_cpu = front.cpu_s()
    log(f"running {name}: {' '.join(argv)}")
    load_before = os.getloadavg()
    sampler: list[RssSampler] = []
    files = name.replace(" ", "-")
    with open(RESULTS / f"{files}.stdout", "wb") as out, open(RESULTS / f"{files}.stderr", "wb") as err:
        code, spawned, wall, cpu, maxrss = launch(
            argv, env, out, err, RESULTS / f"{files}.result", sampler
        )
    load_after = os.getloadavg()
    snapshot = stats.get()
    connections = front_stats.get()["connections"] if front_stats else None
    front_cpu_s = front.cpu_s() - front_cpu if front else None
    if code != 0:
        tail = (RESULTS / f"{files}.stderr").read_text(errors="replace")[-2000:]
        raise BenchError(f"{name} exited with {code}; stderr ends:\n{tail}")
    first_receive = (
        snapshot.get("first_seen_by_queue", {}).get(EVENTS_QUEUE, {}).get("sqs:ReceiveMessage")
    )
    counts = snapshot.get("counts", {})
    return Measurement(
        events=n,
        wall_s=wall,
        cpu_s=cpu,
        peak_rss_kib=maxrss,  # KiB on Linux
        sqs_calls=sum(v for k, v in counts.items() if k.startswith("sqs:")),
        startup_s=None if first_receive is None else first_receive - spawned,
        counts=counts,
        peak_anon_kib=sampler[0].anon_kib if sampler else 0,
        peak_file_kib=sampler[0].file_kib if sampler else 0,
        load_before=load_before,
        load_after=load_after,
        connections=connections,
        front_cpu_s=front_cpu_s,
    )


# --- Report ----------------------------------------------------------------------


def fmt(value, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def table(r: Measurement, p: Measurement, keepalive: bool) -> list[str]:
    """The comparison of one redress run (r) with one python run (p), as lines."""
    def per_event(m: Measurement, v: float) -> float:
        return v / m.events if m.events else float("nan")

    def ratio(py: float | None, rd: float | None) -> str:
        if py is None or rd is None or rd == 0:
            return "-"
        return f"{py / rd:.1f}x"

    rows = []  # (metric, redress, python, ratio, target)
    rows.append(("events", fmt(r.events, 0), fmt(p.events, 0), "", ""))
    rows.append(("wall s", fmt(r.wall_s, 2), fmt(p.wall_s, 2), ratio(p.wall_s, r.wall_s), ""))
    rows.append((
        "events/s",
        fmt(r.events / r.wall_s, 1),
        fmt(p.events / p.wall_s, 1),
        ratio(p.events / p.wall_s, r.events / r.wall_s),
        "",
    ))
    rows.append(("CPU s total", fmt(r.cpu_s, 3), fmt(p.cpu_s, 3), ratio(p.cpu_s, r.cpu_s), ""))

    def lower_than_python(label, mine, theirs, digits, target, what=""):
        """A row comparing redress with python against an "N x lower" target."""
        achieved = theirs / mine if mine else 0.0
        rows.append((
            label,
            fmt(mine, digits),
            fmt(theirs, digits),
            ratio(theirs, mine),
            f">= {target:.0f}x lower than {what or 'python'}: "
            + ("met" if achieved >= target else "NOT met"),
        ))

    cpu_r, cpu_p = per_event(r, r.cpu_s) * 1000, per_event(p, p.cpu_s) * 1000
    lower_than_python("CPU ms/event", cpu_r, cpu_p, 3, TARGET_CPU_RATIO)
    calls_r, calls_p = r.calls(), p.calls()
    call_r = r.cpu_s * 1e6 / calls_r if calls_r else None
    call_p = p.cpu_s * 1e6 / calls_p if calls_p else None
    if keepalive and call_r and call_p:
        lower_than_python("CPU us/AWS call", call_r, call_p, 0, TARGET_CALL_CPU_RATIO,
                          "boto3 on keep-alive endpoints")
    else:
        rows.append(("CPU us/AWS call", fmt(call_r, 0), fmt(call_p, 0), ratio(call_p, call_r),
                     "(the target is on keep-alive endpoints: table above)"))
    rss_r, rss_p = r.peak_rss_kib / 1024, p.peak_rss_kib / 1024
    lower_than_python("peak RSS MiB", rss_r, rss_p, 1, TARGET_RSS_RATIO)
    if r.peak_anon_kib and p.peak_anon_kib:
        anon_r, anon_p = r.peak_anon_kib / 1024, p.peak_anon_kib / 1024
        file_r, file_p = r.peak_file_kib / 1024, p.peak_file_kib / 1024
        rows.append(("  of it anon MiB", fmt(anon_r, 1), fmt(anon_p, 1), ratio(anon_p, anon_r),
                     "(sampled; heap and stacks)"))
        rows.append(("  of it file MiB", fmt(file_r, 1), fmt(file_p, 1), ratio(file_p, file_r),
                     "(sampled; executable and libraries paged in)"))
    rows.append((
        "AWS calls/event",
        fmt(per_event(r, calls_r), 2),
        fmt(per_event(p, calls_p), 2),
        ratio(per_event(p, calls_p), per_event(r, calls_r)),
        "(all services)",
    ))
    if keepalive:
        rows.append((
            "TCP connects/call",
            fmt(r.connections / calls_r if calls_r and r.connections is not None else None, 3),
            fmt(p.connections / calls_p if calls_p and p.connections is not None else None, 3),
            "",
            f"(client connections the front accepted: {fmt(r.connections, 0)} and "
            f"{fmt(p.connections, 0)})",
        ))
    else:
        rows.append(("TCP connects/call", "1.000", "1.000", "",
                     "(the emulator closes the connection after every answer)"))
    rows.append(("SQS calls", fmt(r.sqs_calls, 0), fmt(p.sqs_calls, 0), ratio(p.sqs_calls, r.sqs_calls), ""))
    sqs_r, sqs_p = per_event(r, r.sqs_calls), per_event(p, p.sqs_calls)
    rows.append((
        "SQS calls/event",
        fmt(sqs_r, 3),
        fmt(sqs_p, 3),
        ratio(sqs_p, sqs_r),
        f"<= {TARGET_SQS_PER_EVENT} at saturation: "
        + ("met" if sqs_r <= TARGET_SQS_PER_EVENT else "NOT met"),
    ))
    rows.append((
        "start-up ms",
        fmt(None if r.startup_s is None else r.startup_s * 1000, 1),
        fmt(None if p.startup_s is None else p.startup_s * 1000, 1),
        ratio(p.startup_s, r.startup_s),
        "",
    ))

    header = ("", "redress", "python reference", "python/redress", "target (issue)")
    widths = [max(len(row[c]) for row in rows + [header]) for c in range(5)]

    def line(row) -> str:
        cells = [row[0].ljust(widths[0])] + [row[c].rjust(widths[c]) for c in (1, 2, 3)]
        return "  ".join(cells + [row[4]]).rstrip()

    return [
        line(header),
        line(tuple("-" * w for w in widths[:4]) + ("-" * len(header[4]),)),
        *(line(row) for row in rows),
    ]


def per_event_mix(m: Measurement, sqs: bool) -> dict[str, float]:
    """Calls per event by action: SQS's, or every other service's."""
    return {
        k: v / m.events for k, v in sorted(m.counts.items()) if k.startswith("sqs:") == sqs
    }


def mix_line(m: Measurement, sqs: bool) -> str:
    return ", ".join(
        f"{k[4:] if sqs else k} {v}" for k, v in sorted(m.counts.items())
        if k.startswith("sqs:") == sqs
    ) or "-"


def mix_verdict(r: Measurement, p: Measurement) -> list[str]:
    """Whether python made the same non-SQS calls per event as redress, or how not.
    Calls made less than once per two events (at start-up, or coalesced in time like
    Config re-evaluation requests) are not per event: they are listed apart."""
    mine, theirs = per_event_mix(r, sqs=False), per_event_mix(p, sqs=False)
    actions = sorted(set(mine) | set(theirs))
    per_event = [k for k in actions if max(mine.get(k, 0), theirs.get(k, 0)) >= 0.5]
    differ = [
        f"{k} {mine.get(k, 0):.2f} vs {theirs.get(k, 0):.2f}"
        for k in per_event
        if abs(mine.get(k, 0) - theirs.get(k, 0)) > 0.005
    ]
    per_run = [
        f"{k} {r.counts.get(k, 0)} vs {p.counts.get(k, 0)}" for k in actions if k not in per_event
    ]
    verdict = (
        "The non-SQS calls per event match: "
        + ", ".join(f"{k} {mine.get(k, 0):.2f}" for k in per_event) + "."
        if not differ else
        "The non-SQS calls per event differ (redress vs python): " + "; ".join(differ) + "."
    )
    lines = [verdict]
    if per_run:
        lines.append("Per run, not per event (start-up; re-evaluation requests coalesced a second"
                     " per rule), redress vs python: " + "; ".join(per_run) + ".")
    return lines


def report(
    runs: dict[tuple[str, str], Measurement], binary: str, floor_kib: int
) -> str:
    """Both tables (keep-alive first), the run's conditions and the call mixes."""
    ka_r, ka_p = runs[("keep-alive", "redress")], runs[("keep-alive", "python")]
    cl_r, cl_p = runs[("closed", "redress")], runs[("closed", "python")]

    def load(m: Measurement) -> str:
        return "load average {:.2f} {:.2f} {:.2f} -> {:.2f} {:.2f} {:.2f}".format(
            *m.load_before, *m.load_after
        )

    out = [
        f"redress whole-pipeline benchmark, {ka_r.events} events "
        f"({dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')})",
        f"redress binary: {binary}"
        + ("  (DEBUG build: CPU and RSS not representative)" if "/debug/" in binary
           else "  (release build)"),
        f"machine: {machine()}",
        *(f"{mode} {who}: {load(runs[(mode, who)])}"
          for mode in ("keep-alive", "closed") for who in ("redress", "python")),
        f"keep-alive front CPU (its own process, not in either worker's): "
        f"{ka_r.front_cpu_s:.2f} s during redress, {ka_p.front_cpu_s:.2f} s during python",
        "",
        "Through the keep-alive front (infra/local/keepalive.py): connections reused, as",
        "against AWS endpoints.",
        *table(ka_r, ka_p, keepalive=True),
        "",
        "Against the bare emulator: a new TCP connection for every call (for comparison).",
        *table(cl_r, cl_p, keepalive=False),
        "",
        "start-up = process start to its first ReceiveMessage on the events queue.",
        f"peak RSS = wait4 ru_maxrss; it includes a floor of {floor_kib / 1024:.1f} MiB from the small",
        "launcher the workers are forked from (what /bin/true measures the same way)"
        + (" -- redress is at the floor, its real peak is lower."
           if ka_r.peak_rss_kib <= floor_kib + 512 else "."),
        "CPU = user + system of the worker process (wait4 rusage); wall includes the final",
        "empty receive(s) each worker makes before deciding the queues are drained.",
        "CPU us/AWS call = the worker's whole CPU divided by its AWS calls: per-event work",
        "(parsing, routing, logging) is in it too.",
        "Both workers make the same calls per event on the same safety path: the finding's",
        "exception, Config's result for the rule and resource and the rule itself, the",
        "fleet's breaker and the finding's ledger entry (GetItem), intent and outcome in",
        "the ledger table with conditional writes, baseline and current value read, the",
        "value restored and read back, the breaker's minute counted, Config asked to",
        "re-evaluate (coalesced), and a look at Config's verdict scheduled as a delayed",
        "message, sent in batches (benches/reference_worker.py says how). The looks are",
        f"{RECHECK_AFTER_S} s later, after the run: each run ends with one scheduled per fix",
        "(checked, then purged); the local stack's Config never re-evaluates the bench's",
        "managed rule, so the look itself is not measured for either worker.",
        "Their SQS calls differ by design: redress runs router and executor (`run --once`)",
        "with its queues, the python reference routes and fixes in one loop over the events",
        "queue alone (its looks at Config are delayed messages on that queue).",
        "SQS calls per event are measured with a pre-filled queue, so every receive returns",
        "a full batch: saturation.",
        "",
        *(wrapped for line in mix_verdict(ka_r, ka_p)
          for wrapped in textwrap.wrap(line, 88, subsequent_indent="  ")),
    ]
    for mode in ("keep-alive", "closed"):
        r, p = runs[(mode, "redress")], runs[(mode, "python")]
        out += [
            f"{mode}: redress SQS calls:    {mix_line(r, sqs=True)}",
            f"{mode}: redress other calls:  {mix_line(r, sqs=False)}",
            f"{mode}: python SQS calls:     {mix_line(p, sqs=True)}",
            f"{mode}: python other calls:   {mix_line(p, sqs=False)}",
        ]
    return "\n".join(out) + "\n"


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}"


# --- Main ------------------------------------------------------------------------


def run_worker(
    name: str,
    argv: list[str],
    env: dict,
    clients: dict,
    stats: Stats,
    n: int,
    recorded: dt.datetime,
    rule_arn: str,
    front: Front | None,
) -> Measurement:
    """Seeds N drifted parameters and N fresh events, runs one worker over them, and
    checks it fixed every parameter and left no message behind."""
    sqs, ssm = clients["sqs"], clients["ssm"]
    log(f"{name}: seeding {n} drifted parameters and {n} events")
    seed_parameters(ssm, n, baseline=True)
    send_events(sqs, clients["events_url"], n, recorded, rule_arn)
    measured = measure(name, argv, env, stats, n, front)
    verify_fixed(ssm, n, name)
    purge_delayed(sqs, n, name)
    leftover = {q: d for q, d in queue_depths(sqs).items() if d}
    if leftover:
        raise BenchError(f"{name} left messages on queues: {leftover}")
    log(f"{name}: {n} fixed in {measured.wall_s:.2f} s, {measured.calls()} AWS calls"
        + ("" if measured.connections is None else f" on {measured.connections} connections"))
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        default=int(os.environ.get("BENCH_EVENTS", "1000")),
        help="number of events (default: env BENCH_EVENTS, else 1000)",
    )
    args = parser.parse_args()
    n = args.events
    if n < 1:
        parser.error("--events must be at least 1")

    binary = redress_binary()
    RESULTS.mkdir(exist_ok=True)
    policy = RESULTS / "pipeline-policy.toml"
    policy.write_text(
        (ROOT / "benches/policy.toml").read_text()
        + f'\n# Added by benches/pipeline.py: see RECHECK_AFTER_S there.\n'
        f'[config]\nrecheck_after = "{RECHECK_AFTER_S}s"\n'
    )
    with private_stack() as endpoint, keepalive_front(endpoint) as front:
        stack = provisioned(binary, endpoint, {
            "REDRESS_POLICY": str(policy),
            "BENCH_RECHECK_AFTER_S": str(RECHECK_AFTER_S),
            "REDRESS_EVENTS_QUEUE": EVENTS_QUEUE,
            "REDRESS_TASKS_QUEUE": TASKS_QUEUE,
            "REDRESS_APPROVALS_QUEUE": APPROVALS_QUEUE,
            "REDRESS_LEDGER_TABLE": LEDGER_TABLE,
        })
        sqs = stack.client("sqs")
        rule_arn = config_rule(stack.client("config"))
        hold_non_compliant(stack.client("config"), sqs,
                           sqs.get_queue_url(QueueName=EVENTS_QUEUE)["QueueUrl"], n)
        stats = Stats(endpoint)
        base_time = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

        runs: dict[tuple[str, str], Measurement] = {}
        for mode, via in (("keep-alive", front), ("closed", None)):
            url = via.endpoint if via else endpoint
            env = dict(stack.env, AWS_ENDPOINT_URL=url)
            clients = {"sqs": stack.client("sqs", url), "ssm": stack.client("ssm", url)}
            # moto names queue URLs after the Host asked: through the front, the front's.
            clients["events_url"] = clients["sqs"].get_queue_url(QueueName=EVENTS_QUEUE)["QueueUrl"]
            workers = (
                ("redress", [binary, "run", "--once"]),
                ("python", [sys.executable, str(ROOT / "benches/reference_worker.py"),
                            clients["events_url"]]),
            )
            for who, argv in workers:
                # Fresh event times each run: a finding already in the ledger is not new.
                recorded = base_time + dt.timedelta(hours=len(runs))
                runs[(mode, who)] = run_worker(
                    f"{mode} {who}", argv, env, clients, stats, n, recorded, rule_arn, via
                )

        text = report(runs, binary, rss_floor_kib())
        print(text, end="")
        (RESULTS / "pipeline.txt").write_text(text)
        log(f"written to {RESULTS / 'pipeline.txt'}")
    return 0


if __name__ == "__main__":
    bench_main(main)
