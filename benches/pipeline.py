"""Whole-pipeline benchmark: redress against a plain boto3 worker, on the local stack.

Usage: .venv/bin/python benches/pipeline.py [--events N]
       (default 1000; env BENCH_EVENTS overrides the default; env REDRESS_BIN names the
       binary, default target/release/redress)

Starts a private local stack (infra/local/stack.py, with its request counter), provisions
the bench queues, seeds N drifted SSM parameters and N Config compliance-change events on
the events queue, then runs `redress run --once` until it has drained everything, and
measures it: wall time, CPU (user + system, from wait4's rusage), peak RSS, SQS calls
counted by the stack, and start-up time (process start to its first ReceiveMessage on the
events queue). It then re-seeds the same drift and events and measures
benches/reference_worker.py the same way. Both must fix every parameter, or the benchmark
fails. The table is printed and written to bench-results/pipeline.txt.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import platform
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench-results"
ACCOUNT = "123456789012"
REGION = "us-east-1"
EVENTS_QUEUE = "bench-events"
TASKS_QUEUE = "bench-tasks"
APPROVALS_QUEUE = "bench-approvals"
BASELINE_PREFIX = "/bench/approved/"
CURRENT_PREFIX = "/bench/current/"
RULE = "ssm-parameter-drift"

# Targets from the issue.
TARGET_CPU_RATIO = 20.0  # worker CPU per event at least 20x lower than Python
TARGET_RSS_RATIO = 5.0  # peak RSS at least 5x lower
TARGET_SQS_PER_EVENT = 0.3  # at most 0.3 SQS calls per event, at saturation


class BenchError(Exception):
    pass


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- The stack -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_stack(port: int) -> subprocess.Popen:
    RESULTS.mkdir(exist_ok=True)
    stack_log = open(RESULTS / "stack.log", "wb")
    stack = subprocess.Popen(
        [sys.executable, str(ROOT / "infra/local/stack.py"), "--port", str(port),
         "--exit-with-stdin"],
        stdin=subprocess.PIPE,  # kept open: when this process dies, the stack exits
        stdout=stack_log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if stack.poll() is not None:
            raise BenchError(f"local stack exited with {stack.returncode}; see {RESULTS}/stack.log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return stack
        except OSError:
            time.sleep(0.1)
    stack.kill()
    raise BenchError("local stack did not accept connections within 60 s")


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


class Stats:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def reset(self) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/_redress/stats/reset", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()

    def get(self) -> dict:
        with urllib.request.urlopen(f"{self.endpoint}/_redress/stats", timeout=10) as answer:
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


def make_event(i: int, recorded: dt.datetime) -> dict:
    """An EventBridge-delivered Config compliance change (the shape of
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
            "configRuleARN": f"arn:aws:config:{REGION}:{ACCOUNT}:config-rule/config-rule-bench01",
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


def send_events(sqs, queue_url: str, n: int, start: dt.datetime) -> None:
    events = [make_event(i, start + dt.timedelta(milliseconds=i)) for i in range(n)]
    for first in range(0, n, 10):
        batch = events[first : first + 10]
        answer = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(j), "MessageBody": json.dumps(e)} for j, e in enumerate(batch)],
        )
        if answer.get("Failed"):
            raise BenchError(f"send_message_batch failed: {answer['Failed']}")


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


def measure(name: str, argv: list[str], env: dict, stats: Stats, n: int) -> Measurement:
    stats.reset()
    log(f"running {name}: {' '.join(argv)}")
    load_before = os.getloadavg()
    sampler: list[RssSampler] = []
    with open(RESULTS / f"{name}.stdout", "wb") as out, open(RESULTS / f"{name}.stderr", "wb") as err:
        code, spawned, wall, cpu, maxrss = launch(
            argv, env, out, err, RESULTS / f"{name}.result", sampler
        )
    load_after = os.getloadavg()
    snapshot = stats.get()
    if code != 0:
        tail = (RESULTS / f"{name}.stderr").read_text(errors="replace")[-2000:]
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
    )


# --- Report ----------------------------------------------------------------------


