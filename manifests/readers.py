"""Read a manifest (CSV, JSON, JSONL, Parquet; local or s3://) into validated, resolved rows.

A manifest is a table of rows for one task. Reading it answers, before any GPU is touched: which rows are
good, where each one's output goes, and what is wrong with the others, by row number and field. A bad row
never sinks the batch: it becomes a RowError and the rest go ahead.

Row numbers count data rows from 1, the way a person counts them in a spreadsheet (header not counted) or a
JSON list. Every good row gets a stable id (explicit, or derived from its content), an output under the
output root (no two rows may share one) and, for video tasks, a resolved input.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializeAsAny, ValidationError

from manifests import storage
from manifests.formats import ManifestError, RowError, load_rows
from manifests.requests import Request
from manifests.schemas import OUTPUTS_AS_GIVEN, RowBase, field_names
from manifests.tasks import TASKS


class ResolvedRow(BaseModel):
    """A good row, ready to generate: where its output goes, what it conditions on, the row as validated.

    `row` is the task's row model (a shard file restores its type from the shard's task)."""

    model_config = ConfigDict(extra="forbid")

    row_number: int
    id: str
    output: str  # full path or URL under the output root
    input: str | None = None  # resolved conditioning image/video (video2world, best-of-n)
    row: SerializeAsAny[RowBase]  # as the manifest gave it (relative output, input as written)

    @property
    def request(self) -> Request:
        """The row's request, with its input resolved."""
        return self.row.request(**({"input_path": self.input} if self.input is not None else {}))


@dataclass
class Manifest:
    task: str
    source: str  # the manifest's URL
    output_root: str
    rows: list[ResolvedRow]  # the good rows, in manifest order
    errors: list[RowError]  # sorted by row number
    given_ids: dict[int, str] = field(default_factory=dict)  # row -> the id it names, for rejected rows too

    @property
    def rejected(self) -> list[int]:
        """The numbers of the rows rejected (a row may have several errors)."""
        return sorted({error.row for error in self.errors})


def read_manifest(
    url: str,
    task: str,
    output_root: str,
    input_root: str | None = None,
    check_inputs: bool = True,
    defaults: dict[str, Any] | None = None,
    outputs_as_given: bool = False,
) -> Manifest:
    """Read and validate the manifest at `url` for `task`.

    input_root: where relative inputs live; by default the manifest's folder for a remote manifest and the
    current directory for a local one (the reference's batch JSON names `assets/video2world/input0.jpg`
    from the repository root). check_inputs: report rows whose input does not exist.
    defaults: values for the fields a row leaves out (the commands' flags under their batch JSON items).
    outputs_as_given: outputs may be any path or URL, used as given (the commands' batch JSON, whose outputs
    are like --save_path; `output_root` is then not used); otherwise they are paths inside `output_root`.
    """
    if task not in TASKS:
        raise ManifestError(f"unknown task {task!r} for {url}: expected one of {', '.join(TASKS)}")
    if not output_root.strip():
        raise ManifestError(f"no output root given for {url}")
    model = TASKS[task].row_model
    raw_rows = load_rows(url)
    if not raw_rows:
        raise ManifestError(f"manifest {url} has no rows")

    errors: list[RowError] = []
    given_ids: dict[int, str] = {}
    validated: list[tuple[int, RowBase]] = []
    for number, raw in raw_rows:
        if isinstance(raw, RowError):
            errors.append(raw)
            continue
        if isinstance(raw.get("id"), str | int) and not isinstance(raw.get("id"), bool):
            given_ids[number] = str(raw["id"])
        row, row_errors = validate_row(model, number, _with_defaults(model, raw, defaults), outputs_as_given)
        errors.extend(row_errors)
        if row is not None:
            validated.append((number, row))

    input_base = input_root if input_root is not None else _default_input_root(url)
    resolved = [
        _resolve(number, row, None if outputs_as_given else output_root, input_base)
        for number, row in validated
    ]

    # Row-level checks on the valid rows. Duplicates are user errors whether or not the inputs exist, so
    # they are looked for among all of them; a row repeating an id is left out of the output check (its
    # default output repeats too, and one error says it).
    explicit_ids = {number for number, row in validated if row.id is not None}
    if check_inputs:
        for row in resolved:
            if row.input is not None and (message := _missing_input(row.input)):
                errors.append(RowError(row.row_number, "input", message))
    id_errors = _duplicate_ids(resolved, explicit_ids)
    repeated = {e.row for e in id_errors}
    errors.extend(id_errors)
    errors.extend(_duplicate_outputs([r for r in resolved if r.row_number not in repeated]))

    errors.sort(key=lambda e: e.row)  # stable: a row's errors keep their order
    bad = {e.row for e in errors}
    good = [r for r in resolved if r.row_number not in bad]
    return Manifest(
        task=task, source=url, output_root=output_root, rows=good, errors=errors, given_ids=given_ids
    )


# ---------------------------------------------------------------------------------------------------------
# Validation, ids, paths
# ---------------------------------------------------------------------------------------------------------


def _with_defaults(model: type[RowBase], raw: dict[str, Any], defaults: dict[str, Any] | None) -> dict:
    """`defaults` (by field name) for the fields a row sets under none of their names."""
    names = field_names(model)
    given = {names.get(key, key) for key in raw}
    return {**{k: v for k, v in (defaults or {}).items() if k not in given}, **raw}


