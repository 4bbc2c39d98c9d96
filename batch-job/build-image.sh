#!/usr/bin/env bash
# Builds the GPU training image (batch-job/Dockerfile) and pushes it to the ECR repository of a
# deployed stage (stack output TrainImageRepositoryUri).
#
#   batch-job/build-image.sh [--stage dev] [--region us-east-1] [--tag TAG] [--no-push]
#
#   --stage    the serverless stage that was deployed (stack dogbreed-pipeline-<stage>); default dev
#   --region   its region; default $AWS_REGION, else $AWS_DEFAULT_REGION, else us-east-1
#   --tag      image tag; default the git commit (short), with -dirty-<time> if the tree has changes
#   --no-push  build only (no AWS access needed)
#
# The repository's tags are immutable: a tag names one image for good, so the job definition's
# tag is exactly the image that runs. Order on a new stage: `npx serverless deploy --stage dev …`
# (creates the repository), then this script, then the deploy command it prints, which sets the
# job definition's tag (--param="trainingImageTag=<tag>"); then start a run.
set -euo pipefail

SERVICE=dogbreed-pipeline
LOCAL_IMAGE=dogbreed-train
STAGE=dev
REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}"
TAG=""
PUSH=true

die() {
  echo "build-image: $*" >&2
  exit 1
}

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --stage) STAGE="${2:?--stage needs a value}"; shift 2 ;;
    --region) REGION="${2:?--region needs a value}"; shift 2 ;;
    --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
    --no-push) PUSH=false; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[[ "$STAGE" =~ ^[a-z0-9-]+$ ]] || die "--stage must be lower-case letters, digits and dashes, got \"$STAGE\""

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 20 is needed to bundle train.ts)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"
command -v docker >/dev/null 2>&1 || die "docker is not installed: see https://docs.docker.com/engine/install/"
docker info >/dev/null 2>&1 || die "docker is installed but its daemon is not reachable (is it running? may this user use it?)"
if [[ "$PUSH" == true ]]; then
  command -v aws >/dev/null 2>&1 ||
    die "the AWS CLI (v2) is not installed: see https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html (or use --no-push)"
fi

if [[ -z "$TAG" ]]; then
  TAG="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || true)"
  # Uncommitted changes: the commit alone would not name this image (and the tag is immutable).
  if [[ -n "$TAG" && -n "$(git -C "$ROOT" status --porcelain 2>/dev/null)" ]]; then
    TAG="$TAG-dirty-$(date -u +%Y%m%d%H%M%S)"
  fi
  [[ -n "$TAG" ]] || TAG="build-$(date -u +%Y%m%d%H%M%S)"
fi
[[ "$TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "not a valid image tag: \"$TAG\""
[[ "$TAG" != latest ]] || die "\"latest\" would name a different image each build; tags here are immutable: use --tag <version> or the default"

# 1. Bundle the entry point (npm run bundle writes .build/batch-job/train.mjs and its map).
echo "build-image: bundling batch-job/train.ts"
npm run --silent bundle >/dev/null
BUNDLE=.build/batch-job/train.mjs
[[ -s "$BUNDLE" && -s "$BUNDLE.map" ]] || die "npm run bundle did not write $BUNDLE (and its .map)"

# 2. Build from a context holding only what the Dockerfile copies (not the whole repository and
#    its node_modules), laid out as in the repository.
CONTEXT="$(mktemp -d)"
trap 'rm -rf "$CONTEXT"' EXIT
mkdir -p "$CONTEXT/batch-job" "$CONTEXT/.build/batch-job"
cp batch-job/package.json batch-job/package-lock.json "$CONTEXT/batch-job/"
cp "$BUNDLE" "$BUNDLE.map" "$CONTEXT/.build/batch-job/"

echo "build-image: building $LOCAL_IMAGE:$TAG (linux/amd64)"
docker build --platform linux/amd64 -f batch-job/Dockerfile -t "$LOCAL_IMAGE:$TAG" "$CONTEXT"

if [[ "$PUSH" != true ]]; then
  echo "build-image: built $LOCAL_IMAGE:$TAG (not pushed)"
  exit 0
fi

# 3. The stage's repository, from the stack outputs.
STACK="$SERVICE-$STAGE"
if ! REPO_URI="$(aws cloudformation describe-stacks --region "$REGION" --stack-name "$STACK" \
  --query "Stacks[0].Outputs[?OutputKey=='TrainImageRepositoryUri'].OutputValue" --output text 2>&1)"; then
  die "cannot read stack $STACK in $REGION: $REPO_URI
  (deploy it first: npx serverless deploy --stage $STAGE --region $REGION, and check your AWS credentials)"
fi
[[ -n "$REPO_URI" && "$REPO_URI" != "None" ]] ||
  die "stack $STACK in $REGION has no TrainImageRepositoryUri output: deploy the current serverless.yml first"
REGISTRY="${REPO_URI%%/*}"

# 4. Log in, tag, push.
echo "build-image: logging in to $REGISTRY"
aws ecr get-login-password --region "$REGION" | docker login --username AWS --password-stdin "$REGISTRY" >/dev/null ||
  die "docker login to $REGISTRY failed (does this identity have ecr:GetAuthorizationToken?)"

REPO_NAME="${REPO_URI#*/}"
if aws ecr describe-images --region "$REGION" --repository-name "$REPO_NAME" --image-ids "imageTag=$TAG" \
  >/dev/null 2>&1; then
  # Immutable tags: the push would be refused; the image under this tag is the one to run.
  echo "build-image: $REPO_URI:$TAG is already in the repository (tags are immutable); not pushed again"
else
  docker tag "$LOCAL_IMAGE:$TAG" "$REPO_URI:$TAG"
  echo "build-image: pushing $REPO_URI:$TAG"
  docker push "$REPO_URI:$TAG"
  echo "build-image: pushed $REPO_URI:$TAG"
fi

echo "build-image: point the job definition at it (keep your other --param values):"
echo "  npx serverless deploy --stage $STAGE --region $REGION --param=\"trainingImageTag=$TAG\""
