#!/usr/bin/env bash
# Start the Prefect server (API + dashboard at http://127.0.0.1:4200) with infra/server.env's settings.
# Usage: bash infra/start-server.sh [extra `prefect server start` options]
set -euo pipefail
INFRA="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=SCRIPTDIR/server.env
source "$INFRA/server.env"
PREFECT="$(command -v prefect || echo "$INFRA/../.venv/bin/prefect")"
exec "$PREFECT" server start --host "$PREFECT_SERVER_API_HOST" --port "$PREFECT_SERVER_API_PORT" "$@"
