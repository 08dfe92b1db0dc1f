"""The reference's commands on the embedded default model: files written, errors, batch behaviour,
reproducibility, video format, s3:// paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosmos_core import media
from cosmos_core.cli import text2image_main, text2world_main, video2world_main
from manifests.presets import EMBEDDED_FPS, EMBEDDED_FRAMES, SIZES

REPO = Path(__file__).resolve().parents[1]
FAST = ["--steps", "6"]  # the command defaults to 35; fewer keep the suite fast on a CPU


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with the shipped assets, as the reference's documented commands expect."""
    shutil.copytree(REPO / "assets", tmp_path / "assets")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COSMOS_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))  # empty: embedded default
    return tmp_path


def probe(path: Path) -> dict:
    return media.probe_video(str(path))


def test_text2image_writes_image_and_sidecar(workdir):
    assert text2image_main(["--prompt", "a red ball on a gray floor", "--save_path", "out/a.jpg", *FAST]) == 0
    image = media.read_image("out/a.jpg")
    assert image.shape == (96, 160, 3)  # embedded 16:9
    sidecar = json.loads(Path("out/a.jpg.json").read_text())
    assert sidecar["prompt"] == "a red ball on a gray floor" and sidecar["seed"] == 0
    assert sidecar["parameters"]["guidance"] == 4.0 and sidecar["parameters"]["steps"] == 6
    assert (
        sidecar["model"]["embedded"] is True and sidecar["dit_evaluations"] == 12
    )  # 6 steps x 2 (no final call)
    assert {"text_encode_s", "sampling_s", "decode_s", "total_s", "write_s"} <= set(sidecar["timings"])


def test_video2world_from_image_has_expected_format(workdir):
    args = [
        "--input_path",
        "assets/video2world/input0.jpg",
        "--prompt",
        "a ball rolls",
        "--save_path",
        "v.mp4",
    ]
    assert video2world_main([*args, "--aspect_ratio", "4:3", *FAST]) == 0
    info = probe(workdir / "v.mp4")
    width, height = SIZES["embedded"]["4:3"]
    assert (info["frames"], info["fps"], info["width"], info["height"]) == (
        EMBEDDED_FRAMES,
        EMBEDDED_FPS,
        width,
        height,
    )
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    sidecar = json.loads((workdir / "v.mp4.json").read_text())
    assert sidecar["conditional_latent_frames"] == 1 and sidecar["negative_prompt"].startswith(
        "The video captures"
    )


def test_video2world_five_frames_from_video(workdir):
    args = [
        "--input_path",
        "assets/video2world/input3.mp4",
        "--num_conditional_frames",
        "5",
        "--save_path",
        "v5.mp4",
    ]
    assert video2world_main([*args, "--prompt", "the ball keeps rolling", *FAST]) == 0
    assert json.loads(Path("v5.mp4.json").read_text())["conditional_latent_frames"] == 2
    assert probe(workdir / "v5.mp4")["frames"] == EMBEDDED_FRAMES


def test_text2world_removes_the_temporary_image(workdir):
    assert text2world_main(["--prompt", "a blue box slides left", "--save_path", "w/t.mp4", *FAST]) == 0
    assert sorted(p.name for p in (workdir / "w").iterdir()) == ["t.mp4", "t.mp4.json"]
    sidecar = json.loads((workdir / "w/t.mp4.json").read_text())
    assert sidecar["task"] == "text2world" and sidecar["image_stage"]["parameters"]["guidance"] == 4.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--input_path", "clip3.mp4", "--num_conditional_frames", "5"],
            "has 3 decodable frame(s) at its end; 5 are needed: --num_conditional_frames 5",
        ),
        (["--input_path", "assets/video2world/input0.jpg", "--num_conditional_frames", "5"], "is an image"),
        (["--input_path", "missing.jpg"], "missing.jpg"),
        (["--input_path", "garbage.jpg"], "garbage.jpg"),
    ],
    ids=["3-frame-video", "image-for-5-frames", "missing", "unreadable"],
)
def test_video2world_input_errors(workdir, caplog, argv, message):
    media.write_video("clip3.mp4", np.zeros((3, 32, 32, 3), np.uint8), fps=16)
    Path("garbage.jpg").write_bytes(b"this is not a jpeg")
    assert video2world_main([*argv, "--save_path", "x.mp4", *FAST]) == 1
    assert message in caplog.text
    assert not Path("x.mp4").exists()


