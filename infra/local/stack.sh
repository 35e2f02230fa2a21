#!/usr/bin/env bash
# Start and stop the local stack (moto + the SSM Automation stand-in) on loopback.
#   stack.sh up        start in the background (no-op if already up); wait until ready
#   stack.sh down      stop it
#   stack.sh with CMD  start a private stack on a free port, run CMD with
#                      AWS_ENDPOINT_URL pointing at it, stop it, exit with CMD's status
# Environment: REDRESS_LOCAL_PORT (default 4599; `with` picks a free port instead);
# REDRESS_LOCAL_PERIODIC=<seconds> runs the periodic Config custom rules (redress-parameter-
# drift) on a timer every <seconds>, not only when StartConfigRulesEvaluation names them
# (default off; see infra/local/config_invoker.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="$root/.venv/bin/python"
state="$root/.local"
port="${REDRESS_LOCAL_PORT:-4599}"
mkdir -p "$state"

ready() { # port
  "$py" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.settimeout(0.5)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}

wait_ready() { # port pid log
  for _ in $(seq 1 100); do
    if ready "$1"; then return 0; fi
    if ! kill -0 "$2" 2>/dev/null; then
      echo "local stack exited during start-up; its log ($3):" >&2
      tail -20 "$3" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "local stack did not answer on port $1 within 20 s; see $3" >&2
  return 1
}

start() { # port pidfile log
  "$py" "$here/stack.py" --port "$1" >"$3" 2>&1 &
  echo $! >"$2"
  wait_ready "$1" "$(cat "$2")" "$3"
}

stop() { # pidfile
  if [ -f "$1" ]; then
    kill "$(cat "$1")" 2>/dev/null || true
    rm -f "$1"
  fi
}

case "${1:-}" in
  up)
    if ready "$port"; then
      echo "local stack already answering on 127.0.0.1:$port"
    else
      start "$port" "$state/stack.pid" "$state/stack.log"
      periodic=""
      case "${REDRESS_LOCAL_PERIODIC:-0}" in
        0) ;;
        *) periodic="; periodic Config rules every ${REDRESS_LOCAL_PERIODIC} s" ;;
      esac
      echo "local stack up on http://127.0.0.1:$port (log: .local/stack.log)$periodic"
    fi
    ;;
  down)
    stop "$state/stack.pid"
    echo "local stack stopped"
    ;;
  with)
    shift
    free_port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    pidfile="$state/test-stack.$$.pid"
    log="$state/test-stack.log"
    trap 'stop "$pidfile"' EXIT
    start "$free_port" "$pidfile" "$log"
    AWS_ENDPOINT_URL="http://127.0.0.1:$free_port" REDRESS_E2E_ENDPOINT="http://127.0.0.1:$free_port" "$@"
    ;;
  *)
    echo "usage: $0 up|down|with CMD..." >&2
    exit 2
    ;;
esac
