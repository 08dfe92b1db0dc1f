"""Inputs are probed before they are decoded (size, frames, duration within limits) and a damaged input
fails its row instead of conditioning it on whatever frames could be decoded."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from cosmos_core import media
from cosmos_core.cli import video2world_main
from cosmos_core.media import InputLimits, MediaError

RNG = np.random.default_rng(0)


def noise_video(path: Path, frames: int = 40) -> str:
    media.write_video(str(path), RNG.integers(0, 255, (frames, 64, 96, 3), dtype=np.uint8), fps=16)
    return str(path)


def png_header_only(path: Path, width: int, height: int) -> str:
    """A PNG whose header claims width x height, with one tiny compressed row: a decompression bomb's
    shape (kilobytes on disk, gigabytes once decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = (
        chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (1 + 3 * width))) + chunk(b"IEND", b"")
    )
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return str(path)


def test_the_end_of_a_video_reads_as_the_same_frames_as_a_full_decode(tmp_path):
    url = noise_video(tmp_path / "v.mp4")
    assert np.array_equal(media.read_last_frames(url, 5), media.read_video(url)[0][-5:])
    assert media.probe_input(url)["frames"] == 40


def test_a_huge_image_is_refused_from_its_header(tmp_path):
    url = png_header_only(tmp_path / "bomb.png", 16_000, 16_000)
    assert Path(url).stat().st_size < 200_000
    with pytest.raises(
        MediaError, match=r"16000x16000 \(256,000,000 pixels per frame\); inputs may have 16,777,216"
    ):
        media.read_last_frames(url, 1)


def test_frame_count_and_duration_limits(tmp_path, monkeypatch):
    url = noise_video(tmp_path / "v.mp4")  # 40 frames, 2.5 s
    with pytest.raises(MediaError, match="about 40 frames; inputs may have 20"):
        media.probe_input(url, InputLimits(max_input_frames=20))
    with pytest.raises(MediaError, match=r"lasts 2\.5 s; inputs may last 1 s"):
        media.probe_input(url, InputLimits(max_input_seconds=1))
    monkeypatch.setenv("WORLDMILL_MAX_INPUT_PIXELS", "1000")  # the environment sets the defaults
    assert InputLimits.from_env().max_input_pixels == 1000
    with pytest.raises(MediaError, match="WORLDMILL_MAX_INPUT_PIXELS"):
        media.read_last_frames(url, 1)


def test_a_truncated_video_fails_instead_of_conditioning_on_its_remains(tmp_path):
    data = Path(noise_video(tmp_path / "v.mp4")).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 6 // 10])
    assert len(media.read_video(str(tmp_path / "cut.mp4"))[0]) < 40  # ffmpeg alone decodes what it can
    with pytest.raises(MediaError, match=r"could not read .*cut\.mp4 as a video"):
        media.read_last_frames(str(tmp_path / "cut.mp4"), 1)


def test_a_bad_input_costs_its_batch_item_only(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "none"))
    data = Path(noise_video(tmp_path / "v.mp4")).read_bytes()
    Path("cut.mp4").write_bytes(data[: len(data) // 2])
    png_header_only(tmp_path / "bomb.png", 16_000, 16_000)
    items = [
        {"input_video": "cut.mp4", "prompt": "a", "output_video": "o/cut.mp4"},
        {"input_video": "bomb.png", "prompt": "b", "output_video": "o/bomb.mp4", "num_conditional_frames": 1},
        {"input_video": "v.mp4", "prompt": "c", "output_video": "o/ok.mp4"},
    ]
    Path("b.json").write_text(json.dumps(items))
    argv = [
        "--batch_input_json",
        "b.json",
        "--steps",
        "2",
        "--disable_guardrail",
        "--num_conditional_frames",
        "5",
    ]
    assert video2world_main(argv) == 1
    assert sorted(p.name for p in Path("o").iterdir()) == ["ok.mp4", "ok.mp4.json"]
    assert f"batch item 0 of b.json: could not read {tmp_path}/cut.mp4 as a video" in caplog.text
    assert f"batch item 1 of b.json: {tmp_path}/bomb.png is 16000x16000" in caplog.text
