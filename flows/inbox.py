"""`manifest-inbox`: on a schedule, take the new manifests from an inbox and run each exactly once.

Inbox layout (a local folder or an s3:// prefix):
    <inbox>/*.csv|json|jsonl|parquet     new manifests, dropped by users
    <inbox>/processing/                  claimed by a run (moved there before any work)
    <inbox>/done/  <inbox>/failed/       finished, with `<name>.results.csv` beside each
A manifest is claimed with a lease, `processing/<name>.lease`, created exclusively (O_EXCL on a disk, a
conditional PUT on S3: exactly one of any number of overlapping runs wins it), then moved into processing/;
the lease goes when the manifest is filed. The deployment also runs one inbox run at a time
(prefect.yaml). A run that dies mid-manifest leaves it in processing/ with its lease: move both back to
retry it.
Outputs of `<inbox>/<stem>.csv` go to `<output_root>/<stem>/`. Each manifest is a run of the `manifest` flow
(flows/manifest.py) for the inbox's task.
"""

from __future__ import annotations

import json
import posixpath
import socket
import time

from fsspec.core import url_to_fs
from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.manifest import TaskName, run_manifest
from manifests import storage
from manifests.formats import FORMATS as MANIFEST_EXTENSIONS
from manifests.tasks import TEXT2WORLD


def _url(fs, path: str, like: str) -> str:
    """A path from `fs` back into a URL of the same protocol as `like`."""
    return fs.unstrip_protocol(path) if "://" in like else path


def lease_of(claimed: str) -> str:
    return f"{claimed}.lease"


def claim(fs, inbox: str, path: str) -> str | None:
    """Move the manifest at `path` into processing/ once this run holds its lease; None if another run
    holds it (or has filed the manifest since this run listed the inbox)."""
    root = posixpath.dirname(path)
    claimed = posixpath.join(root, "processing", posixpath.basename(path))
    holder = {"flow_run": str(getattr(flow_run, "id", None)), "host": socket.gethostname(), "at": time.time()}
    lease = _url(fs, lease_of(claimed), inbox)
    if not storage.create_exclusive(lease, json.dumps(holder).encode()):
        return None
    try:
        fs.mv(path, claimed)
    except FileNotFoundError:  # filed by the run that held the lease before this one
        storage.remove(lease)
        return None
    return claimed


@flow(name="manifest-inbox")
def process_inbox(
    inbox: str,
    output_root: str,
    task: TaskName = TEXT2WORLD.name,
    shard_size: int = 25,
    gpus_per_shard: int | None = None,  # None: the GPU pool's gpus_per_host, else 1 (flows/batch.py)
    max_manifests: int = 20,
) -> list[dict]:
    """Run every new manifest of the inbox once, then file it under done/ or failed/ with its report.

    Args:
        inbox: a folder or s3:// prefix where users drop manifests (CSV, JSON, JSONL, Parquet)
        output_root: outputs of <inbox>/<stem>.csv go to <output_root>/<stem>/
        task: the task every manifest of this inbox runs
        shard_size: rows per shard
        gpus_per_shard: GPUs per shard; unset: the GPU pool's gpus_per_host, else 1
        max_manifests: manifests taken per run (the rest wait for the next one)
    """
    logger = get_run_logger()
    fs, root = url_to_fs(inbox)
    fs.invalidate_cache()
    for sub in ("processing", "done", "failed"):
        fs.makedirs(posixpath.join(root, sub), exist_ok=True)
    new = sorted(
        p for p in fs.ls(root, detail=False) if fs.isfile(p) and p.lower().endswith(MANIFEST_EXTENSIONS)
    )[:max_manifests]
    logger.info("inbox %s: %d new manifest(s)", inbox, len(new))
    outcomes = []
    for path in new:
        name = posixpath.basename(path)
        stem = name.rsplit(".", 1)[0]
        claimed = claim(fs, inbox, path)
        if claimed is None:
            logger.info("%s was claimed by another run", name)
            continue
        out = posixpath.join(output_root.rstrip("/"), stem)
        state = run_manifest(
            task=task,
            manifest=_url(fs, claimed, inbox),
            output_root=out,
            options={"shard_size": shard_size, "gpus_per_shard": gpus_per_shard},
            return_state=True,
        )
        verdict = "done" if state.is_completed() else "failed"
        fs.mv(claimed, posixpath.join(root, verdict, name))
        storage.remove(_url(fs, lease_of(claimed), inbox))
        report_fs, report = url_to_fs(posixpath.join(out, "results.csv"))
        if report_fs.exists(report):
            fs.pipe(posixpath.join(root, verdict, f"{name}.results.csv"), report_fs.cat(report))
        logger.info("%s: %s (%s)", name, verdict, state.message or state.name)
        outcomes.append({"manifest": name, "status": verdict, "output_root": out})
    return outcomes
