#!/usr/bin/env bash
# Deploy redress to one AWS account and region: `make deploy` runs this.
#
# It writes the whole command sequence as one shell script, then prints it (dry run) or
# runs it: what a dry run shows is exactly what a real run executes. It is a dry run when
# asked (--dry-run, DRY_RUN=1), and whenever a required setting is missing.
#
# Settings (environment variables; `make deploy NAME=value ...` passes them):
#   required:
#     REGION            AWS region (default: $AWS_REGION)
#     ACCOUNT           12-digit account id (default: from `aws sts get-caller-identity`)
#     APPROVERS         IAM user ARNs who may approve, comma separated
#     OPERATORS         IAM user ARNs who may replay dead letters, comma separated
#     SUBNETS           subnet ids of the ECS tasks, comma separated
#     SECURITY_GROUPS   security group ids of the ECS tasks (egress HTTPS only)
#     CODE_BUCKET       S3 bucket in REGION for the Lambda code zip (created if missing)
#   optional:
#     WORKER_MODE       ECS (default) or Lambda: where the router and executor run
#     TAG               image tag and code version (default: the git commit, short)
#     ORGANIZATION_ID   o-...: the central bus accepts member accounts' events
#     DRIFT_APPS        apps redress-parameter-drift checks (default: payments)
#     CREATE_RECORDER   false where AWS Config records already (default: true)
#     ASSIGN_PUBLIC_IP  ENABLED for public subnets without NAT (default: DISABLED)
#     ALARM_TOPIC       SNS topic ARN for the alarms
# Needs: docker (with a running engine), the AWS CLI v2, zip, git.
set -euo pipefail

cd "$(dirname "$0")/.."

dry_run=${DRY_RUN:-}
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "deploy.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$dry_run" == 0 ]] && dry_run=

REGION=${REGION:-${AWS_REGION:-}}
WORKER_MODE=${WORKER_MODE:-ECS}
TAG=${TAG:-$(git rev-parse --short HEAD 2>/dev/null || echo latest)}
DRIFT_APPS=${DRIFT_APPS:-payments}
CREATE_RECORDER=${CREATE_RECORDER:-true}
ASSIGN_PUBLIC_IP=${ASSIGN_PUBLIC_IP:-DISABLED}
if [[ -z "${ACCOUNT:-}" && -z "$dry_run" ]] && command -v aws >/dev/null; then
  ACCOUNT=$(aws sts get-caller-identity --query Account --output text 2>/dev/null || true)
fi

case "$WORKER_MODE" in
  ECS|Lambda) ;;
  *) echo "deploy.sh: WORKER_MODE is ECS or Lambda, not $WORKER_MODE" >&2; exit 2 ;;
esac

missing=()
for name in REGION ACCOUNT APPROVERS OPERATORS SUBNETS SECURITY_GROUPS CODE_BUCKET; do
  [[ -n "${!name:-}" ]] || missing+=("$name")
