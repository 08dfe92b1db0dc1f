"""The procedural world: deterministic scenes, geometry, physics, captions, and a detector that reads the
renderer's own clips perfectly (the sanity check that the evaluation metrics are sound)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cosmos_core.text_encoder import word_level_tokenizer
from cosmos_core.world import Scene, WorldObject, caption_words, render, scene_from_seed
from cosmos_core.world.detect import classify_motion, detect
from cosmos_core.world.metrics import Score, measure_image, measure_video, psnr, score, summary_line
from cosmos_core.world.scene import COLORS, HEIGHT, NUM_FRAMES, WIDTH
from manifests.presets import EMBEDDED_FPS, EMBEDDED_FRAMES, SIZES

SEEDS = range(80)


@pytest.fixture(scope="module")
def clips():
    return {seed: (scene_from_seed(seed), render(scene_from_seed(seed))) for seed in SEEDS}


def test_same_seed_same_clip_and_other_seeds_differ():
    a, b = scene_from_seed(7), scene_from_seed(7)
    assert a.caption == b.caption
    assert np.array_equal(render(a), render(b))
    assert len({scene_from_seed(s).caption for s in range(20)}) > 10


def test_geometry_is_the_embedded_models(clips):
    assert (WIDTH, HEIGHT) == SIZES["embedded"]["16:9"] == (160, 96)
    assert NUM_FRAMES == EMBEDDED_FRAMES == 17 and (NUM_FRAMES - 1) % 4 == 0 and EMBEDDED_FPS == 16
    video = clips[0][1]
    assert video.shape == (17, 96, 160, 3) and video.dtype == np.uint8


def test_objects_stay_in_frame_apart_and_move_as_described(clips):
    for scene, _ in clips.values():
        assert 1 <= scene.count <= 3 and len(set(scene.colors)) == scene.count
        for obj in scene.objects:
            x, y, r = obj.track[:, 0], obj.track[:, 1], obj.radius
            assert (
                (x - r >= 0).all()
                and (x + r <= WIDTH).all()
                and (y - r >= 0).all()
                and (y + r <= HEIGHT).all()
            )
            dx = np.diff(x)
            if scene.motion == "still":
                assert np.ptp(obj.track, axis=0).max() == 0
            elif scene.motion in ("left", "right"):
                assert (dx <= 0).all() if scene.motion == "left" else (dx >= 0).all()
                assert abs(x[-1] - x[0]) > 20 and np.ptp(y) == 0
            else:  # falls: down to the floor, then up again (a bounce), never below the floor
                assert (
                    np.ptp(x) == 0 and obj.ground - r - 10 < y.max() <= obj.ground - r and y[0] < y.max() - 15
                )
                assert (np.diff(y) < 0).any()
        xs = [o.track[:, 0] for o in scene.objects]
        for i in range(len(xs) - 1):  # left to right, never overlapping
            gap = xs[i + 1] - xs[i] - scene.objects[i].radius - scene.objects[i + 1].radius
            assert (gap > 0).all()


def _scene(colors, kind, motion, wall="white", size="medium"):
    track = np.zeros((NUM_FRAMES, 2))
    objects = tuple(WorldObject(c, kind, size, motion, 80.0, track) for c in colors)
    return Scene(objects, motion, wall)


def test_captions_are_short_regular_sentences():
    assert (
        _scene(["red"], "ball", "falls").caption
        == "A red ball falls and bounces on a gray floor in front of a white wall."
    )
    assert (
        _scene(["blue"], "box", "left", "beige", "small").caption
        == "A small blue box slides to the left on a gray floor in front of a beige wall."
    )
    assert (
        _scene(["yellow", "purple"], "ball", "still").caption
        == "Two balls, a yellow one and a purple one, stay still on a gray floor in front of a white wall."
    )
    assert (
        _scene(["orange", "green", "red"], "ball", "right", "dark").caption
        == "Three balls, an orange one, a green one and a red one, roll to the right on a gray floor in front of a dark wall."
    )


def test_captions_name_count_colors_kind_and_motion_in_known_words(clips):
    tokenizer = word_level_tokenizer(caption_words())
    motion_words = {"falls": "bounce", "left": "left", "right": "right", "still": "still"}
    for scene, _ in clips.values():
        text = scene.caption.lower()
        assert tokenizer.unk_token_id not in tokenizer(scene.caption)["input_ids"]
        assert text.startswith({1: "a", 2: "two", 3: "three"}[scene.count])
        assert [w for w in re.findall(r"\w+", text) if w in COLORS] == list(scene.colors)
        assert scene.kind in text and motion_words[scene.motion] in text


def test_detector_reads_rendered_clips_perfectly(clips):
    for scene, video in clips.values():
        assert score(scene, measure_video(video)) == Score(True, True, True), scene.caption
        assert score(scene, measure_image(video[0])) == Score(True, True, None), scene.caption
        found = detect(video[0])
        assert [d.color for d in found] == list(scene.colors)  # left to right, as the caption says
        for d, obj in zip(found, scene.objects, strict=True):
            assert abs(d.x - obj.track[0, 0]) < 1.5 and abs(d.y - obj.track[0, 1]) < 1.5


def _square_video(positions, color=(40, 90, 230)) -> np.ndarray:
    video = np.full((len(positions), HEIGHT, WIDTH, 3), 128, np.uint8)
    for frame, (x, y) in zip(video, positions, strict=True):
        frame[y - 5 : y + 5, x - 5 : x + 5] = color
    return video


def test_metrics_on_known_cases():
    blank = np.full((HEIGHT, WIDTH, 3), 200, np.uint8)
    assert measure_image(blank).count == 0 and measure_image(blank).colors == frozenset()
    two_red = blank.copy()
    two_red[10:20, 10:20] = two_red[10:20, 50:60] = COLORS["red"]
    assert measure_image(two_red).count == 2 and measure_image(two_red).colors == {"red"}
    speck = blank.copy()
    speck[5:8, 5:8] = COLORS["green"]  # 9 pixels: noise, not an object
    assert measure_image(speck).count == 0

    assert classify_motion(_square_video([(30 + 3 * t, 50) for t in range(17)])) == "right"
    assert classify_motion(_square_video([(130 - 3 * t, 50) for t in range(17)])) == "left"
    assert classify_motion(_square_video([(80, 20 + min(4 * t, 40)) for t in range(17)])) == "falls"
    assert classify_motion(_square_video([(80, 50)] * 17)) == "still"
    assert classify_motion(np.full((17, HEIGHT, WIDTH, 3), 128, np.uint8)) == "none"

    assert psnr(blank, blank) == float("inf")
    assert psnr(blank, blank - 10) == pytest.approx(20 * np.log10(255 / 10))
    line = summary_line([Score(True, False, True), Score(False, True, None)], [30.0, 26.0])
    assert line == "color_accuracy=0.50 count_accuracy=0.50 motion_accuracy=1.00 first_frame_psnr=28.0"
