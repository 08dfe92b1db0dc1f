#!/usr/bin/env bash
# Stop the Prefect server and the worker that infra/main-job.sh left running (their pids in
# ${PREFECT_HOME:-~/.prefect}/server.pid and worker.pid). Sourced by start-worker.sh for stop_worker.
# Usage: bash infra/stop.sh

# Prefect's worker answers a first SIGINT/SIGTERM with a graceful stop that can wait minutes (measured:
# an idle worker still up 60 s after SIGTERM); a second SIGINT makes it exit at once.
stop_worker() {
  local pid="$1"
  kill -INT "$pid" 2>/dev/null || return 0
  for _ in 1 2; do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
  kill -INT "$pid" 2>/dev/null || true
  for _ in 1 2 3 4 5; do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
  kill -KILL "$pid" 2>/dev/null || true
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -uo pipefail
  STATE="${PREFECT_HOME:-$HOME/.prefect}"
  if [ -f "$STATE/worker.pid" ]; then
    stop_worker "$(cat "$STATE/worker.pid")" && echo "stop: worker stopped" && rm -f "$STATE/worker.pid"
  fi
  if [ -f "$STATE/server.pid" ] && kill "$(cat "$STATE/server.pid")" 2>/dev/null; then
    echo "stop: server stopped"
    rm -f "$STATE/server.pid"
  fi
fi
