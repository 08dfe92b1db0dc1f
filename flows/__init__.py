"""Prefect flows: orchestration only (no torch). Deployments are declared in prefect.yaml."""
