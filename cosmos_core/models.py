"""Which files a preset needs, and loading them into one bundle (DiT + VAE + T5) kept for many requests.

Official layout (the reference's, `checkpoints/` by default or $COSMOS_CHECKPOINT_DIR):
    <dir>/nvidia/Cosmos-Predict2-2B-Video2World/model-720p-16fps.pt   DiT (`net.` keys)
    <dir>/nvidia/Cosmos-Predict2-2B-Video2World/tokenizer/tokenizer.pth  Wan2.1 VAE
    <dir>/google-t5/t5-11b/                                              T5 encoder + tokenizer
The embedded small model lives in the package (cosmos_core/embedded/, trained by
scripts/train_embedded.py) and loads through the same loaders. Where its files are missing (a partial
$COSMOS_EMBEDDED_DIR, a broken install) it is random-initialised from a fixed seed, and says so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from cosmos_core.acceleration import Acceleration, accelerate
from cosmos_core.checkpoints import CheckpointError, load_dit, load_vae
from cosmos_core.device import compute_dtype, configure_backends, pick_device
from cosmos_core.dit import CosmosDiT, dit_config
from cosmos_core.small_t5 import load_small_t5
from cosmos_core.text_encoder import T5TextEncoder, TextEncoderOptions
from cosmos_core.vae import VAE_PRESETS, WanVAE
from cosmos_core.world.text import embedded_text_encoder
from manifests.presets import T5_REPO, ModelPreset

log = logging.getLogger("cosmos_core")

EMBEDDED_DIR = Path(__file__).parent / "embedded"
EMBEDDED_SEED = 20260101


def default_checkpoint_dir() -> Path:
    return Path(os.environ.get("COSMOS_CHECKPOINT_DIR", "checkpoints"))


@dataclass
class ModelFiles:
    dit: Path
    vae: Path
    text_encoder: Path

    def missing(self) -> list[Path]:
        return [p for p in (self.dit, self.vae, self.text_encoder) if not p.exists()]


def official_files(
    preset: ModelPreset, checkpoint_dir: Path, dit_path: str | Path | None = None
) -> ModelFiles:
    repo = checkpoint_dir / preset.repo_id
    return ModelFiles(
        dit=Path(dit_path) if dit_path else repo / preset.dit_file,
        vae=repo / "tokenizer" / "tokenizer.pth",
        text_encoder=checkpoint_dir / T5_REPO,
    )


def download_command(preset: ModelPreset) -> str:
    size = preset.dit.split("-")[0]
    if preset.task == "text2image":
        return f"python -m scripts.download_checkpoints --model_types text2image --model_sizes {size}"
    return (
        f"python -m scripts.download_checkpoints --model_types video2world --model_sizes {size} "
        f"--resolution {preset.resolution} --fps {preset.fps}" + (" --natten" if preset.natten else "")
    )


def checkpoints_present(preset: ModelPreset, checkpoint_dir: Path) -> bool:
    return not official_files(preset, checkpoint_dir).missing()


@dataclass
class ModelBundle:
    """The networks of one preset, loaded once, on one device."""

    preset: ModelPreset
    dit: nn.Module  # CosmosDiT, or its CUDA-graph wrapper (same call)
    vae: WanVAE
    text_encoder: T5TextEncoder
    device: torch.device
    dtype: torch.dtype
    identity: dict = field(default_factory=dict)  # what was loaded from where, for sidecars


def load_bundle(
    preset: ModelPreset,
    checkpoint_dir: Path | None = None,
    dit_path: str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    text_encoder: T5TextEncoder | None = None,
    ema: bool = False,
    acceleration: Acceleration | None = None,
    text_encoder_options: TextEncoderOptions | None = None,
) -> ModelBundle:
    """Load a preset's DiT, VAE and T5 (or reuse `text_encoder`, e.g. shared by Text2World's two stages).
    The DiT comes compiled (and graphed, if asked) on a CUDA GPU: see cosmos_core/acceleration.py.
    `text_encoder_options`: T5's precision and offloading (the reference's defaults when None)."""
    device = pick_device(device)
    dtype = compute_dtype(device, dtype)
    configure_backends(device)
    shared = text_encoder is not None
    options = text_encoder_options or TextEncoderOptions()
    t5_dtype = dtype if options.downcast else None  # None: the checkpoint's precision
    if preset.embedded:
        bundle = _load_embedded(preset, device, dtype, text_encoder, dit_path, t5_dtype)
    else:
        bundle = _load_official(preset, checkpoint_dir, dit_path, device, dtype, text_encoder, ema, t5_dtype)
    if options.offload and not shared:
        bundle.text_encoder.offload()
    bundle.identity["text_encoder_dtype"] = str(bundle.text_encoder.dtype).removeprefix("torch.")
    bundle.identity["text_encoder_offloaded"] = bundle.text_encoder.offloaded
    bundle.dit = accelerate(bundle.dit, device, acceleration)
    return bundle


def _load_official(
    preset: ModelPreset,
    checkpoint_dir: Path | None,
    dit_path: str | Path | None,
    device: torch.device,
    dtype: torch.dtype,
    text_encoder: T5TextEncoder | None,
    ema: bool,
    t5_dtype: torch.dtype | None,
) -> ModelBundle:
    files = official_files(preset, checkpoint_dir or default_checkpoint_dir(), dit_path)
    if text_encoder is not None:
        files.text_encoder = Path("(shared)")
    missing = [p for p in (files.dit, files.vae) if not p.exists()]
    if text_encoder is None and not files.text_encoder.exists():
        missing.append(files.text_encoder)
    if missing:
        raise CheckpointError(
            f"{preset.name}: checkpoint not found: {', '.join(map(str, missing))}; "
            f"download it with `{download_command(preset)}` (or point --checkpoint_dir / $COSMOS_CHECKPOINT_DIR at it); "
            "or leave out --model_size to run the embedded default model, which needs no download"
        )
    dit = load_dit(files.dit, dit_config(preset.dit), device, dtype, ema=ema)
    vae = load_vae(files.vae, VAE_PRESETS[preset.vae], device, dtype)
    if text_encoder is None:
        text_encoder = T5TextEncoder.from_pretrained(files.text_encoder, device, t5_dtype)
    identity = {
        "preset": preset.name,
        "dit": _describe(files.dit),
        "vae": _describe(files.vae),
        "text_encoder": str(files.text_encoder),
        "ema": ema,
    }
    return ModelBundle(preset, dit, vae, text_encoder, device, dtype, identity)


def _describe(path: Path) -> dict:
    stat = path.stat()
    return {"path": str(path), "bytes": stat.st_size, "mtime": int(stat.st_mtime)}


# ----------------------------------------------------------------------------------------------------
# The embedded small model
# ----------------------------------------------------------------------------------------------------


def _load_embedded(
    preset: ModelPreset,
    device: torch.device,
    dtype: torch.dtype,
    text_encoder: T5TextEncoder | None,
    dit_path: str | Path | None,
    t5_dtype: torch.dtype | None,
) -> ModelBundle:
    # $COSMOS_EMBEDDED_DIR: weights in the shipped layout elsewhere (a training run's export, tests).
    weights = Path(os.environ.get("COSMOS_EMBEDDED_DIR") or EMBEDDED_DIR)
    dit_file = Path(dit_path) if dit_path else weights / f"{preset.dit_file}.safetensors"
    vae_file = weights / "vae.safetensors"
    t5_dir = weights / "t5"
    trained = dit_file.is_file() and vae_file.is_file() and (t5_dir / "config.json").is_file()
    if trained:
        dit = load_dit(dit_file, dit_config(preset.dit), device, dtype)
        vae = load_vae(vae_file, VAE_PRESETS[preset.vae], device, dtype)
        if text_encoder is None:
            text_encoder = _embedded_t5(t5_dir, device, t5_dtype)
    else:
        log.warning(
            "embedded default model %s: trained weights not found in %s, random-initialised (seed %d): outputs are noise",
            preset.name,
            weights,
            EMBEDDED_SEED,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(EMBEDDED_SEED + (preset.task == "video2world"))
            dit = CosmosDiT(dit_config(preset.dit))
            torch.manual_seed(EMBEDDED_SEED + 7)
            vae = WanVAE(VAE_PRESETS[preset.vae])
            if text_encoder is None:
                text_encoder = _random_embedded_t5()
        dit = dit.to(device, dtype).eval().requires_grad_(False)
        vae = vae.to(device, dtype).eval().requires_grad_(False)
        text_encoder.model.to(device, t5_dtype or torch.float32)
    identity = {"preset": preset.name, "embedded": True, "trained": trained, "dit": str(dit_file)}
    return ModelBundle(preset, dit, vae, text_encoder, device, dtype, identity)


def _embedded_t5(folder: Path, device: torch.device, dtype: torch.dtype | None) -> T5TextEncoder:
    """The shipped embedded T5 through our small torch T5 (transformers' import alone costs ~2 s on a CPU).
    dtype None: its checkpoint's precision (float32)."""
    model, tokenizer = load_small_t5(folder)
    return T5TextEncoder(model.to(device, dtype or torch.float32), tokenizer)


def _random_embedded_t5() -> T5TextEncoder:
    """The embedded T5 encoder: random and frozen, trained or not (scripts/train_embedded.py ships the same)."""
    return embedded_text_encoder()
