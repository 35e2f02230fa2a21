"""A fault-injecting HTTP proxy for the local stack: proves nothing is lost under faults.

It sits between redress (the AWS SDK for Rust) and the local stack (stack.py) and
forwards every request, except that with probability `--rate` it injects exactly one
fault, chosen uniformly from:

    reset_before   the client connection is reset (TCP RST, SO_LINGER 0) once the
                   request has been read; nothing reaches the stack
    reset_after    the request is forwarded and answered by the stack (it takes effect),
                   then the client connection is reset instead of relaying the answer:
                   the caller cannot tell that its call succeeded
    server_error   HTTP 500 with the protocol's error body; not forwarded
    throttle       the protocol's throttling error; not forwarded
    latency        100–400 ms of delay, then forwarded normally

Injected errors speak the wire format of the request's protocol, so the SDK classifies
them as it would real ones:

  - JSON protocols (an `X-Amz-Target` header: SQS, SSM, EventBridge, Config): HTTP 400
    (500 for server_error), the request's `application/x-amz-json-1.x` content type,
    `x-amzn-query-error: <code>;Sender|Receiver` (SQS is query-compatible) and a body
    `{"__type": "ThrottlingException" | "InternalFailure", "message": ...}`;
  - EC2 (a form body with `Version=2016-11-15`): `<Response><Errors><Error>` XML with
    `RequestLimitExceeded` (HTTP 503) or `InternalError` (HTTP 500);
  - other query protocols (a form body with `Action=`: STS, IAM): `<ErrorResponse>` XML
    with `Throttling` (Type Sender, HTTP 400) or `InternalFailure` (Type Receiver,
    HTTP 500), in the service's namespace when the API version is a known one;
  - anything else (REST protocols such as S3): S3-style `<Error>` XML with `SlowDown`
    (HTTP 503) or `InternalError` (HTTP 500).
Every injected response carries an `x-amzn-RequestId` header.

Connections are HTTP/1.1 with keep-alive on both sides (one upstream connection per
client connection; a stale one is reopened). Request bodies are read by Content-Length
or `Transfer-Encoding: chunked` and forwarded with a Content-Length; responses are read
in full and relayed with a Content-Length. Hop-by-hop headers are dropped; every other
header (Host, Authorization, X-Amz-*, Content-Type, ...) is forwarded unchanged, so
SigV4 signatures still match.

Stalls (`--stall ACTION:before` or `--stall ACTION:after`, repeatable; ACTION as in
`faults_by_action`, e.g. `RevokeSecurityGroupIngress`) hold the first call of ACTION, so
a test can kill its caller at a known point: `before` holds the request without
forwarding it, `after` forwards it (it takes effect) and holds the answer. Either holds
until the caller's connection closes (the caller was killed) or `--stall-for` seconds
pass, then resets the connection: a held request never reaches the stack. Later calls
of ACTION pass (and draw faults) as usual. A stalled call draws no fault.

Never faulted, forwarded untouched: paths under `/_redress/` (the stack's own endpoints).
Answered here, never forwarded:

    GET  /_faults/stats         {"requests": N, "exempt": N,
                                 "faults": {"reset_before": n, ...},
                                 "fault_rate_observed": x,
                                 "faults_by_action": {"AmazonSQS.SendMessage": {"throttle": n}},
                                 "forwarded_by_action": {"AmazonSQS.SendMessage": n},
                                 "stalls": [{"action": A, "when": "before", "state":
                                             "holding" | "caller_gone" | "timed_out"}],
                                 "upstream_errors": n}
                                (forwarded_by_action: calls the stack answered)
    POST /_faults/stats/reset   zero everything (stalls already used stay used)

Not emulated:
  - no truncation mid-body, no slow drip of bytes, no corrupted or malformed responses;
  - no DNS failures, connect timeouts, refused connections or TLS errors (the proxy
    always accepts; it speaks plain HTTP only);
  - no faults that last (an outage, a throttled period): each request is drawn alone;
  - no service-specific error codes beyond throttling and internal errors (for example
    SQS `OverLimit` or `KmsThrottled`), and no `Retry-After` headers;
  - a reset is delivered as soon as the request has been read; the SDK's read timeout
    path (a request that hangs with no answer) is not exercised;
  - `--seed` makes the sequence of draws repeatable, but with concurrent connections
    which request gets which draw depends on arrival order.

Usage: faults.py --port P --upstream http://127.0.0.1:U [--rate 0.08] [--seed N]
                 [--stall ACTION:before|after ...] [--stall-for SECONDS] [--exit-with-stdin]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import select
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import serving

KINDS = ("reset_before", "reset_after", "server_error", "throttle", "latency")

STATS_PATH = "/_faults/stats"
RESET_PATH = "/_faults/stats/reset"
EXEMPT_PREFIXES = ("/_redress/", "/_faults/")

# RFC 9110 §7.6.1, plus the framing headers this proxy recomputes itself.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
}

UPSTREAM_TIMEOUT = 120  # seconds; long enough for a 20 s SQS long poll
EC2_VERSION = "2016-11-15"
QUERY_NAMESPACES = {
    "2011-06-15": "https://sts.amazonaws.com/doc/2011-06-15/",
    "2010-05-08": "https://iam.amazonaws.com/doc/2010-05-08/",
    "2012-11-05": "http://queue.amazonaws.com/doc/2012-11-05/",
}
DEFAULT_QUERY_NAMESPACE = QUERY_NAMESPACES["2011-06-15"]
_VERSION = re.compile(rb"(?:^|&)Version=([0-9-]+)")
_ACTION = re.compile(rb"(?:^|&)Action=([A-Za-z0-9]+)")


class Stats:
    """Thread-safe counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests = 0
            self.exempt = 0
            self.upstream_errors = 0
            self.faults = {kind: 0 for kind in KINDS}
            self.by_action: dict[str, dict[str, int]] = {}
            self.forwarded: dict[str, int] = {}
            self.stalls: list[dict[str, str]] = []

    def request(self) -> None:
        with self._lock:
            self.requests += 1

    def exempt_request(self) -> None:
        with self._lock:
            self.exempt += 1

    def upstream_error(self) -> None:
        with self._lock:
            self.upstream_errors += 1

    def forwarded_call(self, action: str) -> None:
        with self._lock:
            self.forwarded[action] = self.forwarded.get(action, 0) + 1

    def stall(self, action: str, when: str) -> dict[str, str]:
        """Records a stall starting; the caller updates its `state` under `update_stall`."""
        with self._lock:
            record = {"action": action, "when": when, "state": "holding"}
            self.stalls.append(record)
            return record

    def update_stall(self, record: dict[str, str], state: str) -> None:
        with self._lock:
            record["state"] = state

    def fault(self, kind: str, action: str) -> None:
        with self._lock:
            self.faults[kind] += 1
            per = self.by_action.setdefault(action, {})
            per[kind] = per.get(kind, 0) + 1

    def snapshot(self) -> dict:
        with self._lock:
            total = sum(self.faults.values())
            return {
                "requests": self.requests,
                "exempt": self.exempt,
                "faults": dict(self.faults),
                "fault_rate_observed": round(total / self.requests, 4) if self.requests else 0.0,
                "faults_by_action": {a: dict(k) for a, k in sorted(self.by_action.items())},
                "forwarded_by_action": dict(sorted(self.forwarded.items())),
                "stalls": [dict(r) for r in self.stalls],
                "upstream_errors": self.upstream_errors,
            }


