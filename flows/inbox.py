"""`manifest-inbox`: on a schedule, take the new manifests from an inbox and run each exactly once.

Inbox layout (a local folder or an s3:// prefix):
    <inbox>/*.csv|json|jsonl|parquet     new manifests, dropped by users
    <inbox>/processing/                  claimed by a run (moved there before any work)
    <inbox>/done/  <inbox>/failed/       finished, with `<name>.results.csv` beside each
A manifest is claimed by moving it into processing/, so a second scheduled run never sees it again.
Outputs of `<inbox>/<stem>.csv` go to `<output_root>/<stem>/`. Each manifest is a run of the `manifest` flow
(flows/manifest.py) for the inbox's task.
"""

from __future__ import annotations

import posixpath

from fsspec.core import url_to_fs
from prefect import flow, get_run_logger

from flows.manifest import TaskName, run_manifest
from manifests.formats import FORMATS as MANIFEST_EXTENSIONS
from manifests.tasks import TEXT2WORLD


def _url(fs, path: str, like: str) -> str:
    """A path from `fs` back into a URL of the same protocol as `like`."""
    return fs.unstrip_protocol(path) if "://" in like else path


@flow(name="manifest-inbox")
def process_inbox(
    inbox: str,
    output_root: str,
    task: TaskName = TEXT2WORLD.name,
    shard_size: int = 25,
    gpus_per_shard: int | None = None,  # None: the GPU pool's gpus_per_host, else 1 (flows/batch.py)
    max_manifests: int = 20,
) -> list[dict]:
    """Run every new manifest of the inbox once, then file it under done/ or failed/ with its report."""
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
        claimed = posixpath.join(root, "processing", name)
        try:
            fs.mv(path, claimed)
        except FileNotFoundError:
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
        report_fs, report = url_to_fs(posixpath.join(out, "results.csv"))
        if report_fs.exists(report):
            fs.pipe(posixpath.join(root, verdict, f"{name}.results.csv"), report_fs.cat(report))
        logger.info("%s: %s (%s)", name, verdict, state.message or state.name)
        outcomes.append({"manifest": name, "status": verdict, "output_root": out})
    return outcomes