def fmt(value, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def report(r: Measurement, p: Measurement, binary: str, floor_kib: int) -> str:
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
    def lower_than_python(label, mine, theirs, digits, target):
        """A row comparing redress with python against an "N x lower" target."""
        achieved = theirs / mine if mine else 0.0
        rows.append((
            label,
            fmt(mine, digits),
            fmt(theirs, digits),
            ratio(theirs, mine),
            f">= {target:.0f}x lower than python: " + ("met" if achieved >= target else "NOT met"),
        ))

    cpu_r, cpu_p = per_event(r, r.cpu_s) * 1000, per_event(p, p.cpu_s) * 1000
    lower_than_python("CPU ms/event", cpu_r, cpu_p, 3, TARGET_CPU_RATIO)
    rss_r, rss_p = r.peak_rss_kib / 1024, p.peak_rss_kib / 1024
    lower_than_python("peak RSS MiB", rss_r, rss_p, 1, TARGET_RSS_RATIO)
    anon_r, anon_p = r.peak_anon_kib / 1024, p.peak_anon_kib / 1024
    file_r, file_p = r.peak_file_kib / 1024, p.peak_file_kib / 1024
    if r.peak_anon_kib and p.peak_anon_kib:
        rows.append((
            "  of it anon MiB",
            fmt(anon_r, 1),
            fmt(anon_p, 1),
            ratio(anon_p, anon_r),
            "(sampled; heap and stacks)",
        ))
        rows.append((
            "  of it file MiB",
            fmt(file_r, 1),
            fmt(file_p, 1),
            ratio(file_p, file_r),
            "(sampled; executable and libraries paged in)",
        ))
    calls_r, calls_p = sum(r.counts.values()), sum(p.counts.values())
    rows.append((
        "AWS calls/event",
        fmt(per_event(r, calls_r), 2),
        fmt(per_event(p, calls_p), 2),
        ratio(per_event(p, calls_p), per_event(r, calls_r)),
        "(all services)",
    ))
    rows.append((
        "CPU us/AWS call",
        fmt(r.cpu_s * 1e6 / calls_r if calls_r else None, 0),
        fmt(p.cpu_s * 1e6 / calls_p if calls_p else None, 0),
        ratio(p.cpu_s / calls_p if calls_p else None, r.cpu_s / calls_r if calls_r else None),
        "",
    ))
    rows.append(("SQS calls", fmt(r.sqs_calls, 0), fmt(p.sqs_calls, 0), ratio(p.sqs_calls, r.sqs_calls), ""))
    sqs_r, sqs_p = per_event(r, r.sqs_calls), per_event(p, p.sqs_calls)
    receives = r.counts.get("sqs:ReceiveMessage", 0)
    # Router and executor each receive every message once: 2 receipts per event.
    per_receive = 2 * r.events / receives if receives else 0.0
    rows.append((
        "SQS calls/event",
        fmt(sqs_r, 3),
        fmt(sqs_p, 3),
        ratio(sqs_p, sqs_r),
        f"<= {TARGET_SQS_PER_EVENT} at saturation: "
        + ("met" if sqs_r <= TARGET_SQS_PER_EVENT else "NOT met")
        + f" ({per_receive:.1f} of 10 messages per receive)",
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

    def counts_line(m: Measurement) -> str:
        sqs = sorted((k, v) for k, v in m.counts.items() if k.startswith("sqs:"))
        return ", ".join(f"{k[4:]} {v}" for k, v in sqs) or "-"

    def other_line(m: Measurement) -> str:
        other = sorted((k, v) for k, v in m.counts.items() if not k.startswith("sqs:"))
        return ", ".join(f"{k} {v}" for k, v in other) or "-"

    def load(m: Measurement) -> str:
        return "load average {:.2f} {:.2f} {:.2f} -> {:.2f} {:.2f} {:.2f}".format(
            *m.load_before, *m.load_after
        )

    out = [
        f"redress whole-pipeline benchmark, {r.events} events "
        f"({dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')})",
        f"redress binary: {binary}"
        + ("  (DEBUG build: CPU and RSS not representative)" if "/debug/" in binary
           else "  (release build)"),
        f"machine: {machine()}",
        f"during redress: {load(r)}; during python: {load(p)}",
        "",
        line(header),
        line(tuple("-" * w for w in widths[:4]) + ("-" * len(header[4]),)),
        *(line(row) for row in rows),
        "",
        "start-up = process start to its first ReceiveMessage on the events queue.",
        f"peak RSS = wait4 ru_maxrss; it includes a floor of {floor_kib / 1024:.1f} MiB from the small",
        "launcher the workers are forked from (what /bin/true measures the same way)"
        + (" -- redress is at the floor, its real peak is lower." if r.peak_rss_kib <= floor_kib + 512 else "."),
        "CPU = user + system of the worker process (wait4 rusage); wall includes the final",
        "empty receive(s) each worker makes before deciding the queues are drained.",
        "redress runs router and executor (`run --once`): every event goes events queue ->",
        "tasks queue -> executor, about twice the queue hops of the python reference, which",
        "does routing and fixing in one process with no intermediate tasks queue.",
        "SQS calls per event are measured on the local emulator with a pre-filled queue, so",
        "every receive returns a full batch: saturation. With batches of 10, redress's two",
        "hops cannot go below 0.5 SQS calls per event (router: receive, send, delete = 0.3;",
        "executor: receive, delete = 0.2), the python reference's one hop not below 0.2.",
        "The executor alone at saturation: see the concurrency table.",
        "The local emulator closes the connection after every answer, so every call of",
        "either worker opens a new TCP connection; CPU per call includes that.",
        "",
        f"redress SQS calls:    {counts_line(r)}",
        f"redress other calls:  {other_line(r)}",
        f"python SQS calls:     {counts_line(p)}",
        f"python other calls:   {other_line(p)}",
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

    binary = os.environ.get("REDRESS_BIN", "target/release/redress")
    binary = str((ROOT / binary).resolve()) if not os.path.isabs(binary) else binary
    if not os.access(binary, os.X_OK):
        raise BenchError(f"redress binary {binary} not found (set REDRESS_BIN or build it)")

    RESULTS.mkdir(exist_ok=True)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log(f"starting local stack on {endpoint}")
    stack = start_stack(port)
    try:
        env = dict(os.environ)
        env.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,  # older botocore reads only this one
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_EC2_METADATA_DISABLED="true",
            REDRESS_POLICY=str(ROOT / "benches/policy.toml"),
            REDRESS_EVENTS_QUEUE=EVENTS_QUEUE,
            REDRESS_TASKS_QUEUE=TASKS_QUEUE,
            REDRESS_APPROVALS_QUEUE=APPROVALS_QUEUE,
            REDRESS_LOG_FORMAT="json",
        )
        for unset in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "REDRESS_DRY_RUN"):
            env.pop(unset, None)

        provision = subprocess.run(
            [binary, "provision"], env=env, cwd=ROOT, capture_output=True, text=True
        )
        if provision.returncode != 0:
            raise BenchError(f"redress provision failed:\n{provision.stdout}{provision.stderr}")

        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
        )
        config = Config(retries={"max_attempts": 3, "mode": "standard"})
        sqs = session.client("sqs", endpoint_url=endpoint, config=config)
        ssm = session.client("ssm", endpoint_url=endpoint, config=config)
        events_url = sqs.get_queue_url(QueueName=EVENTS_QUEUE)["QueueUrl"]
        stats = Stats(endpoint)
        base_time = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)

        # redress
        log(f"seeding {n} drifted parameters and {n} events")
        seed_parameters(ssm, n, baseline=True)
        send_events(sqs, events_url, n, base_time)
        redress = measure("redress", [binary, "run", "--once"], env, stats, n)
        verify_fixed(ssm, n, "redress")
        leftover = {q: d for q, d in queue_depths(sqs).items() if d}
        if leftover:
            raise BenchError(f"redress left messages on queues: {leftover}")
        log(f"redress: {n} fixed in {redress.wall_s:.2f} s")

        # python reference, on the same drift and fresh events
        log(f"re-seeding {n} drifted parameters and {n} fresh events")
        seed_parameters(ssm, n, baseline=False)
        send_events(sqs, events_url, n, base_time + dt.timedelta(hours=1))
        python = measure(
            "reference",
            [sys.executable, str(ROOT / "benches/reference_worker.py"), events_url],
            env,
            stats,
            n,
        )
        verify_fixed(ssm, n, "python reference")
        leftover = {q: d for q, d in queue_depths(sqs).items() if d}
        if leftover:
            raise BenchError(f"python reference left messages on queues: {leftover}")
        log(f"python reference: {n} fixed in {python.wall_s:.2f} s")

        table = report(redress, python, binary, rss_floor_kib())
        print(table, end="")
        (RESULTS / "pipeline.txt").write_text(table)
        log(f"written to {RESULTS / 'pipeline.txt'}")
    finally:
        stop_stack(stack)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        print(f"benchmark FAILED: {err}", file=sys.stderr)
        sys.exit(1)
