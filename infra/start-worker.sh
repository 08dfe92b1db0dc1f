#!/usr/bin/env bash
# Start a worker that polls one work pool, from the checkout (the pools' working directory).
# Usage: bash infra/start-worker.sh [POOL] [LIMIT] [extra `prefect worker start` options]
#   POOL   default $WORLDMILL_POOL or "worldmill" (the orchestration pool); the GPU pool is
#          $WORLDMILL_GPU_POOL or "worldmill-gpu".
#   LIMIT  flow runs at once, default $WORLDMILL_WORKER_LIMIT or 1. On a GPU host: 1, or its GPUs
#          divided by gpus_per_shard.
# Environment: PREFECT_API_URL (the server), PREFECT_WORKER_QUERY_SECONDS (poll interval, default 10),
# WORLDMILL_WORKER_NAME (default <host>-<pool>), WORLDMILL_INSTALL_POLICY (docker/kubernetes pools:
# whether the worker may pip-install prefect-docker/prefect-kubernetes, default if-not-present).
set -euo pipefail
INFRA="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$INFRA")"
# shellcheck source=SCRIPTDIR/server.env
source "$INFRA/server.env"
PREFECT="$(command -v prefect || echo "$ROOT/.venv/bin/prefect")"

POOL="${1:-${WORLDMILL_POOL:-worldmill}}"
LIMIT="${2:-${WORLDMILL_WORKER_LIMIT:-1}}"
shift $(($# < 2 ? $# : 2))
export PREFECT_WORKER_QUERY_SECONDS="${PREFECT_WORKER_QUERY_SECONDS:-10}"

cd "$ROOT"
"$PREFECT" worker start \
  --pool "$POOL" \
  --limit "$LIMIT" \
  --name "${WORLDMILL_WORKER_NAME:-$(hostname)-$POOL}" \
  --install-policy "${WORLDMILL_INSTALL_POLICY:-if-not-present}" \
  --no-create-pool-if-not-found \
  "$@" &
WORKER=$!
# Prefect's worker takes a first SIGTERM or SIGINT as "stop when idle" and can stay up for minutes; the
# second one ends it. One Ctrl-C or `kill` of this script ends it: the signal is passed on twice.
# shellcheck source=SCRIPTDIR/stop.sh
source "$INFRA/stop.sh"
trap 'stop_worker "$WORKER"; exit 130' INT TERM
wait "$WORKER"
