"""Approvals at scale: `approvals list` and `approvals approve` with N pending requests.

Usage: .venv/bin/python benches/approvals.py [--requests N] [--measure-at M] [--port PORT]
       (N default 10000, env BENCH_APPROVALS; M default min(N, 500); env REDRESS_BIN
       names the binary, default target/release/redress)

Starts a private local stack (as benches/pipeline.py does, with its request counter) and
makes one real approval request through redress: a drifted SSM parameter under a HIGH
rule, its Config event on the events queue, `redress run --once`. It takes that request
off the approvals queue and sends N copies of it back with SendMessageBatch, each for
another parameter and with the id redress would give it (Task::approval_id, reproduced
here and checked against the real request). Then it measures, with the stack's counter
reset before each: `redress approvals list --json` (must list N pending requests and
leave all N visible again) and `redress approvals approve ID` for one of them (must
leave N - 1 visible and one approved task on the tasks queue): wall time, CPU, peak RSS
and AWS calls by action. The table is printed and written to bench-results/approvals.txt.

The local emulator (moto) walks every message of a queue, several times, on every
SendMessageBatch and ReceiveMessage: at 5,000 messages one receive costs it seconds of
CPU, so a queue of 10,000 takes it hours to fill and to scan, and a scan that slow
outlasts the 120 s for which `approvals` hides what it has read. The commands are
therefore measured at M requests (what the emulator serves well within that), the
measured SQS calls are checked against what a scan of ten messages per receive must
make, and the calls for N are projected with the same count; the wall time for N is
given for a range of per-call latencies, since the emulator's says nothing of SQS's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import uuid
from dataclasses import dataclass

# The helpers of the pipeline benchmark (this directory is on sys.path when run as a script).
from pipeline import (
    RESULTS,
    ROOT,
    RULE,
    BenchError,
    Stats,
    bench_main,
    launch,
    log,
    machine,
    make_event,
    private_stack,
    provisioned,
    redress_binary,
)

EVENTS_QUEUE = "bench-approvals-events"
TASKS_QUEUE = "bench-approvals-tasks"
APPROVALS_QUEUE = "bench-approvals-approvals"
BASELINE_PREFIX = "/bench/approved/"
CURRENT_PREFIX = "/bench/current/"
RULE_ID = "param-drift-approve"
# Zero-padded to a fixed width, so replacing the seed's name in a request's JSON cannot
# also hit a longer name that starts with it.
SEED = f"{CURRENT_PREFIX}p000000"
# The "answer in seconds" the issue asks for.
TARGET_SECONDS = 5.0
# Each command must finish within this, or the benchmark records it as failed.
COMMAND_TIMEOUT_S = 1800
# Largest queue measured by default: what the emulator scans in well under the 120 s
# visibility timeout on a busy 2-core machine (1,000 took 130 s there and read 35 twice).
MEASURE_AT = 500
# `approvals` hides what it reads for this long (SCAN_VISIBILITY_SECONDS in
# workers/src/approvals/mod.rs); a longer scan reads messages twice.
SCAN_VISIBILITY_S = 120
# Per-call latencies the wall time for N is projected at (ms): SQS in the same region,
# and across a continent.
LATENCIES_MS = (10, 25, 60)

# The pipeline bench's rule, but HIGH: every finding waits for a person.
POLICY = f"""# Written by benches/approvals.py: the pipeline bench's rule, HIGH, so it waits for approval.
[routing]
auto_max_severity = "MEDIUM"

