"""manifests: reading every format, row errors by row and field, stable ids, outputs, inputs, shards, records.

Manifests are written into tmp_path by each test; the reference's batch JSON files come from assets/.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fsspec.core import url_to_fs

from manifests import (
    ManifestError,
    ModelSpec,
    ResultRecord,
    RowError,
    model_spec_of,
    plan_shards,
    read_manifest,
    read_record,
    read_records,
    read_shard,
    record_url,
    summarize,
    write_record,
    write_results_csv,
    write_shard,
)
from manifests.requests import Text2ImageRequest
from manifests.tasks import TASKS, Text2ImageRow, Text2WorldRow, Video2WorldRow

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "manifests" / "examples"
INPUT = REPO / "assets" / "video2world" / "input0.jpg"


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def write_json(path: Path, rows: object) -> str:
    path.write_text(json.dumps(rows))
    return str(path)


def messages(manifest) -> list[str]:
    return [str(error) for error in manifest.errors]


# ---------------------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------------------


def test_csv_cells_are_text_and_empty_cells_are_missing(tmp_path):
    path = tmp_path / "m.CSV"  # the extension is matched case-insensitively
    path.write_text(
        "\ufeffid,prompt,seed,guidance,aspect_ratio,negative_prompt\n"  # a spreadsheet's byte-order mark
        "007,a red fox,42,,1:1,\n"
        ',"a cat, sleeping",,5.5,,NA\n'
    )
    m = read_manifest(str(path), "text2image", str(tmp_path / "out") + "/")
    assert m.errors == []
    fox, cat = m.rows
    assert (fox.row_number, fox.id, fox.output) == (1, "007", f"{tmp_path}/out/007.jpg")
    fox_request, cat_request = fox.request, cat.request  # typed: the task's request, defaults filled
    assert isinstance(fox_request, Text2ImageRequest) and fox.input is None
    assert (fox_request.seed, fox_request.guidance, fox_request.aspect_ratio) == (42, 4.0, "1:1")
    assert fox_request.negative_prompt == ""
    assert cat_request.prompt == "a cat, sleeping" and cat_request.guidance == 5.5
    assert cat_request.negative_prompt == "NA"  # text stays text
    assert (cat_request.seed, cat_request.steps, cat_request.aspect_ratio) == (0, 35, "16:9")
    assert re.fullmatch(r"[0-9a-f]{12}", cat.id) and cat.output.endswith(f"/out/{cat.id}.jpg")
    assert fox.row.id == "007" and cat.row.id is None and cat.row.output is None  # the row as written


def test_json_jsonl_and_parquet_read_alike(tmp_path):
    rows = [
        {"prompt": "a lake", "seed": 3, "resolution": "480", "fps": 10},
        {"prompt": "a city", "output": "city.mp4", "model_size": "14B", "image_guidance": 3},
    ]
    write_json(tmp_path / "m.json", rows)
    (tmp_path / "m.jsonl").write_text("\n" + json.dumps(rows[0]) + "\n\n  \n" + json.dumps(rows[1]) + "\n")
    # Parquet: numbers as numbers, and NaN / None for the cells a row leaves out.
    pd.DataFrame(
        {
            "prompt": ["a lake", "a city"],
            "seed": [3, None],
            "resolution": [480, None],
            "fps": [10, None],
            "output": [None, "city.mp4"],
            "model_size": [None, "14B"],
            "image_guidance": [None, 3.0],
        }
    ).to_parquet(tmp_path / "m.parquet")
    # CSV: the same rows as text.
    (tmp_path / "m.csv").write_text(
        "prompt,seed,resolution,fps,output,model_size,image_guidance\n"
        "a lake,3,480,10,,,\n"
        "a city,,,,city.mp4,14B,3\n"
    )
    read = {
        ext: read_manifest(str(tmp_path / f"m{ext}"), "text2world", "out")
        for ext in (".json", ".jsonl", ".parquet", ".csv")
    }
    for ext, m in read.items():
        assert m.errors == [], ext
        assert [r.row_number for r in m.rows] == [1, 2], ext
        lake, city = m.rows
        assert (lake.request.seed, lake.row.resolution, lake.row.fps) == (3, "480", 10), ext
        assert city.output == "out/city.mp4" and city.row.model_size == "14B", ext
        assert city.request.image_guidance == 3.0 and city.row.fps == 16, ext
        # The same content gives the same ids whatever the format.
        assert [r.id for r in m.rows] == [r.id for r in read[".json"].rows], ext


def test_the_reference_batch_json_files(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)  # the reference runs from its repository root: inputs are relative to it
    t2i = read_manifest("assets/text2image/batch_example.json", "text2image", "s3://bucket/run")
    assert t2i.errors == [] and len(t2i.rows) == 3
    assert t2i.rows[0].output == "s3://bucket/run/output/sweeping-broom-sunlit-floor.jpg"

    t2w = read_manifest("assets/text2world/batch_example.json", "text2world", str(tmp_path))
    assert t2w.errors == [] and len(t2w.rows) == 3
    assert t2w.rows[1].output == f"{tmp_path}/output/sailboat-mountain-lake.mp4"

    v2w = read_manifest("assets/video2world/batch_example.json", "video2world", str(tmp_path))
    assert v2w.errors == [] and len(v2w.rows) == 3
    assert [r.input for r in v2w.rows] == [str(REPO / f"assets/video2world/input{i}.jpg") for i in range(3)]
    assert v2w.rows[2].output == f"{tmp_path}/output/factory-worker-bottle-filling.mp4"
    assert v2w.rows[0].request.input_path == v2w.rows[0].input
    assert v2w.rows[0].row.input_path == "assets/video2world/input0.jpg"  # as written


@pytest.mark.parametrize(
    ("name", "task"),
    [
        ("text2image.csv", "text2image"),
        ("video2world.jsonl", "video2world"),
        ("text2world.json", "text2world"),
        ("best-of-n.parquet", "best-of-n"),
    ],
)
def test_example_manifests_are_valid(monkeypatch, name, task):
    monkeypatch.chdir(REPO)
    m = read_manifest(str(EXAMPLES / name), task, "out")
    assert m.errors == [] and len(m.rows) >= 2


def test_whole_file_problems_raise_manifest_error(tmp_path):
    with pytest.raises(ManifestError, match=r"not found: .*nope\.csv"):
        read_manifest(str(tmp_path / "nope.csv"), "text2image", "out")
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(ManifestError, match=r"m\.xlsx.*\.csv, \.json, \.jsonl, \.parquet"):
        read_manifest(str(tmp_path / "m.xlsx"), "text2image", "out")
    with pytest.raises(ManifestError, match="must be a JSON list of objects"):
        read_manifest(write_json(tmp_path / "d.json", {"prompt": "x"}), "text2image", "out")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(ManifestError, match=r"could not parse .*broken\.json as JSON"):
        read_manifest(str(tmp_path / "broken.json"), "text2image", "out")
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(write_json(tmp_path / "e.json", []), "text2image", "out")
    (tmp_path / "header.csv").write_text("prompt,seed\n")
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(str(tmp_path / "header.csv"), "text2image", "out")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(ManifestError, match="is empty"):
        read_manifest(str(tmp_path / "blank.csv"), "text2image", "out")
    with pytest.raises(ManifestError, match="unknown task 'image2world'"):
        read_manifest(write_json(tmp_path / "t.json", [{"prompt": "x"}]), "image2world", "out")


# ---------------------------------------------------------------------------------------------------------
# Row errors
# ---------------------------------------------------------------------------------------------------------


def test_unknown_column_is_named_on_the_rows_that_use_it(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("prompt,colour,seed\na fox,,1\na cat,red,2\na dog,,3\n")
    m = read_manifest(str(path), "text2image", "out")
    assert messages(m) == ["row 2, field 'colour': unknown field 'colour'"]
    assert [r.row_number for r in m.rows] == [1, 3]

    m = read_manifest(write_jsonl(tmp_path / "m.jsonl", [{"prompt": "x", "sede": 4}]), "text2image", "out")
    assert messages(m) == ["row 1, field 'sede': unknown field 'sede' (did you mean 'seed'?)"]
    m = read_manifest(write_json(tmp_path / "two.json", [{"prompt": "x", "a": 1, "b": 2}]), "text2image", "o")
    assert messages(m) == ["row 1, field 'a': unknown field 'a'", "row 1, field 'b': unknown field 'b'"]
    # Fields of another task are unknown too: text2image takes no input.
    m = read_manifest(write_json(tmp_path / "i.json", [{"prompt": "x", "input": "a.jpg"}]), "text2image", "o")
    assert messages(m) == ["row 1, field 'input': unknown field 'input'"]


def test_field_errors_read_as_sentences(tmp_path):
    rows = [
        {"prompt": "a", "seed": "x"},
        {"prompt": "b", "seed": -1},
        {"seed": 3},
        {"prompt": "   "},
        {"prompt": "c", "aspect_ratio": "2:1"},
        {"prompt": "d", "model_size": "0.6B"},  # the 0.6B model is Text2Image only
        {"prompt": "e", "output": "a.mp4", "output_video": "b.mp4"},
    ]
    m = read_manifest(write_json(tmp_path / "m.json", rows), "text2world", "out")
    assert m.rows == []
    assert messages(m) == [
        "row 1, field 'seed': Input should be a valid integer, unable to parse string as an integer",
        "row 2, field 'seed': Input should be greater than or equal to 0",
        "row 3, field 'prompt': the prompt is missing",
        "row 4, field 'prompt': the prompt is empty",
        "row 5, field 'aspect_ratio': Input should be '1:1', '4:3', '3:4', '16:9' or '9:16'",
        "row 6, field 'model_size': Input should be '2B', '14B' or 'embedded'",
        "row 7, field 'output_video': 'output_video' and 'output' both set the output: keep one",
    ]
    assert isinstance(m.errors[0], RowError) and m.errors[0].row == 1 and m.errors[0].field == "seed"
    assert str(RowError(3, None, "not valid JSON")) == "row 3: not valid JSON"


def test_empty_prompt_is_allowed_for_video2world_only(tmp_path):
    rows = [{"prompt": "", "input": str(INPUT)}]
    m = read_manifest(write_json(tmp_path / "m.json", rows), "video2world", "out")
    assert m.errors == [] and m.rows[0].request.prompt == ""
    m = read_manifest(write_json(tmp_path / "t.json", [{"prompt": ""}]), "text2image", "out")
    assert messages(m) == ["row 1, field 'prompt': the prompt is empty"]
    # In a table an empty cell is a missing value, for the prompt too.
    path = tmp_path / "m.csv"
    path.write_text(f"prompt,input\n,{INPUT}\n")
    assert messages(read_manifest(str(path), "video2world", "out")) == [
        "row 1, field 'prompt': the prompt is missing"
    ]


def test_jsonl_lines_that_are_not_objects_are_row_errors(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"prompt": "a"}\n{"prompt": \n[1, 2]\n{"prompt": "b"}\n')
    m = read_manifest(str(path), "text2image", "out")
    assert [r.row_number for r in m.rows] == [1, 4]
    assert [(e.row, e.field) for e in m.errors] == [(2, None), (3, None)]
    assert messages(m)[0].startswith("row 2 (line 2): not valid JSON")
    assert messages(m)[1] == "row 3 (line 3): expected a JSON object, got list"


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("/tmp/escape.jpg", "is absolute"),
        ("s3://other-bucket/x.jpg", "is a URL"),
        ("../escape.jpg", "leaves the output root"),
        ("a/../../escape.jpg", "leaves the output root"),
        ("a\\b.jpg", "separate folders with '/'"),
        ("", "the output path is empty"),
        ("image.png", "must end in .jpg or .jpeg"),
        ("video.mp4", "must end in .jpg or .jpeg"),
    ],
)
def test_bad_outputs_are_row_errors(tmp_path, output, reason):
    rows = [{"prompt": "ok"}, {"prompt": "bad", "output": output}]
    m = read_manifest(write_json(tmp_path / "m.json", rows), "text2image", "out")
    assert [r.row_number for r in m.rows] == [1]
    assert [(e.row, e.field) for e in m.errors] == [(2, "output")]
    assert reason in m.errors[0].message


def test_video_outputs_must_be_mp4(tmp_path):
    m = read_manifest(
        write_json(tmp_path / "m.json", [{"prompt": "a", "output": "a.jpg"}]), "text2world", "o"
    )
    assert messages(m) == ["row 1, field 'output': output 'a.jpg' must end in .mp4"]


def test_rows_sharing_an_output_are_all_rejected(tmp_path):
    rows = [
        {"prompt": "a", "output": "same.jpg"},
        {"prompt": "b", "output": "./same.jpg"},  # another spelling of the same file
        {"prompt": "c", "output": "other.jpg"},
        {"prompt": "d", "output": "same.JPG", "id": "x"},  # one file on a case-insensitive disk
        {"prompt": "e", "output": "same.jpg"},
    ]
    m = read_manifest(write_json(tmp_path / "m.json", rows), "text2image", "s3://b/out/")
    assert [r.row_number for r in m.rows] == [3]
    assert messages(m) == [
        "row 1, field 'output': output s3://b/out/same.jpg is also written by rows 2, 4 (s3://b/out/same.JPG), 5",
        "row 2, field 'output': output s3://b/out/same.jpg is also written by rows 1, 4 (s3://b/out/same.JPG), 5",
        "row 4, field 'output': output s3://b/out/same.JPG is also written by rows 1 (s3://b/out/same.jpg), "
        "2 (s3://b/out/same.jpg), 5 (s3://b/out/same.jpg)",
        "row 5, field 'output': output s3://b/out/same.jpg is also written by rows 1, 2, 4 (s3://b/out/same.JPG)",
    ]
    # A default output colliding with an explicit one counts too.
    rows = [{"prompt": "a", "id": "fox"}, {"prompt": "b", "output": "fox.jpg"}]
    m = read_manifest(write_json(tmp_path / "d.json", rows), "text2image", "out")
    assert m.rows == [] and [e.row for e in m.errors] == [1, 2]


def test_ids_are_checked_and_unique(tmp_path):
    rows = [
        {"id": "fox", "prompt": "a"},
        {"id": "cat", "prompt": "b"},
        {"id": "fox", "prompt": "c", "output": "fox2.jpg"},
        {"id": "bad/id", "prompt": "d"},
        {"id": ".hidden", "prompt": "e"},
        {"prompt": "same"},
        {"prompt": "same"},  # identical rows derive the same id
    ]
    m = read_manifest(write_json(tmp_path / "m.json", rows), "text2image", "out")
    assert [r.id for r in m.rows] == ["fox", "cat", m.rows[2].id]
    assert [r.row_number for r in m.rows] == [1, 2, 6]
    assert [(e.row, e.field) for e in m.errors] == [(3, "id"), (4, "id"), (5, "id"), (7, "id")]
    assert m.errors[0].message == "id 'fox' is already used by row 1"
    assert "not filename-safe" in m.errors[1].message
    assert m.errors[3].message == "same content as row 6: give one of them an id, or another seed"


def test_inputs_must_exist_and_have_a_media_extension(tmp_path):
    (tmp_path / "there.jpg").write_bytes(b"jpeg")
    rows = [
        {"prompt": "a", "input": "there.jpg"},
        {"prompt": "b", "input": "missing.mp4"},
        {"prompt": "c", "input": "notes.txt"},
        {"prompt": "d"},
    ]
    path = write_json(tmp_path / "m.json", rows)
    m = read_manifest(path, "video2world", "out", input_root=str(tmp_path))
    assert [r.row_number for r in m.rows] == [1]
    assert messages(m) == [
        f"row 2, field 'input': input not found: {tmp_path}/missing.mp4",
        "row 3, field 'input': input 'notes.txt' must end in one of .jpg, .jpeg, .png, .webp, .mp4",
        "row 4, field 'input': the input is missing",
    ]
    m = read_manifest(path, "video2world", "out", input_root=str(tmp_path), check_inputs=False)
    assert [r.row_number for r in m.rows] == [1, 2]


def test_relative_inputs_resolve_against_input_root_or_cwd(tmp_path, monkeypatch):
    rows = [
        {"prompt": "a", "input": "clips/a.mp4"},
        {"prompt": "b", "input": "/data/b.jpg"},
        {"prompt": "c", "input_video": "https://example.com/c.png?X-Amz-Signature=1"},
    ]
    path = write_json(tmp_path / "m.json", rows)

    def inputs(**kwargs) -> list[str | None]:
        m = read_manifest(path, "best-of-n", "out", check_inputs=False, **kwargs)
        assert m.errors == []
        return [r.input for r in m.rows]

    rest = ["/data/b.jpg", "https://example.com/c.png?X-Amz-Signature=1"]  # absolute paths and URLs stay
    assert inputs(input_root="s3://bucket/inputs/") == ["s3://bucket/inputs/clips/a.mp4", *rest]
    assert inputs(input_root=str(tmp_path / "in")) == [str(tmp_path / "in/clips/a.mp4"), *rest]
    monkeypatch.chdir(tmp_path / "..")  # a local manifest's relative inputs: the working directory
    assert inputs() == [str(tmp_path.parent / "clips/a.mp4"), *rest]


def test_ids_are_stable_under_rereading_and_reordering(tmp_path):
    rows = [{"prompt": f"prompt {i}", "seed": i} for i in range(5)]
    first = read_manifest(write_jsonl(tmp_path / "a.jsonl", rows), "text2image", "out")
    again = read_manifest(write_jsonl(tmp_path / "a.jsonl", rows), "text2image", "out")
    shuffled = read_manifest(write_jsonl(tmp_path / "b.jsonl", rows[::-1]), "text2image", "out")
    ids = [r.id for r in first.rows]
    assert len(set(ids)) == 5
    assert [r.id for r in again.rows] == ids
    assert [r.id for r in shuffled.rows] == ids[::-1]
    # Content, with defaults filled: an explicit default changes nothing, a new prompt changes the id.
    rows[0] = {**rows[0], "steps": 35}
    rows[1] = {**rows[1], "prompt": "another prompt"}
    changed = read_manifest(write_jsonl(tmp_path / "c.jsonl", rows), "text2image", "out")
    assert [r.id for r in changed.rows] == [ids[0], changed.rows[1].id, *ids[2:]]
    assert changed.rows[1].id != ids[1]


def test_twenty_rows_with_five_bad_ones(tmp_path):
    """The acceptance case: 15 rows go ahead, 5 errors name their row and field."""
    rows = [{"prompt": f"scene {i}", "input": str(INPUT), "seed": i} for i in range(1, 21)]
    del rows[2]["prompt"]  # row 3: missing prompt
    rows[6]["camera"] = "dolly"  # row 7: unknown column
    rows[9]["seed"] = "ten"  # row 10: not an integer
    rows[13]["output"] = "../../etc/passwd.mp4"  # row 14: path traversal
    rows[18]["input"] = str(tmp_path / "gone.jpg")  # row 19: missing input file
    m = read_manifest(write_jsonl(tmp_path / "m.jsonl", rows), "video2world", str(tmp_path / "out"))
    assert len(m.rows) == 15
    assert [(e.row, e.field) for e in m.errors] == [
        (3, "prompt"),
        (7, "camera"),
        (10, "seed"),
        (14, "output"),
        (19, "input"),
    ]
    assert [r.row_number for r in m.rows] == [n for n in range(1, 21) if n not in (3, 7, 10, 14, 19)]
    assert str(m.errors[4]) == f"row 19, field 'input': input not found: {tmp_path}/gone.jpg"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_rows_are_their_requests_plus_id_and_output(task):
    """A row has every field of its request, with the same schema (default, limits, choices), so a request
    field is a manifest column with no other change; and a row's request is the request of its fields."""
    row_model = TASKS[task].row_model
    request_model = row_model.REQUEST
    rows = row_model.model_json_schema()["properties"]
    requests = request_model.model_json_schema()["properties"]
    for name, schema in requests.items():
        row_schema = rows[name]
        if name == "prompt" and "default" in schema:  # a row names its prompt even where it may be ""
            schema = {k: v for k, v in schema.items() if k != "default"}
        assert {k: v for k, v in row_schema.items() if k != "description"} == {
            k: v for k, v in schema.items() if k != "description"
        }, name
    assert set(rows) - set(requests) <= {"id", "output", "model_size", "resolution", "fps", "natten"}
    fields = {"prompt": "a red ball", "seed": "7", "steps": 3}
    if "input_path" in request_model.model_fields:
        fields["input_video"] = "in.jpg"  # the reference's batch key
    row = row_model.model_validate({**fields, "output": "x" + row_model.OUTPUT_EXTENSIONS[0]})
    assert row.request() == request_model.model_validate(fields) and row.request().seed == 7


