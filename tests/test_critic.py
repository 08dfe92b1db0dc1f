"""The built-in critic: deterministic, ranks a clean smooth video above flickering, frozen and noisy
versions of it and a video that drifts from its conditioning frame; its report follows Reason1's format."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from cosmos_core import media
from cosmos_core.critic import BuiltinCritic, builtin_metrics, load_critic, parse_answer, parse_response


def clean_video(frames: int = 17, height: int = 96, width: int = 160) -> np.ndarray:
    """A bright blob gliding over a gradient: smooth motion, no noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    video = []
    for t in range(frames):
        blob = 200 * np.exp(-((xx - 40 - 4 * t) ** 2 + (yy - 48 - t) ** 2) / (2 * 12**2))
        background = 40 + 60 * xx / width
        rgb = [background + blob, 0.8 * background + 0.5 * blob, 90 + 0.2 * blob + 0 * xx]
        video.append(np.stack(rgb, axis=-1))
    return np.clip(np.round(np.stack(video)), 0, 255).astype(np.uint8)


def flickering(video: np.ndarray) -> np.ndarray:
    out = video.astype(np.float64)
    out[1::2] *= 1.25  # every other frame brighter
    return np.clip(out, 0, 255).astype(np.uint8)


def frozen(video: np.ndarray) -> np.ndarray:
    out = video.copy()
    out[6:12] = out[6]  # six frames stuck
    return out


def noisy(video: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(video + rng.normal(0, 12, video.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("corrupt", [flickering, frozen, noisy], ids=["flicker", "frozen", "noise"])
def test_clean_video_ranks_above_corrupted(corrupt):
    clean = clean_video()
    reference = builtin_metrics(clean)
    corrupted = builtin_metrics(corrupt(clean))
    assert reference["score"] > corrupted["score"]
    name = {"flickering": "temporal_flicker", "frozen": "frozen_frames", "noisy": "noise"}[corrupt.__name__]
    assert corrupted["sub_scores"][name] < reference["sub_scores"][name] - 0.25  # the measurement that saw it


def test_conditioning_fidelity(tmp_path):
    clean = clean_video()
    condition = str(tmp_path / "cond.jpg")
    media.write_image(condition, clean[0], quality=100)  # the input the clean video starts from
    drifted = np.roll(clean, 40, axis=2)  # the scene jumps away from the input
    faithful = builtin_metrics(clean, condition)
    assert faithful["conditioning_psnr_db"] > 30 and faithful["sub_scores"]["conditioning_fidelity"] == 1.0
    assert builtin_metrics(drifted, condition)["score"] < faithful["score"]


def test_builtin_critic_is_deterministic_and_writes_trials(tmp_path, caplog):
    video = str(tmp_path / "v.mp4")
    media.write_video(video, clean_video(), fps=16)
    with caplog.at_level(logging.INFO, logger="cosmos_core"):
        critic = load_critic(tmp_path / "no-reason1", device="cpu")
    assert isinstance(critic, BuiltinCritic) and "critic: built-in critic" in caplog.text
    first = critic.analyze(video, num_trials=3, seed=0)
    again = critic.analyze(video, num_trials=3, seed=5)
    assert first.score == again.score and first.responses == again.responses
    assert len(first.responses) == 3 and len(set(first.responses)) == 1  # trials are identical
    parsed = parse_response(first.responses[0])
    assert parsed["answer"] == parse_answer(first.responses[0]) == "No"  # a clean video: no anomaly
    assert [c["name"] for c in parsed["components"]] == ["Temporal flicker", "Frozen frames", "Noise"]
    assert first.no == 3 and first.pct == int(first.score * 100)
    bad = critic.analyze_frames(flickering(clean_video()), num_trials=2)
    assert bad.yes == 2 and bad.score < first.score
