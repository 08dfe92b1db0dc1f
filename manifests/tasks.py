"""The task registry: every task a manifest can run, its row model, and the stages its shards run.

The one place that spells task and stage names. Flows, sharding, the worker and the commands look tasks and
stages up here and ask them what they are (an image stage? does it write an intermediate?) instead of
comparing names; tests/test_layering.py fails on a task or stage name written anywhere else. A task's row
model is its request and model choice (manifests/requests.py) plus an id and an output (RowBase).

A task runs its stages in order, each over the rows that succeeded in the one before: text2world draws
each row's first frame (an intermediate image), then its video from that frame; best-of-N generates
candidates, then scores them and keeps the best.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import Field

from manifests.requests import (
    BestOfNRequest,
    Prompt,
    Request,
    Text2ImageModel,
    Text2ImageRequest,
    Text2WorldRequest,
    Video2WorldModel,
    Video2WorldRequest,
)
from manifests.schemas import RowBase


@dataclass(frozen=True)
class Stage:
    """One kind of shard: what a worker loads for it and what it writes per row."""

    name: str  # the shard's task: shard ids, records folders and worker dispatch use it
    image_model: bool  # loads the Text2Image model (else Video2World)
    intermediate: bool = False  # writes the next stage's input, not the row's output
    context_parallel: bool = False  # may split each row's frames over the shard's GPUs


@dataclass(frozen=True)
class TaskSpec:
    name: str  # the manifest's task and the Prefect flow's name
    row_model: type[RowBase]
    stages: tuple[Stage, ...]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


# ---------------------------------------------------------------------------------------------------------
# Rows: the task's request, its model choice, then id and output (RowBase); the columns a manifest may have
# ---------------------------------------------------------------------------------------------------------


# Field order (a row's columns in errors and dumps): the request's, then the model choice, then id, output.
class Text2ImageRow(RowBase, Text2ImageModel, Text2ImageRequest):
    REQUEST: ClassVar[type[Request]] = Text2ImageRequest
    OUTPUT_EXTENSIONS: ClassVar[tuple[str, ...]] = (".jpg", ".jpeg")  # the worker writes JPEG only


# A video row names its prompt (a missing column or cell is an error), though it may be "" (JSON only: an
# empty cell is a missing value): the conditioning input carries the content.
ROW_PROMPT = 'text prompt; may be empty ("" in JSON): the input carries the content'


class Video2WorldRow(RowBase, Video2WorldModel, Video2WorldRequest):
    REQUEST: ClassVar[type[Request]] = Video2WorldRequest

    prompt: Prompt = Field(description=ROW_PROMPT)


class Text2WorldRow(RowBase, Video2WorldModel, Text2WorldRequest):
    REQUEST: ClassVar[type[Request]] = Text2WorldRequest


class BestOfNRow(RowBase, Video2WorldModel, BestOfNRequest):
    REQUEST: ClassVar[type[Request]] = BestOfNRequest

    prompt: Prompt = Field(description=ROW_PROMPT)


# ---------------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------------

TEXT2IMAGE = TaskSpec("text2image", Text2ImageRow, (Stage("text2image", image_model=True),))
VIDEO2WORLD = TaskSpec(
    "video2world", Video2WorldRow, (Stage("video2world", image_model=False, context_parallel=True),)
)
TEXT2WORLD = TaskSpec(
    "text2world",
    Text2WorldRow,
    (
        Stage("text2world-image", image_model=True, intermediate=True),
        Stage("text2world-video", image_model=False, context_parallel=True),
    ),
)
BEST_OF_N = TaskSpec(
    "best-of-n",
    BestOfNRow,
    (
        Stage("best-of-n-generate", image_model=False),
        Stage("best-of-n-score", image_model=False),
    ),
)


def intermediate_url(output_root: str, row_id: str) -> str:
    """Where an intermediate stage (text2world's first) leaves a row's output, beside the outputs; the flow
    removes the folder (intermediate_root) once the task is done. PNG: lossless (see pipelines/text2world.py)."""
    return f"{intermediate_root(output_root)}/{row_id}.png"


def intermediate_root(output_root: str) -> str:
    return f"{output_root.rstrip('/')}/.worldmill/intermediate"


TASKS: dict[str, TaskSpec] = {t.name: t for t in (TEXT2IMAGE, VIDEO2WORLD, TEXT2WORLD, BEST_OF_N)}
STAGES: dict[str, Stage] = {s.name: s for t in TASKS.values() for s in t.stages}


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return TASKS[name]


def task_of(name: str) -> TaskSpec:
    """The task a stage (or a task's own name) belongs to."""
    for task in TASKS.values():
        if name == task.name or any(stage.name == name for stage in task.stages):
            return task
    raise ValueError(f"unknown shard task {name!r}; expected one of {', '.join(STAGES)}")


def stage_of(name: str) -> Stage:
    """A stage by its name (a shard's `task` field); a task's name gives its last stage."""
    if name in STAGES:
        return STAGES[name]
    if name in TASKS:
        return TASKS[name].final
    raise ValueError(f"unknown shard task {name!r}; expected one of {', '.join(STAGES)}")
