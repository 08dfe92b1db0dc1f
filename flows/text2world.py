"""`prefect deployment run text2world/batch --param manifest=... --param output_root=...`"""

from __future__ import annotations

from prefect import flow

from flows.batch import run_batch
from flows.params import VideoBatchParameters, with_parameter_docs
from manifests.tasks import TEXT2WORLD


@flow(name=TEXT2WORLD.name, log_prints=True)
@with_parameter_docs
def text2world_batch(
    manifest: str,
    output_root: str,
    options: VideoBatchParameters = VideoBatchParameters(),  # noqa: B008 (frozen)
) -> dict:
    """Generate every row of a text2world manifest (CSV, JSON, JSONL or Parquet; path or URL) under output_root:
    each row's first frame (Text2Image), then its video from that frame (Video2World).

    `options` (flows/params.py, a form in the Prefect UI): sharding, GPUs and parallelism, the video model
    (resolution, fps, natten), the guardrail and the prompt refiner.
    The run ends Failed if any row failed, after every other row finished; results.csv lands in output_root.
    """
    return run_batch(TEXT2WORLD.name, manifest, output_root, options.options())
