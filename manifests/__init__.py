"""manifests: the vocabulary and data contract shared by the commands, the Prefect flows and the worker.

Model presets (`presets`), generation requests and model choices (`requests`), row schemas per task
(`schemas`: request + id + output), the task registry (`tasks`), manifest readers for CSV, JSON, JSONL and Parquet on local disks or
s3:// (`readers`), shard planning and shard files (`sharding`), per-row result records and the results CSV
(`results`). The bottom layer: pydantic, pandas and fsspec only; no torch, no prefect, no cosmos_core.
Example manifests are in manifests/examples/.
"""

from manifests.readers import Manifest, ManifestError, ResolvedRow, RowError, read_manifest
from manifests.requests import AspectRatio
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
from manifests.schemas import RowBase
from manifests.sharding import ModelSpec, Shard, model_spec_of, plan_shards, read_shard, write_shard
from manifests.tasks import (
    STAGES,
    TASKS,
    BestOfNRow,
    Stage,
    TaskSpec,
    Text2ImageRow,
    Text2WorldRow,
    Video2WorldRow,
    stage_of,
    task_of,
    task_spec,
)

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
    "task_of",
    "task_spec",
    "write_record",
    "write_results_csv",
    "write_shard",
]
