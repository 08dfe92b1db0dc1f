"""`prefect deployment run video2world/best-of-n --param manifest=... --param output_root=...`

Best-of-N over a manifest (rows: a Video2World row plus num_generations and num_critic_trials,
manifests/tasks.py BestOfNRow), in two stages of shard tasks, each a worker subprocess
(cosmos_core/jobs.py):
1. "best-of-n-generate": per row, num_generations candidates with seeds seed, seed+1, ... under
   <output_root>/.worldmill/candidates/<row id>/ (a shard = shard_size rows x their candidates);
2. "best-of-n-score": the critic (Cosmos-Reason1 when its checkpoint is present, else the built-in one)
   scores every candidate; the best is copied to the row's output, with a sidecar naming every score.
A table artifact lists every candidate's score; results.csv lists the rows.

The flow is named "video2world", like the batch flow: a deployment is "<flow name>/<deployment name>",
and Prefect keys flows by name only, so both entry points share the flow "video2world" with the
deployments "batch" and "best-of-n".
"""

from __future__ import annotations

import posixpath

from fsspec.core import url_to_fs
from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.batch import run_batch, workdir
from flows.params import BestOfNParameters, with_parameter_docs
from manifests import ResultRecord
from manifests.tasks import BEST_OF_N


def candidate_table(output_root: str) -> list[dict]:
    """One line per scored candidate, from the score stage's records."""
    records_dir = posixpath.join(workdir(output_root), "records", BEST_OF_N.final.name)
    fs, path = url_to_fs(records_dir)
    lines = []
    for record_path in sorted(fs.glob(posixpath.join(path, "*.json"))):
        record = ResultRecord.model_validate_json(fs.cat_file(record_path))
        best = record.extra.get("best", {})
        for candidate in record.extra.get("candidates", []):
            lines.append(
                {
                    "row": record.row_number,
                    "id": record.id,
                    "seed": candidate["seed"],
                    "score": round(candidate["score"], 4),
                    "best": candidate["video"] == best.get("video"),
                    "critic": record.extra.get("critic", ""),
                    "candidate": candidate["video"],
                    "report": candidate.get("report", ""),
                }
            )
    return sorted(lines, key=lambda line: (line["row"], -line["score"], line["seed"]))


@flow(name="video2world", log_prints=True)
@with_parameter_docs
def video2world_best_of_n(
    manifest: str,
    output_root: str,
    options: BestOfNParameters = BestOfNParameters(),  # noqa: B008 (frozen)
) -> dict:
    """Best-of-N for every row of a manifest: num_generations videos per row, scored by a critic, the
    best one written to the row's output.

    `options` (flows/params.py): shard_size rows per shard (each row brings its num_generations
    candidates); checkpoint_dir, the checkpoints root (the critic looks for nvidia/Cosmos-Reason1-7B under it). The run ends Failed if
    any row failed, after every other row finished; rows the guardrail refuses are recorded "blocked".
    """
    try:
        return run_batch(BEST_OF_N.name, manifest, output_root, options.options())
    finally:
        table = candidate_table(output_root)
        if table:
            create_table_artifact(
                key="best-of-n-candidates",
                table=table,
                description=f"best-of-n: every candidate's critic score, {manifest} -> {output_root}",
            )
        get_run_logger().info("best-of-n: %d candidate(s) scored", len(table))
