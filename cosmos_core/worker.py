"""The batch worker: one shard of a manifest, on one host's GPUs.

    torchrun --nproc_per_node=G -m cosmos_core.worker <shard.json>
    python -m cosmos_core.worker <shard.json>            # one process

Each rank loads its models once, takes its stripe of the shard's rows (row i goes to rank i % G, as in
DiT's sample_ddp.py; seeds come from the rows, not the rank), writes each output atomically and one
result record per row. A row whose output and "ok" record both exist is skipped, so a rerun of a
shard (a retry after a crash) only generates what is missing. Rank 0 alone logs progress.

Exit codes: 0 when every row has a record (some may be "failed": bad rows are recorded, not retried);
non-zero when the process itself failed (CUDA out of memory, NCCL or other device errors, a crash):
the Prefect task retries the shard. A shard's task is a stage of the registry (manifests/tasks.py); `JOBS`
gives its job (cosmos_core/jobs.py). With the shard's `guardrail` on, a
refused prompt or video is recorded "blocked" ("blocked by guardrail: <check>").
"""

from __future__ import annotations

import logging
import os
import sys

from cosmos_core.checkpoints import CheckpointError
from cosmos_core.device import configure_threads
from cosmos_core.jobs import JOBS, run_row
from cosmos_core.parallel import ContextParallel, maybe_init_distributed
from manifests import Shard, read_shard, stage_of, write_record
from manifests.presets import PresetError
from manifests.sharding import LANES_ENV

log = logging.getLogger("cosmos_core.worker")


def run_shard(
    shard: Shard,
    rank: int = 0,
    world_size: int = 1,
    device: str | None = None,
    cp: ContextParallel | None = None,
) -> dict[str, int]:
    """Run this rank's rows of the shard; returns counts per status (skipped = already done).

    Data parallelism: rank r takes rows r, r+P, ... Context parallelism (`cp`, stages that allow it):
    every rank runs every row, the DiT splits the frames, rank 0 alone writes outputs and records.
    Other stages stripe their rows even in a context job.
    """
    stage = stage_of(shard.task)
    job = JOBS[stage](shard)
    if cp is not None and not stage.context_parallel:
        cp = None
    mine = shard.rows if cp is not None else shard.rows[rank::world_size]
    writes = cp is None or rank == 0
    todo = [row for row in mine if not job.done(row)]
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
    job.load(device, cp)
    attempt = int(os.environ.get("WORLDMILL_ATTEMPT", "1"))
    for done, row in enumerate(todo, start=1):
        if writes:
            job.clear_leftovers(row)
        record = run_row(shard, row, rank, attempt, job.output(row), lambda row=row: job.run(row))
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
    # this host runs WORLDMILL_LANES shards at once, each with world_size ranks: a share of the cores each
    threads = configure_threads(
        int(os.environ.get(LANES_ENV) or 1) * int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    )
    log.info("torch threads: %d", threads)
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