done
if ((${#missing[@]})); then
  {
    echo "deploy.sh: missing ${missing[*]}: printing the commands only (a dry run)."
    echo "Set them, e.g. make deploy REGION=eu-west-1 APPROVERS=arn:aws:iam::ACCOUNT:user/alice ..."
    echo "(make deploy-help or docs/deployment.md lists every setting)."
    echo
  } >&2
  dry_run=1
fi

# A setting's value for the printed script: shell-quoted, or <NAME> where it is missing.
q() {
  local name=$1 value=${!1:-}
  if [[ -z "$value" ]]; then
    printf '<%s>' "$name"
  elif [[ "$value" =~ ^[A-Za-z0-9_.,:/@=+-]+$ ]]; then
    printf '%s' "$value"
  else
    printf "'%s'" "${value//\'/\'\\\'\'}"
  fi
}

plan() {
  local region account repo image zip key
  region=$(q REGION)
  account=$(q ACCOUNT)
  repo="$account.dkr.ecr.$region.amazonaws.com/redress"
  image="$repo:$(q TAG)"
  zip="dist/redress-$(q TAG).zip"
  key="redress/redress-$(q TAG).zip"
  local org=""
  [[ -n "${ORGANIZATION_ID:-}" ]] && org=" OrganizationId=$(q ORGANIZATION_ID)"
  local alarms=""
  [[ -n "${ALARM_TOPIC:-}" ]] && alarms=" AlarmTopicArn=$(q ALARM_TOPIC)"
  local cfn="aws cloudformation deploy --region $region --capabilities CAPABILITY_NAMED_IAM --no-fail-on-empty-changeset"
  cat <<EOF
set -euo pipefail
export AWS_REGION=$region

# 1. Image: build, and push to this account's ECR repository "redress".
aws ecr describe-repositories --repository-names redress >/dev/null 2>&1 \\
  || aws ecr create-repository --repository-name redress --image-scanning-configuration scanOnPush=true
aws ecr get-login-password | docker login --username AWS --password-stdin $account.dkr.ecr.$region.amazonaws.com
docker build -t $image .
docker push $image

# 2. Lambda code (the evaluator; the workers in Lambda mode): the image's static binary as
#    bootstrap, with the default policy, uploaded to CODE_BUCKET.
docker build --target build -t redress-build:$(q TAG) .
mkdir -p dist
cid=\$(docker create redress-build:$(q TAG))
docker cp "\$cid:/redress" dist/bootstrap
docker rm "\$cid"
cp infra/policies/default.toml dist/policy.toml
rm -f $zip && (cd dist && zip -q "\$(basename $zip)" bootstrap policy.toml)
aws s3api head-bucket --bucket $(q CODE_BUCKET) 2>/dev/null || aws s3 mb s3://$(q CODE_BUCKET)
aws s3 cp $zip s3://$(q CODE_BUCKET)/$key

# 3. Central stack: queues, rule, bus policy, roles, the sweep, and the ECS workers
#    (WorkerMode=ECS) or none (Lambda).
$cfn --stack-name redress --template-file infra/cloudformation/redress.yaml \\
  --parameter-overrides ImageUri=$image WorkerMode=$(q WORKER_MODE) \\
  VpcSubnets=$(q SUBNETS) SecurityGroupIds=$(q SECURITY_GROUPS) AssignPublicIp=$(q ASSIGN_PUBLIC_IP) \\
  ApproverUserArns=$(q APPROVERS) OperatorUserArns=$(q OPERATORS)$org$alarms
output() { aws cloudformation describe-stacks --stack-name "\$1" --query "Stacks[0].Outputs[?OutputKey=='\$2'].OutputValue" --output text; }
EOF
  if [[ "$WORKER_MODE" == Lambda ]]; then
    cat <<EOF

# 4. Lambda workers (before the member role, whose trust names their executor role).
$cfn --stack-name redress-lambda --template-file infra/cloudformation/lambda.yaml \\
  --parameter-overrides CodeS3Bucket=$(q CODE_BUCKET) CodeS3Key=$key \\
  EventsQueueArn="\$(output redress EventsQueueArn)" TasksQueueArn="\$(output redress TasksQueueArn)" \\
  ApprovalsQueueArn="\$(output redress ApprovalsQueueArn)" EventsDlqArn="\$(output redress EventsDlqArn)" \\
  TasksDlqArn="\$(output redress TasksDlqArn)" LedgerTableArn="\$(output redress LedgerTableArn)" \\
  NotificationTopicArn="\$(output redress NotificationTopicArn)"
EOF
  else
    cat <<EOF

# 4. Lambda workers: none (WorkerMode=ECS).
EOF
  fi
  cat <<EOF

# 5. Member roles in this account: the remediation role trusts the executor that runs; the
#    automation role for runbooks. No forwarding rule: the events are on this bus already.
$cfn --stack-name redress-member --template-file infra/cloudformation/member.yaml \\
  --parameter-overrides CentralAccountId=$account ExecutorRoleArn="\$(output redress ExecutorRoleArn)" \\
  CentralRegion=$region

# 6. AWS Config: recorder, delivery channel and bucket, the packs' managed rules, and
#    redress's custom rules with their evaluator function.
$cfn --stack-name redress-config --template-file infra/cloudformation/config.yaml \\
  --parameter-overrides CodeS3Bucket=$(q CODE_BUCKET) CodeS3Key=$key \\
  GlobalResourcesRegion=$region CreateRecorder=$(q CREATE_RECORDER) DriftApps=$(q DRIFT_APPS)

echo "redress deployed: image $image, workers on $(q WORKER_MODE), region $region"
EOF
}

script=$(plan)
if [[ -n "$dry_run" ]]; then
  echo "# make deploy (dry run): the commands a real run executes, in order"
  echo "$script"
  exit 0
fi
for tool in docker aws zip; do
  command -v "$tool" >/dev/null || { echo "deploy.sh: $tool is not installed" >&2; exit 1; }
done
bash -c "$script"
