"""The batch flows, run in-process against the session's real Prefect server; shards run the real
cosmos_core worker as a subprocess on the embedded model."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from cosmos_core import media
from manifests.tasks import intermediate_root

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _embedded_only(tmp_path, monkeypatch):
    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "no-checkpoints"))  # the embedded model


def write_csv(path: Path, rows: list[dict]) -> str:
    fields = sorted({k for row in rows for k in row})
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def results(output_root: Path) -> list[dict]:
    with open(output_root / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def worker_pids() -> list[int]:
    """cosmos_core.worker processes started by this test process."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if b"cosmos_core.worker" in cmdline and ppid == os.getpid():
            pids.append(int(entry.name))
    return pids


def test_killed_shard_is_retried_and_only_missing_rows_are_generated(prefect_server, tmp_path):
    from flows.text2image import text2image_batch

    rows = [
        {"prompt": f"a red ball number {i}", "seed": i, "steps": 3, "output": f"img/{i}.jpg"}
        for i in range(6)
    ]
    manifest = write_csv(tmp_path / "m.csv", rows)

    # Reference: the same manifest, uninterrupted.
    clean = tmp_path / "clean"
    text2image_batch(manifest=manifest, output_root=str(clean), options={"shard_size": 10})

    out = tmp_path / "out"
    records = out / ".worldmill" / "records" / "text2image"
    killed: list[int] = []
    before_kill: dict[str, tuple[int, int]] = {}

    def killer() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if records.exists() and len(list(records.glob("*.json"))) >= 2:
                for pid in worker_pids():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                for record in records.glob("*.json"):
                    output = Path(json.loads(record.read_text())["output"])
                    before_kill[output.name] = (output.stat().st_ino, output.stat().st_mtime_ns)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=killer)
    thread.start()
    summary = text2image_batch(manifest=manifest, output_root=str(out), options={"shard_size": 10})
    thread.join()

    assert killed, "the fault was not injected"
    assert summary["ok"] == 6 and summary["failed"] == 0
    attempts = {
        r["id"]: json.loads((records / f"{r['id']}.json").read_text())["attempt"] for r in results(out)
    }
    assert sorted(attempts.values()).count(1) >= 2 and 2 in attempts.values()  # the retry did the rest
    for name, (inode, mtime) in before_kill.items():  # rows done before the kill: untouched
        stat = (out / "img" / name).stat()
        assert (stat.st_ino, stat.st_mtime_ns) == (inode, mtime)
    for i in range(6):  # the same outputs as the uninterrupted run
        assert (out / f"img/{i}.jpg").read_bytes() == (clean / f"img/{i}.jpg").read_bytes()


def test_bad_rows_are_reported_and_good_rows_generated(prefect_server, tmp_path):
    from flows.video2world import video2world_batch

    image = str(REPO / "assets/video2world/input0.jpg")
    rows = [{"prompt": f"ball {i}", "input": image, "steps": "2", "seed": str(i)} for i in range(20)]
    rows[2]["prompt"] = ""  # missing prompt (an empty CSV cell)
    rows[5]["colour"] = "red"  # unknown column
    rows[8]["seed"] = "seven"  # non-integer seed
    rows[11]["output"] = "../escape.mp4"  # path traversal
    rows[14]["input"] = str(tmp_path / "missing.jpg")  # missing input file
    for row in rows:
        row.setdefault("colour", "")
        row.setdefault("output", "")
    manifest = write_csv(tmp_path / "v.csv", rows)
    out = tmp_path / "out"

    state = video2world_batch(
        manifest=manifest, output_root=str(out), options={"shard_size": 8}, return_state=True
    )

    assert state.is_failed() and "5 of 20 row(s) failed or were rejected" in state.message
    assert "(15 ok, 0 failed, 0 blocked, 5 rejected)" in state.message  # the reason, on the run's page
    report = results(out)
    assert len(report) == 20
    bad = {int(r["row_number"]): r["error"] for r in report if r["status"] != "ok"}
    assert sorted(bad) == [3, 6, 9, 12, 15]  # 1-based data rows
    assert "field 'prompt'" in bad[3] and "colour" in bad[6] and "field 'seed'" in bad[9]
    assert "field 'output'" in bad[12] and "field 'input'" in bad[15] and "missing.jpg" in bad[15]
    good = [r for r in report if r["status"] == "ok"]
    assert len(good) == 15 and all(Path(r["output"]).is_file() for r in good)
    assert not (tmp_path / "escape.mp4").exists()


