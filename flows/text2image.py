"""`prefect deployment run text2image/batch --param manifest=... --param output_root=...`"""

from __future__ import annotations

from prefect import flow

from flows.batch import run_batch
from flows.params import Text2ImageParameters, with_parameter_docs
from manifests.tasks import TEXT2IMAGE


@flow(name=TEXT2IMAGE.name, log_prints=True)
@with_parameter_docs
def text2image_batch(
    manifest: str,
    output_root: str,
    options: Text2ImageParameters = Text2ImageParameters(),  # noqa: B008 (frozen)
) -> dict:
    """Generate every row of a text2image manifest (CSV, JSON, JSONL or Parquet; path or URL) under output_root.

    `options` (flows/params.py, a form in the Prefect UI): sharding, GPUs, the model, the guardrail.
    The run ends Failed if any row failed, after every other row finished; results.csv lands in output_root.
    """
    return run_batch(TEXT2IMAGE.name, manifest, output_root, options.options())
