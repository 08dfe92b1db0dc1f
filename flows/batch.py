"""One batch, top to bottom: manifest -> shards -> GPU work -> result records -> report.

The three batch flows (text2image, video2world, text2world) are this function with their stages.
One Prefect task per shard (tens of rows), never per row: the SQLite server ingests ~50 task runs/s and
every run costs the client ~5 ms. Shards run in this flow run's own worker (a task each,
concurrently, each holding GPU slots), or are dispatched as runs of the `generate-shard` deployment on
a GPU work pool so that several hosts work one manifest.
"""

from __future__ import annotations

import posixpath
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from prefect import get_run_logger, task
from prefect.deployments import run_deployment

from flows.progress import RunProgress
from manifests import (
    Manifest,
    ModelSpec,
    ResultRecord,
    Shard,
    plan_shards,
    read_manifest,
    read_records,
    storage,
    task_spec,
    write_shard,
)
from manifests.sharding import LANES_ENV
from manifests.tasks import intermediate_root
from tasks.reports import grouped_errors, publish_report, publish_table, remove_tree
from tasks.shards import GPU_SLOT, ShardCrashed, retry_only_crashes, run_shard


class RowsFailed(RuntimeError):
    """Some rows failed; raised after every other row finished, so that the flow run ends Failed."""


@dataclass
class BatchOptions:
    shard_size: int = 25
    gpus_per_shard: int | None = None  # None: the host's WORLDMILL_GPUS_PER_HOST job variable, else 1
    parallelism: Literal["data", "context"] = "data"  # rows over GPUs, or each video's frames over GPUs
    model: ModelSpec = field(default_factory=ModelSpec)
    input_root: str | None = None
    dispatch_deployment: str | None = None  # e.g. "generate-shard/gpu": shards run there
    guardrail: bool = True  # refused rows are recorded "blocked" and produce no output
    refiner: bool = False  # Cosmos-Reason1 rewrites video prompts (when its checkpoint is present)


def workdir(output_root: str) -> str:
    """Where shard files, records and temporaries live: beside the outputs, on the same storage."""
    return posixpath.join(output_root.rstrip("/"), ".worldmill")


@task(
    task_run_name="dispatch {shard_id}",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_only_crashes,
    cache_policy=None,
)
def dispatch_shard(deployment: str, shard_url: str, shard_id: str, gpus: int | None) -> dict:
    """Run one shard as a flow run of the generate-shard deployment (on a GPU pool) and wait for it.

    A run whose infrastructure died (a killed container or pod, a lost host: Prefect marks it Crashed)
    is retried as a new flow run, which skips the rows already done; a Failed run is not (its own shard
    task already retried the worker's crashes)."""
    flow_run = run_deployment(
        deployment, parameters={"shard_url": shard_url, "shard_id": shard_id, "gpus": gpus}, timeout=None
    )
    state = flow_run.state
    if state.is_completed():
        return {"shard_id": shard_id}
    detail = f": {state.message}" if state.message else ""
    error = f"shard {shard_id}: flow run {flow_run.name} ended {state.name}{detail}"
    if state.is_crashed():
        raise ShardCrashed(error)
    raise RuntimeError(error)


def run_stage(
    stage: str,
    rows_manifest: Manifest,
    output_root: str,
    options: BatchOptions,
    progress: RunProgress,
    on_shard_end=lambda records: None,
) -> dict:
    """All shards of one stage; returns {row id: record}; rows of a shard that failed for good get a
    "failed" record naming the shard's error. The progress artifact follows rows as they finish;
    `on_shard_end(records so far)` runs as each shard ends."""
    logger = get_run_logger()
    records_dir = posixpath.join(workdir(output_root), "records", stage)
    shards: list[Shard] = [
        shard.model_copy(
            update={
                "parallelism": options.parallelism,
                "guardrail": options.guardrail,
                "refiner": options.refiner,
            }
        )
        for shard in plan_shards(rows_manifest, options.shard_size, records_dir, options.model, task=stage)
    ]
    logger.info(
        "%s: %d row(s) in %d shard(s) of <= %d",
        stage,
        len(rows_manifest.rows),
        len(shards),
        options.shard_size,
    )

    window = shard_window(options)
    # shards of this run working on this host at once: each worker takes its share of the cores
    lanes = {LANES_ENV: str(min(window or len(shards), len(shards)) or 1)}

    def launch(shard: Shard):
        url = posixpath.join(workdir(output_root), "shards", f"{shard.shard_id}.json")
        write_shard(shard, url)
        if options.dispatch_deployment:
            deployment = options.dispatch_deployment
            return dispatch_shard.submit(deployment, url, shard.shard_id, options.gpus_per_shard)
        return run_shard.submit(url, shard.shard_id, options.gpus_per_shard, env=lanes)

    records: dict[str, ResultRecord] = {}
    progress.start(stage, len(rows_manifest.rows))

    def tick(running: list[Shard]) -> None:  # rows finished inside the shards still running
        ids = [row.id for shard in running for row in shard.rows]
        progress.rows_done(stage, {**read_records(records_dir, ids), **records})

    for shard, state in run_windowed(shards, launch, window, on_tick=tick):
        ids = [row.id for row in shard.rows]
        found = read_records(records_dir, ids)
        records.update(found)
        if not state.is_completed():
            error = f"shard {shard.shard_id} failed: {state.message or state.name}"
            logger.error(error)
            for row in shard.rows:
                if row.id not in found:
                    records[row.id] = ResultRecord(
                        id=row.id, row_number=row.row_number, status="failed", output=row.output, error=error
                    )
        progress.rows_done(stage, records)
        on_shard_end(records)
    return records


