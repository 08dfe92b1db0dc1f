"""Best-of-N as the batch worker runs it (the Prefect deployment video2world/best-of-n), two shard steps:

- generate: each row's candidates, seeds seed..seed+num_generations-1, under
  `<output_root>/.worldmill/candidates/<row id>/<row id>_seed{seed}.mp4`;
- score: each candidate scored with the row's num_critic_trials, reports beside them
  (`<row id>_seed{seed}_score{pct:03d}.html/.json`), the best candidate copied to the row's output with a
  sidecar naming every candidate's score. Candidates keep their names in batch (a retry finds them).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from cosmos_core import media
from cosmos_core.bestofn import base_stem, copy_file, read_sidecar, score_video
from cosmos_core.critic import load_critic
from cosmos_core.guardrail import GuardrailBlocked
from cosmos_core.jobs import build_request, load_guarded_pipeline, run_row
from cosmos_core.models import default_checkpoint_dir
from cosmos_core.pipelines import save_generation
from cosmos_core.reason1 import reason1_dir
from manifests import read_record, stage_of, write_record

log = logging.getLogger("cosmos_core")


def candidates_dir(output_root: str, row_id: str) -> str:
    return f"{output_root.rstrip('/')}/.worldmill/candidates/{row_id}"


def candidates(output_root: str, row) -> list[tuple[int, str]]:
    """(seed, video URL) of each of a row's candidates."""
    folder = candidates_dir(output_root, row.id)
    first = int(row.params.get("seed", 0))
    count = int(row.params.get("num_generations", 2))
    return [(seed, f"{folder}/{row.id}_seed{seed}.mp4") for seed in range(first, first + count)]


def run_bestofn_shard(shard, rank: int = 0, world_size: int = 1, device: str | None = None) -> dict[str, int]:
    """A best-of-n-generate or best-of-n-score shard: this rank's stripe of rows, one record per row."""
    scoring = stage_of(shard.task).best_of_n == "score"
    mine = shard.rows[rank::world_size]

    def done(row) -> bool:
        record = read_record(shard.records_dir, row.id)
        if record is None or record.status != "ok":
            return False
        if scoring:
            return media.exists(row.output)
        return all(media.exists(url) for url in record.extra.get("candidates", [])) and bool(
            record.extra.get("candidates")
        )

    todo = [row for row in mine if not done(row)]
    counts = {"ok": 0, "failed": 0, "blocked": 0, "skipped": len(mine) - len(todo)}
    if rank == 0:
        log.info("shard %s: %d row(s), %d already done", shard.shard_id, len(shard.rows), counts["skipped"])
    if not todo:
        return counts
    if scoring:
        critic = load_critic(
            reason1_dir(Path(shard.model.checkpoint_dir or default_checkpoint_dir())), device
        )
    else:
        pipeline = load_guarded_pipeline(shard, device)
    attempt = int(os.environ.get("WORLDMILL_ATTEMPT", "1"))
    for row in todo:
        output = row.output if scoring else candidates_dir(shard.output_root, row.id)

        def work(row=row) -> dict:
            return (
                score_row(critic, row, shard.output_root) if scoring else generate_row(pipeline, row, shard)
            )

        record = run_row(shard, row, rank, attempt, output, work)
        write_record(shard.records_dir, record)
        counts[record.status] += 1
    return counts


def generate_row(pipeline, row, shard) -> dict:
    """Every candidate of a row that is not there yet. A refused prompt blocks the row; a refused video
    only drops that seed (the row is blocked when every seed is)."""

    request = build_request(stage_of(shard.task), row, shard.output_root)
    made, blocked, last_block = [], [], None
    for seed, url in candidates(shard.output_root, row):
        if media.exists(url) and media.exists(f"{url}.json"):
            made.append(url)
            continue
        try:
            generation = pipeline.generate(request.model_copy(update={"seed": seed}))
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


def score_row(critic, row, output_root: str) -> dict:
    """Score a row's candidates, copy the best (highest score, then lowest seed) to the row's output."""
    trials = int(row.params.get("num_critic_trials", 5))
    seed = int(row.params.get("seed", 0))
    conditioning = (row.input, int(row.params.get("num_conditional_frames") or 1))
    scored = []
    for candidate_seed, url in candidates(output_root, row):
        if not media.exists(url):
            continue
        result, files = score_video(critic, url, trials, seed, conditioning, base_stem(url))
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
    sidecar.update(output=row.output, best_of_n={"critic": critic.name, "best": best, "candidates": scored})
    media.write_text(f"{row.output}.json", json.dumps(sidecar, indent=2, default=str) + "\n")
    log.info("row %s: best candidate seed %d, score %.2f%%", row.id, best["seed"], 100 * best["score"])
    return {"critic": critic.name, "best": best, "candidates": scored}
