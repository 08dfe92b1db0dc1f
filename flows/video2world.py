"""`prefect deployment run video2world/batch --param manifest=... --param output_root=...`"""

from __future__ import annotations

from typing import Literal

from prefect import flow

from flows.batch import run_batch
from flows.params import batch_options
from manifests.tasks import VIDEO2WORLD


@flow(name=VIDEO2WORLD.name, log_prints=True)
def video2world_batch(
    manifest: str,
    output_root: str,
    shard_size: int = 25,
    gpus_per_shard: int | None = None,
    parallelism: Literal["data", "context"] = "data",
    model_size: str | None = None,
    resolution: Literal["480", "720"] = "720",
    fps: Literal[10, 16] = 16,
    checkpoint_dir: str | None = None,
    input_root: str | None = None,
    dispatch_deployment: str | None = None,
    guardrail: bool = True,
    prompt_refiner: bool = False,
    natten: bool = False,
) -> dict:
    """Generate every row of a video2world manifest (CSV, JSON, JSONL or Parquet; path or URL) under output_root.

    Rows are split into shards of shard_size; each shard runs on gpus_per_shard GPUs (default: the
    host's gpus_per_host job variable, else 1) in this run's worker, or as a run of
    dispatch_deployment (e.g. "generate-shard/gpu") on a GPU work pool. parallelism "data" stripes
    rows over the GPUs (throughput); "context" splits each video's frames over them (latency). The run
    ends Failed if any row failed, after every other row finished; results.csv lands in output_root.
    guardrail: rows it refuses are recorded "blocked" (no output) and the others go on. prompt_refiner:
    Cosmos-Reason1 rewrites each prompt from its input (when its checkpoint is present).
    """
    options = batch_options(
        shard_size,
        gpus_per_shard,
        parallelism,
        model_size,
        resolution,
        fps,
        checkpoint_dir,
        input_root,
        dispatch_deployment,
        guardrail,
        prompt_refiner,
        natten,
    )
    return run_batch(VIDEO2WORLD.name, manifest, output_root, options)
