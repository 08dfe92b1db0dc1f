"""Critics for best-of-N: score a generated video in 0..1 (higher is better) and explain why.

Two critics, one interface (`analyze(video, num_trials, seed, conditioning) -> CriticResult`):
- `Reason1Critic`: Cosmos-Reason1-7B answers "Does the video contain any anomalies or artifacts?"
  `num_trials` times (cosmos_core/reason1.py); score = #"No" / #parsed answers, 0 if none parsed
  (reference: examples/video2world_bestofn.py).
- `BuiltinCritic`: weight-free measurements, used when no Reason1 checkpoint is present:
  - temporal flicker: jumps of the mean luminance of 4x4 regions that are not smooth motion (the
    second difference over time, |m[t+1] - 2 m[t] + m[t-1]|), averaged;
  - frozen frames: the share of consecutive frame pairs that are (near-)identical (mean absolute
    difference under 0.5/255, or under a tenth of the video's median motion);
  - noise: high-frequency energy per frame (Immerkaer's noise estimate, a 3x3 Laplacian-of-Laplacian
    filter) beyond that of the conditioning frame;
  - conditioning fidelity: PSNR of the first frame(s) against the conditioning frame(s), resized as
    the pipeline resizes them.
  Each gives a sub-score in 0..1 (1 = no sign of the artifact); the score is their geometric mean, so
  any one artifact pulls it down (and a zero sub-score makes it zero); it is deterministic. Its "trials" are identical by construction: the report
  still shows one analysis per trial, in the same XML format as Reason1's answers.
"""

from __future__ import annotations

import base64
import html
import logging
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_core import media
from cosmos_core.pipelines.video2world import read_conditioning_frames, resize_cover_center_crop
from cosmos_core.reason1 import CRITIC_MAX_NEW_TOKENS, load_reason1

log = logging.getLogger("cosmos_core")

ANSWER = re.compile(r"<answer>\s*(yes|no)\s*</answer>", re.IGNORECASE)


def parse_answer(response: str) -> str | None:
    """'Yes' or 'No' from a response's <answer> tag (case-insensitive), None when there is none."""
    match = ANSWER.search(response)
    return match.group(1).capitalize() if match else None


def parse_response(response: str) -> dict | None:
    """The XML template of a response: {"overview", "components": [{name, analysis, anomaly}], "answer"};
    None when it is not well-formed."""
    try:
        root = ET.fromstring(f"<root>{response.strip()}</root>")
    except ET.ParseError:
        return None

    def text(element) -> str:
        return element.text.strip() if element is not None and element.text else ""

    think = root.find("think")
    components = []
    if think is not None:
        for component in think.findall("component"):
            components.append(
                {
                    "name": component.get("name", ""),
                    "analysis": text(component.find("analysis")),
                    "anomaly": text(component.find("anomaly")),
                }
            )
    return {
        "overview": text(think.find("overview")) if think is not None else "",
        "components": components,
        "answer": text(root.find("answer")),
    }


@dataclass
class CriticResult:
    critic: str  # "cosmos-reason1" or "builtin"
    responses: list[str]  # one per trial
    score: float  # 0..1, higher is better
    metrics: dict = field(default_factory=dict)  # builtin: the measurements and sub-scores

    @property
    def answers(self) -> list[str | None]:
        return [parse_answer(r) for r in self.responses]

    @property
    def yes(self) -> int:
        return self.answers.count("Yes")

    @property
    def no(self) -> int:
        return self.answers.count("No")

    @property
    def parsed(self) -> int:
        return self.yes + self.no

    @property
    def pct(self) -> int:
        """The score as 000-100 in file names (the reference's int(score * 100))."""
        return int(self.score * 100)

    def summary(self) -> dict:
        return {
            "critic": self.critic,
            "score": self.score,
            "pct": self.pct,
            "yes": self.yes,
            "no": self.no,
            "parsed": self.parsed,
            "trials": len(self.responses),
            "metrics": self.metrics,
        }


def answer_score(responses: list[str]) -> float:
    """Reference: #"No" (no anomaly) / #parsed answers; 0 when no answer could be parsed."""
    answers = [parse_answer(r) for r in responses]
    parsed = sum(a is not None for a in answers)
    return answers.count("No") / parsed if parsed else 0.0


