"""Running a local server the same way for the stack and the fault proxy: a start-up line
on stdout, SIGTERM ends it, and optionally so does the closing of stdin (a test harness
ties the server's life to its own that way, even if the harness is killed)."""

from __future__ import annotations

import os
import signal
import sys
import threading


def _exit_on_stdin_eof() -> None:
    sys.stdin.read()
    os._exit(0)


def serve_forever(server, banner: str, exit_with_stdin: bool) -> None:
    """Prints `banner`, then serves until SIGTERM, Ctrl-C or (if asked) stdin closing."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    if exit_with_stdin:
        threading.Thread(target=_exit_on_stdin_eof, daemon=True).start()
    print(banner, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
