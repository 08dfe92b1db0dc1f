"""A row's output and sidecar are committed as a pair, and temporaries of killed writes do not pile up.
Real files and real failures: a sidecar path that is a folder, frames ffmpeg refuses, a killed writer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cosmos_core import media
from cosmos_core.pipelines.base import Generation, save_generation
from manifests import read_manifest, read_record
from manifests.storage import atomic_outputs, remove_stale_temporaries
from tests.shards import shard_of

FRAME = np.full((1, 32, 48, 3), 120, np.uint8)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_when_the_sidecar_cannot_be_published_the_output_is_removed_too(tmp_path):
    (tmp_path / "x.jpg.json").mkdir()  # something in the sidecar's place: its rename fails
    with pytest.raises(OSError):
        save_generation(Generation(FRAME, fps=1, sidecar={"seed": 1}), str(tmp_path / "x.jpg"))
    assert leftovers(tmp_path) == ["x.jpg.json"]  # no image without a sidecar, no temporaries


def test_when_the_media_cannot_be_encoded_nothing_is_written(tmp_path):
    odd = np.zeros((3, 33, 47, 3), np.uint8)  # H.264 yuv420p needs even sizes
    with pytest.raises(media.MediaError, match="even width and height"):
        save_generation(Generation(odd, fps=16, sidecar={}), str(tmp_path / "v.mp4"))
    assert leftovers(tmp_path) == []


def test_a_pair_is_published_media_first_and_both_are_complete(tmp_path):
    save_generation(Generation(FRAME, fps=1, sidecar={"seed": 7}), str(tmp_path / "a.jpg"))
    assert leftovers(tmp_path) == ["a.jpg", "a.jpg.json"]
    sidecar = json.loads((tmp_path / "a.jpg.json").read_text())
    assert (
        sidecar["seed"] == 7
        and sidecar["output"] == str(tmp_path / "a.jpg")
        and "write_s" in sidecar["timings"]
    )
    assert media.read_image(str(tmp_path / "a.jpg")).shape == (32, 48, 3)


def test_an_error_inside_the_block_publishes_nothing(tmp_path):
    with (
        pytest.raises(RuntimeError),
        atomic_outputs([str(tmp_path / "a.bin"), str(tmp_path / "b.bin")]) as tmps,
    ):
        for tmp in tmps:
            Path(tmp).write_bytes(b"x")
        raise RuntimeError("the encoder died")
    assert leftovers(tmp_path) == []


def test_a_killed_writer_leaves_a_temporary_that_the_next_attempt_removes(tmp_path):
    target = tmp_path / "v.mp4"
    code = (
        "import os, sys\n"
        "from manifests.storage import atomic_output\n"
        f"with atomic_output({str(target)!r}) as tmp:\n"
        "    open(tmp, 'wb').write(b'half a video')\n"
        "    os._exit(9)  # killed mid-write: no cleanup runs\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], check=False)
    (stale,) = tmp_path.iterdir()
    assert stale.name.startswith(".v.mp4.tmp-") and not target.exists()
    fresh = tmp_path / ".v.mp4.tmp-0123abcd"  # another process writing right now
    fresh.write_bytes(b"in progress")
    assert remove_stale_temporaries(str(target)) == []  # both too recent to be dead
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert remove_stale_temporaries(str(target)) == [str(stale)]
    assert leftovers(tmp_path) == [fresh.name]


def test_the_worker_clears_a_rows_dead_temporaries_before_running_it(tmp_path, monkeypatch):
    from cosmos_core.worker import run_shard

    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "none"))
    (tmp_path / "m.json").write_text(json.dumps([{"prompt": "a red ball", "steps": 2, "output": "o/a.jpg"}]))
    manifest = read_manifest(str(tmp_path / "m.json"), "text2image", str(tmp_path / "out"))
    out = tmp_path / "out" / "o"
    out.mkdir(parents=True)
    dead = [out / ".a.jpg.tmp-deadbeef", out / ".a.jpg.json.tmp-deadbeef"]
    for path in dead:
        path.write_bytes(b"from a killed attempt")
        os.utime(path, (time.time() - 3600,) * 2)
    shard = shard_of(manifest, tmp_path, guardrail=False)
    assert run_shard(shard)["ok"] == 1
    assert leftovers(out) == ["a.jpg", "a.jpg.json"]
    assert read_record(str(tmp_path / "records"), manifest.rows[0].id).status == "ok"
