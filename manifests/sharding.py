"""Shards: the unit of GPU work. A shard is a JSON file of rows that one torchrun job generates with one model.

The flow plans shards from a manifest and launches one task per shard (Prefect ingests tens of task runs a
second, so never one per row); the worker reads the shard, loads its model once, generates each row and
writes one result record per row into `records_dir`. Rows that need another model (size, resolution, fps,
the distilled Text2Image) go to other shards.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from manifests import storage
from manifests.readers import Manifest, ManifestError, ResolvedRow
from manifests.schemas import RowBase
from manifests.tasks import stage_of, task_of

# The environment a shard's launcher (tasks/shards.py) gives its worker (cosmos_core/worker.py).
LANES_ENV = "WORLDMILL_LANES"  # shards running at once on this host: the worker takes its share of the cores


class ModelSpec(BaseModel):
    """Which weights a shard needs. Rows with equal specs share a shard and a loaded model."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    model_size: str | None = None  # None: the worker's default (2B if present, else the embedded model)
    resolution: str = "720"  # video tasks: the checkpoint is per resolution and fps
    fps: int = 16
    checkpoint_dir: str | None = None  # None: $COSMOS_CHECKPOINT_DIR or checkpoints/
    dit_path: str | None = None  # an explicit DiT checkpoint, overriding the one named by the size
    distilled: bool = False  # text2image rows with distill_steps > 0 load model_distilled.pt
    natten: bool = False  # video tasks: the sparse-attention DiT (model-720p-{fps}fps-natten.pt)


class Shard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shard_id: str
    task: str
    output_root: str
    records_dir: str  # one ResultRecord per row: <records_dir>/<row id>.json
    model: ModelSpec
    rows: list[ResolvedRow]
    # data: rows striped over the ranks, one model each; context: every row on all ranks (latency).
    parallelism: Literal["data", "context"] = "data"
    guardrail: bool = True  # prompts (and videos) pass the guardrail; a refused row is recorded "blocked"
    refiner: bool = False  # video stages: Cosmos-Reason1 rewrites the prompt (when its checkpoint is present)

    @field_validator("rows", mode="before")
    @classmethod
    def _rows_of_the_task(cls, rows: Any, info: ValidationInfo) -> Any:
        """A shard file's rows as the row model of its task (`task` is validated before `rows`)."""
        if "task" not in info.data or not isinstance(rows, list):
            return rows
        model = task_of(info.data["task"]).row_model
        return [_typed(row, model) for row in rows]


def _typed(row: Any, model: type[RowBase]) -> Any:
    if isinstance(row, dict) and isinstance(row.get("row"), dict):
        return {**row, "row": model.model_validate(row["row"])}
    return row


def model_spec_of(task: str, row: RowBase, defaults: ModelSpec) -> ModelSpec:
    """The model a row needs: its model choice (model_size; resolution, fps, natten) over the defaults.

    `task` is the shard's task, which may be a stage name ('text2world-video'). An image model has no
    resolution or fps, so for image stages those stay at the defaults and do not split the rows."""
    choice = row.model_choice.model_dump(exclude_none=True)
    if stage_of(task).image_model:
        update = {"model_size": choice["model_size"]} if "model_size" in choice else {}
        update["distilled"] = getattr(row, "distill_steps", 0) > 0
    else:
        update = choice
    return defaults.model_copy(update=update)


def plan_shards(
    manifest: Manifest,
    shard_size: int,
    records_dir: str,
    defaults: ModelSpec = ModelSpec(),  # noqa: B008 (frozen, so a shared default is safe)
    task: str | None = None,
) -> list[Shard]:
    """Group the manifest's good rows by model, keep manifest order within a group, cut groups into shards of
    at most `shard_size` rows. Groups come in order of their first row.

    task: overrides manifest.task: text2world's stages ('text2world-image', 'text2world-video') plan their
    shards from the one manifest.
    shard_id: f"{task}-{k:04d}-{8 hex of sha256 of the row ids}": readable, and the same for the same rows.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    task = task or manifest.task
    groups: dict[ModelSpec, list[ResolvedRow]] = {}
    for row in manifest.rows:
        groups.setdefault(model_spec_of(task, row.row, defaults), []).append(row)

    shards = []
    for spec, rows in groups.items():
        for start in range(0, len(rows), shard_size):
            chunk = rows[start : start + shard_size]
            digest = hashlib.sha256("\n".join(row.id for row in chunk).encode("utf-8")).hexdigest()[:8]
            shards.append(
                Shard(
                    shard_id=f"{task}-{len(shards):04d}-{digest}",
                    task=task,
                    output_root=manifest.output_root,
                    records_dir=records_dir,
                    model=spec,
                    rows=chunk,
                )
            )
    return shards


def write_shard(shard: Shard, url: str) -> None:
    """Write the shard as JSON, atomically (a worker never reads half a shard)."""
    storage.write_text_atomic(url, shard.model_dump_json(indent=1))


def read_shard(url: str) -> Shard:
    try:
        return Shard.model_validate_json(storage.read_bytes(url))
    except FileNotFoundError:
        raise ManifestError(f"shard file not found: {url}") from None
    except ValidationError as e:
        raise ManifestError(f"{url} is not a valid shard file: {e}") from e
