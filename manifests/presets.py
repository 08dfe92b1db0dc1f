"""Model presets by exact name: which networks, which geometry, which checkpoint files.

Geometry facts from the reference (cosmos_predict2/datasets/utils.py): sizes are (width, height), in the
order 1:1, 4:3, 3:4, 16:9, 9:16; 16 fps clips have 93 frames (24 latents), 10 fps clips 61 (16 latents).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The model sizes of each family (a new size: here and its network in cosmos_core/dit.py DIT_PRESETS).
TEXT2IMAGE_SIZES = ("0.6B", "2B", "14B")
VIDEO2WORLD_SIZES = ("2B", "14B")
EMBEDDED = "embedded"  # the built-in small model's size name
RESOLUTIONS = ("480", "720")  # Video2World checkpoints, per resolution and fps
NATTEN_RESOLUTION = "720"  # the sparse-attention (NATTEN) Video2World DiTs exist at this resolution only
ASPECT_RATIOS = ("1:1", "4:3", "3:4", "16:9", "9:16")

# (width, height) by resolution and aspect ratio. "1024" is Text2Image's; "embedded" is the built-in
# small model's (multiples of 16 so that the 8x VAE and the 2x2 patches divide them).
SIZES: dict[str, dict[str, tuple[int, int]]] = {
    "1024": {
        "1:1": (1024, 1024),
        "4:3": (1168, 880),
        "3:4": (880, 1168),
        "16:9": (1360, 768),
        "9:16": (768, 1360),
    },
    "720": {
        "1:1": (960, 960),
        "4:3": (960, 704),
        "3:4": (704, 960),
        "16:9": (1280, 704),
        "9:16": (704, 1280),
    },
    "480": {"1:1": (480, 480), "4:3": (640, 480), "3:4": (480, 640), "16:9": (768, 432), "9:16": (432, 768)},
    "embedded": {"1:1": (128, 128), "4:3": (128, 96), "3:4": (96, 128), "16:9": (160, 96), "9:16": (96, 160)},
}
FRAMES_BY_FPS = {16: 93, 10: 61}
FPS_CHOICES = tuple(FRAMES_BY_FPS)

EMBEDDED_FRAMES = 17
EMBEDDED_FPS = 16

T5_REPO = "google-t5/t5-11b"


class PresetError(ValueError):
    """A combination no checkpoint exists for (--natten at 480p, or with the embedded model)."""


@dataclass(frozen=True)
class ModelPreset:
    name: str
    task: Literal["text2image", "video2world"]
    dit: str  # key of dit.DIT_PRESETS
    vae: str  # key of vae.VAE_PRESETS
    repo_id: str  # Hugging Face repository, also the folder under checkpoints/ ("" for the embedded model)
    dit_file: str  # DiT weights inside repo_id
    resolution: str = "1024"  # key of SIZES
    fps: int = 16
    num_frames: int = 1
    embedded: bool = False
    natten: bool = False  # the sparse-attention fine-tune (cosmos_core/sparse_attention.py)

    def size(self, aspect_ratio: str) -> tuple[int, int]:
        """(width, height) of the output for an aspect ratio; a clear error for an unknown one."""
        table = SIZES[self.resolution]
        if aspect_ratio not in table:
            raise ValueError(
                f"unknown aspect ratio {aspect_ratio!r}; choose one of {', '.join(ASPECT_RATIOS)}"
            )
        return table[aspect_ratio]


def _build() -> dict[str, ModelPreset]:
    presets = {}
    for size in TEXT2IMAGE_SIZES:
        repo = f"nvidia/Cosmos-Predict2-{size}-Text2Image"
        name = f"Cosmos-Predict2-{size}-Text2Image"
        presets[name] = ModelPreset(name, "text2image", f"{size}-Text2Image", "wan2.1", repo, "model.pt")
    for size in VIDEO2WORLD_SIZES:
        repo = f"nvidia/Cosmos-Predict2-{size}-Video2World"
        for res in RESOLUTIONS:
            for fps, frames in FRAMES_BY_FPS.items():
                name = f"Cosmos-Predict2-{size}-Video2World-{res}p-{fps}fps"
                dit_file = f"model-{res}p-{fps}fps.pt"
                presets[name] = ModelPreset(
                    name, "video2world", f"{size}-Video2World", "wan2.1", repo, dit_file, res, fps, frames
                )
            if res == NATTEN_RESOLUTION:
                for fps, frames in FRAMES_BY_FPS.items():
                    name = f"Cosmos-Predict2-{size}-Video2World-{res}p-{fps}fps-natten"
                    dit_file = f"model-{res}p-{fps}fps-natten.pt"
                    presets[name] = ModelPreset(
                        name,
                        "video2world",
                        f"{size}-Video2World-natten",
                        "wan2.1",
                        repo,
                        dit_file,
                        res,
                        fps,
                        frames,
                        natten=True,
                    )
    # The built-in small model, used when no checkpoint is present (weights inside the package).
    presets["embedded-Text2Image"] = ModelPreset(
        "embedded-Text2Image",
        "text2image",
        "embedded-Text2Image",
        "embedded",
        "",
        "text2image",
        "embedded",
        embedded=True,
    )
    presets["embedded-Video2World"] = ModelPreset(
        "embedded-Video2World",
        "video2world",
        "embedded-Video2World",
        "embedded",
        "",
        "video2world",
        "embedded",
        EMBEDDED_FPS,
        EMBEDDED_FRAMES,
        embedded=True,
    )
    return presets


MODEL_PRESETS: dict[str, ModelPreset] = _build()


def text2image_preset(model_size: str) -> ModelPreset:
    return model_preset(f"Cosmos-Predict2-{model_size}-Text2Image")


def video2world_preset(
    model_size: str, resolution: str | int = "720", fps: int = 16, natten: bool = False
) -> ModelPreset:
    """A Video2World preset; `natten`: the reference's sparse-attention DiT (720p only)."""
    if not natten:
        return model_preset(f"Cosmos-Predict2-{model_size}-Video2World-{resolution}p-{fps}fps")
    if model_size == EMBEDDED:
        raise PresetError(
            "--natten: the embedded model has no sparse-attention variant; --natten runs the reference's "
            "2B and 14B 720p NATTEN checkpoints (give --model_size 2B or 14B, or leave out --natten)"
        )
    if str(resolution) != NATTEN_RESOLUTION:
        raise PresetError(
            f"--natten: the reference's sparse-attention DiTs exist at {NATTEN_RESOLUTION}p only "
            f"(model-{NATTEN_RESOLUTION}p-{{10,16}}fps-natten.pt), not at {resolution}p: use --resolution "
            f"{NATTEN_RESOLUTION} or leave out --natten"
        )
    return model_preset(f"Cosmos-Predict2-{model_size}-Video2World-{resolution}p-{fps}fps-natten")


def model_preset(name: str) -> ModelPreset:
    if name not in MODEL_PRESETS:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(MODEL_PRESETS)}")
    return MODEL_PRESETS[name]
