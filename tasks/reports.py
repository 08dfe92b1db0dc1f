"""The run report: a results file beside the outputs and a table artifact on the run's page."""

from __future__ import annotations

import posixpath
from collections import defaultdict

from fsspec.core import url_to_fs
from prefect.artifacts import create_table_artifact

from manifests import Manifest, ResultRecord, summarize, write_results_csv
from manifests.results import warnings_of


def rejected_records(manifest: Manifest) -> list[ResultRecord]:
    """One failed record per row that validation rejected, all its errors joined; its id is the one the
    row names, else row-<n>."""
    errors: dict[int, list[str]] = defaultdict(list)
    for error in manifest.errors:
        errors[error.row].append(str(error))
    return [
        ResultRecord(
            id=manifest.given_ids.get(row, f"row-{row}"),
            row_number=row,
            status="failed",
            output="",
            error="; ".join(messages),
        )
        for row, messages in sorted(errors.items())
    ]


def grouped_errors(manifest: Manifest) -> list[str]:
    """The manifest's errors, one line per distinct (field, message) with the rows it concerns: a wrong
    column in a thousand rows is one line, not a thousand."""
    rows: dict[tuple[str | None, str], list[int]] = defaultdict(list)
    for error in manifest.errors:
        rows[(error.field, error.message)].append(error.row)
    lines = []
    for (field, message), numbers in rows.items():
        shown = ", ".join(str(n) for n in numbers[:10]) + (
            f" and {len(numbers) - 10} more" if len(numbers) > 10 else ""
        )
        where = f"row {shown}" if len(numbers) == 1 else f"rows {shown}"
        lines.append(f"{where}, field '{field}': {message}" if field else f"{where}: {message}")
    return lines


def publish_table(manifest: Manifest, records: list[ResultRecord], flow_task: str, note: str) -> None:
    """The row table artifact (key <task>-rows, a new version each time): every row with a record so far,
    the rejected ones and, while the run goes on, the rows still waiting."""
    done = {r.row_number for r in records}
    waiting = [
        {
            "row": row.row_number,
            "id": row.id,
            "status": "waiting",
            "output": row.output,
            "seconds": 0.0,
            "error": "",
            "warnings": "",
        }
        for row in manifest.rows
        if row.row_number not in done
    ]
    rows = [
        {
            "row": r.row_number,
            "id": r.id,
            "status": r.status,
            "output": r.output,
            "seconds": r.seconds,
            "error": r.error or "",
            "warnings": warnings_of(r),
        }
        for r in [*records, *rejected_records(manifest)]
    ]
    create_table_artifact(
        key=f"{flow_task}-rows",
        table=sorted([*rows, *waiting], key=lambda line: line["row"]),
        description=f"{flow_task}: every row of {manifest.source}; {note}",
    )


def publish_report(manifest: Manifest, records: list[ResultRecord], output_root: str, flow_task: str) -> dict:
    rejected = rejected_records(manifest)
    everything = sorted([*records, *rejected], key=lambda r: r.row_number)
    results_file = posixpath.join(output_root.rstrip("/"), "results.csv")
    write_results_csv(everything, results_file)
    publish_table(manifest, records, flow_task, f"results file {results_file}")
    counts = summarize(records)
    return {
        "rows": len(everything),
        "ok": counts.get("ok", 0),
        "failed": counts.get("failed", 0),
        "blocked": counts.get("blocked", 0),
        "rejected": len(rejected),
        "results_file": results_file,
    }


def remove_tree(url: str) -> None:
    fs, path = url_to_fs(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)