class Injector:
    """Draws faults from one seeded generator (under a lock: handlers run in threads),
    and hands out the stalls, each once."""

    def __init__(
        self,
        rate: float,
        seed: int | None,
        stalls: dict[str, str] | None = None,
        stall_for: float = 60.0,
    ) -> None:
        self.rate = rate
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stalls = dict(stalls or {})
        self.stall_for = stall_for

    def take_stall(self, action: str) -> str | None:
        """`before` or `after` if the call of `action` is to be stalled (once each)."""
        with self._lock:
            return self._stalls.pop(action, None)

    def draw(self) -> tuple[str | None, float]:
        """(fault kind or None, latency in seconds for `latency`)."""
        with self._lock:
            if self._rng.random() >= self.rate:
                return None, 0.0
            kind = self._rng.choice(KINDS)
            delay = self._rng.uniform(0.1, 0.4) if kind == "latency" else 0.0
            return kind, delay


# ---------------------------------------------------------------------------------------
# Protocol-correct error responses


# (code, message, HTTP status) of the injected error, by protocol, for throttle=False/True.
_EC2_ERRORS = {
    True: ("RequestLimitExceeded", "Request limit exceeded (injected)", 503),
    False: ("InternalError", "An internal error has occurred (injected)", 500),
}
_QUERY_ERRORS = {
    True: ("Throttling", "Rate exceeded (injected)", 400),
    False: ("InternalFailure", "Internal failure (injected)", 500),
}
_REST_ERRORS = {
    True: ("SlowDown", "Please reduce your request rate. (injected)", 503),
    False: ("InternalError", "We encountered an internal error. (injected)", 500),
}


