"""`manifest-inbox`: on a schedule, take the new manifests from an inbox and run each exactly once.

Inbox layout (a local folder or an s3:// prefix):
    <inbox>/*.csv|json|jsonl|parquet     new manifests, dropped by users
    <inbox>/processing/                  claimed by a run (moved there before any work)
    <inbox>/done/  <inbox>/failed/       finished, with `<name>.results.csv` beside each
A manifest is claimed with a lease, `processing/<name>.lease`, created exclusively (O_EXCL on a disk, a
conditional PUT on S3: exactly one of any number of overlapping runs wins it), then moved into processing/;
the lease goes when the manifest is filed. The deployment also runs one inbox run at a time
(prefect.yaml). A run that dies mid-manifest (its process killed, its host lost) leaves the manifest in
processing/ with its lease; the next run sees that the lease's flow run has ended (Crashed, Cancelled,
Failed, or deleted) and takes the manifest over, through one more exclusive create
(`processing/<name>.lease.takeover-<dead run id>`), so exactly one run resumes it: the rows already done
are skipped.
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
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
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
    lease = _url(fs, lease_of(claimed), inbox)
    if not storage.create_exclusive(lease, json.dumps(lease_holder()).encode()):
        return None
    try:
        fs.mv(path, claimed)
    except FileNotFoundError:  # filed by the run that held the lease before this one
        storage.remove(lease)
        return None
    return claimed


def holder_has_ended(holder: dict) -> bool:
    """Whether the flow run named in a lease has ended (or no longer exists). A lease without a flow run
    (taken outside Prefect) is never judged: it is left to whoever took it."""
    run_id = holder.get("flow_run")
    if not run_id or run_id == "None":
        return False
    with get_client(sync_client=True) as client:
        try:
            state = client.read_flow_run(run_id).state
        except ObjectNotFound:
            return True
    return state is not None and state.is_final()


def take_over_orphans(fs, inbox: str, root: str) -> list[tuple[str, str]]:
    """(claimed path, dead run id) of each manifest in processing/ whose lease holder's run has ended,
    now held by this run; one run wins each takeover."""
    taken = []
    for lease in sorted(fs.glob(posixpath.join(root, "processing", "*.lease"))):
        claimed = lease[: -len(".lease")]
        if not fs.exists(claimed):  # its holder is between the lease and the move, or filing it
            continue
        try:
            holder = json.loads(fs.cat(lease))
        except ValueError:  # not a lease this flow wrote: leave it to whoever did
            continue
        if not isinstance(holder, dict) or not holder_has_ended(holder):
            continue
        marker = _url(fs, f"{lease}.takeover-{holder['flow_run']}", inbox)
        if not storage.create_exclusive(marker, json.dumps(lease_holder()).encode()):
            continue  # another run took it over first
        storage.write_text_atomic(_url(fs, lease, inbox), json.dumps(lease_holder()))
        taken.append((claimed, holder["flow_run"]))
    return taken


def lease_holder() -> dict:
    return {"flow_run": str(getattr(flow_run, "id", None)), "host": socket.gethostname(), "at": time.time()}


def file_manifest(fs, inbox: str, root: str, claimed: str, verdict: str) -> None:
    """Move a claimed manifest to done/ or failed/ and drop its lease and takeover markers."""
    fs.mv(claimed, posixpath.join(root, verdict, posixpath.basename(claimed)))
    for path in [lease_of(claimed), *fs.glob(f"{lease_of(claimed)}.takeover-*")]:
        storage.remove(_url(fs, path, inbox))


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
    orphans = take_over_orphans(fs, inbox, root)
    for claimed, dead in orphans:
        logger.warning(
            "%s: its run %s ended without filing it; resuming it", posixpath.basename(claimed), dead
        )
    logger.info("inbox %s: %d new manifest(s)", inbox, len(new))
    outcomes = []
    work = [(claimed, True) for claimed, _dead in orphans] + [(path, False) for path in new]
    for path, held in work:  # held: an orphan taken over above, already in processing/
        name = posixpath.basename(path)
        stem = name.rsplit(".", 1)[0]
        claimed = path if held else claim(fs, inbox, path)
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
        file_manifest(fs, inbox, root, claimed, verdict)
        report_fs, report = url_to_fs(posixpath.join(out, "results.csv"))
        if report_fs.exists(report):
            fs.pipe(posixpath.join(root, verdict, f"{name}.results.csv"), report_fs.cat(report))
        logger.info("%s: %s (%s)", name, verdict, state.message or state.name)
        outcomes.append({"manifest": name, "status": verdict, "output_root": out})
    return outcomes
