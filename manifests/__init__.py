"""manifests: the data contract between the Prefect flows and the torchrun worker.

Row schemas per task (`schemas`), manifest readers for CSV, JSON, JSONL and Parquet on local disks or
s3:// (`readers`), shard planning and shard files (`sharding`), per-row result records and the results CSV
(`results`). The bottom layer: pydantic, pandas and fsspec only; no torch, no prefect, no cosmos_core.
Example manifests are in manifests/examples/.
"""

from manifests.readers import Manifest, ManifestError, ResolvedRow, RowError, read_manifest
from manifests.results import (
    ResultRecord,
    Status,
    read_record,
    read_records,
    record_url,
    summarize,
    write_record,
    write_results_csv,
)
from manifests.schemas import (
    AspectRatio,
    BestOfNRow,
    RowBase,
    Text2ImageRow,
    Text2WorldRow,
    Video2WorldRow,
)
from manifests.sharding import ModelSpec, Shard, model_spec_of, plan_shards, read_shard, write_shard
from manifests.tasks import STAGES, TASKS, Stage, TaskSpec, stage_of, task_spec

__all__ = [
    "STAGES",
    "TASKS",
    "AspectRatio",
    "BestOfNRow",
    "Manifest",
    "ManifestError",
    "ModelSpec",
    "ResolvedRow",
    "ResultRecord",
    "RowBase",
    "RowError",
    "Shard",
    "Stage",
    "Status",
    "TaskSpec",
    "Text2ImageRow",
    "Text2WorldRow",
    "Video2WorldRow",
    "model_spec_of",
    "plan_shards",
    "read_manifest",
    "read_record",
    "read_records",
    "read_shard",
    "record_url",
    "stage_of",
    "summarize",
    "task_spec",
    "write_record",
    "write_results_csv",
    "write_shard",
]
