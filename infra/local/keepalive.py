"""A keep-alive front for the local stack: client connections stay open, as AWS's do.

moto's server (werkzeug) answers every request with `Connection: close`, so every call a
client makes to the local stack opens a new TCP connection. AWS endpoints keep
connections alive and both the AWS SDK for Rust and botocore pool them, so a benchmark
against the bare stack charges each call a connect that it would not pay against AWS.
This front listens on loopback, keeps each client's HTTP/1.1 connection open from one
request to the next, and forwards every request to the stack on an upstream connection
of its own, reopened whenever the stack has closed it: the connects are this process's
work, not the measured client's.

Forwarding is faults.py's, with no faults drawn (one forwarding path for both
proxies): method, path and query, status, reason and every end-to-end header pass
unchanged, Host and Authorization included, so SigV4 signatures still match (the SDKs
sign `host` and the payload hash; moto builds queue URLs from Host, so they name this
front). A request body sent chunked is forwarded with a Content-Length; an answer is
relayed with a Content-Length (Transfer-Encoding and the other hop-by-hop headers belong
to a connection, not to the message); HEAD, 1xx, 204 and 304 answers keep their framing.

Answered here, never forwarded:

    GET  /_keepalive/stats        {"connections": client connections accepted,
                                   "requests": requests forwarded,
                                   "upstream_errors": n}
    POST /_keepalive/stats/reset  zero everything

Usage: keepalive.py --port P --upstream http://127.0.0.1:U [--host H] [--exit-with-stdin]
"""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

import faults
import serving

STATS_PATH = "/_keepalive/stats"
RESET_PATH = "/_keepalive/stats/reset"


class Counters(faults.Stats):
    """faults.Stats (which the shared forwarding path reports to), plus the client
    connections accepted: the evidence that clients reuse them."""

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.connections = 0

    def connection(self) -> None:
        with self._lock:
            self.connections += 1

    def snapshot(self) -> dict:
        full = super().snapshot()
        with self._lock:
            connections = self.connections
        return {
            "connections": connections,
            "requests": full["requests"] + full["exempt"],
            "upstream_errors": full["upstream_errors"],
        }


class FrontHandler(faults.ProxyHandler):
    """faults.py's proxy handler with every request forwarded as is."""

    server_version = "redress-keepalive/1"
    # Headers and body go out in separate writes: without this, Nagle's algorithm holds
    # the body until the client's delayed ACK of the headers (~40 ms per call).
    disable_nagle_algorithm = True
    stats: Counters  # set on the class by main()

    def setup(self) -> None:
        super().setup()
        self.stats.connection()

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, ConnectionError, OSError):
            self.close_connection = True
            return
        if self.path == STATS_PATH and self.command == "GET":
            return self._send_json(200, self.stats.snapshot())
        if self.path == RESET_PATH and self.command == "POST":
            self.stats.reset()
            return self._send_json(200, {"reset": True})
        self.stats.request()
        self._forward_and_relay(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0: any free port")
    parser.add_argument(
        "--upstream", required=True, help="the local stack, e.g. http://127.0.0.1:4599"
    )
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="exit when standard input closes (ties the front's life to a harness's)",
    )
    args = parser.parse_args(argv)
    upstream = urlsplit(args.upstream)
    if upstream.scheme != "http" or not upstream.hostname:
        parser.error("--upstream must be http://HOST:PORT")

    FrontHandler.upstream_host = upstream.hostname
    FrontHandler.upstream_port = upstream.port or 80
    FrontHandler.stats = Counters()
    server = faults.Server((args.host, args.port), FrontHandler)
    endpoint = f"http://{args.host}:{server.server_address[1]}"
    serving.serve_forever(
        server,
        f"keep-alive front listening on {endpoint} -> {args.upstream.rstrip('/')}",
        args.exit_with_stdin,
    )


if __name__ == "__main__":
    main()
