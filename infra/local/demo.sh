#!/usr/bin/env bash
# `make run`: the closed loop on the local stack. A broken world; AWS Config runs redress's
# own rules on it (and the demo plays a few AWS managed rules); redress fixes what it may
# fix alone and asks a person for the rest; the demo approves as the policy's approver and
# redress fixes those too; Config runs the rules again and finds nothing left to fix.
#
# Environment: what `make run` sets (AWS_ENDPOINT_URL and dummy AWS credentials, REDRESS_BIN),
# and optionally the REDRESS_*_QUEUE names and REDRESS_DEMO_STATE (where the demo keeps its
# files; default .local), which the end-to-end test of this script sets.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
py="$root/.venv/bin/python"
redress="${REDRESS_BIN:-$root/target/debug/redress}"
state="${REDRESS_DEMO_STATE:-$root/.local}"
mkdir -p "$state"
cd "$root"
world="$state/world.json"
demo() { "$py" infra/local/demo.py "$@"; }
rules=(redress-sg-admin-ports redress-sg-privileged-ports redress-parameter-drift)

audit="$state/audit.jsonl"
: >"$audit"
# A redress command with JSON logs in $state/LOG.log, its audit records added to $audit.
audited() { # log command...
  local log="$state/$1.log"
  shift
  "$@" --log-format json 2>"$log" || { tail -5 "$log" >&2; return 1; }
  grep '"target":"audit"' "$log" >>"$audit" || true
}

# One round of redress: `redress router --once` takes every event (fix now, ask a person,
# or skip), then `redress executor --once` every task (fixes and closure checks), each
# showing its report unless it had nothing to do. Each worker drains its own queue; one
# `redress run --once` would also wait for events that the executor's fixes cause (Config's
# re-evaluations), and those arrive after its router has stopped.
round() { # name
  local worker out
  for worker in router executor; do
    out="$(audited "$1-$worker" "$redress" "$worker" --once)"
    if [ "$out" != "Nothing to report: the queues were empty." ]; then
      echo "\$ redress $worker --once"
      echo "$out"
    fi
  done
}

# `redress evaluate RULE`, showing the command; its progress messages go to a log.
evaluate() { # rule
  echo
  echo "\$ redress evaluate $1"
  "$redress" evaluate "$1" 2>"$state/evaluate-$1.log" || {
    cat "$state/evaluate-$1.log" >&2
    return 1
  }
}

# A field of the world (create's JSON).
world_field() { "$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$world" "$1"; }

echo "== 1. A broken world (emulated AWS resources)"
demo create >"$world"
demo report --world "$world"
approver="$(world_field approver)"
approver_key="$(world_field approver_key)"

# The default policy, with closure checks due after 2 s instead of a minute (so the demo
# can wait for Config's confirmation of each fix), and the demo's approver.
policy="$state/demo-policy.toml"
{
  cat infra/policies/default.toml
  printf '\n# make run: look at Config again 2 s after a fix (default 1m).\n[config]\nrecheck_after = "2s"\n'
  printf '\n# make run: the one person who may approve (demo.py create made this IAM user).\n[approvals]\napprovers = ["%s"]\n' "$approver"
} >"$policy"
export REDRESS_POLICY="$policy"
"$redress" policy check "$policy" >/dev/null

echo
echo "== 2. AWS Config evaluates the world"
echo "The Config rules (redress's own were created by \`redress provision\`; the AWS managed"
echo "rules afresh, so no result of an earlier run remains):"
demo config-rules --fresh
echo
echo "redress's rules: \`redress evaluate RULE\` asks Config to run one (StartConfigRulesEvaluation);"
echo "Config invokes the rule's function (locally: \`redress evaluate --invocation -\`), which reports"
echo "with PutEvaluations. Every new result is a change of compliance: Config puts a compliance-change"
echo "event on the default bus, and the EventBridge rule delivers it to redress-events."
for rule in "${rules[@]}"; do evaluate "$rule"; done
echo
echo "AWS managed rules, which nothing evaluates locally: the demo puts their results (PutEvaluations):"
demo evaluate --world "$world"
echo "and one malformed message straight onto the queue (an injection attempt):"
"$py" - tests/fixtures/events/bad/resource-id-injection.json <<'PY'
import os, sys, boto3
sqs = boto3.client("sqs", region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
name = os.environ.get("REDRESS_EVENTS_QUEUE", "redress-events")
url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
sqs.send_message(QueueUrl=url, MessageBody=open(sys.argv[1]).read())
print(f"sent {sys.argv[1]} to {name}")
PY

echo
echo "== 3. redress: MEDIUM findings fixed at once, the rest waits for a person"
echo "(the executor asks Config before each fix, and asks it to re-evaluate after; audit records: $audit)"
started="$(date +%s)"
round first
echo
echo "Config re-evaluates what redress fixed: redress's rules run again by themselves; the demo plays the managed one:"
demo reevaluate --world "$world" --since "$started"
echo
echo "\$ redress approvals list"
"$redress" approvals list 2>"$state/approvals.log"

echo
echo "== 4. The approver approves each request; redress runs again"
ids="$("$redress" approvals list --json 2>>"$state/approvals.log" |
  "$py" -c 'import json, sys; print(" ".join(r["id"] for r in json.load(sys.stdin)["requests"]))')"
for id in $ids; do
  echo "\$ redress approvals approve $id   # as ${approver##*/}"
  # Signed with the approver's access key (the local stack checks no secret); STS says
  # who that is, and SQS stamps the approver's id on the task.
  AWS_ACCESS_KEY_ID="$approver_key" AWS_SECRET_ACCESS_KEY=test \
    audited "approve-$id" env -u AWS_SESSION_TOKEN "$redress" approvals approve "$id" \
    --reason "make run: reviewed by the demo"
done
echo
round approved
echo
echo "Closure checks: a fix stays open until Config confirms it (checks due 2 s after a fix):"
for attempt in 1 2 3 4 5 6 7 8; do
  sleep 2 # recheck_after: closure checks wait this long on the tasks queue
  out="$(round "closure-$attempt")"
  [ -z "$out" ] || echo "$out"
  grep -q '^Pending:' <<<"$out" || break
done

echo
echo "== 5. Config runs redress's rules again: nothing left NON_COMPLIANT"
for rule in "${rules[@]}"; do evaluate "$rule"; done
echo
demo verdict --world "$world"
echo
echo "The world afterwards (443 stays open to the world: the default rules leave 80 and 443 alone):"
demo report --world "$world"

echo
echo "== 6. Every finding, start to end"
demo outcome --world "$world" --audit "$audit"

cat <<TXT

Next, against the local stack (these variables point the AWS SDK at it, and redress at the demo's policy):
  export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_REGION=$AWS_REGION AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test REDRESS_POLICY=$policy
  - Everything again, on the same stack (demo.py create breaks the world again):  make run
  - What redress changed (the deleted parameter has a copy under /redress/quarantine/):
      $redress history
  - Findings that never produced an event are found by a sweep of Config's NON_COMPLIANT results:
      $redress sweep --dry-run   # what the router would decide for each
  - The injection attempt is in the events dead-letter queue:
      $redress dlq list events
  - Why a finding is routed the way it is:
      $redress policy explain tests/fixtures/events/sg-ssh-open-noncompliant.json
  - The audit trail:  cat $audit
  - What Config holds:  curl -s $AWS_ENDPOINT_URL/_redress/config-results
  - Stop the local stack:  make down
TXT
