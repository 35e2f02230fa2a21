#!/usr/bin/env bash
# `make run`: build a small demo world on the local stack, let AWS Config (played by the
# demo) find its problems, run the workers until the queues drain, let Config confirm the
# fixes, and show how each finding ended.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
py="$root/.venv/bin/python"
redress="${REDRESS_BIN:-$root/target/debug/redress}"
state="$root/.local"
mkdir -p "$state"
cd "$root"

# The default policy, with closure checks due after 2 s instead of a minute, so the demo
# can wait for Config's confirmation of each fix.
policy="$state/demo-policy.toml"
{
  cat infra/policies/default.toml
  printf '\n# make run: look at Config again 2 s after a fix (default 1m).\n[config]\nrecheck_after = "2s"\n'
} >"$policy"
export REDRESS_POLICY="$policy"
"$redress" policy check "$policy" >/dev/null

audit="$state/audit.jsonl"
: >"$audit"
# One `redress run --once`: its report on stdout, its audit records appended to $audit.
run_once() { # log
  "$redress" run --once --log-format json 2>"$1"
  grep '"target":"audit"' "$1" >>"$audit" || true
}

echo "== 1. Demo world (emulated AWS resources)"
"$py" infra/local/demo.py create >"$state/world.json"
"$py" infra/local/demo.py report --world "$state/world.json"
"$py" infra/local/demo.py findings --world "$state/world.json" >"$state/findings.jsonl"

echo
echo "== 2. AWS Config rules (PutConfigRule; created afresh, so no result of an earlier run remains)"
"$py" infra/local/demo.py config-rules --fresh

echo
echo "== 3. Config evaluates the world (PutEvaluations)"
echo "Each new result is a change of compliance: Config puts a compliance-change event on the"
echo "default bus, and the EventBridge rule delivers it to redress-events."
"$py" infra/local/demo.py evaluate --world "$state/world.json"
echo "and one malformed message straight onto the queue (an injection attempt):"
"$py" - tests/fixtures/events/bad/resource-id-injection.json <<'PY'
import os, sys, boto3
sqs = boto3.client("sqs", region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
url = sqs.get_queue_url(QueueName="redress-events")["QueueUrl"]
sqs.send_message(QueueUrl=url, MessageBody=open(sys.argv[1]).read())
print(f"sent {sys.argv[1]} to redress-events")
PY

echo
echo "== 4. redress run --once (the executor asks Config before each fix; audit records: .local/audit.jsonl)"
started="$(date +%s)"
run_once "$state/run.log"

echo
echo "== 5. The world afterwards"
"$py" infra/local/demo.py report --world "$state/world.json"

echo
echo "== 6. Config re-evaluates what redress fixed (the demo plays the rules)"
"$py" infra/local/demo.py reevaluate --world "$state/world.json" --since "$started"

echo
echo "== 7. redress run --once again: closure checks ask Config whether each fix holds"
for attempt in 1 2 3 4 5 6; do
  sleep 2 # recheck_after: closure checks wait this long on the tasks queue
  out="$(run_once "$state/run-closure-$attempt.log")"
  echo "$out"
  grep -q '^Pending:' <<<"$out" || break
done

echo
echo "== 8. Every finding, start to end"
"$py" infra/local/demo.py outcome --world "$state/world.json" --audit "$audit"

cat <<TXT

Next, against the local stack (these variables point the AWS SDK at it, and redress at the demo's policy):
  export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_REGION=$AWS_REGION AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test REDRESS_POLICY=$policy
  - The SSH finding waits for a person:
      $redress approvals list
      $redress approvals show ID        # what it will change
      $redress approvals approve ID --reason "why"   # then: $redress run --once
    and play Config's re-evaluation of the group, so the closure check can verify the fix:
      $py infra/local/demo.py reevaluate --world .local/world.json && sleep 2 && $redress run --once
  - Findings that never produced an event are found by a sweep of Config's NON_COMPLIANT results:
      $redress sweep --dry-run   # what the router would decide for each
      $redress sweep             # the SSH finding's approval is already pending: not asked again
  - The injection attempt is in the events dead-letter queue:
      $redress dlq list events
  - Why a finding is routed the way it is:
      $redress policy explain tests/fixtures/events/sg-ssh-open-noncompliant.json
  - The audit trail:  cat .local/audit.jsonl
  - What Config holds:  curl -s $AWS_ENDPOINT_URL/_redress/config-results
  - Stop the local stack:  make down
TXT
