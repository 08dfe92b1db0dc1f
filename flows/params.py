"""The batch flows' parameters: one pydantic model per kind of flow, beside `manifest` and `output_root`.

Prefect shows each model as a form with these descriptions and validates it; the defaults live here and
nowhere else (prefect.yaml sets none). From the command line:
`prefect deployment run video2world/batch --param manifest=... --param output_root=... \\
    --param options='{"gpus_per_shard": 8, "parallelism": "context"}'`.
Each flow takes only what it uses: Text2Image has no resolution, frame rate or context parallelism.
"""

from __future__ import annotations

import inspect
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from flows.batch import BatchOptions
from manifests import TASKS, ModelSpec
from manifests.requests import Text2ImageModel, Video2WorldModel

# What the batch flows' own parameters mean: the Prefect dashboard shows these in the run form.
PARAMETER_DOCS = {
    "task": f"the registered task to run (manifests/tasks.py): {', '.join(TASKS)}",
    "manifest": "the manifest: CSV, JSON, JSONL or Parquet (the reference's batch JSON too), a path or an "
    "s3:// URL",
    "output_root": "where the outputs go (a path or an s3:// URL); each row's output is under it, "
    "results.csv beside them",
    "options": "run settings: sharding, GPUs, the model, the guardrail (each field describes itself)",
}


def with_parameter_docs(function):
    """Give a flow function's docstring an Args section from PARAMETER_DOCS, which Prefect turns into the
    parameters' descriptions (apply below @flow)."""
    names = [name for name in inspect.signature(function).parameters if name in PARAMETER_DOCS]
    lines = "\n".join(f"    {name}: {PARAMETER_DOCS[name]}" for name in names)
    function.__doc__ = f"{inspect.cleandoc(function.__doc__ or '')}\n\nArgs:\n{lines}\n"
    return function


class BatchParameters(BaseModel):
    """What every batch flow takes; each flow adds its model choice (manifests/requests.py: the fields and
    descriptions rows have, as the run's defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    shard_size: int = Field(
        25, ge=1, description="rows per shard: one Prefect task and one worker process each"
    )
    gpus_per_shard: int | None = Field(
        None, ge=1, description="GPUs per shard; unset: the GPU pool's gpus_per_host job variable, else 1"
    )
    checkpoint_dir: str | None = Field(
        None, description="checkpoints root; unset: $COSMOS_CHECKPOINT_DIR or checkpoints"
    )
    input_root: str | None = Field(
        None,
        description="where relative inputs live; unset: beside a remote manifest, else the working folder",
    )
    dispatch_deployment: str | None = Field(
        None, description='run shards as runs of this deployment on a GPU pool, e.g. "generate-shard/gpu"'
    )
    guardrail: bool = Field(
        True, description='refused rows are recorded "blocked" (no output); the others go on'
    )

    def options(self) -> BatchOptions:
        return BatchOptions(
            shard_size=self.shard_size,
            gpus_per_shard=self.gpus_per_shard,
            model=ModelSpec(checkpoint_dir=self.checkpoint_dir, **self._model_fields()),
            input_root=self.input_root,
            dispatch_deployment=self.dispatch_deployment,
            guardrail=self.guardrail,
            **self._run_fields(),
        )

    def _model_fields(self) -> dict:
        """The model choice's fields (a subclass mixes one in), unset ones left to ModelSpec's defaults."""
        fields = {
            name: getattr(self, name) for name in ModelSpec.model_fields if name in type(self).model_fields
        }
        return {name: value for name, value in fields.items() if value is not None}

    def _run_fields(self) -> dict:
        return {}


class Text2ImageParameters(BatchParameters, Text2ImageModel):
    pass


class VideoParameters(BatchParameters, Video2WorldModel):
    """What the video flows add to the Video2World model choice: the prompt refiner."""

    prompt_refiner: bool = Field(
        False,
        description="Cosmos-Reason1 rewrites each prompt from its input (when its checkpoint is present)",
    )

    def _run_fields(self) -> dict:
        return {"refiner": self.prompt_refiner}


class VideoBatchParameters(VideoParameters):
    parallelism: Literal["data", "context"] = Field(
        "data",
        description='"data": rows striped over a shard\'s GPUs (throughput); "context": each video\'s frames split over them (latency)',
    )

    def _run_fields(self) -> dict:
        return {**super()._run_fields(), "parallelism": self.parallelism}


class BestOfNParameters(VideoParameters):
    shard_size: int = Field(
        4, ge=1, description="rows per shard (each row brings its num_generations candidates)"
    )