def validate_row(
    model: type[RowBase], number: int, raw: dict[str, Any], outputs_as_given: bool = False
) -> tuple[RowBase | None, list[RowError]]:
    """The row as `model`, or None and its errors in plain words."""
    try:
        return model.model_validate(raw, context={OUTPUTS_AS_GIVEN: outputs_as_given}), []
    except ValidationError as e:
        errors = [_row_error(model, number, raw, error) for error in e.errors()]
        # A misspelled column is one mistake: 'promt' unknown (did you mean 'prompt'?) and the prompt
        # missing; report it once, as the unknown field.
        suggested = {e.message.rsplit("'", 2)[1] for e in errors if "(did you mean '" in e.message}
        return None, [e for e in errors if not (e.message.endswith("is missing") and e.field in suggested)]


def _row_error(model: type[RowBase], number: int, raw: dict[str, Any], error: dict) -> RowError:
    field = ".".join(str(part) for part in error["loc"]) or None
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden" and field is not None:
        names = field_names(model)
        others = [k for k in raw if field in names and k != field and names.get(k) == names[field]]
        if others:  # an alias of a field that is also given under another name
            message = f"'{field}' and '{others[0]}' both set the {names[field]}: keep one"
        else:
            message = f"unknown field '{field}'"
            if close := difflib.get_close_matches(field, names, n=1):
                message += f" (did you mean '{close[0]}'?)"
    elif error["type"] == "missing":
        message = f"the {field} is missing"
    return RowError(number, field, message)


def _resolve(number: int, row: RowBase, output_root: str | None, input_root: str) -> ResolvedRow:
    """output_root None: the output as given (the commands' batch JSON)."""
    row_id = row.id or derive_id(row)
    output = row.output or default_output(row, row_id)
    if output_root is not None:
        output = storage.join(output_root, output)
    input_url = getattr(row, "input_path", None)  # video2world and best-of-n only
    if input_url is not None:
        input_url = resolve_input(input_url, input_root)
    return ResolvedRow(row_number=number, id=row_id, output=output, input=input_url, row=row)


def derive_id(row: RowBase) -> str:
    """12 hex characters of the sha256 of the row's validated fields (id left out) as canonical JSON.

    Content, not position: re-reading the manifest or reordering its rows gives the same ids, so the records
    of a previous run are found again; '7' in a CSV and 7 in JSON hash alike because they validate alike.
    Fields at their defaults are left out, so a value written out equal to its default hashes as absent, and a
    new optional field does not change the ids of existing rows."""
    fields = row.model_dump(mode="json", exclude={"id"}, exclude_defaults=True)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def default_output(row: RowBase, row_id: str) -> str:
    return f"{row_id}{row.OUTPUT_EXTENSIONS[0]}"


def resolve_input(input_url: str, input_root: str) -> str:
    """URLs and absolute paths as they are; a relative path under `input_root` (a local root made absolute,
    so the worker finds it whatever its working directory)."""
    if storage.is_url(input_url) or os.path.isabs(input_url):
        return input_url
    if storage.is_url(input_root):
        return storage.join(input_root, input_url)
    return os.path.abspath(os.path.join(input_root, input_url))


def _default_input_root(manifest_url: str) -> str:
    return storage.parent(manifest_url) if storage.is_url(manifest_url) else os.getcwd()


def _missing_input(url: str) -> str | None:
    try:
        return None if storage.exists(url) else f"input not found: {url}"
    except Exception as e:  # no credentials, no such bucket, endpoint down: the row cannot run either
        return f"could not check input {url}: {e}"


def _duplicate_ids(rows: list[ResolvedRow], explicit_ids: set[int]) -> list[RowError]:
    """A repeated id is an error on the later row. A derived id repeats only for identical rows."""
    first: dict[str, tuple[int, str]] = {}  # folded id -> (row, id as written)
    errors = []
    for row in rows:
        key = folded(row.id)  # ids name files: 'A' and 'a' are one file on a case-insensitive disk
        if key not in first:
            first[key] = (row.row_number, row.id)
            continue
        number, spelled = first[key]
        same = "" if spelled == row.id else f" as '{spelled}' (one file name on case-insensitive storage)"
        message = f"id '{row.id}' is already used by row {number}{same}"
        if row.row_number not in explicit_ids:
            message = f"same content as row {number}: give one of them an id, or another seed"
        errors.append(RowError(row.row_number, "id", message))
    return errors


def _duplicate_outputs(rows: list[ResolvedRow]) -> list[RowError]:
    """Rows that would write the same file, on any storage: all of them are rejected, each naming the others
    and how they spell it. Outputs are compared folded (case, Unicode form, whitespace), since a
    case-insensitive or normalizing file system (macOS, Windows, some NAS and FUSE mounts) stores them as one."""
    by_output: dict[str, list[ResolvedRow]] = {}
    for row in rows:
        by_output.setdefault(folded(row.output), []).append(row)
    errors = []
    for same in by_output.values():
        if len(same) < 2:
            continue
        for row in same:
            others = ", ".join(
                f"{other.row_number}" + ("" if other.output == row.output else f" ({other.output})")
                for other in same
                if other is not row
            )
            rows_word = "rows" if len(same) > 2 else "row"
            message = f"output {row.output} is also written by {rows_word} {others}"
            errors.append(RowError(row.row_number, "output", message))
    return errors


def folded(name: str) -> str:
    """The form under which two names are one file somewhere: Unicode compatibility-normalized (NFKC covers
    NFC/NFD too), case-folded, whitespace runs collapsed and trimmed in each path component."""
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return "/".join(" ".join(part.split()) for part in text.split("/"))
