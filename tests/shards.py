"""Build a shard straight from a manifest, for tests that run the worker in-process (no Prefect)."""

from __future__ import annotations

from pathlib import Path

from manifests import Manifest, ModelSpec, Shard


def shard_of(manifest: Manifest, work: Path, **settings) -> Shard:
    """One shard of every good row of `manifest`, records under work/records, on the default model;
    `settings` override Shard fields (guardrail=False, ...)."""
    return Shard(
        shard_id="s",
        task=manifest.task,
        output_root=manifest.output_root,
        records_dir=str(work / "records"),
        model=ModelSpec(),
        rows=manifest.rows,
        **settings,
    )
