"""`prefect deployment run video2world/batch --param manifest=... --param output_root=...`"""

from __future__ import annotations

from prefect import flow

from flows.batch import run_batch
from flows.params import VideoBatchParameters, with_parameter_docs
from manifests.tasks import VIDEO2WORLD


@flow(name=VIDEO2WORLD.name, log_prints=True)
@with_parameter_docs
def video2world_batch(
    manifest: str,
    output_root: str,
    options: VideoBatchParameters = VideoBatchParameters(),  # noqa: B008 (frozen)
) -> dict:
    """Generate every row of a video2world manifest (CSV, JSON, JSONL or Parquet; path or URL) under output_root.

    `options` (flows/params.py, a form in the Prefect UI): sharding, GPUs and parallelism, the model
    (resolution, fps, natten), the guardrail and the prompt refiner.
    The run ends Failed if any row failed, after every other row finished; results.csv lands in output_root.
    """
    return run_batch(VIDEO2WORLD.name, manifest, output_root, options.options())
