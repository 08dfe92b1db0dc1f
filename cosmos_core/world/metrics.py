"""Scoring generated images and videos against the scene their prompt describes.

  color accuracy   the set of detected colors is the set of the prompt's colors;
  count accuracy   the number of detected objects is the prompt's count;
  motion accuracy  the motion read from the tracks (falls / left / right / still) is the prompt's;
  first-frame PSNR a Video2World output's first frame against its conditioning image, in dB.
For a video, colors and count are the most common ones over its frames.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from cosmos_core.world.detect import classify_motion, detect
from cosmos_core.world.scene import Scene


@dataclass(frozen=True)
class Measurement:
    colors: frozenset[str]
    count: int
    motion: str | None = None  # None for an image


@dataclass(frozen=True)
class Score:
    color: bool | None  # None: not measured
    count: bool | None
    motion: bool | None = None  # None for an image


def measure_image(frame: np.ndarray) -> Measurement:
    found = detect(frame)
    return Measurement(frozenset(d.color for d in found), len(found))


def measure_video(video: np.ndarray) -> Measurement:
    frames = [measure_image(frame) for frame in video]
    colors = Counter(m.colors for m in frames).most_common(1)[0][0]
    count = Counter(m.count for m in frames).most_common(1)[0][0]
    return Measurement(colors, count, classify_motion(video))


def score(scene: Scene, measured: Measurement) -> Score:
    motion = None if measured.motion is None else measured.motion == scene.motion
    return Score(measured.colors == frozenset(scene.colors), measured.count == scene.count, motion)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, dB (inf if equal)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def accuracy(scores: list[Score], field: str) -> float:
    values = [getattr(s, field) for s in scores if getattr(s, field) is not None]
    return float(np.mean(values)) if values else float("nan")


def summary_line(scores: list[Score], psnrs: list[float]) -> str:
    """The evaluation's last line: `color_accuracy=0.xx count_accuracy=0.xx motion_accuracy=0.xx first_frame_psnr=xx.x`."""
    finite = [p for p in psnrs if np.isfinite(p)]
    mean_psnr = float(np.mean(finite)) if finite else float("nan")
    return (
        f"color_accuracy={accuracy(scores, 'color'):.2f} count_accuracy={accuracy(scores, 'count'):.2f} "
        f"motion_accuracy={accuracy(scores, 'motion'):.2f} first_frame_psnr={mean_psnr:.1f}"
    )
