"""`prefect deployment run manifest/batch --param task=... --param manifest=... --param output_root=...`

Any task of the registry (manifests/tasks.py) over a manifest, with the options every batch flow shares:
the rows choose their models (model_size, resolution, fps, natten columns). A new task type runs here as
soon as it is registered and has its jobs (docs/ARCHITECTURE.md, "Add a task type"); the per-task flows
(flows/text2image.py, ...) add run-wide model defaults and their own form.
"""

from __future__ import annotations

from typing import Literal

from prefect import flow

from flows.batch import run_batch
from flows.params import BatchParameters, with_parameter_docs
from manifests.tasks import TASKS

TaskName = Literal[tuple(TASKS)]


@flow(name="manifest", log_prints=True)
@with_parameter_docs
def run_manifest(
    task: TaskName,
    manifest: str,
    output_root: str,
    options: BatchParameters = BatchParameters(),  # noqa: B008 (frozen)
) -> dict:
    """Generate every row of a manifest of `task` (CSV, JSON, JSONL or Parquet; path or URL) under
    output_root. The run ends Failed if any row failed, after every other row finished; results.csv lands
    in output_root."""
    return run_batch(task, manifest, output_root, options.options())
