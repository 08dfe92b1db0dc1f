"""Malformed manifests: every bad row is rejected alone (row number, line, field), every good row runs, and
a file that cannot be read at all is one clear error. Inputs written by hand, byte by byte."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests import ManifestError, read_manifest
from manifests.formats import MAX_CELL_CHARS


def read(path: Path, data: bytes | str, task: str = "text2image"):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return read_manifest(str(path), task, "out")


def errors(m) -> list[str]:
    return [str(e) for e in m.errors]


def good(m) -> list[int]:
    return [r.row_number for r in m.rows]


def test_csv_rows_with_too_many_or_too_few_cells_are_rejected_alone(tmp_path):
    m = read(tmp_path / "m.csv", "prompt,seed\na fox,1\na cat,2,extra\na dog\n\na cow,4\n")
    assert good(m) == [1, 4]  # never padded with defaults, never shifted into other columns
    assert errors(m) == [
        "row 2 (line 3): 3 cell(s) where the header has 2 (line 3: a missing or extra delimiter, or an "
        "unclosed quote)",
        "row 3 (line 4): 1 cell(s) where the header has 2 (line 4: a missing or extra delimiter, or an "
        "unclosed quote)",
    ]


def test_an_unclosed_quote_costs_the_rows_it_swallows_and_names_their_lines(tmp_path):
    m = read(tmp_path / "m.csv", 'prompt,seed\na fox,1\n"a cat,2\na dog,3\n')
    assert good(m) == [1]
    assert len(m.errors) == 1 and "lines 3-4" in errors(m)[0] and "unclosed quote" in errors(m)[0]


def test_undecodable_bytes_reject_their_row_only(tmp_path):
    m = read(tmp_path / "m.csv", b"prompt,seed\na fox,1\na \xff\xfe cat,2\na dog,3\n")
    assert good(m) == [1, 3]
    assert errors(m) == ["row 2 (line 3), field 'prompt': not valid UTF-8 text"]
    m = read(tmp_path / "m.jsonl", b'{"prompt": "a"}\n{"prompt": "b\xff"}\n{"prompt": "c"}\n')
    assert good(m) == [1, 3] and errors(m) == ["row 2 (line 2): not valid UTF-8 (byte 13)"]
    with pytest.raises(ManifestError, match=r"header .* not valid UTF-8"):
        read(tmp_path / "h.csv", b"pro\xffmpt\nx\n")


def test_control_characters_and_oversized_cells_are_rejected_by_field(tmp_path):
    rows = [
        {"prompt": "tab\tand\nnewline are text"},
        {"prompt": "a null \x00 byte"},
        {"prompt": "an escape \x1b[31m sequence"},
        {"prompt": "x" * (MAX_CELL_CHARS + 1)},
        {"prompt": "fine"},
    ]
    m = read(tmp_path / "m.json", json.dumps(rows))
    assert good(m) == [1, 5]
    assert errors(m) == [
        "row 2, field 'prompt': contains the control character U+0000 (at 7)",
        "row 3, field 'prompt': contains the control character U+001B (at 10)",
        f"row 4, field 'prompt': {MAX_CELL_CHARS + 1:,} characters; a cell may have {MAX_CELL_CHARS:,}",
    ]


def test_a_key_given_twice_in_a_json_object_is_an_error_not_the_last_value(tmp_path):
    m = read(tmp_path / "m.json", '[{"prompt": "a", "seed": 1, "seed": 2}, {"prompt": "b"}]')
    assert good(m) == [2]
    assert errors(m) == ["row 1, field 'seed': key 'seed' appears more than once in this object: keep one"]
    m = read(tmp_path / "m.jsonl", '{"prompt": "a", "prompt": "b"}\n')
    assert errors(m) == [
        "row 1 (line 1), field 'prompt': key 'prompt' appears more than once in this object: keep one"
    ]
    with pytest.raises(ManifestError, match=r"header .* more than once"):
        read(tmp_path / "d.csv", "prompt,seed,seed\na,1,2\n")


def test_pathological_json_is_a_clear_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match="nested too deeply"):
        read(tmp_path / "deep.json", "[" * 100_000 + "]" * 100_000)
    m = read(tmp_path / "deep.jsonl", '{"prompt": "ok"}\n' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "\n")
    assert good(m) == [1] and errors(m) == ["row 2 (line 2): not valid JSON: nested too deeply"]
    huge = '{"prompt": "x", "seed": ' + "9" * 10_000 + "}"  # more digits than Python parses
    with pytest.raises(ManifestError, match=r"could not parse .* as JSON: Exceeds the limit"):
        read(tmp_path / "huge.json", f"[{huge}]")
    m = read(tmp_path / "huge.jsonl", huge + '\n{"prompt": "ok"}\n')
    assert good(m) == [2] and errors(m)[0].startswith("row 1 (line 1): not valid JSON: Exceeds the limit")


@pytest.mark.parametrize("spelling", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_non_finite_numbers_are_rejected_in_csv(tmp_path, spelling):
    m = read(tmp_path / "m.csv", f"prompt,guidance\na,{spelling}\nb,5\n")
    assert good(m) == [2]
    assert errors(m) == ["row 1, field 'guidance': Input should be a finite number"]


def test_non_finite_numbers_are_rejected_in_json_and_parquet(tmp_path):
    m = read(
        tmp_path / "m.json", '[{"prompt": "a", "guidance": NaN}, {"prompt": "b", "step_cache": Infinity}]'
    )
    assert errors(m) == [
        "row 1, field 'guidance': Input should be a finite number",
        "row 2, field 'step_cache': Input should be a finite number",
    ]
    table = pa.table({"prompt": ["a", "b", "c"], "guidance": [float("nan"), None, float("-inf")]})
    pq.write_table(table, tmp_path / "m.parquet")
    m = read_manifest(str(tmp_path / "m.parquet"), "text2image", "out")
    assert good(m) == [2]  # a null is a value not given; a NaN is a value, and not a number
    assert [e.field for e in m.errors] == ["guidance", "guidance"]


def test_numbers_out_of_range_name_the_range(tmp_path):
    rows = [{"prompt": "a", "guidance": 500}, {"prompt": "b", "seed": 2**32}, {"prompt": "c", "steps": 0}]
    m = read(tmp_path / "m.json", json.dumps(rows))
    assert errors(m) == [
        "row 1, field 'guidance': Input should be less than or equal to 50",
        "row 2, field 'seed': Input should be less than 4294967296",
        "row 3, field 'steps': Input should be greater than or equal to 1",
    ]


# ---------------------------------------------------------------------------------------------------------
# Output identity
# ---------------------------------------------------------------------------------------------------------


def test_outputs_that_are_one_file_somewhere_are_rejected_with_both_rows(tmp_path):
    rows = [
        {"prompt": "a", "output": "Café/shot.jpg"},  # NFC: é is one code point
        {"prompt": "b", "output": "Cafe\u0301/shot.jpg"},  # NFD: e + combining accent, same name on macOS
        {"prompt": "c", "output": "CAFÉ/SHOT.jpg"},  # case
        {"prompt": "d", "output": "ﬁle.jpg"},  # the 'ﬁ' ligature, NFKC: 'fi'
        {"prompt": "e", "output": "file.jpg"},
        {"prompt": "f", "output": "other.jpg"},
    ]
    m = read(tmp_path / "m.json", json.dumps(rows))
    assert good(m) == [6]
    by_row = {e.row: str(e) for e in m.errors}
    assert set(by_row) == {1, 2, 3, 4, 5} and all("field 'output'" in e for e in by_row.values())
    assert "also written by rows 2 (out/Cafe\u0301/shot.jpg), 3 (out/CAFÉ/SHOT.jpg)" in by_row[1]
    assert "also written by row 5 (out/file.jpg)" in by_row[4]


def test_ids_that_are_one_file_name_somewhere_are_rejected(tmp_path):
    m = read(tmp_path / "m.json", json.dumps([{"prompt": "a", "id": "Shot"}, {"prompt": "b", "id": "shot"}]))
    assert good(m) == [1]
    assert errors(m) == [
        "row 2, field 'id': id 'shot' is already used by row 1 as 'Shot' (one file name on case-insensitive storage)"
    ]


@pytest.mark.parametrize(
    "output",
    ["a::b.jpg", "memory:x.jpg", "shots/*.jpg", "s?.jpg", "[ab].jpg", "~/x.jpg", "dir /x.jpg", " x.jpg"],
)
def test_output_names_with_url_or_pattern_syntax_or_stray_spaces_are_refused(tmp_path, output):
    m = read(tmp_path / "m.json", json.dumps([{"prompt": "a", "output": output}]))
    assert m.rows == [] and [e.field for e in m.errors] == ["output"]


def test_the_reference_batch_json_with_a_repeated_output_fails_both_items(tmp_path, monkeypatch):
    from cosmos_core.cli import text2image_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "none"))
    items = [
        {"prompt": "a red ball", "output_image": "o/x.jpg"},
        {"prompt": "a blue box", "output_image": "o/X.jpg"},
        {"prompt": "a green cup", "output_image": "o/y.jpg"},
    ]
    Path("b.json").write_text(json.dumps(items))
    assert text2image_main(["--batch_input_json", "b.json", "--steps", "2", "--disable_guardrail"]) == 1
    assert sorted(p.name for p in Path("o").iterdir() if p.suffix == ".jpg") == [
        "y.jpg"
    ]  # nothing overwritten