def test_unknown_aspect_ratio_is_rejected(workdir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        text2image_main(["--aspect_ratio", "2:1"])
    assert exit_info.value.code == 2 and "invalid choice: '2:1'" in capsys.readouterr().err


def test_batch_reports_bad_items_and_generates_the_others(workdir, caplog):
    items = [
        {
            "input_video": "assets/video2world/input1.jpg",
            "prompt": "ok one",
            "output_video": "b/ok1.mp4",
            "seed": 3,
        },
        {"input_video": "missing.jpg", "prompt": "no input", "output_video": "b/bad1.mp4"},
        {
            "input_video": "assets/video2world/input2.jpg",
            "prompt": "bad ar",
            "output_video": "b/bad2.mp4",
            "aspect_ratio": "2:1",
        },
        {
            "input_video": "assets/video2world/input2.jpg",
            "prompt": "bad key",
            "output_video": "b/bad3.mp4",
            "colour": 1,
        },
        {
            "input_video": "assets/video2world/input2.jpg",
            "prompt": "ok two",
            "output_video": "b/ok2.mp4",
            "guidance": 3,
        },
    ]
    Path("batch.json").write_text(json.dumps(items))
    assert video2world_main(["--batch_input_json", "batch.json", *FAST]) == 1
    assert sorted(p.name for p in Path("b").glob("*.mp4")) == ["ok1.mp4", "ok2.mp4"]
    assert json.loads(Path("b/ok1.mp4.json").read_text())["seed"] == 3
    assert json.loads(Path("b/ok2.mp4.json").read_text())["parameters"]["guidance"] == 3
    assert "batch item 1 of batch.json" in caplog.text and "missing.jpg" in caplog.text
    assert "batch item 2 of batch.json: field 'aspect_ratio'" in caplog.text
    assert "batch item 3 of batch.json: field 'colour': unknown field 'colour'" in caplog.text
    assert "2 of 5 item(s) generated" in caplog.text


@pytest.mark.parametrize("command", ["text2image", "video2world", "text2world"])
def test_reference_batch_examples_run_as_documented(workdir, command):
    main = {"text2image": text2image_main, "video2world": video2world_main, "text2world": text2world_main}[
        command
    ]
    batch = json.loads(Path(f"assets/{command}/batch_example.json").read_text())
    assert main(["--batch_input_json", f"assets/{command}/batch_example.json", *FAST]) == 0
    key = "output_image" if command == "text2image" else "output_video"
    for item in batch:
        assert Path(item[key]).is_file() and Path(item[key] + ".json").is_file()


def test_same_command_twice_is_reproducible(workdir):
    for name in ("a", "b"):
        assert (
            text2image_main(["--prompt", "red ball", "--seed", "5", "--save_path", f"{name}.jpg", *FAST]) == 0
        )
        args = ["--input_path", "assets/video2world/input0.jpg", "--seed", "5", "--save_path", f"{name}.mp4"]
        assert video2world_main([*args, *FAST]) == 0
    assert Path("a.jpg").read_bytes() == Path("b.jpg").read_bytes()
    assert np.array_equal(media.read_video("a.mp4")[0], media.read_video("b.mp4")[0])
    text2image_main(["--prompt", "red ball", "--seed", "6", "--save_path", "c.jpg", *FAST])
    assert Path("a.jpg").read_bytes() != Path("c.jpg").read_bytes()


def test_explicit_size_without_checkpoint_names_path_and_download_command(workdir, caplog):
    assert text2image_main(["--model_size", "2B", "--save_path", "x.jpg"]) == 1
    assert "checkpoints/nvidia/Cosmos-Predict2-2B-Text2Image/model.pt" in caplog.text
    assert "python -m scripts.download_checkpoints --model_types text2image --model_sizes 2B" in caplog.text
    assert "or leave out --model_size to run the embedded default model" in caplog.text


@pytest.mark.parametrize("command", ["text2image", "video2world", "text2world"])
def test_help_lists_every_documented_flag(command):
    out = subprocess.run(
        [sys.executable, "-m", f"examples.{command}", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flags = [
        "--prompt",
        "--negative_prompt",
        "--save_path",
        "--batch_input_json",
        "--model_size",
        "--seed",
        "--use_cuda_graphs",
        "--disable_guardrail",
        "--offload_guardrail",
        "--aspect_ratio",
        "--guidance",
    ]
    if command != "text2image":
        flags += [
            "--fps",
            "--resolution",
            "--num_gpus",
            "--disable_prompt_refiner",
            "--offload_prompt_refiner",
        ]
    if command == "video2world":
        flags += ["--input_path", "--num_conditional_frames", "--dit_path"]
    if command == "text2image":
        flags += ["--dit_path", "--distill_steps"]
    missing = [f for f in flags if f not in out]
    assert not missing


@pytest.mark.e2e
def test_s3_inputs_and_outputs(workdir, s3_server):
    url = f"s3://{s3_server.bucket}/commands"
    media.write_image(f"{url}/in.jpg", media.read_image("assets/video2world/input1.jpg"))
    batch = [{"input_video": f"{url}/in.jpg", "prompt": "from s3", "output_video": f"{url}/out/v.mp4"}]
    media.write_text(f"{url}/batch.json", json.dumps(batch))
    assert video2world_main(["--batch_input_json", f"{url}/batch.json", *FAST]) == 0
    frames, fps = media.read_video(f"{url}/out/v.mp4")
    assert frames.shape[0] == EMBEDDED_FRAMES and fps == EMBEDDED_FPS
    assert json.loads(media.read_text(f"{url}/out/v.mp4.json"))["parameters"]["input_path"] == f"{url}/in.jpg"


def test_text2world_keeps_the_temporary_image_when_the_video_stage_fails(workdir, monkeypatch, caplog):
    from cosmos_core.pipelines import Text2WorldPipeline, Video2WorldPipeline
    from manifests.requests import Text2WorldRequest

    pipeline = Text2WorldPipeline.load(model_size="embedded")

    def fail(self, request):  # fault injected into stage 2 only
        raise RuntimeError("CUDA out of memory (injected)")

    monkeypatch.setattr(Video2WorldPipeline, "generate", fail)
    with pytest.raises(RuntimeError, match="injected"):
        pipeline.generate_and_save(Text2WorldRequest(prompt="a red ball", steps=2), "w/t.mp4")
    assert Path("w/t_temp.png").is_file() and not Path("w/t.mp4").exists()
    assert "the intermediate image is kept at w/t_temp.png" in caplog.text


def test_a_mistyped_flag_gets_a_suggestion():
    out = subprocess.run(
        [sys.executable, "-m", "examples.text2image", "--sed", "3", "--guidnce=2"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert "--sed: did you mean --seed?; --guidnce: did you mean --guidance?" in out.stderr


def test_ctrl_c_stops_a_command_in_one_line(workdir):
    """SIGINT while the model loads or generates: one line, exit 130, no traceback."""
    import signal
    import time

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.video2world",
            "--input_path",
            str(REPO / "assets/video2world/input0.jpg"),
            "--steps",
            "1000",
            "--disable_guardrail",
            "--save_path",
            "v.mp4",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COSMOS_CHECKPOINT_DIR": str(workdir / "none")},
    )
    lines = []
    for line in process.stderr:  # wait until it is loading the model (torch imported)
        lines.append(line)
        if "embedded default model" in line:
            break
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=300)
    err = "".join(lines) + rest
    assert process.returncode == 130, err
    assert "interrupted: stopped" in err and "Traceback" not in err
    assert not Path(workdir / "v.mp4").exists()


def test_conditioning_the_model_cannot_represent_is_warned_about(workdir, caplog):
    """The reference's example input is outside the embedded model's world: its VAE round trip is poor,
    and the log and the sidecar say so; a scene of the model's own world round-trips well."""
    outside = ["--input_path", str(REPO / "assets/video2world/input0.jpg"), "--save_path", "out.mp4"]
    assert video2world_main([*outside, *FAST]) == 0
    sidecar = json.loads(Path("out.mp4.json").read_text())
    poor = sidecar["conditioning_round_trip_psnr_db"]
    assert poor < 25 and f"VAE round trip is {poor:.1f} dB (below 25 dB)" in caplog.text
    assert sidecar["warnings"] == [
        f"conditioning input poorly represented by the model: VAE round trip {poor:.1f} dB (below 25 dB)"
    ]
    caplog.clear()
    inside = ["--input_path", str(REPO / "assets/embedded/video2world/input0.jpg"), "--save_path", "in.mp4"]
    assert video2world_main([*inside, *FAST]) == 0
    assert json.loads(Path("in.mp4.json").read_text())["conditioning_round_trip_psnr_db"] > 30
    assert json.loads(Path("in.mp4.json").read_text())["warnings"] == []
    assert "round trip" not in caplog.text


def test_without_input_path_the_embedded_model_gets_a_scene_of_its_world(workdir, monkeypatch, caplog):
    out = workdir / "v.mp4"  # workdir holds the assets, as the repository root does
    assert video2world_main(["--save_path", str(out), *FAST]) == 0
    assert "no --input_path given: conditioning on assets/embedded/video2world/input0.jpg" in caplog.text
    assert json.loads(Path(f"{out}.json").read_text())["parameters"]["input_path"].endswith(
        "assets/embedded/video2world/input0.jpg"
    )
