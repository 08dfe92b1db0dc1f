"""One row of a shard, as the batch worker handles it: the request it builds from the row, the
pipeline it loads for the shard, whether the row is done, and the record of running it.

Shared by the worker's loop (cosmos_core/worker.py) and the best-of-N shard steps (cosmos_core/bestofn_jobs.py),
which the worker dispatches to: both import from here, neither from the other.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from cosmos_core import media
from cosmos_core.guardrail import GuardrailBlocked, guard_pipeline, load_safety
from cosmos_core.guardrail.guarded import pipeline_device
from cosmos_core.models import checkpoints_present, default_checkpoint_dir
from cosmos_core.parallel import ContextParallel
from cosmos_core.pipelines import Text2ImagePipeline, Video2WorldPipeline
from cosmos_core.pipelines.text2world import image_request, video_request
from cosmos_core.pipelines.video2world import ConditioningError
from cosmos_core.presets import video2world_preset
from cosmos_core.requests import Text2ImageRequest, Text2WorldRequest, Video2WorldRequest
from manifests import ResolvedRow, ResultRecord, Shard, Stage, read_record, stage_of
from manifests.tasks import BEST_OF_N, TEXT2IMAGE, TEXT2WORLD, VIDEO2WORLD, intermediate_url

log = logging.getLogger("cosmos_core.worker")

# A row's own fault: record it as failed and go on with the next row.
ROW_ERRORS = (media.MediaError, ConditioningError, ValidationError, ValueError, FileNotFoundError)
# The process's fault: exit non-zero so that the shard is retried (on this or another host).
DEVICE_ERROR_MARKERS = ("out of memory", "NCCL", "CUDA error", "cuDNN error", "CUBLAS_STATUS")


def _given(params: dict, *names: str) -> dict:
    """The row's values for these request fields, leaving out unset ones so the request defaults apply."""
    return {n: params[n] for n in names if params.get(n) is not None}


COMMON = ("prompt", "negative_prompt", "seed", "steps", "aspect_ratio", "guidance")


def _text2image(row: ResolvedRow, output_root: str) -> Text2ImageRequest:
    return Text2ImageRequest(**_given(row.params, *COMMON, "distill_steps"))


def _video2world(row: ResolvedRow, output_root: str) -> Video2WorldRequest:
    return Video2WorldRequest(input_path=row.input, **_given(row.params, *COMMON, "num_conditional_frames"))


def _text2world(row: ResolvedRow) -> Text2WorldRequest:
    return Text2WorldRequest(**_given(row.params, *COMMON, "image_guidance"))


def _text2world_image(row: ResolvedRow, output_root: str) -> Text2ImageRequest:
    return image_request(_text2world(row))


def _text2world_video(row: ResolvedRow, output_root: str) -> Video2WorldRequest:
    return video_request(_text2world(row), intermediate_url(output_root, row.id))


# The request each stage's pipeline gets for a row (best-of-N's candidates are Video2World requests).
REQUESTS: dict[Stage, Callable[[ResolvedRow, str], object]] = {
    TEXT2IMAGE.final: _text2image,
    VIDEO2WORLD.final: _video2world,
    TEXT2WORLD.stages[0]: _text2world_image,
    TEXT2WORLD.stages[1]: _text2world_video,
    BEST_OF_N.stages[0]: _video2world,
}


def build_request(stage: Stage, row: ResolvedRow, output_root: str):
    return REQUESTS[stage](row, output_root)


def output_of(stage: Stage, row: ResolvedRow, output_root: str) -> str:
    return intermediate_url(output_root, row.id) if stage.intermediate else row.output


def load_pipeline(shard: Shard, device: str | None, cp: ContextParallel | None = None):
    m = shard.model
    stage = stage_of(shard.task)
    if stage.image_model:
        size = m.model_size
        if stage.intermediate and size is None:
            # Text2World pairs the image model with the video model: embedded with embedded.
            size = None if _video_checkpoint_present(shard) else "embedded"
        return Text2ImagePipeline.load(size, _dir(m.checkpoint_dir), m.dit_path, m.distilled, device=device)
    return Video2WorldPipeline.load(
        m.model_size, m.resolution, m.fps, _dir(m.checkpoint_dir), m.dit_path, device, cp=cp, natten=m.natten
    )


def load_guarded_pipeline(shard: Shard, device: str | None, cp: ContextParallel | None = None):
    """load_pipeline with the shard's guardrail (on by default) and prompt refiner around it."""
    pipeline = load_pipeline(shard, device, cp)
    stage = stage_of(shard.task)
    rail, refiner = load_safety(
        _dir(shard.model.checkpoint_dir),
        pipeline_device(pipeline),
        pipeline.task,  # the model family: what the guardrail checks and whether a refiner applies
        shard.guardrail,
        refiner=shard.refiner,
    )
    return guard_pipeline(pipeline, rail, refiner, check_prompt=stage.checks_prompt)


def _dir(checkpoint_dir: str | None) -> Path | None:
    return Path(checkpoint_dir) if checkpoint_dir else None


def _video_checkpoint_present(shard: Shard) -> bool:
    preset = video2world_preset("2B", shard.model.resolution, shard.model.fps, natten=shard.model.natten)
    return checkpoints_present(preset, _dir(shard.model.checkpoint_dir) or default_checkpoint_dir())


def is_done(shard: Shard, row: ResolvedRow) -> bool:
    record = read_record(shard.records_dir, row.id)
    return (
        record is not None
        and record.status == "ok"
        and media.exists(output_of(stage_of(shard.task), row, shard.output_root))
    )


def run_row(
    shard: Shard, row: ResolvedRow, rank: int, attempt: int, output: str, work: Callable[[], dict | None]
) -> ResultRecord:
    """Run one row's `work` and return its record: ok (with what `work` returns as extra), blocked by
    the guardrail, or failed with the error. Device errors (CUDA, NCCL) propagate: the process is
    unhealthy and the shard must be retried, not the row recorded."""
    start = time.perf_counter()
    status, error, extra = "ok", None, {}
    try:
        extra = work() or {}
    except GuardrailBlocked as e:
        status, error = "blocked", str(e)
    except ROW_ERRORS as e:
        status, error = "failed", _message(e)
    except Exception as e:
        if any(marker in str(e) for marker in DEVICE_ERROR_MARKERS):
            raise
        status, error = "failed", f"{type(e).__name__}: {e}"
        log.error("row %d (%s) failed:\n%s", row.row_number, row.id, traceback.format_exc())
    if error:
        log.warning("row %d (%s): %s", row.row_number, row.id, error)
    return ResultRecord(
        id=row.id,
        row_number=row.row_number,
        status=status,
        output=output,
        seconds=round(time.perf_counter() - start, 3),
        error=error,
        shard_id=shard.shard_id,
        rank=rank,
        attempt=attempt,
        extra=extra,
    )


def _message(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"field '{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in error.errors())
    return str(error)
