"""One job per task stage: what the batch worker does with a shard's rows.

A job is made per shard (cheap: it only knows the shard), says where a row's output goes and whether the
row is done (its "ok" record and output exist), loads its models once (`load`) and runs row after row
(`run`, which writes the output and returns what the row's record adds). `run_row` turns one run into a
`ResultRecord` (ok, blocked by the guardrail, failed). The worker (cosmos_core/worker.py) looks a stage's
job up in `JOBS`. Best-of-N's scoring and file naming are cosmos_core/bestofn.py's.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from cosmos_core import media
from cosmos_core.bestofn import base_stem, copy_file, read_sidecar, score_video
from cosmos_core.critic import load_critic
from cosmos_core.guardrail import GuardrailBlocked, guard_pipeline, load_safety
from cosmos_core.models import default_checkpoint_dir
from cosmos_core.parallel import ContextParallel
from cosmos_core.pipelines import Text2ImagePipeline, Text2WorldPipeline, Video2WorldPipeline, save_generation
from cosmos_core.pipelines.base import sidecar_url
from cosmos_core.pipelines.video2world import ConditioningError
from cosmos_core.reason1 import reason1_dir
from manifests import ModelSpec, ResolvedRow, ResultRecord, Shard, Stage, read_record, stage_of
from manifests.storage import remove_stale_temporaries
from manifests.tasks import BEST_OF_N, TEXT2IMAGE, TEXT2WORLD, VIDEO2WORLD, intermediate_url

log = logging.getLogger("cosmos_core.worker")

# A row's own fault: record it as failed and go on with the next row.
ROW_ERRORS = (media.MediaError, ConditioningError, ValidationError, ValueError, FileNotFoundError)
# The process's fault: exit non-zero so that the shard is retried (on this or another host).
DEVICE_ERROR_MARKERS = ("out of memory", "NCCL", "CUDA error", "cuDNN error", "CUBLAS_STATUS")


class Job:
    """A stage's work on a shard's rows. Subclasses set `load` and `run`; `output`/`done` as needed."""

    def __init__(self, shard: Shard) -> None:
        self.shard = shard
        self.stage = stage_of(shard.task)
        self.cp: ContextParallel | None = None

    @property
    def writes(self) -> bool:
        """Under context parallelism every rank runs each row and rank 0 alone writes."""
        return self.cp is None or self.cp.rank == 0

    def output(self, row: ResolvedRow) -> str:
        return row.output

    def done(self, row: ResolvedRow) -> bool:
        record = read_record(self.shard.records_dir, row.id)
        return record is not None and record.status == "ok" and media.exists(self.output(row))

    def clear_leftovers(self, row: ResolvedRow) -> None:
        """Before a row runs again: remove the temporaries an earlier, killed attempt left beside its output
        and sidecar (storage.remove_stale_temporaries: only those no write is still touching)."""
        output = self.output(row)
        for url in (output, sidecar_url(output)):
            for path in remove_stale_temporaries(url):
                log.info("row %d (%s): removed %s, left by an earlier attempt", row.row_number, row.id, path)

    def load(self, device: str | None, cp: ContextParallel | None = None) -> None:
        raise NotImplementedError

    def run(self, row: ResolvedRow) -> dict | None:
        raise NotImplementedError

    def guarded(self, pipeline):
        """The pipeline with the shard's guardrail (on by default) and prompt refiner around it."""
        rail, refiner = load_safety(
            checkpoint_dir(self.shard.model),
            pipeline.bundle.device,
            pipeline.makes_video,
            self.shard.guardrail,
            refiner=self.shard.refiner,
        )
        return guard_pipeline(pipeline, rail, refiner)


class Text2ImageJob(Job):
    def load(self, device: str | None, cp: ContextParallel | None = None) -> None:
        m = self.shard.model
        self.pipeline = self.guarded(
            Text2ImagePipeline.load(m.model_size, checkpoint_dir(m), m.dit_path, m.distilled, device=device)
        )

    def run(self, row: ResolvedRow) -> dict:
        generation = self.pipeline.generate(row.request)
        save_generation(generation, row.output)
        return record_extra(generation)


class Video2WorldJob(Job):
    def load(self, device: str | None, cp: ContextParallel | None = None) -> None:
        self.cp = cp
        self.pipeline = self.guarded(load_video2world(self.shard.model, device, cp))

    def run(self, row: ResolvedRow) -> dict:
        generation = self.pipeline.generate(row.request)
        if self.writes:
            save_generation(generation, row.output)
        return record_extra(generation)


class Text2WorldJob(Job):
    """One of Text2World's stages, through the pipeline the command runs (cosmos_core/pipelines/text2world.py):
    the image stage writes each row's first frame at intermediate_url, the video stage animates it."""

    def output(self, row: ResolvedRow) -> str:
        return intermediate_url(self.shard.output_root, row.id) if self.stage.intermediate else row.output

    def load(self, device: str | None, cp: ContextParallel | None = None) -> None:
        m = self.shard.model
        self.cp = cp
        pipeline = Text2WorldPipeline.load(
            m.model_size,
            m.resolution,
            m.fps,
            checkpoint_dir(m),
            m.dit_path,
            m.dit_path,
            device,
            cp=cp,
            natten=m.natten,
            stages=("image",) if self.stage.image_model else ("video",),
        )
        self.pipeline = self.guarded(pipeline)

    def run(self, row: ResolvedRow) -> dict:
        image_url = intermediate_url(self.shard.output_root, row.id)
        if self.stage.intermediate:
            return record_extra(self.pipeline.generate_image(row.request, image_url))  # writes it
        video = self.pipeline.generate_video(row.request, image_url)
        if self.writes:
            save_generation(video, row.output)
        return record_extra(video)


