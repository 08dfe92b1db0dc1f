#!/usr/bin/env bash
# The main job: a text2world batch example as a Prefect run of `text2world/batch`: on the embedded default
# model (no checkpoints needed) the prompts of its own world, with checkpoints the reference's example. Uses the Prefect server at $PREFECT_API_URL (default
# http://127.0.0.1:4200/api) or starts one in the background (left running for the dashboard), creates
# the pools, deploys prefect.yaml, starts a worker (left running too, reused by the next run), runs the
# deployment and waits for it.
# Usage: bash infra/main-job.sh [MANIFEST] [OUTPUT_ROOT]
set -euo pipefail
INFRA="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$INFRA")"
cd "$ROOT"
# shellcheck source=SCRIPTDIR/server.env
source "$INFRA/server.env"
PREFECT="$(command -v prefect || echo "$ROOT/.venv/bin/prefect")"
PYTHON="$(dirname "$PREFECT")/python"
# Without the 2B Video2World checkpoint the run uses the embedded default model: give it prompts of its
# own world (assets/embedded/); with it, the reference's batch example.
CHECKPOINT="${COSMOS_CHECKPOINT_DIR:-$ROOT/checkpoints}/$("$PYTHON" -c 'from manifests.presets import video2world_preset as p; m = p("2B"); print(m.repo_id + "/" + m.dit_file)')"
if [ -f "$CHECKPOINT" ]; then DEFAULT_MANIFEST="$ROOT/assets/text2world/batch_example.json"
else DEFAULT_MANIFEST="$ROOT/assets/embedded/text2world/batch_example.json"; fi
MANIFEST="${1:-$DEFAULT_MANIFEST}"
OUTPUT_ROOT="${2:-$ROOT/output/main-job}"
export WORLDMILL_HOME="$ROOT" PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-2}"
STATE="${PREFECT_HOME:-$HOME/.prefect}"
mkdir -p "$STATE"

healthy() { "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health", timeout=2)' "$PREFECT_API_URL" 2>/dev/null; }

if ! healthy; then
  echo "main job: starting a Prefect server in the background (log: $STATE/server.log)"
  setsid "$PREFECT" server start --host "$PREFECT_SERVER_API_HOST" --port "$PREFECT_SERVER_API_PORT" \
    >"$STATE/server.log" 2>&1 < /dev/null &
  echo $! > "$STATE/server.pid"
  for _ in $(seq 120); do healthy && break; sleep 1; done
  healthy || { echo "main job: the Prefect server did not start; see $STATE/server.log" >&2; exit 1; }
fi

bash "$INFRA/create-pools.sh" > /dev/null
bash "$INFRA/deploy.sh" > /dev/null

# A worker for the orchestration pool, left running beside the server (the next run, and any
# `prefect deployment run` from the README, needs one); reused when the previous one is still alive.
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! alive "$STATE/worker.pid"; then
  echo "main job: starting a worker for pool ${WORLDMILL_POOL:-worldmill} in the background (log: $STATE/worker.log)"
  setsid "$PREFECT" worker start --pool "${WORLDMILL_POOL:-worldmill}" --limit 1 \
    >"$STATE/worker.log" 2>&1 < /dev/null &
  echo $! > "$STATE/worker.pid"
fi

echo "main job: prefect deployment run text2world/batch (manifest $MANIFEST)"
status=0
# infra/run.py: `prefect deployment run --watch`, and Ctrl-C cancels the run (and its shards)
"$PYTHON" "$INFRA/run.py" text2world/batch --param "manifest=$MANIFEST" --param "output_root=$OUTPUT_ROOT" \
  || status=$?
if [ "$status" -eq 130 ]; then exit 130; fi
echo
if [ -f "$OUTPUT_ROOT/results.csv" ]; then
  echo "main job: outputs (results: $OUTPUT_ROOT/results.csv):"
  "$PYTHON" -c 'import csv, sys; [print("  " + r["status"] + "  " + (r["output"] or r["error"])) for r in csv.DictReader(open(sys.argv[1]))]' "$OUTPUT_ROOT/results.csv"
else
  echo "main job: no results in $OUTPUT_ROOT"
fi
echo "main job: dashboard at ${PREFECT_API_URL%/api}; the server and a worker are left running for it"
echo "main job: stop them with: bash infra/stop.sh"
exit "$status"
