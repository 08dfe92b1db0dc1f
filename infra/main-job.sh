#!/usr/bin/env bash
# The main job: the reference's text2world batch example as a Prefect run of `text2world/batch`, on the
# embedded default model (no checkpoints needed). Uses the Prefect server at $PREFECT_API_URL (default
# http://127.0.0.1:4200/api) or starts one in the background (left running for the dashboard), creates
# the pools, deploys prefect.yaml, starts a worker for this run, runs the deployment and waits for it.
# Usage: bash infra/main-job.sh [MANIFEST] [OUTPUT_ROOT]
set -euo pipefail
INFRA="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$INFRA")"
cd "$ROOT"
# shellcheck source=SCRIPTDIR/server.env
source "$INFRA/server.env"
PREFECT="$(command -v prefect || echo "$ROOT/.venv/bin/prefect")"
PYTHON="$(dirname "$PREFECT")/python"
MANIFEST="${1:-$ROOT/assets/text2world/batch_example.json}"
OUTPUT_ROOT="${2:-$ROOT/output/main-job}"
export WORLDMILL_HOME="$ROOT" PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-2}"
STATE="${PREFECT_HOME:-$HOME/.prefect}"
mkdir -p "$STATE"

healthy() { "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health", timeout=2)' "$PREFECT_API_URL" 2>/dev/null; }

STARTED=""
if ! healthy; then
  STARTED=1
  echo "main job: starting a Prefect server in the background (log: $STATE/server.log)"
  setsid "$PREFECT" server start --host "$PREFECT_SERVER_API_HOST" --port "$PREFECT_SERVER_API_PORT" \
    >"$STATE/server.log" 2>&1 < /dev/null &
  echo $! > "$STATE/server.pid"
  for _ in $(seq 120); do healthy && break; sleep 1; done
  healthy || { echo "main job: the Prefect server did not start; see $STATE/server.log" >&2; exit 1; }
fi

bash "$INFRA/create-pools.sh" > /dev/null
bash "$INFRA/deploy.sh" > /dev/null

"$PREFECT" worker start --pool "${WORLDMILL_POOL:-worldmill}" --limit 1 > "$STATE/main-job-worker.log" 2>&1 &
WORKER=$!
trap 'kill "$WORKER" 2>/dev/null || true' EXIT

echo "main job: prefect deployment run text2world/batch (manifest $MANIFEST)"
status=0
"$PREFECT" deployment run text2world/batch --param "manifest=$MANIFEST" --param "output_root=$OUTPUT_ROOT" \
  --watch --watch-interval 2 || status=$?
echo
echo "main job: outputs in $OUTPUT_ROOT (results: $OUTPUT_ROOT/results.csv)"
if [ -n "$STARTED" ]; then
  echo "main job: dashboard at ${PREFECT_API_URL%/api} (server left running; stop it: kill \$(cat $STATE/server.pid))"
else
  echo "main job: dashboard at ${PREFECT_API_URL%/api}"
fi
exit "$status"
