#!/usr/bin/env bash
# One release step at a time, for .github/workflows/release.yml (and by hand, see deploy/README.md).
# Needs: aws CLI (credentials of the environment's deploy role), jq, skopeo, python3.
#
#   release.sh settings                 fetch the environment's release settings (SSM) into $WORK/release.json
#   release.sh push OCI_ARCHIVE TAG      copy the built image to this environment's ECR, digest unchanged
#   release.sh register IMAGE            render and register both task definitions
#   release.sh migrate TAG               run `sweetdream database upgrade --no-prompt`; fail unless it exits 0
#   release.sh roll SERVICE...           point services (web, worker) at the new revision, wait until stable
#   release.sh bluegreen                 CodeDeploy blue/green for web; wait until all traffic has moved
#
# Environment: RELEASE_PARAMETER (SSM name, from the environment's Terraform output), WORK (scratch dir).
set -euo pipefail

WORK=${WORK:-${RUNNER_TEMP:-/tmp}/sweetdream-release}
mkdir -p "$WORK"
HERE=$(cd "$(dirname "$0")" && pwd)
setting() { jq -r "$1" "$WORK/release.json"; }

settings() {
  aws ssm get-parameter --name "${RELEASE_PARAMETER:?set RELEASE_PARAMETER}" \
    --query Parameter.Value --output text > "$WORK/release.json"
  jq '.template_vars' "$WORK/release.json" > "$WORK/vars.json"
}

push() {
  local archive=$1 tag=$2 repo registry built pushed
  repo=$(setting .ecr_repository_url)
  registry=${repo%%/*}
  aws ecr get-login-password | skopeo login --username AWS --password-stdin "$registry"
  built=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$archive")
  # Tags are immutable in ECR: a re-run of the same commit finds its image already there.
  if ! skopeo inspect --format '{{.Digest}}' "docker://$repo:$tag" > /dev/null 2>&1; then
    skopeo copy --preserve-digests "oci-archive:$archive" "docker://$repo:$tag"
  fi
  pushed=$(skopeo inspect --format '{{.Digest}}' "docker://$repo:$tag")
  if [ "$built" != "$pushed" ]; then
    echo "pushed digest $pushed differs from the built $built" >&2
    exit 1
  fi
  echo "$repo@$pushed" > "$WORK/image"
  echo "image: $repo@$pushed"
}

register() {
  local image=$1 kind
  for kind in web worker; do
    python3 "$HERE/render_taskdef.py" "$kind" "$WORK/vars.json" "$image" > "$WORK/$kind-taskdef.json"
    aws ecs register-task-definition --cli-input-json "file://$WORK/$kind-taskdef.json" \
      --query taskDefinition.taskDefinitionArn --output text > "$WORK/$kind.arn"
    echo "$kind: $(cat "$WORK/$kind.arn")"
  done
}

migrate() {
  local tag=$1 cluster subnets group task code
  cluster=$(setting .cluster)
  subnets=$(setting '.subnets | join(",")')
  group=$(setting .security_group)
  task=$(aws ecs run-task --cluster "$cluster" --launch-type FARGATE \
    --task-definition "$(cat "$WORK/worker.arn")" --started-by "release-$tag" \
    --network-configuration "awsvpcConfiguration={subnets=[$subnets],securityGroups=[$group],assignPublicIp=DISABLED}" \
    --overrides '{"containerOverrides":[{"name":"worker","command":["sweetdream","database","upgrade","--no-prompt"]}]}' \
    --query 'tasks[0].taskArn' --output text)
  echo "migration task: $task"
  aws ecs wait tasks-stopped --cluster "$cluster" --tasks "$task"
  code=$(aws ecs describe-tasks --cluster "$cluster" --tasks "$task" \
    --query 'tasks[0].containers[0].exitCode' --output text)
  aws logs get-log-events --log-group-name "$(setting .template_vars.worker.LOG_GROUP)" \
    --log-stream-name "worker/worker/${task##*/}" --query 'events[].message' --output text || true
  if [ "$code" != "0" ]; then
    echo "migration failed (exit code $code): nothing was deployed" >&2
    exit 1
  fi
}

roll() {
  local cluster service
  cluster=$(setting .cluster)
  for service in "$@"; do
    aws ecs update-service --cluster "$cluster" --service "$(setting ".${service}_service")" \
      --task-definition "$(cat "$WORK/$service.arn")" --query service.serviceArn --output text
  done
  for service in "$@"; do
    aws ecs wait services-stable --cluster "$cluster" --services "$(setting ".${service}_service")"
  done
}

bluegreen() {
  local appspec revision deployment
  appspec=$(sed -e "s|<TASK_DEFINITION>|$(cat "$WORK/web.arn")|" \
    -e "s|<HOOK_FUNCTION>|$(setting .hook_function)|" "$HERE/codedeploy/appspec.yaml")
  revision=$(jq -n --arg c "$appspec" '{revisionType: "AppSpecContent", appSpecContent: {content: $c}}')
  deployment=$(aws deploy create-deployment --application-name "$(setting .codedeploy_app)" \
    --deployment-group-name "$(setting .codedeploy_group)" --revision "$revision" \
    --description "release $(cat "$WORK/image")" --query deploymentId --output text)
  echo "deployment: $deployment"
  wait_for_traffic_shift "$deployment" "$(setting .cluster):$(setting .web_service)"
}

# Done once all traffic is on the new task set (AfterAllowTraffic passed): the deployment itself
# reports Succeeded only after the old task set's 30-minute rollback window, longer than the CLI
# waiter polls. CodeDeploy still rolls back by itself on failure or alarm during that window.
wait_for_traffic_shift() {
  local deployment=$1 target=$2 status shifted deadline=$((SECONDS + 2700))
  while [ "$SECONDS" -lt "$deadline" ]; do
    status=$(aws deploy get-deployment --deployment-id "$deployment" --query deploymentInfo.status --output text)
    case "$status" in
      Succeeded) return 0 ;;
      Failed | Stopped)
        aws deploy get-deployment --deployment-id "$deployment" \
          --query 'deploymentInfo.errorInformation.message' --output text >&2
        exit 1
        ;;
    esac
    shifted=$(aws deploy get-deployment-target --deployment-id "$deployment" --target-id "$target" \
      --query "deploymentTarget.ecsTarget.lifecycleEvents[?lifecycleEventName=='AfterAllowTraffic'].status | [0]" \
      --output text)
    if [ "$shifted" = "Succeeded" ]; then
      echo "all traffic is on the new task set; the old one stays 30 minutes for a fast rollback"
      return 0
    fi
    echo "deployment $deployment: $status"
    sleep 15
  done
  echo "deployment $deployment did not move traffic within 45 minutes" >&2
  exit 1
}

case "${1:-}" in
  settings | push | register | migrate | roll | bluegreen) "$@" ;;
  *)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac
