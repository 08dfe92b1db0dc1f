#!/usr/bin/env bash
# Register every deployment of prefect.yaml with the Prefect server at $PREFECT_API_URL (default:
# infra/server.env), without prompts. Run infra/create-pools.sh first: the deployments name its pools.
# Usage: bash infra/deploy.sh [extra `prefect deploy` options, e.g. --name text2world-batch/batch (that one
#        only: Prefect matches the entrypoint's function name, dashed), --job-variable '{"image": "..."}']
set -euo pipefail
INFRA="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$INFRA")"
# shellcheck source=SCRIPTDIR/server.env
source "$INFRA/server.env"  # PREFECT_API_URL, unless already set
PREFECT="$(command -v prefect || echo "$ROOT/.venv/bin/prefect")"

# The values prefect.yaml templates as {{ $VAR }}: resolved now and stored in the deployments.
export WORLDMILL_HOME="${WORLDMILL_HOME:-$ROOT}"  # the checkout, at the same path on every worker host
# the checkout where the GPU pool's flow runs start: /opt/worldmill for the image (docker, kubernetes)
export WORLDMILL_GPU_HOME="${WORLDMILL_GPU_HOME:-$WORLDMILL_HOME}"
export WORLDMILL_POOL="${WORLDMILL_POOL:-worldmill}"
export WORLDMILL_GPU_POOL="${WORLDMILL_GPU_POOL:-worldmill-gpu}"
export WORLDMILL_INBOX="${WORLDMILL_INBOX:-$WORLDMILL_HOME/inbox}"
export WORLDMILL_OUTPUT_ROOT="${WORLDMILL_OUTPUT_ROOT:-$WORLDMILL_HOME/output/inbox}"
export WORLDMILL_INBOX_ACTIVE="${WORLDMILL_INBOX_ACTIVE:-false}"  # true: the inbox runs every 5 minutes

cd "$ROOT"
ALL=--all  # every deployment, unless some are named (`prefect deploy` refuses both)
for arg in "$@"; do case "$arg" in --name | -n | --name=*) ALL= ;; esac; done
PREFECT_CLI_PROMPT=false exec "$PREFECT" deploy $ALL --no-prompt "$@"
