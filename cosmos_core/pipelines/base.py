"""What the three pipelines share: choosing the preset, timing, progress, results and sidecars."""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cosmos_core import media
from cosmos_core.models import ModelBundle, checkpoints_present, default_checkpoint_dir
from cosmos_core.text_encoder import MAX_TOKENS
from manifests.presets import ModelPreset, model_preset, text2image_preset, video2world_preset

log = logging.getLogger("cosmos_core")

DEFAULT_MODEL_SIZE = "2B"
# The reference ends sampling with one more denoiser call at sigma_min (0.002); its x0 differs from the
# state there by invisible noise: 52-63 dB PSNR between the two decoded images on the embedded model
# (same seed, 35 steps). Leaving it out saves 1 of 36 DiT calls (2 of 72 evaluations with guidance).
FINAL_DENOISE = False


def resolve_preset(
    task: str,
    model_size: str | None,
    checkpoint_dir: Path | None = None,
    resolution: str | int = "720",
    fps: int = 16,
    dit_path: str | None = None,
    natten: bool = False,
) -> ModelPreset:
    """The preset a command asked for. With no size asked for and no checkpoint present, the embedded
    small model (one log line says so); an explicit size always means that size (missing files are
    then a clear error when loading). `natten` (Video2World): the sparse-attention DiT, which the embedded
    model does not have: it never falls back to the embedded model."""
    if natten and task != "text2image":
        return video2world_preset(model_size or DEFAULT_MODEL_SIZE, resolution, fps, natten=True)
    if model_size == "embedded":
        return model_preset(f"embedded-{'Text2Image' if task == 'text2image' else 'Video2World'}")

    def real(size: str) -> ModelPreset:
        if task == "text2image":
            return text2image_preset(size)
        return video2world_preset(size, resolution, fps)

    if model_size is not None:
        return real(model_size)
    default = real(DEFAULT_MODEL_SIZE)
    checkpoint_dir = checkpoint_dir or default_checkpoint_dir()
    if dit_path or checkpoints_present(default, checkpoint_dir):
        return default
    log.info(
        "no %s checkpoint under %s and no --model_size given: using the embedded default model",
        default.name,
        checkpoint_dir,
    )
    return resolve_preset(task, "embedded")


@dataclass
class Generation:
    """One generated image or video, plus everything needed to reproduce it."""

    frames: np.ndarray  # (T, H, W, 3) uint8; T == 1 for an image
    fps: int
    sidecar: dict = field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        return self.frames.shape[0] == 1


class Timings(dict):
    """Seconds per named stage, filled by `with timings.stage("decode"): ...`.

    On a GPU each stage ends by waiting for the device's queue: kernels run asynchronously, so without
    it a stage is charged for the previous one's unfinished work (H200, 2B Video2World 720p: the last
    sampling step's 6 s made a 3.6 s decode read 9.3 s). The next stage needs those results anyway,
    so the wait costs nothing.
    """

    def __init__(self, device: torch.device | None = None) -> None:
        super().__init__()
        self._device = device if device is not None and device.type == "cuda" else None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self._device is not None:
                torch.cuda.synchronize(self._device)
            self[name] = round(self.get(name, 0.0) + time.perf_counter() - start, 4)


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """(1, 3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    frames = ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return frames.permute(1, 2, 3, 0).cpu().numpy()


def progress(desc: str) -> Callable[[int, int], None] | None:
    """A progress bar over the sampling steps, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = None

    def on_step(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=desc, leave=False, unit="step")
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return on_step


def truncation_report(bundle: ModelBundle, request) -> dict:
    """{"prompt_truncated": {"tokens": n, "limit": 512}} (and the same for the negative prompt) when the text
    encoder reads only the first 512 of the prompt's n tokens; a warning says so. Empty otherwise."""
    report = {}
    for name in ("prompt", "negative_prompt"):
        tokens = bundle.text_encoder.count_tokens(getattr(request, name))
        if tokens > MAX_TOKENS:
            report[f"{name}_truncated"] = {"tokens": tokens, "limit": MAX_TOKENS}
            log.warning(
                "the %s has %d tokens; the text encoder reads the first %d (the rest does not shape the output)",
                name.replace("_", " "),
                tokens,
                MAX_TOKENS,
            )
    return report


def base_sidecar(task: str, bundle: ModelBundle, request) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("worldmill")
    except PackageNotFoundError:
        ours = "unknown"
    truncated = truncation_report(bundle, request)
    return {
        "task": task,
        **truncated,
        # what the user should know about this output, one line each (results.csv repeats them)
        "warnings": [
            f"{name.removesuffix('_truncated').replace('_', ' ')} truncated to its first {t['limit']} of "
            f"{t['tokens']} tokens"
            for name, t in truncated.items()
        ],
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "refined_prompt": None,
        "seed": request.seed,
        "parameters": request.model_dump(),
        "model": bundle.identity,
        "device": str(bundle.device),
        "dtype": str(bundle.dtype).removeprefix("torch."),
        "software": {"worldmill": ours, "torch": torch.__version__, "python": platform.python_version()},
    }


def sidecar_url(output_url: str) -> str:
    return f"{output_url}.json"


def save_generation(generation: Generation, output_url: str) -> None:
    """Write the media (JPEG or PNG for an image, by the URL's extension; MP4 otherwise) and its JSON
    sidecar as a pair (media.write_with_sidecar): both or neither. The sidecar's write_s is the time to
    encode (upload not included: it happens as the pair is published)."""
    start = time.perf_counter()
    sidecar = dict(generation.sidecar)
    sidecar["output"] = output_url
    timings = sidecar["timings"] = dict(sidecar.get("timings", {}))

    def text() -> str:
        timings["write_s"] = round(time.perf_counter() - start, 4)
        return json.dumps(sidecar, indent=2, default=str) + "\n"

    media.write_with_sidecar(output_url, generation.frames, generation.fps, sidecar_url(output_url), text)