# Best-of-N (the Prefect deployment video2world/best-of-n), two stages:
# - generate: each row's candidates, seeds seed..seed+num_generations-1, under
#   `<output_root>/.worldmill/candidates/<row id>/<row id>_seed{seed}.mp4` (a retry finds them);
# - score: each candidate scored with the row's num_critic_trials, reports beside them
#   (`<row id>_seed{seed}_score{pct:03d}.html/.json`, cosmos_core/bestofn.py), the best candidate copied to
#   the row's output with a sidecar naming every candidate's score.


def candidates_dir(output_root: str, row_id: str) -> str:
    return f"{output_root.rstrip('/')}/.worldmill/candidates/{row_id}"


def candidates(output_root: str, row: ResolvedRow) -> list[tuple[int, str]]:
    """(seed, video URL) of each of a row's candidates."""
    folder = candidates_dir(output_root, row.id)
    return [(seed, f"{folder}/{row.id}_seed{seed}.mp4") for seed in row.request.seeds()]


class BestOfNGenerateJob(Job):
    """Every candidate of a row that is not there yet. A refused prompt blocks the row; a refused video
    only drops that seed (the row is blocked when every seed is)."""

    def output(self, row: ResolvedRow) -> str:
        return candidates_dir(self.shard.output_root, row.id)

    def done(self, row: ResolvedRow) -> bool:
        record = read_record(self.shard.records_dir, row.id)
        made = record.extra.get("candidates", []) if record is not None and record.status == "ok" else []
        return bool(made) and all(media.exists(url) for url in made)

    def load(self, device: str | None, cp: ContextParallel | None = None) -> None:
        self.pipeline = self.guarded(load_video2world(self.shard.model, device))

    def run(self, row: ResolvedRow) -> dict:
        request = row.request
        made, blocked, last_block = [], [], None
        for seed, url in candidates(self.shard.output_root, row):
            if media.exists(url) and media.exists(f"{url}.json"):
                made.append(url)
                continue
            try:
                generation = self.pipeline.generate(request.candidate(seed))
            except GuardrailBlocked as error:
                if error.stage != "video":
                    raise
                blocked.append(seed)
                last_block = error
                continue
            save_generation(generation, url)
            made.append(url)
        if not made and last_block is not None:
            raise last_block
        return {"candidates": made, "blocked_seeds": blocked}


class BestOfNScoreJob(Job):
    """Score a row's candidates, copy the best (highest score, then lowest seed) to the row's output."""

    def load(self, device: str | None, cp: ContextParallel | None = None) -> None:
        root = checkpoint_dir(self.shard.model) or default_checkpoint_dir()
        self.critic = load_critic(reason1_dir(root), device)

    def run(self, row: ResolvedRow) -> dict:
        critic, request, output_root = self.critic, row.request, self.shard.output_root
        conditioning = (row.input, request.num_conditional_frames)
        scored = []
        for candidate_seed, url in candidates(output_root, row):
            if not media.exists(url):
                continue
            result, files = score_video(
                critic, url, request.num_critic_trials, request.seed, conditioning, base_stem(url)
            )
            scored.append(
                {
                    "seed": candidate_seed,
                    "video": url,
                    **{k: v for k, v in result.summary().items() if k != "metrics"},
                    **files,
                }
            )
        if not scored:
            raise ValueError(f"row {row.id}: no candidate video under {candidates_dir(output_root, row.id)}")
        best = max(scored, key=lambda c: (c["score"], -c["seed"]))
        copy_file(best["video"], row.output)
        sidecar = read_sidecar(best["video"]) or {}
        sidecar.update(
            output=row.output, best_of_n={"critic": critic.name, "best": best, "candidates": scored}
        )
        media.write_text(f"{row.output}.json", json.dumps(sidecar, indent=2, default=str) + "\n")
        log.info("row %s: best candidate seed %d, score %.2f%%", row.id, best["seed"], 100 * best["score"])
        return {"critic": critic.name, "best": best, "candidates": scored}


# The job of each stage of each task (manifests/tasks.py).
JOBS: dict[Stage, type[Job]] = {
    TEXT2IMAGE.final: Text2ImageJob,
    VIDEO2WORLD.final: Video2WorldJob,
    **{stage: Text2WorldJob for stage in TEXT2WORLD.stages},
    BEST_OF_N.stages[0]: BestOfNGenerateJob,
    BEST_OF_N.stages[1]: BestOfNScoreJob,
}


def record_extra(generation) -> dict:
    """What a row's record repeats from its sidecar: prompt truncation and the warnings (pipelines/base.py)."""
    extra = {k: v for k, v in generation.sidecar.items() if k.endswith("_truncated")}
    if generation.sidecar.get("warnings"):
        extra["warnings"] = list(generation.sidecar["warnings"])
    return extra


def load_video2world(m: ModelSpec, device: str | None, cp: ContextParallel | None = None):
    return Video2WorldPipeline.load(
        m.model_size, m.resolution, m.fps, checkpoint_dir(m), m.dit_path, device, cp=cp, natten=m.natten
    )


def checkpoint_dir(m: ModelSpec) -> Path | None:
    return Path(m.checkpoint_dir) if m.checkpoint_dir else None


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
