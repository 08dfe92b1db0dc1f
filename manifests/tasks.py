"""The task registry: every task a manifest can run, its row model, and the stages its shards run.

The one place that spells task and stage names. Flows, sharding, the worker and the commands look tasks and
stages up here and ask them what they are (an image stage? does it check the prompt?) instead of comparing
names; tests/test_layering.py fails on a task or stage name written anywhere else.

A task runs its stages in order, each over the rows that succeeded in the one before: text2world draws
each row's first frame (an intermediate image), then its video from that frame; best-of-N generates
candidates, then scores them and keeps the best.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from manifests.schemas import BestOfNRow, RowBase, Text2ImageRow, Text2WorldRow, Video2WorldRow


@dataclass(frozen=True)
class Stage:
    """One kind of shard: what a worker loads for it and what it writes per row."""

    name: str  # the shard's task: shard ids, records folders and worker dispatch use it
    image_model: bool  # loads the Text2Image model (else Video2World)
    intermediate: bool = False  # writes the next stage's input, not the row's output
    checks_prompt: bool = True  # the guardrail checks the row's prompt here (once per task)
    context_parallel: bool = False  # may split each row's frames over the shard's GPUs
    best_of_n: Literal["generate", "score"] | None = None  # one of best-of-N's two steps


@dataclass(frozen=True)
class TaskSpec:
    name: str  # the manifest's task and the Prefect flow's name
    row_model: type[RowBase]
    stages: tuple[Stage, ...]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


TEXT2IMAGE = TaskSpec("text2image", Text2ImageRow, (Stage("text2image", image_model=True),))
VIDEO2WORLD = TaskSpec(
    "video2world", Video2WorldRow, (Stage("video2world", image_model=False, context_parallel=True),)
)
TEXT2WORLD = TaskSpec(
    "text2world",
    Text2WorldRow,
    (
        Stage("text2world-image", image_model=True, intermediate=True),
        # the prompt was checked by the image stage; only a refined prompt is checked again
        Stage("text2world-video", image_model=False, checks_prompt=False, context_parallel=True),
    ),
)
BEST_OF_N = TaskSpec(
    "best-of-n",
    BestOfNRow,
    (
        Stage("best-of-n-generate", image_model=False, best_of_n="generate"),
        Stage("best-of-n-score", image_model=False, best_of_n="score"),
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


def stage_of(name: str) -> Stage:
    """A stage by its name (a shard's `task` field); a task's name gives its last stage."""
    if name in STAGES:
        return STAGES[name]
    if name in TASKS:
        return TASKS[name].final
    raise ValueError(f"unknown shard task {name!r}; expected one of {', '.join(STAGES)}")
