"""The parameters every batch flow takes (shown, validated and documented in the Prefect UI)."""

from __future__ import annotations

from typing import Literal

from flows.batch import BatchOptions
from manifests import ModelSpec
from manifests.schemas import check_natten_resolution


def batch_options(
    shard_size: int,
    gpus_per_shard: int | None,
    parallelism: Literal["data", "context"],
    model_size: str | None,
    resolution: Literal["480", "720"],
    fps: Literal[10, 16],
    checkpoint_dir: str | None,
    input_root: str | None,
    dispatch_deployment: str | None,
    guardrail: bool = True,
    refiner: bool = False,
    natten: bool = False,
) -> BatchOptions:
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    check_natten_resolution(natten, resolution)
    return BatchOptions(
        shard_size=shard_size,
        gpus_per_shard=gpus_per_shard,
        parallelism=parallelism,
        model=ModelSpec(
            model_size=model_size,
            resolution=resolution,
            fps=fps,
            checkpoint_dir=checkpoint_dir,
            natten=natten,
        ),
        input_root=input_root,
        dispatch_deployment=dispatch_deployment,
        guardrail=guardrail,
        refiner=refiner,
    )