def test_reports_count_rows_keep_ids_and_group_warnings(prefect_server, tmp_path, caplog):
    from flows.text2image import text2image_batch

    rows = [{"id": f"shot-{i}", "prompt": "a red ball", "steps": "2", "seed": str(i)} for i in range(4)]
    for row in rows[:3]:
        row["colour"] = "red"  # one wrong column on three rows: one warning line
    rows[0]["seed"] = "x"  # and a second error on the first row: still one rejected row
    state = text2image_batch(
        manifest=write_csv(tmp_path / "m.csv", rows), output_root=str(tmp_path / "out"), return_state=True
    )
    assert state.is_failed()
    assert "1 row(s) to generate, 3 rejected by validation" in caplog.text
    warnings = [r.getMessage() for r in caplog.records if "unknown field 'colour'" in r.getMessage()]
    assert len(warnings) == 1 and "rows 1, 2, 3, field 'colour'" in warnings[0]
    report = results(tmp_path / "out")
    assert [(r["id"], r["status"]) for r in report] == [
        ("shot-0", "failed"),
        ("shot-1", "failed"),
        ("shot-2", "failed"),
        ("shot-3", "ok"),
    ]


def test_a_finished_text2world_manifest_is_not_generated_again(prefect_server, tmp_path, caplog):
    from flows.text2world import text2world_batch

    manifest = write_csv(
        tmp_path / "m.csv", [{"prompt": "a ball rolls", "steps": 2}, {"prompt": "a box", "steps": 2}]
    )
    out = tmp_path / "out"
    assert text2world_batch(manifest=manifest, output_root=str(out))["ok"] == 2
    records = out / ".worldmill" / "records"
    stamps = {p: p.stat().st_mtime_ns for p in records.rglob("*.json")}
    caplog.clear()
    assert text2world_batch(manifest=manifest, output_root=str(out))["ok"] == 2
    assert "2 row(s) already done by an earlier run: skipped" in caplog.text
    assert "text2world-image:" not in caplog.text  # no image-stage shard planned: no first frame redrawn
    assert {p: p.stat().st_mtime_ns for p in records.rglob("*.json")} == stamps


def test_inbox_processes_each_manifest_exactly_once(prefect_server, tmp_path):
    from flows.inbox import process_inbox

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    write_csv(inbox / "first.csv", [{"prompt": "red ball", "steps": 2}])
    (inbox / "second.jsonl").write_text(json.dumps({"prompt": "blue box", "steps": 2}) + "\n")

    runs = [process_inbox(inbox=str(inbox), output_root=str(out), task="text2image") for _ in range(2)]

    assert sorted(o["manifest"] for o in runs[0]) == ["first.csv", "second.jsonl"] and runs[1] == []
    assert sorted(p.name for p in (inbox / "done").iterdir()) == [
        "first.csv",
        "first.csv.results.csv",
        "second.jsonl",
        "second.jsonl.results.csv",
    ]
    assert not list((inbox / "processing").iterdir()) and not list((inbox / "failed").iterdir())
    assert len(list((out / "first").glob("*.jpg"))) == 1 and len(list((out / "second").glob("*.jpg"))) == 1


def test_text2world_on_s3(prefect_server, s3_bucket_url, tmp_path):
    from flows.text2world import text2world_batch

    manifest = f"{s3_bucket_url}/in/t2w.json"
    media.write_text(
        manifest, json.dumps([{"prompt": "a ball rolls", "output_video": "v/a.mp4", "steps": 2}])
    )
    out = f"{s3_bucket_url}/out"
    summary = text2world_batch(manifest=manifest, output_root=out, options={"shard_size": 5})
    assert summary["ok"] == 1
    frames, fps = media.read_video(f"{out}/v/a.mp4")
    assert len(frames) == 17 and fps == 16
    assert "ok" in media.read_text(f"{out}/results.csv")
    assert not media.exists(intermediate_root(str(out)))  # temporaries removed


def test_each_flow_takes_only_the_parameters_it_uses():
    """One parameter model per kind of flow, with a description for every field (the Prefect UI's form);
    a parameter a flow would ignore is refused."""
    from pydantic import ValidationError

    from flows.params import BatchParameters, BestOfNParameters, Text2ImageParameters, VideoBatchParameters

    for model in (BatchParameters, Text2ImageParameters, VideoBatchParameters, BestOfNParameters):
        assert all(info.description for info in model.model_fields.values()), model
    with pytest.raises(ValidationError, match="model_size"):
        BatchParameters(model_size="2B")  # the any-task flow (flows/manifest.py): rows choose their models
    with pytest.raises(ValidationError, match="parallelism"):
        Text2ImageParameters(parallelism="context")  # Text2Image has no context parallelism
    with pytest.raises(ValidationError, match="parallelism"):
        BestOfNParameters(parallelism="context")
    assert VideoBatchParameters(parallelism="context", gpus_per_shard=8).options().parallelism == "context"
    assert BestOfNParameters().shard_size == 4 and Text2ImageParameters().shard_size == 25
