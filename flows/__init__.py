"""Prefect flows: orchestration only (no torch). Deployments are declared in prefect.yaml."""

import tasks  # noqa: F401  (turns Prefect's client telemetry off before Prefect is imported)
