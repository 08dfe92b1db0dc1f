r"""\`generate-shard\`: one shard as its own flow run, deployed on a GPU work pool.

A batch flow with dispatch_deployment="generate-shard/gpu" creates one run of this per shard, so that
every GPU host polling the pool takes shards of the same manifest.
"""

from __future__ import annotations

from prefect import flow

from tasks.shards import run_shard


@flow(name="generate-shard")
def generate_shard(shard_url: str, shard_id: str, gpus: int | None = None) -> dict:
    """gpus None: the host's WORLDMILL_GPUS_PER_HOST (the GPU pool's gpus_per_host job variable)."""
    return run_shard(shard_url, shard_id, gpus)
