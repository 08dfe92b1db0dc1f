#!/usr/bin/env bash
# Create or update worldmill's work pools and its "gpu" concurrency limit on the Prefect server at
# $PREFECT_API_URL (default: infra/server.env). Idempotent: run it again after editing a template.
# Usage: bash infra/create-pools.sh [--type process|docker|kubernetes]
#   ${WORLDMILL_POOL:-worldmill}           process pool with Prefect's default template: runs the
#                                          batch flows (and their shards, unless they are dispatched)
#   ${WORLDMILL_GPU_POOL:-worldmill-gpu}   pool of --type (default process), template
#                                          infra/pools/<type>-gpu.json: runs generate-shard/gpu
#   limit "gpu", ${WORLDMILL_GPU_SLOTS:-1} slots: GPUs busy at once over the whole fleet (each shard
#                                          holds gpus_per_shard slots while it runs; tasks/shards.py)
set -euo pipefail
INFRA="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$INFRA")"
# shellcheck source=SCRIPTDIR/server.env
source "$INFRA/server.env"  # PREFECT_API_URL, unless already set
PREFECT="$(command -v prefect || echo "$ROOT/.venv/bin/prefect")"
PYTHON="$(dirname "$PREFECT")/python"  # prefect's own interpreter, else python3
[ -x "$PYTHON" ] || PYTHON=python3

GPU_TYPE=process
while [ $# -gt 0 ]; do
  case "$1" in
    --type) GPU_TYPE="${2:?--type needs process, docker or kubernetes}"; shift 2 ;;
    --type=*) GPU_TYPE="${1#--type=}"; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "create-pools.sh: unknown argument '$1' (usage: create-pools.sh [--type process|docker|kubernetes])" >&2; exit 2 ;;
  esac
done
case "$GPU_TYPE" in
  process | docker | kubernetes) ;;
  *) echo "create-pools.sh: --type must be process, docker or kubernetes, not '$GPU_TYPE'" >&2; exit 2 ;;
esac

WORLDMILL_HOME="${WORLDMILL_HOME:-$ROOT}"
POOL="${WORLDMILL_POOL:-worldmill}"
GPU_POOL="${WORLDMILL_GPU_POOL:-worldmill-gpu}"
GPU_SLOTS="${WORLDMILL_GPU_SLOTS:-1}"
case "$GPU_SLOTS" in
  '' | *[!0-9]* | 0) echo "create-pools.sh: WORLDMILL_GPU_SLOTS must be a positive integer, not '$GPU_SLOTS'" >&2; exit 2 ;;
esac
export PREFECT_CLI_PROMPT=false
if ! "$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health", timeout=10)' \
  "$PREFECT_API_URL" 2>/dev/null; then
  echo "create-pools.sh: no Prefect server answers at PREFECT_API_URL=$PREFECT_API_URL;" \
    "start one (bash infra/start-server.sh) or point PREFECT_API_URL at yours." >&2
  exit 1
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# "name type" of every existing pool. A pool's type cannot be changed (--overwrite keeps the old one).
EXISTING="$("$PREFECT" work-pool ls --output json |
  "$PYTHON" -c 'import json, sys; print("\n".join(p["name"] + " " + p["type"] for p in json.load(sys.stdin)))')"

ensure_pool() {  # NAME TYPE [TEMPLATE]
  local name="$1" type="$2" template="${3:-}" existing
  existing="$(awk -v name="$name" '$1 == name { print $2 }' <<<"$EXISTING")"
  if [ -n "$existing" ] && [ "$existing" != "$type" ]; then
    echo "create-pools.sh: work pool '$name' exists with type '$existing', not '$type'; Prefect cannot" \
      "change a pool's type: delete it first (prefect work-pool delete '$name') or pick another name." >&2
    exit 1
  fi
  "$PREFECT" work-pool create "$name" --type "$type" ${template:+--base-job-template "$template"} --overwrite |
    awk 'NR == 1'  # "Created/Updated work pool ..."; the rest suggests a bare `prefect worker start`
}

ensure_pool "$POOL" process

# The process template's working directory is the checkout: write its absolute path in.
TEMPLATE="$INFRA/pools/$GPU_TYPE-gpu.json"
if [ "$GPU_TYPE" = process ]; then
  "$PYTHON" - "$TEMPLATE" "$WORLDMILL_HOME" >"$TMP/process-gpu.json" <<'PY'
import json, sys
template = json.load(open(sys.argv[1]))
template["variables"]["properties"]["working_dir"]["default"] = sys.argv[2]
json.dump(template, sys.stdout, indent=2)
PY
  TEMPLATE="$TMP/process-gpu.json"
fi
ensure_pool "$GPU_POOL" "$GPU_TYPE" "$TEMPLATE"

# The limit tasks/shards.py holds around each worker launch (GPU_SLOT): update it, else create it.
if ! updated="$("$PREFECT" gcl update gpu --limit "$GPU_SLOTS" --enable 2>&1)"; then
  case "$updated" in
    *"not found"*) "$PREFECT" gcl create gpu --limit "$GPU_SLOTS" ;;
    *) echo "$updated" >&2; exit 1 ;;
  esac
else
  echo "$updated"
fi
echo "pools '$POOL' (process) and '$GPU_POOL' ($GPU_TYPE), concurrency limit 'gpu' = $GPU_SLOTS slot(s)"