def shard_window(options: BatchOptions) -> int | None:
    """How many shards of this run to have running at once; None: all.

    Shards run in this run's worker wait for slots of the "gpu" concurrency limit, and a waiting task
    polls for a free slot only every few seconds (measured: 12-20 s idle per hand-over on a 2-core
    host, 6% of a 2,000-row run). Submitting no more shards than there are slots hands a lane over at
    once; the slot is still held around each launch, so other runs sharing the GPUs are respected.
    Dispatched shards are limited by the GPU pool's workers instead.
    """
    if options.dispatch_deployment:
        return None
    slots = gpu_slots()
    return None if slots is None else max(1, slots // max(options.gpus_per_shard or 1, 1))


def gpu_slots() -> int | None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(GPU_SLOT)
        except ObjectNotFound:
            return None
    return limit.limit if limit.active else None


def run_windowed(
    shards: list[Shard],
    launch,
    window: int | None,
    poll_seconds: float = 0.25,
    on_tick=None,
    tick_seconds: float = 5.0,
):
    """Launch shards keeping at most `window` in flight; yields (shard, final state) as each ends, and
    calls `on_tick(running shards)` every `tick_seconds` (to count the rows they have finished)."""
    waiting = list(shards)
    running = []
    last_tick = time.monotonic()
    while waiting or running:
        if on_tick is not None and time.monotonic() - last_tick >= tick_seconds:
            on_tick([shard for shard, _future in running])
            last_tick = time.monotonic()
        while waiting and (window is None or len(running) < window):
            shard = waiting.pop(0)
            running.append((shard, launch(shard)))
        for shard, future in list(running):
            state = future.state
            if state.is_final():
                running.remove((shard, future))
                yield shard, state
        if running:
            time.sleep(poll_seconds)


def finished_rows(manifest: Manifest, output_root: str, final_stage: str) -> dict[str, ResultRecord]:
    """The records of the rows whose last stage succeeded and whose output exists."""
    records_dir = posixpath.join(workdir(output_root), "records", final_stage)
    records = read_records(records_dir, [row.id for row in manifest.rows])
    by_id = {row.id: row for row in manifest.rows}
    ok = [row_id for row_id, record in records.items() if record.status == "ok"]
    with ThreadPoolExecutor(16) as pool:  # one existence check per row: concurrent on object storage
        present = pool.map(lambda row_id: storage.exists(by_id[row_id].output), ok)
        return {row_id: records[row_id] for row_id, there in zip(ok, present, strict=True) if there}


def run_batch(flow_task: str, manifest_url: str, output_root: str, options: BatchOptions) -> dict:
    logger = get_run_logger()
    manifest = read_manifest(manifest_url, flow_task, output_root, input_root=options.input_root)
    spec = task_spec(flow_task)
    # each task's stages in order (manifests/tasks.py); a row goes on only if its previous stage succeeded
    stages = [stage.name for stage in spec.stages]
    progress = RunProgress(flow_task, stages, f"{manifest_url} -> {output_root}")

    logger.info(
        "%s: %d row(s) to generate, %d rejected by validation",
        manifest_url,
        len(manifest.rows),
        len(manifest.rejected),
    )
    for line in grouped_errors(manifest):
        logger.warning("%s: %s", manifest_url, line)

    # Rows a previous run finished (the last stage's "ok" record and the output exist) skip every stage:
    # a rerun of text2world does not draw their first frames again.
    final = finished_rows(manifest, output_root, spec.final.name)
    if final:
        logger.info("%d row(s) already done by an earlier run: skipped", len(final))
    remaining = Manifest(
        task=manifest.task,
        source=manifest.source,
        output_root=output_root,
        rows=[row for row in manifest.rows if row.id not in final],
        errors=[],
    )

    def publish_so_far(stage: str, records: dict[str, ResultRecord]) -> None:
        """The row table while the run goes on: the rows done (ok in the last stage, or stopped by a
        failure in any), the others waiting."""
        shown = [r for r in {**final, **records}.values() if stage == stages[-1] or r.status != "ok"]
        publish_table(manifest, shown, flow_task, f"in progress ({stage})")

    for stage in stages:
        if not remaining.rows:
            break
        records = run_stage(
            stage, remaining, output_root, options, progress, lambda r, stage=stage: publish_so_far(stage, r)
        )
        final.update(records)
        ok = [row for row in remaining.rows if records.get(row.id) and records[row.id].status == "ok"]
        remaining = Manifest(
            task=manifest.task, source=manifest.source, output_root=output_root, rows=ok, errors=[]
        )
    # Final records point at the final outputs (text2world's stage 1 wrote temporaries).
    by_id = {row.id: row for row in manifest.rows}
    for row_id, record in final.items():
        final[row_id] = record.model_copy(update={"output": by_id[row_id].output})
    if any(stage.intermediate for stage in spec.stages):
        remove_tree(intermediate_root(output_root))
    progress.finish()

    summary = publish_report(manifest, list(final.values()), output_root, flow_task)
    failed = summary["failed"] + summary["rejected"]
    if failed:
        counts = ", ".join(f"{summary[k]} {k}" for k in ("ok", "failed", "blocked", "rejected"))
        raise RowsFailed(
            f"{failed} of {summary['rows']} row(s) failed or were rejected ({counts}); "
            f"see {summary['results_file']}"
        )
    return summary