def test_manifests_import_neither_torch_nor_prefect():
    code = (
        "import sys, manifests\n"
        "bad = [m for m in ('torch', 'prefect', 'cosmos_core', 'flows', 'tasks') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ---------------------------------------------------------------------------------------------------------
# Shards
# ---------------------------------------------------------------------------------------------------------


def test_shards_group_rows_by_model_and_keep_order(tmp_path):
    rows = []
    for i in range(7):
        row = {"prompt": f"p{i}", "input": str(INPUT), "seed": i}
        if i in (1, 4):
            row.update(resolution="480", fps=10)
        if i == 5:
            row["model_size"] = "14B"
        rows.append(row)
    m = read_manifest(write_json(tmp_path / "m.json", rows), "video2world", "out")
    shards = plan_shards(m, shard_size=2, records_dir="s3://b/records")
    assert [[r.row_number for r in s.rows] for s in shards] == [[1, 3], [4, 7], [2, 5], [6]]
    assert [(s.model.model_size, s.model.resolution, s.model.fps) for s in shards] == [
        (None, "720", 16),
        (None, "720", 16),
        (None, "480", 10),
        ("14B", "720", 16),
    ]
    assert all(s.task == "video2world" and s.records_dir == "s3://b/records" for s in shards)
    assert all(s.output_root == "out" and s.parallelism == "data" for s in shards)
    ids = [s.shard_id for s in shards]
    assert all(re.fullmatch(rf"video2world-{k:04d}-[0-9a-f]{{8}}", i) for k, i in enumerate(ids))
    assert len(set(ids)) == 4
    assert [s.shard_id for s in plan_shards(m, 2, "elsewhere")] == ids  # stable: the ids depend on the rows
    assert [len(s.rows) for s in plan_shards(m, 100, "r")] == [4, 2, 1]

    # Defaults fill what the rows leave out; text2world's image stage reuses the manifest as text2image.
    defaults = ModelSpec(model_size="2B", checkpoint_dir="/ckpt")
    stage = plan_shards(m, 10, "r", defaults=defaults, task="text2world-image")
    assert [s.task for s in stage] == ["text2world-image", "text2world-image"]
    assert [s.model.model_size for s in stage] == ["2B", "14B"]  # resolution and fps do not split images
    assert all(
        s.shard_id.startswith("text2world-image-0") and s.model.checkpoint_dir == "/ckpt" for s in stage
    )
    assert len(plan_shards(m, 10, "r", task="text2world-video")) == 3
    with pytest.raises(ValueError, match="shard_size"):
        plan_shards(m, 0, "r")


def test_model_spec_of_rows():
    defaults = ModelSpec(model_size="2B")
    image = Text2ImageRow(prompt="p", model_size="0.6B")
    assert model_spec_of("text2image", image, defaults) == ModelSpec(model_size="0.6B")
    assert model_spec_of("text2image", Text2ImageRow(prompt="p", distill_steps=4), defaults).distilled
    video = Video2WorldRow(prompt="p", input="a.jpg", resolution="480", fps=10)
    assert model_spec_of("video2world", video, defaults) == ModelSpec(
        model_size="2B", resolution="480", fps=10
    )
    # text2world's image stage: an image model has no resolution or fps (they do not split its shards)
    world = Text2WorldRow(prompt="p", resolution="480", fps=10, natten=None)
    assert model_spec_of("text2world-image", world, defaults) == defaults


def test_shard_files_round_trip(tmp_path):
    m = read_manifest(str(EXAMPLES / "text2image.csv"), "text2image", "out")
    shard = plan_shards(m, 10, str(tmp_path / "records"))[0]
    url = str(tmp_path / "shards" / f"{shard.shard_id}.json")
    write_shard(shard, url)
    assert read_shard(url) == shard
    assert [p.name for p in (tmp_path / "shards").iterdir()] == [f"{shard.shard_id}.json"]  # no temp left
    with pytest.raises(ManifestError, match="shard file not found"):
        read_shard(str(tmp_path / "none.json"))


# ---------------------------------------------------------------------------------------------------------
# Result records
# ---------------------------------------------------------------------------------------------------------


def test_records_round_trip_and_corrupt_ones_are_redone(tmp_path):
    records_dir = str(tmp_path / "records")
    ok = ResultRecord(id="fox", row_number=1, status="ok", output="out/fox.jpg", seconds=1.25, rank=0)
    failed = ResultRecord(id="cat", row_number=2, status="failed", output="out/cat.jpg", error="CUDA OOM")
    for record in (ok, failed):
        write_record(records_dir, record)
    assert record_url(records_dir + "/", "fox") == f"{records_dir}/fox.json"
    assert read_record(records_dir, "fox") == ok
    assert ok.finished_at.endswith("+00:00")  # UTC
    assert read_record(records_dir, "dog") is None
    assert sorted(os.listdir(records_dir)) == ["cat.json", "fox.json"]  # no temporary files left

    (tmp_path / "records" / "cat.json").write_text('{"id": "cat", "row_n')  # a torn write
    (tmp_path / "records" / "eel.json").write_text(ok.model_dump_json())  # another row's record
    assert read_record(records_dir, "cat") is None
    assert read_record(records_dir, "eel") is None
    assert read_records(records_dir, ["fox", "cat", "dog", "eel"]) == {"fox": ok}
    assert read_records(records_dir, []) == {}


def test_results_csv_and_summary(tmp_path):
    records = [
        ResultRecord(
            id="b", row_number=2, status="failed", output="s3://o/b.mp4", seconds=3, error="bad, input"
        ),
        ResultRecord(
            id="a",
            row_number=1,
            status="ok",
            output="s3://o/a.mp4",
            seconds=12.3456,
            extra={"warnings": ["prompt truncated", "poor conditioning"]},
        ),
        ResultRecord(id="c", row_number=3, status="blocked", output="s3://o/c.mp4", error="guardrail"),
    ]
    url = str(tmp_path / "report" / "results.csv")
    write_results_csv(records, url)
    lines = list(csv.reader(io.StringIO(Path(url).read_text())))
    assert lines == [
        ["row_number", "id", "status", "output", "seconds", "error", "warnings"],
        ["1", "a", "ok", "s3://o/a.mp4", "12.346", "", "prompt truncated; poor conditioning"],
        ["2", "b", "failed", "s3://o/b.mp4", "3.000", "bad, input", ""],
        ["3", "c", "blocked", "s3://o/c.mp4", "0.000", "guardrail", ""],
    ]
    assert summarize(records) == {"ok": 1, "failed": 1, "blocked": 1, "skipped": 0}
    assert summarize({r.id: r for r in records}) == summarize(records)


# ---------------------------------------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_manifest_shard_and_records_on_s3(s3_bucket_url):
    fs, _ = url_to_fs(s3_bucket_url)
    manifest_url = f"{s3_bucket_url}/batch/m.jsonl"
    rows = [
        {"id": "bus", "prompt": "a bus", "input_video": "inputs/bus.jpg"},  # relative to the manifest
        {"id": "gone", "prompt": "a ghost", "input": "inputs/gone.jpg"},
    ]
    fs.pipe_file(manifest_url, "".join(json.dumps(r) + "\n" for r in rows).encode())
    fs.put_file(str(INPUT), f"{s3_bucket_url}/batch/inputs/bus.jpg")

    m = read_manifest(manifest_url, "video2world", f"{s3_bucket_url}/out/")
    assert [r.input for r in m.rows] == [f"{s3_bucket_url}/batch/inputs/bus.jpg"]
    assert m.rows[0].output == f"{s3_bucket_url}/out/bus.mp4"
    assert messages(m) == [f"row 2, field 'input': input not found: {s3_bucket_url}/batch/inputs/gone.jpg"]

    shard = plan_shards(m, 8, f"{s3_bucket_url}/records")[0]
    write_shard(shard, f"{s3_bucket_url}/shards/{shard.shard_id}.json")
    assert read_shard(f"{s3_bucket_url}/shards/{shard.shard_id}.json") == shard

    record = ResultRecord(id="bus", row_number=1, status="ok", output=m.rows[0].output, seconds=2.0)
    write_record(shard.records_dir, record)
    assert read_record(shard.records_dir, "bus") == record
    assert read_record(shard.records_dir, "gone") is None
    assert read_records(shard.records_dir, ["bus", "gone"]) == {"bus": record}
    write_results_csv([record], f"{s3_bucket_url}/out/results.csv")
    assert fs.cat_file(f"{s3_bucket_url}/out/results.csv").decode().splitlines()[1].startswith("1,bus,ok,")
