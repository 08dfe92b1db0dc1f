"""The batch worker: one shard of a manifest, on one host's GPUs.

    torchrun --nproc_per_node=G -m cosmos_core.worker <shard.json>
    python -m cosmos_core.worker <shard.json>            # one process

Each rank loads its models once, takes its stripe of the shard's rows (row i goes to rank i % G, as in
DiT's sample_ddp.py; seeds come from the rows, not the rank), writes each output atomically and one
result record per row. A row whose output and "ok" record both exist is skipped, so a rerun of a
shard (a retry after a crash) only generates what is missing. Rank 0 alone logs progress.

Exit codes: 0 when every row has a record (some may be "failed": bad rows are recorded, not retried);
non-zero when the process itself failed (CUDA out of memory, NCCL or other device errors, a crash):
the Prefect task retries the shard. Shard tasks: text2image, video2world, and the two stages of
text2world, "text2world-image" (writes the first frame to storage) and "text2world-video"; and the two
of best-of-N, "best-of-n-generate" and "best-of-n-score" (cosmos_core/bestofn.py). With the shard's
`guardrail` on, a refused prompt or video is recorded "blocked" ("blocked by guardrail: <check>").
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable

from pydantic import ValidationError

from cosmos_core import media
from cosmos_core.checkpoints import CheckpointError
from cosmos_core.guardrail import GuardrailBlocked
from cosmos_core.parallel import ContextParallel, maybe_init_distributed
from cosmos_core.pipelines import Text2ImagePipeline, Video2WorldPipeline, save_generation
from cosmos_core.pipelines.text2world import image_request, video_request
from cosmos_core.pipelines.video2world import ConditioningError
from cosmos_core.presets import PresetError
from cosmos_core.requests import Text2ImageRequest, Text2WorldRequest, Video2WorldRequest
from manifests import ResolvedRow, ResultRecord, Shard, read_record, read_shard, write_record

log = logging.getLogger("cosmos_core.worker")

# A row's own fault: record it as failed and go on with the next row.
ROW_ERRORS = (media.MediaError, ConditioningError, ValidationError, ValueError, FileNotFoundError)
# The process's fault: exit non-zero so that the shard is retried (on this or another host).
DEVICE_ERROR_MARKERS = ("out of memory", "NCCL", "CUDA error", "cuDNN error", "CUBLAS_STATUS")

SHARD_TASKS = (
    "text2image",
    "video2world",
    "text2world-image",
    "text2world-video",
    "best-of-n-generate",
    "best-of-n-score",
)


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


def _dir(checkpoint_dir: str | None):
    from pathlib import Path

    return Path(checkpoint_dir) if checkpoint_dir else None


def _video_checkpoint_present(shard: Shard) -> bool:
    from cosmos_core.models import checkpoints_present, default_checkpoint_dir
    from cosmos_core.presets import video2world_preset

    preset = video2world_preset("2B", shard.model.resolution, shard.model.fps, natten=shard.model.natten)
    return checkpoints_present(preset, _dir(shard.model.checkpoint_dir) or default_checkpoint_dir())


def is_done(shard: Shard, row: ResolvedRow) -> bool:
    record = read_record(shard.records_dir, row.id)
    return (
        record is not None
        and record.status == "ok"
        and media.exists(output_of(shard.task, row, shard.output_root))
    )


def run_shard(
    shard: Shard,
    rank: int = 0,
    world_size: int = 1,
    device: str | None = None,
    cp: ContextParallel | None = None,
) -> dict[str, int]:
    """Generate this rank's rows of the shard; returns counts per status (skipped = already done).

    Data parallelism: rank r takes rows r, r+P, ... Context parallelism (`cp`, Video2World stages):
    every rank runs every row, the DiT splits the frames, rank 0 alone writes outputs and records.
    Text2Image stages have no context parallelism and stripe their rows even in a context job.
    """
    if shard.task not in SHARD_TASKS:
        raise ValueError(f"unknown shard task {shard.task!r}; expected one of {', '.join(SHARD_TASKS)}")
    if shard.task.startswith("best-of-n-"):
        from cosmos_core.bestofn import run_bestofn_shard

        return run_bestofn_shard(shard, rank, world_size, device)
    if cp is not None and shard.task not in ("video2world", "text2world-video"):
        cp = None
    mine = shard.rows if cp is not None else shard.rows[rank::world_size]
    writes = cp is None or rank == 0
    todo = [row for row in mine if not is_done(shard, row)]
    counts = {"ok": 0, "failed": 0, "blocked": 0, "skipped": len(mine) - len(todo)}
    if rank == 0:
        log.info(
            "shard %s: %d row(s) on %d rank(s), %d already done",
            shard.shard_id,
            len(shard.rows),
            world_size,
            counts["skipped"],
        )
    if not todo:
        return counts
    pipeline = load_guarded_pipeline(shard, device, cp)
    attempt = int(os.environ.get("WORLDMILL_ATTEMPT", "1"))
    for done, row in enumerate(todo, start=1):
        output = output_of(shard.task, row, shard.output_root)

        def generate(row: ResolvedRow = row, output: str = output) -> None:
            generation = pipeline.generate(build_request(shard.task, row, shard.output_root))
            if writes:
                save_generation(generation, output)

        record = run_row(shard, row, rank, attempt, output, generate)
        if writes:
            write_record(shard.records_dir, record)
        counts[record.status] += 1
        if rank == 0:
            log.info(
                "progress %d/%d rows on rank 0 (%.1f s for row %d)",
                done,
                len(todo),
                record.seconds,
                row.row_number,
            )
    return counts


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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m cosmos_core.worker <shard.json>", file=sys.stderr)
        return 2
    rank = int(os.environ.get("RANK", "0"))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"[%(asctime)s rank {rank}] %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    logging.getLogger("cosmos_core").setLevel(logging.INFO if rank == 0 else logging.WARNING)
    device = os.environ.get("WORLDMILL_DEVICE")
    if device is None and world_size > 1:
        import torch

        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        shard = read_shard(argv[0])
        cp = None
        if shard.parallelism == "context" and world_size > 1:
            device = str(maybe_init_distributed().device)
            cp = ContextParallel()
        counts = run_shard(shard, rank, world_size, device, cp)
    except (CheckpointError, PresetError) as error:
        log.error("cannot load the models: %s", error)
        return 3
    log.info("done: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
