"""One row of a shard, as the batch worker handles it: the request it builds from the row, the
pipeline it loads for the shard, whether the row is done, and the record of running it.

Shared by the worker's loop (cosmos_core/worker.py) and the best-of-N shard tasks (cosmos_core/bestofn.py),
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
from cosmos_core.guardrail import GuardrailBlocked
from cosmos_core.models import checkpoints_present, default_checkpoint_dir
from cosmos_core.parallel import ContextParallel
from cosmos_core.pipelines import Text2ImagePipeline, Video2WorldPipeline
from cosmos_core.pipelines.text2world import image_request, video_request
from cosmos_core.pipelines.video2world import ConditioningError
from cosmos_core.presets import video2world_preset
from cosmos_core.requests import Text2ImageRequest, Text2WorldRequest, Video2WorldRequest
from manifests import ResolvedRow, ResultRecord, Shard, read_record

log = logging.getLogger("cosmos_core.worker")

# A row's own fault: record it as failed and go on with the next row.
ROW_ERRORS = (media.MediaError, ConditioningError, ValidationError, ValueError, FileNotFoundError)
# The process's fault: exit non-zero so that the shard is retried (on this or another host).
DEVICE_ERROR_MARKERS = ("out of memory", "NCCL", "CUDA error", "cuDNN error", "CUBLAS_STATUS")


def text2world_image_url(output_root: str, row_id: str) -> str:
    """Where stage 1 of text2world leaves a row's first frame (removed by the flow after stage 2)."""
    return (
        f"{output_root.rstrip('/')}/.worldmill/text2world-images/{row_id}.png"  # lossless: see text2world.py
    )


def _given(params: dict, *names: str) -> dict:
    """The row's values for these request fields, leaving out unset ones so the request defaults apply."""
    return {n: params[n] for n in names if params.get(n) is not None}


COMMON = ("prompt", "negative_prompt", "seed", "steps", "aspect_ratio", "guidance")


def build_request(task: str, row: ResolvedRow, output_root: str):
    p = row.params
    if task == "text2image":
        return Text2ImageRequest(**_given(p, *COMMON, "distill_steps"))
    if task == "video2world":
        return Video2WorldRequest(input_path=row.input, **_given(p, *COMMON, "num_conditional_frames"))
    request = Text2WorldRequest(**_given(p, *COMMON, "image_guidance"))
    if task == "text2world-image":
        return image_request(request)
    return video_request(request, text2world_image_url(output_root, row.id))


def output_of(task: str, row: ResolvedRow, output_root: str) -> str:
    return text2world_image_url(output_root, row.id) if task == "text2world-image" else row.output


def load_pipeline(shard: Shard, device: str | None, cp: ContextParallel | None = None):
    m = shard.model
    if shard.task in ("text2image", "text2world-image"):
        size = m.model_size
        if shard.task == "text2world-image" and size is None:
            # Text2World pairs the image model with the video model: embedded with embedded.
            size = None if _video_checkpoint_present(shard) else "embedded"
        return Text2ImagePipeline.load(size, _dir(m.checkpoint_dir), m.dit_path, m.distilled, device=device)
    return Video2WorldPipeline.load(
        m.model_size, m.resolution, m.fps, _dir(m.checkpoint_dir), m.dit_path, device, cp=cp, natten=m.natten
    )


def load_guarded_pipeline(shard: Shard, device: str | None, cp: ContextParallel | None = None):
    """load_pipeline with the shard's guardrail (on by default) and prompt refiner around it."""
    from cosmos_core.guardrail import guard_pipeline, load_safety
    from cosmos_core.guardrail.guarded import pipeline_device

    pipeline = load_pipeline(shard, device, cp)
    task = "text2image" if shard.task.endswith("-image") or shard.task == "text2image" else "video2world"
    rail, refiner = load_safety(
        _dir(shard.model.checkpoint_dir),
        pipeline_device(pipeline),
        task,
        shard.guardrail,
        refiner=shard.refiner,
    )
    # text2world-video: the prompt was checked by the image stage; only a refined prompt is checked again.
    return guard_pipeline(pipeline, rail, refiner, check_prompt=shard.task != "text2world-video")


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
        and media.exists(output_of(shard.task, row, shard.output_root))
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
