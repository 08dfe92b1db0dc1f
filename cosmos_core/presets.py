"""Model presets by exact name: which networks, which geometry, which checkpoint files.

Geometry facts from the reference (cosmos_predict2/datasets/utils.py): sizes are (width, height), in the
order 1:1, 4:3, 3:4, 16:9, 9:16; 16 fps clips have 93 frames (24 latents), 10 fps clips 61 (16 latents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ASPECT_RATIOS = ("1:1", "4:3", "3:4", "16:9", "9:16")

IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "4:3": (1168, 880),
    "3:4": (880, 1168),
    "16:9": (1360, 768),
    "9:16": (768, 1360),
}
VIDEO_SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "720": {
        "1:1": (960, 960),
        "4:3": (960, 704),
        "3:4": (704, 960),
        "16:9": (1280, 704),
        "9:16": (704, 1280),
    },
    "480": {"1:1": (480, 480), "4:3": (640, 480), "3:4": (480, 640), "16:9": (768, 432), "9:16": (432, 768)},
}
FRAMES_BY_FPS = {16: 93, 10: 61}

T5_REPO = "google-t5/t5-11b"


@dataclass(frozen=True)
class ModelPreset:
    name: str
    task: Literal["text2image", "video2world"]
    dit: str  # key of dit.DIT_PRESETS
    vae: str  # key of vae.VAE_PRESETS
    repo_id: str  # Hugging Face repository, also the folder under checkpoints/
    dit_file: str  # DiT weights inside repo_id
    resolution: str = "1024"  # "1024" (images), "720" or "480"
    fps: int | None = None
    text_dim: int = 1024

    @property
    def num_frames(self) -> int:
        return 1 if self.task == "text2image" else FRAMES_BY_FPS[self.fps]

    def size(self, aspect_ratio: str) -> tuple[int, int]:
        """(width, height) of the output for an aspect ratio; a clear error for an unknown one."""
        table = IMAGE_SIZES if self.task == "text2image" else VIDEO_SIZES[self.resolution]
        if aspect_ratio not in table:
            raise ValueError(
                f"unknown aspect ratio {aspect_ratio!r}; choose one of {', '.join(ASPECT_RATIOS)}"
            )
        return table[aspect_ratio]


def _build() -> dict[str, ModelPreset]:
    presets = {}
    for size in ("0.6B", "2B", "14B"):
        repo = f"nvidia/Cosmos-Predict2-{size}-Text2Image"
        name = f"Cosmos-Predict2-{size}-Text2Image"
        presets[name] = ModelPreset(name, "text2image", f"{size}-Text2Image", "wan2.1", repo, "model.pt")
    for size in ("2B", "14B"):
        repo = f"nvidia/Cosmos-Predict2-{size}-Video2World"
        for res in ("480", "720"):
            for fps in (10, 16):
                name = f"Cosmos-Predict2-{size}-Video2World-{res}p-{fps}fps"
                presets[name] = ModelPreset(
                    name,
                    "video2world",
                    f"{size}-Video2World",
                    "wan2.1",
                    repo,
                    f"model-{res}p-{fps}fps.pt",
                    res,
                    fps,
                )
    return presets


MODEL_PRESETS: dict[str, ModelPreset] = _build()


def text2image_preset(model_size: str) -> ModelPreset:
    return model_preset(f"Cosmos-Predict2-{model_size}-Text2Image")


def video2world_preset(model_size: str, resolution: str | int = "720", fps: int = 16) -> ModelPreset:
    return model_preset(f"Cosmos-Predict2-{model_size}-Video2World-{resolution}p-{fps}fps")


def model_preset(name: str) -> ModelPreset:
    if name not in MODEL_PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(MODEL_PRESETS)}")
    return MODEL_PRESETS[name]
