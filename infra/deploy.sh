#!/usr/bin/env bash
# Register every deployment of prefect.yaml with the Prefect server at $PREFECT_API_URL (default:
# infra/server.env), without prompts. Run infra/create-pools.sh first: the deployments name its pools.
# Usage: bash infra/deploy.sh [extra `prefect deploy` options, e.g. --name text2world/batch (that one only;
#        repeatable), --job-variable '{"image": "..."}']
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
PYTHON="$(dirname "$PREFECT")/python"
[ -x "$PYTHON" ] || PYTHON=python3
# `--name FLOW/DEPLOYMENT` as the dashboard and `prefect deployment run` spell it (text2world/batch);
# Prefect's own --name matches the entrypoint's function name instead (text2world-batch/batch): translate.
prefect_name() {
  "$PYTHON" - "$1" <<'PY'
import sys, yaml
from prefect.flows import load_flow_from_entrypoint
wanted = sys.argv[1]
for d in yaml.safe_load(open("prefect.yaml"))["deployments"]:
    function = d["entrypoint"].split(":")[-1].replace("_", "-")
    if wanted == f"{load_flow_from_entrypoint(d['entrypoint']).name}/{d['name']}":
        wanted = f"{function}/{d['name']}"
        break
print(wanted)
PY
}
ARGS=() ALL=--all  # every deployment, unless some are named (`prefect deploy` refuses both)
while [ $# -gt 0 ]; do
  case "$1" in
    --name | -n) ARGS+=(--name "$(prefect_name "${2:?--name needs FLOW/DEPLOYMENT}")"); ALL=; shift 2 ;;
    --name=*) ARGS+=(--name "$(prefect_name "${1#--name=}")"); ALL=; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
PREFECT_CLI_PROMPT=false exec "$PREFECT" deploy $ALL --no-prompt "${ARGS[@]}"
