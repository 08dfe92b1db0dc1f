"""Manifest files -> raw rows, one row at a time: CSV, JSON, JSONL and Parquet, local or s3://.

Each format is parsed so that a malformed row costs that row alone: it becomes a RowError with its row
number (and, for the text formats, its line), and every well-formed row is still returned. Only a file
that cannot be read at all (missing, not the format, no header) is a ManifestError naming the file.

What a row may not contain, in any format:
- bytes that are not UTF-8 (CSV, JSONL: that row only; a JSON list is one document and fails whole);
- a CSV record with another number of cells than the header (a stray delimiter or an unclosed quote);
- a key twice in one JSON object (JSON parsers silently keep the last one);
- control characters other than tab and newline, or a cell longer than MAX_CELL_CHARS characters.
Numbers are checked by the row models (finite, in range: manifests/requests.py).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from manifests import storage

FORMATS = (".csv", ".json", ".jsonl", ".parquet")
MAX_CELL_CHARS = 65_536  # no field of a row needs more (prompts have their own, lower limit)
# C0 and C1 control characters except tab, newline and carriage return; DEL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_UNDECODABLE = re.compile(r"[\udc80-\udcff]")  # bytes that were not UTF-8, as surrogateescape keeps them


class ManifestError(ValueError):
    """A problem with the whole file (not found, unreadable, wrong format, empty); names the file."""


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based data row number
    field: str | None  # the column/key at fault, None for the row as a whole
    message: str
    line: int | None = None  # where the row starts in a text file (CSV, JSONL), when that helps

    @property
    def detail(self) -> str:
        """The error without its row: "field 'seed': ..." or the message."""
        return f"field '{self.field}': {self.message}" if self.field else self.message

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" (line {self.line})" if self.line is not None else "")
        return f"{where}, {self.detail}" if self.field else f"{where}: {self.detail}"


RawRow = dict[str, Any] | RowError


def load_rows(url: str) -> list[tuple[int, RawRow]]:
    """The manifest's rows as raw dicts (cells without a value left out), or a RowError for a row that
    cannot be read. Raises ManifestError for whole-file problems."""
    ext = storage.extension(url)
    if ext not in FORMATS:
        raise ManifestError(
            f"unsupported manifest format {url}: the name must end in one of {', '.join(FORMATS)}"
        )
    try:
        data = storage.read_bytes(url)
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {url}") from None
    except OSError as e:
        raise ManifestError(f"could not read manifest {url}: {e}") from e
    parse = {".csv": _from_csv, ".json": _from_json, ".jsonl": _from_jsonl, ".parquet": _from_parquet}[ext]
    return [(number, _checked_cells(number, row)) for number, row in parse(url, data)]


# ---------------------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------------------


def _from_csv(url: str, data: bytes) -> list[tuple[int, RawRow]]:
    """Every cell as text (pydantic parses numbers, so '007' stays an id and 'NA' stays a prompt); an
    empty cell is a value not given. Undecodable bytes are kept (surrogateescape) to be reported per row."""
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")  # a spreadsheet's byte-order mark
    csv.field_size_limit(2**31 - 1)  # long cells are reported by _checked_cells, not by the parser
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ManifestError(f"manifest {url} is empty: expected a header line and rows") from None
    _check_header(url, header)
    rows: list[tuple[int, RawRow]] = []
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # the parser cannot go on within this record
            number = len(rows) + 1
            rows.append((number, RowError(number, None, f"not valid CSV: {e}", line)))
            continue
        if not cells:
            continue  # a blank line is not a row
        number = len(rows) + 1
        rows.append((number, _csv_row(number, line, header, cells, reader.line_num)))
    return rows


def _check_header(url: str, header: list[str]) -> None:
    names = [name.strip() for name in header]
    if any(_UNDECODABLE.search(name) for name in names):
        raise ManifestError(f"the header of {url} is not valid UTF-8")
    if "" in names:
        raise ManifestError(f"the header of {url} has an empty column name (column {names.index('') + 1})")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ManifestError(f"the header of {url} names column(s) {', '.join(repeated)} more than once")


def _csv_row(number: int, line: int, header: list[str], cells: list[str], last_line: int) -> RawRow:
    if len(cells) != len(header):
        lines = f"lines {line}-{last_line}" if last_line > line else f"line {line}"
        return RowError(
            number,
            None,
            f"{len(cells)} cell(s) where the header has {len(header)} ({lines}: a missing or extra "
            "delimiter, or an unclosed quote)",
            line,
        )
    for name, cell in zip(header, cells, strict=True):
        if _UNDECODABLE.search(cell):
            return RowError(number, name.strip(), "not valid UTF-8 text", line)
    return {name.strip(): cell for name, cell in zip(header, cells, strict=True) if cell != ""}


def _from_json(url: str, data: bytes) -> list[tuple[int, RawRow]]:
    try:
        items = _json_loads(data.decode("utf-8-sig"))
    except ValueError as e:  # not UTF-8, not JSON, or a number of more than 4300 digits
        raise ManifestError(f"could not parse {url} as JSON: {e}") from e
    except RecursionError:
        raise ManifestError(f"could not parse {url} as JSON: nested too deeply") from None
    if not isinstance(items, list):
        raise ManifestError(
            f"manifest {url} must be a JSON list of objects, one per row; got {type(items).__name__}"
        )
    return [(number, _object_row(number, item)) for number, item in enumerate(items, start=1)]


def _from_jsonl(url: str, data: bytes) -> list[tuple[int, RawRow]]:
    rows: list[tuple[int, RawRow]] = []
    for line_number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        if not raw.strip():
            continue  # blank lines are not rows
        number = len(rows) + 1
        try:
            item = _json_loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            rows.append((number, RowError(number, None, f"not valid UTF-8 (byte {e.start})", line_number)))
            continue
        except ValueError as e:  # not JSON, or a number of more than 4300 digits
            rows.append((number, RowError(number, None, f"not valid JSON: {e}", line_number)))
            continue
        except RecursionError:
            rows.append((number, RowError(number, None, "not valid JSON: nested too deeply", line_number)))
            continue
        row = _object_row(number, item)
        if isinstance(row, RowError):
            row = RowError(row.row, row.field, row.message, line_number)
        rows.append((number, row))
    return rows


class _Object(dict):
    """A JSON object that remembers the keys it was given more than once."""

    repeated: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> _Object:
    obj = _Object(pairs)
    if len(obj) < len(pairs):
        keys = [key for key, _ in pairs]
        obj.repeated = tuple(sorted({key for key in keys if keys.count(key) > 1}))
    return obj


def _json_loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_object_pairs)


def _object_row(number: int, item: Any) -> RawRow:
    if not isinstance(item, dict):
        return RowError(number, None, f"expected a JSON object, got {type(item).__name__}")
    if getattr(item, "repeated", ()):
        key = item.repeated[0]
        return RowError(number, key, f"key '{key}' appears more than once in this object: keep one")
    return {key: value for key, value in item.items() if value is not None}  # null = not given


def _from_parquet(url: str, data: bytes) -> list[tuple[int, RawRow]]:
    """Through pyarrow, so a null (not given) and a NaN (a value, which the row models refuse) differ."""
    import pyarrow.parquet as pq  # pandas' Parquet engine; imported here: CSV/JSON manifests do without

    try:
        records = pq.read_table(io.BytesIO(data)).to_pylist()
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise ManifestError(f"could not parse {url} as Parquet: {e}") from e
    return [
        (number, {str(k): v for k, v in record.items() if v is not None and v != ""})
        for number, record in enumerate(records, start=1)
    ]


# ---------------------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------------------


def _checked_cells(number: int, row: RawRow) -> RawRow:
    """The row, or a RowError for its first cell that holds control characters or is too long."""
    if isinstance(row, RowError):
        return row
    for name, value in row.items():
        if not isinstance(value, str):
            continue
        if len(value) > MAX_CELL_CHARS:
            return RowError(number, name, f"{len(value):,} characters; a cell may have {MAX_CELL_CHARS:,}")
        if control := _CONTROL.search(value):
            return RowError(
                number, name, f"contains the control character U+{ord(control[0]):04X} (at {control.start()})"
            )
    return row