# ----------------------------------------------------------------------------------------------------
# Cosmos-Reason1
# ----------------------------------------------------------------------------------------------------


class Reason1Critic:
    name = "cosmos-reason1"

    def __init__(self, reason1, max_new_tokens: int | None = None) -> None:
        self.reason1 = reason1
        self.max_new_tokens = max_new_tokens or CRITIC_MAX_NEW_TOKENS

    def describe(self) -> str:
        return f"Cosmos-Reason1 ({self.reason1.folder})"

    def analyze(
        self,
        video_path: str,
        num_trials: int,
        seed: int = 0,
        conditioning: str | None = None,
        num_conditional_frames: int = 1,
    ) -> CriticResult:
        responses = self.reason1.analyze_video(video_path, num_trials, seed, self.max_new_tokens)
        if not any(parse_answer(r) for r in responses):
            log.warning("critic: no answer could be parsed for %s; its score is 0", video_path)
        return CriticResult(self.name, responses, answer_score(responses))


# ----------------------------------------------------------------------------------------------------
# The built-in critic
# ----------------------------------------------------------------------------------------------------

ANALYSIS_SIDE = 256  # measurements run on frames downscaled to at most this many pixels a side
FROZEN_ABS = 0.5 / 255  # mean absolute luminance change below which two frames are the same
FROZEN_REL = 0.1  # ... or below this share of the video's median change
FLICKER_SCALE = 0.01  # luminance second difference (0..1 units) at which the flicker sub-score is 1/e
NOISE_SCALE = 0.02  # noise sigma (0..1 units) beyond the conditioning's, at which the sub-score is 1/e
PSNR_GOOD, PSNR_BAD = 30.0, 10.0  # dB: conditioning fidelity sub-score 1 above, 0 below, linear between
ANOMALY_BELOW = 0.5  # a component reads "Yes" (anomaly) when its sub-score is below this

# Rec. 601 luma weights.
LUMA = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)


def luminance(frames: np.ndarray, side: int = ANALYSIS_SIDE) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (T, 1, h, w) float64 luma in [0, 1], area-downscaled to <= `side` pixels."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).double() / 255.0
    y = (x * LUMA.double()).sum(dim=1, keepdim=True)
    h, w = y.shape[-2:]
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        y = F.interpolate(y, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area")
    return y


def flicker(y: torch.Tensor) -> float:
    """Mean |second temporal difference| of 4x4 region means: luminance jumps that smooth motion lacks."""
    if len(y) < 3:
        return 0.0
    regions = F.adaptive_avg_pool2d(y, 4).flatten(1)  # (T, 16)
    second = regions[2:] - 2 * regions[1:-1] + regions[:-2]
    return float(second.abs().mean())


def frozen_share(y: torch.Tensor) -> float:
    """Share of consecutive pairs whose mean absolute difference is ~0 (absolutely or relative to the
    video's median motion)."""
    if len(y) < 2:
        return 0.0
    change = (y[1:] - y[:-1]).abs().mean(dim=(1, 2, 3))
    threshold = max(FROZEN_ABS, FROZEN_REL * float(change.median()))
    return float((change < threshold).double().mean())


_IMMERKAER = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]]).view(1, 1, 3, 3)


def noise_sigma(y: torch.Tensor) -> torch.Tensor:
    """Per-frame Gaussian noise estimate (Immerkaer 1996): sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M|."""
    if min(y.shape[-2:]) < 3:
        return torch.zeros(len(y), dtype=y.dtype)
    response = F.conv2d(y, _IMMERKAER.to(y.dtype)).abs()
    return math.sqrt(math.pi / 2) / 6 * response.mean(dim=(1, 2, 3))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 100.0 if mse == 0 else 10 * math.log10(1.0 / mse)


