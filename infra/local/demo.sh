#!/usr/bin/env bash
# `make run`: build a small demo world on the local stack, emit its Config findings
# through EventBridge, run the workers until the queues drain, and show the result.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
py="$root/.venv/bin/python"
redress="${REDRESS_BIN:-$root/target/debug/redress}"
state="$root/.local"
mkdir -p "$state"
cd "$root"


echo "== 1. Demo world (emulated AWS resources)"
"$py" infra/local/demo.py create >"$state/world.json"
"$py" infra/local/demo.py report --world "$state/world.json"

echo
echo "== 2. AWS Config findings, sent through EventBridge to the events queue"
"$py" infra/local/demo.py findings --world "$state/world.json" >"$state/findings.jsonl"
while IFS=$'\t' read -r rule resource kind compliance annotation; do
  args=(--rule "$rule" --resource "$resource" --resource-type "$kind" --compliance "$compliance")
  [ -n "$annotation" ] && args+=(--annotation "$annotation")
  "$redress" emit "${args[@]}"
done < <("$py" -c '
import json, sys
for line in open(sys.argv[1]):
    f = json.loads(line)
    print("\t".join([f["rule"], f["resource"], f["type"], f["compliance"], f["annotation"] or ""]))
' "$state/findings.jsonl")
echo "and one malformed message straight onto the queue (an injection attempt):"
"$py" - tests/fixtures/events/bad/resource-id-injection.json <<'PY'
import os, sys, boto3
sqs = boto3.client("sqs", region_name=os.environ["AWS_REGION"], endpoint_url=os.environ["AWS_ENDPOINT_URL"])
url = sqs.get_queue_url(QueueName="redress-events")["QueueUrl"]
sqs.send_message(QueueUrl=url, MessageBody=open(sys.argv[1]).read())
print(f"sent {sys.argv[1]} to redress-events")
PY

echo
echo "== 3. redress run --once (audit records: .local/audit.jsonl)"
"$redress" run --once --log-format json 2>"$state/run.log"
grep '"target":"audit"' "$state/run.log" >"$state/audit.jsonl" || true

echo
echo "== 4. The world afterwards"
"$py" infra/local/demo.py report --world "$state/world.json"

cat <<TXT

Next, against the local stack (these variables point the AWS SDK at it):
  export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_REGION=$AWS_REGION AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
  - The SSH finding waits for a person:
      $redress approvals list
      $redress approvals show ID        # what it will change
      $redress approvals approve ID --reason "why"   # then: $redress run --once
  - The injection attempt is in the events dead-letter queue:
      $redress dlq list events
  - Why a finding is routed the way it is:
      $redress policy explain tests/fixtures/events/sg-ssh-open-noncompliant.json
  - The audit trail:  cat .local/audit.jsonl
  - Stop the local stack:  make down
TXT
