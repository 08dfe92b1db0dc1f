"""Result records: one small JSON file per row, written by the worker when the row is done.

A record is the row's proof of work: a rerun skips rows whose record says "ok", and the flow builds the run
report from the records alone. Records are written atomically and named by the row's stable id, so a
retried shard overwrites its own records and never anyone else's.
"""

from __future__ import annotations

import csv
import io
import posixpath
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, Literal, get_args

from fsspec.core import url_to_fs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from manifests import storage

Status = Literal["ok", "failed", "blocked", "skipped"]  # blocked: the guardrail refused the prompt or video
RESULTS_COLUMNS = ("row_number", "id", "status", "output", "seconds", "error", "warnings")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResultRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    row_number: int
    status: Status
    output: str
    seconds: float = 0.0  # wall time of the row on its rank
    error: str | None = None  # one line for a failed or blocked row
    shard_id: str | None = None
    rank: int | None = None
    attempt: int | None = None  # the Prefect task run's attempt, to tell a retry's records apart
    finished_at: str = Field(default_factory=_now)  # ISO 8601, UTC
    extra: dict[str, Any] = Field(default_factory=dict)  # task-specific: critic scores, refined prompt, ...


def record_url(records_dir: str, row_id: str) -> str:
    return f"{records_dir.rstrip('/')}/{row_id}.json"


def write_record(records_dir: str, record: ResultRecord) -> None:
    """Write the record atomically (temporary file + rename locally, one PUT on S3)."""
    storage.write_text_atomic(record_url(records_dir, record.id), record.model_dump_json())


def read_record(records_dir: str, row_id: str) -> ResultRecord | None:
    """The row's record, or None if there is none or it cannot be read: either way the row is redone."""
    try:
        return _parse(storage.read_bytes(record_url(records_dir, row_id)), row_id)
    except (FileNotFoundError, IsADirectoryError):
        return None


def read_records(records_dir: str, ids: list[str]) -> dict[str, ResultRecord]:
    """The records that exist for `ids`, by id. One batched read: concurrent requests on S3."""
    fs, root = url_to_fs(records_dir.rstrip("/"))
    paths = {posixpath.join(root, f"{row_id}.json"): row_id for row_id in ids}
    if not paths:
        return {}
    contents = fs.cat(list(paths), on_error="omit")  # absent files are left out
    records = {}
    for path, data in contents.items():
        row_id = paths.get(path) or paths.get(fs._strip_protocol(path))
        if row_id is not None and (record := _parse(data, row_id)) is not None:
            records[row_id] = record
    return records


def _parse(data: bytes, row_id: str) -> ResultRecord | None:
    try:
        record = ResultRecord.model_validate_json(data)
    except (ValidationError, ValueError, UnicodeDecodeError):
        return None  # a corrupt record (a disk that filled up, a hand edit) means: do the row again
    return record if record.id == row_id else None


def warnings_of(record: ResultRecord) -> str:
    """The row's warnings (prompt truncated, conditioning the model cannot represent, ...) on one line."""
    return "; ".join(record.extra.get("warnings", []))


def write_results_csv(records: Iterable[ResultRecord], url: str) -> None:
    """The run report as CSV, one line per row in manifest order (RESULTS_COLUMNS)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(RESULTS_COLUMNS)
    for r in sorted(records, key=lambda r: r.row_number):
        writer.writerow(
            [r.row_number, r.id, r.status, r.output, f"{r.seconds:.3f}", r.error or "", warnings_of(r)]
        )
    storage.write_text_atomic(url, buffer.getvalue())


def summarize(records: Iterable[ResultRecord] | Mapping[str, ResultRecord]) -> dict[str, int]:
    """Rows per status, every status present: {'ok': 12, 'failed': 1, 'blocked': 0, 'skipped': 2}.
    Takes a list of records or read_records' dict."""
    if isinstance(records, Mapping):
        records = records.values()
    counts = Counter(r.status for r in records)
    return {status: counts.get(status, 0) for status in get_args(Status)}