def _xml_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def error_response(kind: str, headers, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of an injected `throttle` or `server_error`."""
    request_id = str(uuid.uuid4())
    throttle = kind == "throttle"
    common = [("x-amzn-RequestId", request_id)]

    if headers.get("X-Amz-Target"):
        request_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        content_type = (
            request_type
            if request_type.startswith("application/x-amz-json-1.")
            else "application/x-amz-json-1.0"
        )
        if throttle:
            code, fault_type, status = "ThrottlingException", "Sender", 400
            message = "Rate exceeded (injected by faults.py)"
        else:
            code, fault_type, status = "InternalFailure", "Receiver", 500
            message = "Internal failure (injected by faults.py)"
        payload = json.dumps({"__type": code, "message": message}).encode()
        return (
            status,
            common
            + [
                ("Content-Type", content_type),
                ("x-amzn-query-error", f"{code};{fault_type}"),
            ],
            payload,
        )

    form = body if _is_form(headers) else b""
    version_match = _VERSION.search(form)
    version = version_match.group(1).decode() if version_match else None
    xml_type = [("Content-Type", "text/xml;charset=UTF-8")]

    if _ACTION.search(form) and version != EC2_VERSION:
        namespace = QUERY_NAMESPACES.get(version or "", DEFAULT_QUERY_NAMESPACE)
        code, message, status = _QUERY_ERRORS[throttle]
        fault_type = "Sender" if throttle else "Receiver"
        xml = (
            f'<ErrorResponse xmlns="{namespace}"><Error><Type>{fault_type}</Type>'
            f"<Code>{code}</Code><Message>{_xml_escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return status, common + xml_type, xml.encode()

    # EC2's error shape, or S3's for REST protocols (S3 and friends).
    ec2 = version == EC2_VERSION
    code, message, status = (_EC2_ERRORS if ec2 else _REST_ERRORS)[throttle]
    error = f"<Error><Code>{code}</Code><Message>{_xml_escape(message)}</Message>"
    if ec2:
        xml = f"<Response><Errors>{error}</Error></Errors><RequestID>{request_id}</RequestID></Response>"
        headers_out = common + xml_type
    else:
        xml = f"{error}<RequestId>{request_id}</RequestId></Error>"
        headers_out = common + [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)]
    return status, headers_out, ('<?xml version="1.0" encoding="UTF-8"?>' + xml).encode()


def _is_form(headers) -> bool:
    return (headers.get("Content-Type") or "").lower().startswith(
        "application/x-www-form-urlencoded"
    )


def action_name(method: str, path: str, headers, body: bytes) -> str:
    """A label for the call: the JSON target, the query Action, else method and path."""
    target = headers.get("X-Amz-Target")
    if target:
        return target
    if _is_form(headers):
        m = _ACTION.search(body)
        if m:
            return m.group(1).decode()
    query = parse_qs(urlsplit(path).query)
    if "Action" in query:
        return query["Action"][0]
    return f"{method} {urlsplit(path).path}"


# ---------------------------------------------------------------------------------------
# The proxy


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "redress-faults/1"

    # Set on the class by main().
    upstream_host = "127.0.0.1"
    upstream_port = 4599
    injector: Injector
    stats: Stats

    def setup(self) -> None:
        super().setup()
        self._upstream: http.client.HTTPConnection | None = None
        self._upstream_used = False

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            if self._upstream is not None:
                self._upstream.close()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib signature)
        pass  # per-request logs would drown the faults; see log_fault

    def log_fault(self, kind: str, action: str) -> None:
        sys.stderr.write(f"fault {kind:<12} {action}\n")

    # Every method goes through one path.
    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise ConnectionError("client closed mid-chunk")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, up to the blank line.
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)  # the CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, ConnectionError, OSError):
            self.close_connection = True
            return
        path = self.path

        if path == STATS_PATH or path.startswith(STATS_PATH + "?"):
            if self.command == "GET":
                return self._send_json(200, self.stats.snapshot())
            return self._send_json(405, {"error": "GET only"})
        if path == RESET_PATH:
            if self.command == "POST":
                self.stats.reset()
                return self._send_json(200, {"reset": True})
            return self._send_json(405, {"error": "POST only"})
        if path.startswith("/_faults/"):
            return self._send_json(404, {"error": f"no such endpoint {path}"})
        if path.startswith(EXEMPT_PREFIXES):
            self.stats.exempt_request()
            return self._forward_and_relay(body)

        self.stats.request()
        action = action_name(self.command, path, self.headers, body)
        stall = self.injector.take_stall(action)
        if stall is not None:
            return self._stall(stall, action, body)
        kind, delay = self.injector.draw()
        if kind is None:
            return self._forward_and_relay(body)

        self.stats.fault(kind, action)
        self.log_fault(kind, action)
        if kind == "reset_before":
            self._reset_client()
        elif kind == "reset_after":
            if self._forward(body) is not None:
                self._reset_client()
            else:
                self._send_bad_gateway()
        elif kind in ("server_error", "throttle"):
            status, headers, payload = error_response(kind, self.headers, body)
            self._send(status, headers, payload)
        else:  # latency
            time.sleep(delay)
            self._forward_and_relay(body)

    def _stall(self, when: str, action: str, body: bytes) -> None:
        """Holds the call (`after`: once the stack has answered it) until the caller goes
        away or the stall times out, then resets the connection."""
        sys.stderr.write(f"stall {when:<6} {action}\n")
        if when == "after" and self._forward(body) is None:
            return self._send_bad_gateway()
        record = self.stats.stall(action, when)
        gone = self._wait_for_caller_to_go(self.injector.stall_for)
        self.stats.update_stall(record, "caller_gone" if gone else "timed_out")
        self._reset_client()

    def _wait_for_caller_to_go(self, timeout: float) -> bool:
        """Whether the client closed its connection within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                readable, _, _ = select.select([self.connection], [], [], min(left, 0.2))
                if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                    return True
            except OSError:
                return True
        return False

    # -- upstream ------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            self._upstream = http.client.HTTPConnection(
                self.upstream_host, self.upstream_port, timeout=UPSTREAM_TIMEOUT
            )
            self._upstream_used = False
        return self._upstream

    def _forward(self, body: bytes):
        """Sends the request upstream; (status, reason, headers, body), or None."""
        for attempt in range(2):
            conn = self._connection()
            reused = self._upstream_used
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self._forward_headers():
                    conn.putheader(name, value)
                if body or self.command in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body if body else None)
                resp = conn.getresponse()
                payload = resp.read()
                self._upstream_used = True
                if not self.path.startswith(EXEMPT_PREFIXES):
                    self.stats.forwarded_call(
                        action_name(self.command, self.path, self.headers, body)
                    )
                if resp.will_close:
                    conn.close()
                    self._upstream = None
                return resp.status, resp.reason, resp.getheaders(), payload
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                conn.close()
                self._upstream = None
                # A keep-alive connection the stack had already closed: nothing was
                # processed, so sending again is safe. Anything else is an error.
                if reused and attempt == 0:
                    continue
                self._upstream_failed(e)
                return None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                self._upstream = None
                self._upstream_failed(e)
                return None
        return None

    def _upstream_failed(self, e: Exception) -> None:
        self.stats.upstream_error()
        sys.stderr.write(f"upstream error on {self.command} {self.path}: {e!r}\n")

    def _forward_headers(self):
        connection_tokens = {
            t.strip().lower()
            for t in (self.headers.get("Connection") or "").split(",")
            if t.strip()
        }
        for name, value in self.headers.items():
            lower = name.lower()
            if lower in HOP_BY_HOP or lower in connection_tokens:
                continue
            yield name, value

    def _forward_and_relay(self, body: bytes) -> None:
        result = self._forward(body)
        if result is None:
            return self._send_bad_gateway()
        status, reason, headers, payload = result
        relayed = [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP]
        if self.command == "HEAD":
            # No body; keep the upstream's Content-Length as is.
            length = [(n, v) for n, v in headers if n.lower() == "content-length"]
            self._send(status, relayed + length, b"", reason=reason, add_length=False)
        else:
            self._send(status, relayed, payload, reason=reason)

    # -- to the client -------------------------------------------------------------------

    def _send(self, status, headers, payload: bytes, reason=None, add_length=True) -> None:
        try:
            self.send_response_only(status, reason)
            for name, value in headers:
                self.send_header(name, value)
            if add_length and not (100 <= status < 200 or status in (204, 304)):
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    def _send_json(self, status: int, obj) -> None:
        self._send(status, [("Content-Type", "application/json")], json.dumps(obj).encode())

    def _send_bad_gateway(self) -> None:
        self._send_json(502, {"error": "upstream unreachable (faults.py)"})

    def _reset_client(self) -> None:
        """Drop the client connection with a TCP RST and no response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # The SDK opens several connections at once; the default backlog of 5 is small.
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:
        # A client that went away (often: one we reset) is not worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, OSError)):
            return
        super().handle_error(request, client_address)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--upstream", required=True, help="the local stack, e.g. http://127.0.0.1:4599"
    )
    parser.add_argument(
        "--rate", type=float, default=0.08, help="probability of a fault per request"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for the fault draws")
    parser.add_argument(
        "--stall",
        action="append",
        default=[],
        metavar="ACTION:before|after",
        help="hold the first call of ACTION before forwarding it, or after (see above)",
    )
    parser.add_argument(
        "--stall-for",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="longest a stall holds a call whose caller stays (default 60)",
    )
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="exit when standard input closes (lets a test harness tie the proxy's "
        "life to its own, even if the harness is killed)",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.rate <= 1.0:
        parser.error("--rate must be between 0 and 1")
    stalls: dict[str, str] = {}
    for spec in args.stall:
        action, _, when = spec.rpartition(":")
        if not action or when not in ("before", "after"):
            parser.error(f"--stall {spec!r}: expected ACTION:before or ACTION:after")
        stalls[action] = when
    upstream = urlsplit(args.upstream)
    if upstream.scheme != "http" or not upstream.hostname:
        parser.error("--upstream must be http://HOST:PORT")

    ProxyHandler.upstream_host = upstream.hostname
    ProxyHandler.upstream_port = upstream.port or 80
    ProxyHandler.injector = Injector(args.rate, args.seed, stalls, args.stall_for)
    ProxyHandler.stats = Stats()

    server = Server((args.host, args.port), ProxyHandler)
    endpoint = f"http://{args.host}:{server.server_address[1]}"
    sys.stderr.write(f"fault rate {args.rate}, seed {args.seed}, kinds {', '.join(KINDS)}\n")
    serving.serve_forever(
        server,
        f"fault proxy listening on {endpoint} -> {args.upstream.rstrip('/')}",
        args.exit_with_stdin,
    )


if __name__ == "__main__":
    main()