def conditioning_luminance(conditioning: str, num_frames: int, width: int, height: int) -> torch.Tensor:
    """The conditioning input's frames as the pipeline prepares them (cover-resize, center-crop), as luma."""
    frames = read_conditioning_frames(conditioning, num_frames)
    video = resize_cover_center_crop(frames, width, height)  # (1, 3, n, H, W) in [-1, 1]
    as_uint8 = ((video[0].permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    return luminance(as_uint8)


def builtin_metrics(
    frames: np.ndarray, conditioning: str | None = None, num_conditional_frames: int = 1
) -> dict:
    """The built-in critic's measurements and sub-scores (each 0..1) and their geometric mean, `score`."""
    y = luminance(frames)
    metrics: dict = {"frames": len(frames)}
    metrics["flicker"] = flicker(y)
    metrics["frozen_share"] = frozen_share(y)
    sigma = noise_sigma(y)
    metrics["noise_sigma"] = float(sigma.median())
    reference_sigma = 0.0
    cond = None
    if conditioning is not None:
        height, width = frames.shape[1:3]
        cond = conditioning_luminance(conditioning, num_conditional_frames, width, height)
        reference_sigma = float(noise_sigma(cond).median())
        metrics["conditioning_noise_sigma"] = reference_sigma
        n = min(len(cond), len(y))
        metrics["conditioning_psnr_db"] = psnr(y[:n], cond[:n])

    scores = {
        "temporal_flicker": math.exp(-metrics["flicker"] / FLICKER_SCALE),
        "frozen_frames": 1.0 - metrics["frozen_share"],
        "noise": math.exp(-max(0.0, metrics["noise_sigma"] - reference_sigma) / NOISE_SCALE),
    }
    if cond is not None:
        db = metrics["conditioning_psnr_db"]
        scores["conditioning_fidelity"] = min(1.0, max(0.0, (db - PSNR_BAD) / (PSNR_GOOD - PSNR_BAD)))
    metrics["sub_scores"] = scores
    metrics["score"] = float(np.prod(list(scores.values())) ** (1 / len(scores)))
    return metrics


COMPONENT_TEXT = {
    "temporal_flicker": (
        "Temporal flicker",
        "Mean luminance second difference of 4x4 regions: {flicker:.4f}.",
    ),
    "frozen_frames": (
        "Frozen frames",
        "Share of (near-)identical consecutive frame pairs: {frozen_share:.2%}.",
    ),
    "noise": (
        "Noise",
        "High-frequency noise estimate {noise_sigma:.4f} (conditioning: {reference_sigma:.4f}).",
    ),
    "conditioning_fidelity": (
        "Conditioning fidelity",
        "PSNR of the first frame(s) vs the input: {psnr:.1f} dB.",
    ),
}


def builtin_response(metrics: dict) -> str:
    """The measurements written in the critic's XML template (one trial's analysis)."""
    values = {
        "flicker": metrics["flicker"],
        "frozen_share": metrics["frozen_share"],
        "noise_sigma": metrics["noise_sigma"],
        "reference_sigma": metrics.get("conditioning_noise_sigma", 0.0),
        "psnr": metrics.get("conditioning_psnr_db", 0.0),
    }
    parts = [
        "<think>",
        "<overview>",
        f"Built-in measurements of {metrics['frames']} frames; score {metrics['score']:.3f}.",
        "</overview>",
    ]
    anomalous = False
    for key, sub_score in metrics["sub_scores"].items():
        name, template = COMPONENT_TEXT[key]
        anomaly = sub_score < ANOMALY_BELOW
        anomalous |= anomaly
        parts += [
            f'<component name="{name}">',
            f"<analysis>{template.format(**values)} Sub-score {sub_score:.3f}.</analysis>",
            f"<anomaly>{'Yes' if anomaly else 'No'}</anomaly>",
            "</component>",
        ]
    parts += ["</think>", "", f"<answer>{'Yes' if anomalous else 'No'}</answer>"]
    return "\n".join(parts)


class BuiltinCritic:
    name = "builtin"

    def describe(self) -> str:
        return "built-in critic (flicker, frozen frames, noise, conditioning fidelity)"

    def analyze(
        self,
        video_path: str,
        num_trials: int,
        seed: int = 0,
        conditioning: str | None = None,
        num_conditional_frames: int = 1,
    ) -> CriticResult:
        frames, _fps = media.read_video(video_path)
        return self.analyze_frames(frames, num_trials, conditioning, num_conditional_frames)

    def analyze_frames(
        self,
        frames: np.ndarray,
        num_trials: int = 1,
        conditioning: str | None = None,
        num_conditional_frames: int = 1,
    ) -> CriticResult:
        metrics = builtin_metrics(frames, conditioning, num_conditional_frames)
        response = builtin_response(metrics)
        return CriticResult(self.name, [response] * num_trials, metrics["score"], metrics)


def load_critic(
    reason1_folder: Path | None,
    device=None,
    offload: bool = False,
    reason1=None,
    max_new_tokens: int | None = None,
):
    """Reason1Critic when a Reason1 checkpoint is at `reason1_folder` (or `reason1` is already loaded),
    else BuiltinCritic; one log line says which."""
    if reason1 is None:
        reason1 = load_reason1(reason1_folder, device, offload, "critic", "the built-in critic runs")
    critic = Reason1Critic(reason1, max_new_tokens) if reason1 is not None else BuiltinCritic()
    log.info("critic: %s", critic.describe())
    return critic


# ----------------------------------------------------------------------------------------------------
# The HTML report
# ----------------------------------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; max-width: 1000px; margin: 0 auto; padding: 20px; }
video { width: 100%; max-width: 600px; }
.red { background-color: #ffebee; color: #c62828; padding: 10px; margin: 5px 0; }
.green { background-color: #e8f5e8; color: #2e7d32; padding: 10px; margin: 5px 0; }
.trial { border: 1px solid #ddd; padding: 15px; margin: 10px 0; }
.stats { display: flex; gap: 20px; margin: 20px 0; }
.stat { text-align: center; padding: 15px; }
.count { font-size: 24px; font-weight: bold; }
"""


def html_report(video_path: str, video_bytes: bytes, result: CriticResult) -> str:
    """One page per video: the video embedded (base64), the counts of "Anomaly Detected" (Yes, red) and
    "No Anomaly" (No, green), and every trial's overview, components and final answer."""
    e = html.escape
    name = e(Path(video_path).name)
    video = base64.b64encode(video_bytes).decode("ascii")
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="UTF-8">',
        f"<title>Video analysis report - {name}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>Video analysis report ({e(result.critic)})</h1>",
        f"<p>File: {name}</p>",
        f"<p>Score: {result.score:.2%} ({result.pct:03d})</p>",
        "<h2>Video</h2>",
        f'<video controls><source src="data:video/mp4;base64,{video}" type="video/mp4"></video>',
        "<h2>Summary</h2>",
        '<div class="stats">',
        f'<div class="stat red"><div class="count">{result.yes}</div><div>Anomaly Detected</div></div>',
        f'<div class="stat green"><div class="count">{result.no}</div><div>No Anomaly</div></div>',
        f'<div class="stat"><div class="count">{result.parsed}</div><div>Total Responses</div></div>',
        "</div>",
        f"<h2>Detailed Analysis ({len(result.responses)} trials)</h2>",
    ]
    for index, response in enumerate(result.responses, start=1):
        parsed = parse_response(response)
        lines += ['<div class="trial">', f"<h3>Trial {index}</h3>"]
        if parsed is None:
            answer = parse_answer(response)
            lines.append(f"<p><em>Not in the expected format; final answer: {e(answer or 'none')}</em></p>")
            lines.append(f"<pre>{e(response)}</pre>")
        else:
            if parsed["overview"]:
                lines.append(f"<p><strong>Overview:</strong> {e(parsed['overview'])}</p>")
            for component in parsed["components"]:
                css = "red" if component["anomaly"].lower() == "yes" else "green"
                lines += [
                    f'<div class="{css}">',
                    f"<strong>{e(component['name'] or 'Unknown Component')} - {e(component['anomaly'])}</strong>",
                    f"<p>{e(component['analysis'] or 'No analysis provided')}</p>",
                    "</div>",
                ]
            css = "red" if parsed["answer"].lower() == "yes" else "green"
            lines.append(
                f'<div class="{css}"><strong>Final Answer: {e(parsed["answer"] or "No answer")}</strong></div>'
            )
        lines.append("</div>")
    if result.metrics:
        lines += ["<h2>Measurements</h2>", "<table>"]
        for key, value in result.metrics.get("sub_scores", {}).items():
            lines.append(f"<tr><td>{e(key)}</td><td>{value:.3f}</td></tr>")
        lines.append("</table>")
    lines += ["</body>", "</html>", ""]
    return "\n".join(lines)
