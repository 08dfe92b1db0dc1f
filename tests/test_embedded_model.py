"""The shipped embedded model does what its prompts say (CPU, default settings, the real pipelines).

Each check runs a few fixed prompts and seeds and reads the outputs with the world's own detector
(cosmos_core/world/detect.py): the colors and number of objects, the direction they move, and how well
Video2World keeps its conditioning frame. Scenes come from held-out seeds the model never trained on.
"""

from __future__ import annotations

import numpy as np
import pytest

from cosmos_core import media
from cosmos_core.pipelines import Text2ImagePipeline, Text2WorldPipeline, Video2WorldPipeline
from cosmos_core.world import render, scene_from_seed
from cosmos_core.world.detect import classify_motion, detect
from cosmos_core.world.metrics import psnr
from cosmos_core.world.scene import HELD_OUT_SEED
from manifests.requests import Text2ImageRequest, Text2WorldRequest, Video2WorldRequest

WALL = "on a gray floor in front of a white wall."


@pytest.fixture(scope="module")
def pipelines():
    video2world = Video2WorldPipeline.load(model_size="embedded", device="cpu")
    assert video2world.bundle.identity["trained"], "the trained embedded weights are not shipped"
    text2image = Text2ImagePipeline.load(
        model_size="embedded", device="cpu", text_encoder=video2world.bundle.text_encoder
    )
    return text2image, video2world, Text2WorldPipeline(text2image, video2world)


@pytest.mark.parametrize("color", ["red", "blue", "yellow"])
def test_text2image_draws_one_object_of_the_prompted_color(pipelines, color):
    text2image = pipelines[0]
    found = []
    for seed in range(3):
        image = text2image.generate(Text2ImageRequest(prompt=f"A {color} ball stays still {WALL}", seed=seed))
        found.append([d.color for d in detect(image.frames[0])])
    assert sum(colors == [color] for colors in found) >= 2, found


def first_scene(motion: str, count: int = 1):
    """The first held-out scene with this motion and object count."""
    seed = HELD_OUT_SEED
    while (scene := scene_from_seed(seed)).motion != motion or scene.count != count:
        seed += 1
    return scene


@pytest.mark.parametrize("motion", ["left", "right", "falls"])
def test_video2world_moves_as_the_prompt_says_and_keeps_its_first_frame(pipelines, motion, tmp_path):
    video2world = pipelines[1]
    scene = first_scene(motion)
    first = render(scene, 1)[0]
    media.write_image(str(tmp_path / "first.png"), first)
    request = Video2WorldRequest(prompt=scene.caption, input_path=str(tmp_path / "first.png"), seed=1)
    video = video2world.generate(request).frames
    assert classify_motion(video) == motion, scene.caption
    assert psnr(video[0], first) >= 25.0
    assert {d.color for d in detect(video[-1])} == set(scene.colors), scene.caption


def test_text2world_follows_color_and_motion(pipelines, tmp_path):
    text2world = pipelines[2]
    prompt = f"A large green ball rolls to the left {WALL}"
    video = text2world.generate_and_save(Text2WorldRequest(prompt=prompt, seed=0), str(tmp_path / "v.mp4"))
    assert [d.color for d in detect(video.frames[0])] == ["green"]
    assert classify_motion(video.frames) == "left"
    assert np.isfinite(video.frames.astype(float)).all()


def test_the_evaluation_command_meets_its_targets_on_the_first_16_held_out_scenes(capsys):
    """The documented evaluation, on a subset, in CI's environment: the issue's targets (color >= 0.90,
    count >= 0.80, motion >= 0.80, first-frame PSNR >= 25 dB). The full 100-scene run's numbers are in
    the README (benchmarks/results/2026-11-25-cpu-embedded-eval-100.json)."""
    from scripts import evaluate_embedded

    evaluate_embedded.main(["--limit", "16", "--device", "cpu"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    numbers = dict(item.split("=") for item in last.split())
    assert float(numbers["color_accuracy"]) >= 0.90, last
    assert float(numbers["count_accuracy"]) >= 0.80, last
    assert float(numbers["motion_accuracy"]) >= 0.80, last
    assert float(numbers["first_frame_psnr"]) >= 25.0, last
