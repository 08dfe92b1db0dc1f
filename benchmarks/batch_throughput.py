"""Orchestration overhead of the batch pipeline: a large text2image manifest through the real flow.

    python benchmarks/batch_throughput.py --rows 2000 --shard_size 250 --lanes 2 [--steps 35]

Runs `text2image/batch` in-process against a real Prefect server (prefect_test_harness), shards on the
embedded model in worker subprocesses, `lanes` of them at a time (the "gpu" global concurrency limit;
on this CPU machine a lane is one core). Prints rows/s, the task runs created and the share of wall
time spent outside model compute:

    overhead = 1 - (sum of per-row generation seconds) / (wall seconds x lanes)

Per-row seconds come from the result records (generation + atomic write of each output). Everything
else counts as overhead: Prefect, manifest reading, shard files, worker start-up and model loading.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def write_manifest(path: Path, rows: int, steps: int) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "seed", "steps", "output"])
        for i in range(rows):
            writer.writerow([f"a red ball number {i} falls on a gray floor", i, steps, f"img/{i:05d}.jpg"])


async def set_gpu_limit(lanes: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    async with get_client() as client:
        await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="gpu", limit=lanes))


async def count_task_runs(flow_run_id) -> int:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        return len(runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--shard_size", type=int, default=250)
    parser.add_argument("--lanes", type=int, default=2, help="shards running at once (GPU slots)")
    parser.add_argument("--steps", type=int, default=35)
    parser.add_argument("--out", type=Path, help="JSON results file")
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.lanes)))
    os.environ["COSMOS_CHECKPOINT_DIR"] = tempfile.mkdtemp()  # no checkpoints: the embedded model
    from prefect.testing.utilities import prefect_test_harness

    from flows.text2image import text2image_batch

    work = Path(tempfile.mkdtemp(prefix="batch-throughput-"))
    manifest = work / "manifest.csv"
    write_manifest(manifest, args.rows, args.steps)
    with prefect_test_harness():
        asyncio.run(set_gpu_limit(args.lanes))
        start = time.perf_counter()
        state = text2image_batch(
            manifest=str(manifest),
            output_root=str(work / "out"),
            options={"shard_size": args.shard_size},
            return_state=True,
        )
        wall = time.perf_counter() - start
        task_runs = asyncio.run(count_task_runs(state.state_details.flow_run_id))
    with open(work / "out" / "results.csv", newline="") as f:
        records = list(csv.DictReader(f))
    ok = sum(r["status"] == "ok" for r in records)
    compute = sum(float(r["seconds"]) for r in records)
    result = {
        "rows": args.rows,
        "ok": ok,
        "shard_size": args.shard_size,
        "lanes": args.lanes,
        "steps": args.steps,
        "wall_s": round(wall, 2),
        "rows_per_s": round(ok / wall, 3),
        "task_runs": task_runs,
        "rows_per_task_run": round(args.rows / max(task_runs, 1), 1),
        "compute_s": round(compute, 2),
        "overhead_share": round(1 - compute / (wall * args.lanes), 4),
        "state": state.name,
        "machine": f"{platform.node()} {os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "date": datetime.date.today().isoformat(),
    }
    print(json.dumps(result, indent=2))
    print(
        f"rows/s {result['rows_per_s']}  task runs {task_runs} (1 per {result['rows_per_task_run']} rows)  "
        f"overhead {100 * result['overhead_share']:.1f}% of wall x lanes"
    )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
