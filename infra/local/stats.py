"""Request counting for the local stack: which AWS API calls arrived, how many, and when.

A WSGI middleware, installed outermost in stack.py, that counts every request by
(service, action) before passing it on unchanged:

  - JSON protocols (SQS, SSM, EventBridge, ...) name the call in `X-Amz-Target`,
    e.g. `AmazonSQS.ReceiveMessage` → `sqs:ReceiveMessage`;
  - query protocols (EC2, STS, older SQS) carry `Action=...` in the form body or the
    query string; the service comes from the SigV4 credential scope
    (`Credential=KEY/DATE/REGION/SERVICE/aws4_request`). Reading the body consumes
    `wsgi.input`, so the bytes are put back for the application behind.

Per action it also remembers when it was first seen since the last reset, and for SQS
calls which queue it was for (`QueueUrl` in the JSON body, or the query form), so a
benchmark can ask "when did the first ReceiveMessage on queue X arrive".

Endpoints answered here, never passed on:

    GET  /_redress/stats        {"counts": {"sqs:ReceiveMessage": 12, ...},
                                 "first_seen": {"sqs:ReceiveMessage": <unix time>, ...},
                                 "first_seen_by_queue": {"<queue>": {"sqs:ReceiveMessage": t}}}
    POST /_redress/stats/reset  zero everything
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from typing import Iterable
from urllib.parse import parse_qs

STATS_PATH = "/_redress/stats"
RESET_PATH = "/_redress/stats/reset"

# SigV4: "Credential=<access key>/<yyyymmdd>/<region>/<service>/aws4_request".
_SCOPE_SERVICE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/")
# JSON target prefixes whose service name is not simply the lowercased prefix.
_TARGET_SERVICES = {
    "AmazonSQS": "sqs",
    "AmazonSSM": "ssm",
    "AWSEvents": "events",
    "AmazonEC2": "ec2",
    "StarlingDoveService": "config",
}
# Bodies larger than this are not read for the action name (none of the query calls
# the pipeline makes comes close); they are counted under the action "?".
_MAX_BODY = 1 << 20


class Stats:
    """The counters; every access holds `lock`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.counts: dict[str, int] = {}
            self.first_seen: dict[str, float] = {}
            self.first_seen_by_queue: dict[str, dict[str, float]] = {}

    def record(self, key: str, queue: str | None, when: float) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            self.first_seen.setdefault(key, when)
            if queue:
                self.first_seen_by_queue.setdefault(queue, {}).setdefault(key, when)

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "counts": dict(self.counts),
                "first_seen": dict(self.first_seen),
                "first_seen_by_queue": {q: dict(v) for q, v in self.first_seen_by_queue.items()},
            }


def _queue_name(queue_url: object) -> str | None:
    if not isinstance(queue_url, str) or not queue_url:
        return None
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def _target_service(prefix: str) -> str:
    if prefix in _TARGET_SERVICES:
        return _TARGET_SERVICES[prefix]
    # e.g. "AmazonSSM_20141106" style or "AWSCertificateManager": best effort.
    base = prefix.split("_", 1)[0]
    for strip in ("Amazon", "AWS"):
        if base.startswith(strip) and len(base) > len(strip):
            base = base[len(strip) :]
            break
    return base.lower()


class StatsMiddleware:
    """Counts requests by service and action; answers /_redress/stats itself."""

    def __init__(self, app, stats: Stats | None = None) -> None:
        self.app = app
        self.stats = stats or Stats()

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == STATS_PATH and method == "GET":
            return self._json(start_response, self.stats.snapshot())
        if path == RESET_PATH and method == "POST":
            self.stats.reset()
            return self._json(start_response, {"reset": True})

        when = time.time()
        try:
            service, action, queue = self._identify(environ)
        except Exception:  # never let counting break a request
            service, action, queue = "?", "?", None
        self.stats.record(f"{service}:{action}", queue, when)
        return self.app(environ, start_response)

    def _identify(self, environ: dict) -> tuple[str, str, str | None]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            prefix, _, action = target.rpartition(".")
            service = _target_service(prefix)
            queue = None
            if service == "sqs":
                body = self._read_body(environ)
                if body:
                    try:
                        request = json.loads(body)
                    except ValueError:
                        request = None
                    if isinstance(request, dict):
                        queue = _queue_name(request.get("QueueUrl"))
            return service, action or "?", queue

        scope = _SCOPE_SERVICE.search(environ.get("HTTP_AUTHORIZATION", ""))
        service = scope.group(1) if scope else "?"
        form = parse_qs(environ.get("QUERY_STRING", ""))
        content_type = environ.get("CONTENT_TYPE", "")
        if "Action" not in form and content_type.startswith("application/x-www-form-urlencoded"):
            body = self._read_body(environ)
            if body:
                form = parse_qs(body.decode("utf-8", "replace"))
        action = (form.get("Action") or ["?"])[0]
        queue = None
        if service == "sqs":
            queue = _queue_name((form.get("QueueUrl") or [None])[0])
            if queue is None and action != "?":
                # Old SQS query form: the queue is the request path (/<account>/<name>).
                parts = [p for p in environ.get("PATH_INFO", "").split("/") if p]
                if len(parts) >= 2:
                    queue = parts[-1]
        return service, action, queue

    @staticmethod
    def _read_body(environ: dict) -> bytes:
        """Read the request body and put it back for the application behind."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        stream = environ.get("wsgi.input")
        if stream is None or length <= 0 or length > _MAX_BODY:
            return b""
        body = stream.read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body

    @staticmethod
    def _json(start_response, payload: dict) -> list[bytes]:
        body = json.dumps(payload).encode()
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]