[[rule]]
id = "{RULE_ID}"
config_rule = "{RULE}"
resource_types = ["AWS::SSM::Parameter"]
severity = "HIGH"
action = {{ fix = "restore_parameter_baseline", baseline_prefix = "{BASELINE_PREFIX}", current_prefix = "{CURRENT_PREFIX}" }}
"""


def name_of(i: int) -> str:
    return f"{CURRENT_PREFIX}p{i:06d}"


# --- Requests --------------------------------------------------------------------


def approval_id(task: dict) -> str:
    """Task::approval_id (shared/src/message.rs) for a task without an undo: `ap-` and the
    first 5 bytes, in hex, of Finding::identity, a SHA-256 over the finding's identity
    under the rule, joined by U+001F."""
    if task.get("undo"):
        raise BenchError("an undo request's id comes from its ledger entry; not reproduced here")
    f = task["finding"]
    when = f"at:{f['evaluation_time']}" if f.get("evaluation_time") else f"event:{f['event_id']}"
    text = "\x1f".join([
        "redress/v1",
        task["rule_id"],
        f["config_rule_name"],
        f["account_id"],
        f["region"],
        f["resource_type"],
        f["resource_id"],
        when,
        str(task.get("generation", 0)),
    ])
    return "ap-" + hashlib.sha256(text.encode()).digest()[:5].hex()


def real_request(sqs, ssm, binary: str, env: dict, events_url: str, approvals_url: str) -> dict:
    """One approval request made by redress for the seed parameter, taken off the queue."""
    ssm.put_parameter(Name=f"{BASELINE_PREFIX}p000000", Value="1", Type="String", Overwrite=True)
    ssm.put_parameter(Name=SEED, Value="2", Type="String", Overwrite=True)
    # make_event names its resource p{i}; this bench's names are zero-padded.
    event = json.dumps(make_event(0, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))
    sqs.send_message(QueueUrl=events_url,
                     MessageBody=event.replace(json.dumps(f"{CURRENT_PREFIX}p0"), json.dumps(SEED)))
    run = subprocess.run([binary, "run", "--once"], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    if run.returncode != 0:
        raise BenchError(f"redress run --once exited {run.returncode}:\n{run.stderr[-2000:]}")
    answer = sqs.receive_message(QueueUrl=approvals_url, MaxNumberOfMessages=10,
                                 WaitTimeSeconds=1, MessageAttributeNames=["All"])
    messages = answer.get("Messages", [])
    if len(messages) != 1:
        raise BenchError(f"expected one approval request from redress, found {len(messages)}")
    message = messages[0]
    sqs.delete_message(QueueUrl=approvals_url, ReceiptHandle=message["ReceiptHandle"])
    body = json.loads(message["Body"])
    if body.get("kind") != "request":
        raise BenchError(f"the approvals queue held a {body.get('kind')!r}, not a request")
    if body["id"] != approval_id(body["task"]):
        raise BenchError(
            f"this bench computes {approval_id(body['task'])} for redress's request "
            f"{body['id']}: Task::approval_id changed; update approval_id() here"
        )
    (RESULTS / "approvals-request.json").write_text(json.dumps(body, indent=2) + "\n")
    return {"body": message["Body"], "attributes": message.get("MessageAttributes", {})}


def clone(body: str, i: int) -> tuple[str, str]:
    """The real request's body for parameter i: the name replaced wherever it appears
    (finding, rendered action, preview), a fresh event id, and the id redress would give
    it. Returns (id, body)."""
    request = json.loads(body.replace(SEED, name_of(i)))
    request["task"]["finding"]["event_id"] = str(uuid.uuid4())
    request["id"] = approval_id(request["task"])
    return request["id"], json.dumps(request, separators=(",", ":"))


def fill(sqs, url: str, real: dict, n: int) -> list[str]:
    """Sends n clones of the real request, ten per call; returns their ids."""
    ids = []
    for first in range(0, n, 10):
        entries = []
        for j, i in enumerate(range(first, min(first + 10, n))):
            rid, body = clone(real["body"], i)
            ids.append(rid)
            entry = {"Id": str(j), "MessageBody": body}
            if real["attributes"]:
                entry["MessageAttributes"] = real["attributes"]
            entries.append(entry)
        answer = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if answer.get("Failed"):
            raise BenchError(f"send_message_batch failed: {answer['Failed']}")
    if len(set(ids)) != n:
        raise BenchError(f"{n - len(set(ids))} request ids collide")
    return ids


def depth(sqs, url: str) -> tuple[int, int]:
    """(visible, in flight) messages on a queue."""
    a = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])


# --- Measuring -------------------------------------------------------------------


@dataclass
class Run:
    name: str
    wall_s: float
    cpu_s: float
    peak_rss_kib: int
    counts: dict[str, int]
    stdout: str

    def sqs(self) -> dict[str, int]:
        return {k[4:]: v for k, v in sorted(self.counts.items()) if k.startswith("sqs:")}

    def other(self) -> dict[str, int]:
        return {k: v for k, v in sorted(self.counts.items()) if not k.startswith("sqs:")}


def measure(name: str, argv: list[str], env: dict, stats: Stats) -> Run:
    stats.reset()
    log(f"running {name}: {' '.join(argv[1:])}")
    out_path, err_path = RESULTS / f"approvals-{name}.stdout", RESULTS / f"approvals-{name}.stderr"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        code, _, wall, cpu, maxrss = launch(
            ["/usr/bin/timeout", str(COMMAND_TIMEOUT_S), *argv],
            env, out, err, RESULTS / f"approvals-{name}.result",
        )
    counts = stats.get().get("counts", {})
    if code != 0:
        tail = err_path.read_text(errors="replace")[-2000:]
        why = "timed out" if code == 124 else f"exited with {code}"
        raise BenchError(f"{name} {why} after {wall:.1f} s; stderr ends:\n{tail}")
    log(f"{name}: {wall:.2f} s, {sum(counts.values())} AWS calls")
    return Run(name, wall, cpu, maxrss, counts, out_path.read_text())


def check_list(run: Run, ids: list[str], sqs, url: str) -> None:
    doc = json.loads(run.stdout)
    pending = {r["id"] for r in doc["requests"] if r["status"] == "pending"}
    if pending != set(ids):
        raise BenchError(
            f"approvals list showed {len(pending)} pending requests, {len(set(ids) - pending)} "
            f"of the {len(ids)} sent missing and {len(pending - set(ids))} unknown"
        )
    copies = [r["copies"] for r in doc["requests"] if r["copies"] != 1]
    if copies:
        raise BenchError(
            f"{len(copies)} requests listed with copies != 1 after a {run.wall_s:.0f} s scan: read "
            f"twice, because they reappeared after the {SCAN_VISIBILITY_S} s visibility timeout"
        )
    visible, hidden = depth(sqs, url)
    if (visible, hidden) != (len(ids), 0):
        raise BenchError(f"after list: {visible} visible, {hidden} in flight; expected {len(ids)}, 0")


def check_approve(run: Run, chosen: str, n: int, sqs, url: str, tasks_url: str) -> None:
    visible, hidden = depth(sqs, url)
    if (visible, hidden) != (n - 1, 0):
        raise BenchError(f"after approve: {visible} visible, {hidden} in flight; expected {n - 1}, 0")
    answer = sqs.receive_message(QueueUrl=tasks_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    tasks = [json.loads(m["Body"]) for m in answer.get("Messages", [])]
    approved = [t.get("approval", {}).get("request_id") for t in tasks]
    if approved != [chosen]:
        raise BenchError(f"after approving {chosen} the tasks queue holds approvals of {approved}")


# --- Report ----------------------------------------------------------------------


def scan_calls(n: int) -> dict[str, int]:
    """The SQS calls a scan of n messages must make: a receive per ten and one more that
    comes back empty, and a visibility change per ten to release them."""
    batches = -(-n // 10)
    return {"ReceiveMessage": batches + 1, "ChangeMessageVisibilityBatch": batches}


def project(r: Run, m: int, n: int) -> dict[str, int]:
    """r's SQS calls with the scan's for n messages in place of m's; checks that the
    measured scan made exactly the calls scan_calls says."""
    measured = r.sqs()
    expected = scan_calls(m)
    for action, count in expected.items():
        # approve releases every message but the one it deleted: one fewer at most.
        released = scan_calls(m - 1) if r.name == "approve" and action.startswith("Change") else expected
        if measured.get(action, 0) not in (count, released[action]):
            raise BenchError(
                f"{r.name} made {measured.get(action, 0)} {action} for {m} requests, not the "
                f"{count} a ten-per-call scan makes: the projection to {n} would be wrong"
            )
    return {**measured, **scan_calls(n)}


def report(n: int, m: int, runs: list[Run], binary: str, load: tuple, load_after: tuple) -> str:
    header = ("command", "requests", "wall s", "CPU s", "peak RSS MiB", "SQS calls",
              "SQS calls/request", f"<= {TARGET_SECONDS:.0f} s")
    rows = []
    for r in runs:
        sqs = sum(r.sqs().values())
        rows.append((
            r.name, str(m), f"{r.wall_s:.2f}", f"{r.cpu_s:.2f}", f"{r.peak_rss_kib / 1024:.1f}",
            str(sqs), f"{sqs / m:.3f}", "met" if r.wall_s <= TARGET_SECONDS else "NOT met",
        ))
    projected = {r.name: project(r, m, n) for r in runs} if n != m else {}
    for r in runs if projected else []:
        sqs = sum(projected[r.name].values())
        slowest = sqs * LATENCIES_MS[0] / 1000
        rows.append((
            r.name, f"{n} (projected)", f">= {slowest:.0f}", f"~{r.cpu_s * n / m:.0f}", "-",
            str(sqs), f"{sqs / n:.3f}", "met" if slowest <= TARGET_SECONDS else "NOT met",
        ))
    widths = [max(len(row[c]) for row in rows + [header]) for c in range(len(header))]

    def line(row) -> str:
        return "  ".join([row[0].ljust(widths[0])] + [row[c].rjust(widths[c])
                                                      for c in range(1, len(row))]).rstrip()

    def calls(counts: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"

    out = [
        f"redress approvals at scale, {n} pending requests "
        f"({dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')})",
        f"redress binary: {binary}"
        + ("  (DEBUG build: CPU and RSS not representative)" if "/debug/" in binary
           else "  (release build)"),
        f"machine: {machine()}",
        "load average {:.2f} {:.2f} {:.2f} -> {:.2f} {:.2f} {:.2f}".format(*load, *load_after),
        "",
        line(header),
        line(tuple("-" * w for w in widths)),
        *(line(row) for row in rows),
        "",
    ]
    for r in runs:
        out.append(f"{r.name} at {m}, SQS calls:   {calls(r.sqs())}")
        out.append(f"{r.name} at {m}, other calls: {calls(r.other())}")
        if projected:
            out.append(f"{r.name} at {n}, SQS calls:   {calls(projected[r.name])} (projected)")
    out += [
        "",
        f"Checked at {m}: list showed every request once as pending and left all of them",
        "visible again; approve handed exactly the chosen request to the tasks queue and",
        "left the others visible. Requests are copies of one redress made, each for another",
        "parameter, with the id redress computes; no ledger table (list reads the queue",
        "only). The local emulator answers each call on a fresh TCP connection, and its",
        "time per call grows with the queue (it walks every message on each call): the",
        "measured wall time is the emulator's, not SQS's.",
    ]
    if projected:
        out += [
            "",
            f"At {n} (projected): the SQS calls are what the measured scan makes for {n}",
            "messages (checked above: one receive per ten, one empty, one visibility change",
            "per ten), made one after another. Wall time at a given latency per call:",
        ]
        for r in runs:
            sqs = sum(projected[r.name].values())
            out.append(f"  {r.name}: " + ", ".join(
                f"{ms} ms/call -> {sqs * ms / 1000:.0f} s" for ms in LATENCIES_MS
            ))
        out += [
            f"Above {SCAN_VISIBILITY_S} s the first messages read reappear before the scan ends,",
            "are read again, and the scan may not end while they keep reappearing.",
            f"\"wall s >= X\" is at {LATENCIES_MS[0]} ms per call; CPU is redress's, scaled.",
        ]
    slow = [r for r in runs if r.wall_s > TARGET_SECONDS] or projected
    if slow:
        out += ["", *WHY]
    return "\n".join(out) + "\n"


# Printed when a command misses the target; docs/performance.md says the same.
WHY = """\
Why it takes this long: every `approvals` command reads the whole approvals queue before
it acts (Session::open -> Queue::scan), because the queue is the only record of what
waits and SQS cannot fetch a message by id. A scan is ReceiveMessage ten at a time,
hiding each batch for 120 s, plus one ChangeMessageVisibilityBatch per ten messages to
make them visible again at the end: about 0.2 SQS calls per pending request, sequential,
for every list and every approve, and if the scan itself takes longer than the 120 s
visibility timeout the first messages reappear and are read twice. What would answer in
seconds: keep the index of pending requests in the ledger (the `open` GSI already holds
every awaiting_approval entry; store the request body or its digest on the entry), list
with one paginated Query of that index (100s of entries per call), and approve by id
with GetItem plus a conditional UpdateItem (awaiting_approval -> approved) that makes the
decision exactly once, then send the task; the queue message becomes a notification that
a sweep deletes, not the record an approver must scan.""".splitlines()


# --- Main ------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=int(os.environ.get("BENCH_APPROVALS", "10000")),
        help="pending requests (default: env BENCH_APPROVALS, else 10000)",
    )
    parser.add_argument(
        "--measure-at", type=int, default=None,
        help=f"requests the commands are run with (default: min(N, {MEASURE_AT})); "
             "the table projects the SQS calls to N",
    )
    parser.add_argument("--port", type=int, default=0, help="local stack port (default: a free one)")
    args = parser.parse_args()
    n = args.requests
    m = min(n, MEASURE_AT) if args.measure_at is None else args.measure_at
    if n < 2 or not 2 <= m <= n:
        parser.error("need 2 <= --measure-at <= --requests")

    binary = redress_binary()
    RESULTS.mkdir(exist_ok=True)
    policy = RESULTS / "approvals-policy.toml"
    policy.write_text(POLICY)
    with private_stack(args.port) as endpoint:
        stack = provisioned(binary, endpoint, {
            "REDRESS_POLICY": str(policy),
            "REDRESS_EVENTS_QUEUE": EVENTS_QUEUE,
            "REDRESS_TASKS_QUEUE": TASKS_QUEUE,
            "REDRESS_APPROVALS_QUEUE": APPROVALS_QUEUE,
            # No ledger: list and approve work on the queue alone.
            "REDRESS_LEDGER_TABLE": "",
        })
        env = stack.env
        sqs, ssm = stack.client("sqs"), stack.client("ssm")
        url = {q: sqs.get_queue_url(QueueName=q)["QueueUrl"]
               for q in (EVENTS_QUEUE, TASKS_QUEUE, APPROVALS_QUEUE)}
        stats = Stats(endpoint)

        real = real_request(sqs, ssm, binary, env, url[EVENTS_QUEUE], url[APPROVALS_QUEUE])
        log(f"filling {APPROVALS_QUEUE} with {m} requests")
        ids = fill(sqs, url[APPROVALS_QUEUE], real, m)
        visible, hidden = depth(sqs, url[APPROVALS_QUEUE])
        if (visible, hidden) != (m, 0):
            raise BenchError(f"after filling: {visible} visible, {hidden} in flight; expected {m}, 0")

        load = os.getloadavg()
        listed = measure("list", [binary, "approvals", "list", "--json"], env, stats)
        check_list(listed, ids, sqs, url[APPROVALS_QUEUE])
        chosen = ids[m // 2]  # from the middle: approve cannot stop at the first batch
        approved = measure("approve", [binary, "approvals", "approve", chosen], env, stats)
        check_approve(approved, chosen, m, sqs, url[APPROVALS_QUEUE], url[TASKS_QUEUE])
        load_after = os.getloadavg()

        table = report(n, m, [listed, approved], binary, load, load_after)
        print(table, end="")
        (RESULTS / "approvals.txt").write_text(table)
        log(f"written to {RESULTS / 'approvals.txt'}")
    return 0


if __name__ == "__main__":
    bench_main(main)
