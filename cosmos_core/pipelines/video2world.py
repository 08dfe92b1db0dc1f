"""Video2World: an image or the last frames of a video, plus a prompt -> a video.

Reference: cosmos_predict2/pipelines/video2world.py. The conditioning frames are resized to cover the
target size (aspect kept, sides rounded up), center-cropped, quantised to uint8, and only they are
VAE-encoded: the VAE is causal, so their latents equal those of the reference's whole padded clip.
1 frame -> 1 conditioned latent frame, 5 frames -> 2.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cosmos_core import media
from cosmos_core.acceleration import Acceleration
from cosmos_core.denoiser import Denoiser, FrameCondition, step_cache_summary
from cosmos_core.models import ModelBundle, load_bundle
from cosmos_core.parallel import ContextParallel, check_context_parallel
from cosmos_core.pipelines.base import (
    FINAL_DENOISE,
    Generation,
    Timings,
    base_sidecar,
    progress,
    resolve_preset,
    to_uint8_frames,
)
from cosmos_core.sampler import initial_noise, karras_sigmas, sample
from cosmos_core.text_encoder import T5TextEncoder, TextEncoderOptions
from cosmos_core.vae import latent_frames
from cosmos_core.world.metrics import psnr
from manifests.requests import Video2WorldRequest

# Latent frames per VAE decoder call on a GPU (the reference decodes 1 at a time): 2 decodes a 720p
# 93-frame clip 3.6% faster (H200: 3608 -> 3477 ms) for 4 GB more peak memory (11 -> 15 GB); 4 gains
# 1.5% more for another 8.6 GB, past a 720p generation's 32 GB budget. The same video up to bf16
# rounding: relative difference 1.25e-2 with random weights, against 1.65e-2 between our decode and
# diffusers' (benchmarks/results/2026-12-02-h200.json). The CPU keeps 1: exact embedded-model outputs.
GPU_DECODE_CHUNK = 2


log = logging.getLogger("cosmos_core")

ROUND_TRIP_WARN_DB = 25.0  # the embedded model's own world round-trips far above this; photographs far below


class ConditioningError(ValueError):
    """The conditioning input cannot serve the request (too few frames, an image for 5 frames...)."""


def read_conditioning_frames(input_path: str, num_frames: int) -> np.ndarray:
    """The last `num_frames` frames of a video, or an image as one frame: (n, H, W, 3) uint8. The input is
    probed against the input limits before anything is decoded (media.probe_input), and only its end is
    decoded; a decode error there fails the read."""
    if media.is_image(input_path):
        if num_frames != 1:
            raise ConditioningError(
                f"{input_path} is an image, but --num_conditional_frames {num_frames} needs a video (.mp4) "
                f"with at least {num_frames} frames"
            )
        return media.read_last_frames(input_path, 1)
    if media.is_video(input_path):
        try:
            return media.read_last_frames(input_path, num_frames)
        except media.MediaError as error:
            if "decodable frame(s) at its end" not in str(error):
                raise
            raise ConditioningError(
                f"{error}: --num_conditional_frames {num_frames} needs at least {num_frames}"
            ) from None
    supported = ", ".join(media.IMAGE_EXTENSIONS + media.VIDEO_EXTENSIONS)
    raise ConditioningError(f"{input_path}: unsupported input type; use one of {supported}")


def resize_cover_center_crop(frames: np.ndarray, width: int, height: int) -> torch.Tensor:
    """(n, H, W, 3) uint8 -> (1, 3, n, height, width) float in [-1, 1], as the reference prepares input.

    Resize (bilinear, antialiased) so both sides cover the target, center-crop, then quantise to uint8 by
    truncation (the reference's `(x * 255).to(uint8)`) before scaling to [-1, 1].
    """
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0  # (n, 3, H, W)
    h, w = x.shape[-2:]
    scale = max(width / w, height / h)
    new_h, new_w = math.ceil(scale * h), math.ceil(scale * w)
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = round((new_h - height) / 2), round((new_w - width) / 2)
    x = x[:, :, top : top + height, left : left + width]
    x = (x * 255.0).clamp(0, 255).to(torch.uint8).float() / 127.5 - 1.0
    return x.permute(1, 0, 2, 3).unsqueeze(0)


class Video2WorldPipeline:
    task = "video2world"
    makes_video = True  # what the guardrail checks and whether a prompt refiner applies

    def __init__(self, bundle: ModelBundle, cp: ContextParallel | None = None) -> None:
        self.bundle = bundle
        self.cp = cp  # context parallelism: every rank runs generate(), the DiT splits the frames

    @classmethod
    def load(
        cls,
        model_size: str | None = None,
        resolution: str | int = "720",
        fps: int = 16,
        checkpoint_dir: Path | None = None,
        dit_path: str | None = None,
        device: str | None = None,
        text_encoder: T5TextEncoder | None = None,
        ema: bool = False,
        cp: ContextParallel | None = None,
        acceleration: Acceleration | None = None,
        natten: bool = False,
        text_encoder_options: TextEncoderOptions | None = None,
    ) -> Video2WorldPipeline:
        """`natten`: the reference's sparse-attention DiT (`model-720p-{fps}fps-natten.pt`);
        `text_encoder_options`: T5's precision and offloading (cosmos_core/text_encoder.py)."""
        preset = resolve_preset(
            "video2world", model_size, checkpoint_dir, str(resolution), int(fps), dit_path, natten
        )
        bundle = load_bundle(
            preset,
            checkpoint_dir,
            dit_path,
            device,
            text_encoder=text_encoder,
            ema=ema,
            acceleration=acceleration,
            text_encoder_options=text_encoder_options,
        )
        if cp is not None:
            check_context_parallel(cp.world_size, bundle.dit.cfg.num_heads, latent_frames(preset.num_frames))
        return cls(bundle, cp)

    def generate(self, request: Video2WorldRequest) -> Generation:
        """Read the request's conditioning image or video, then generate from it."""
        start = time.perf_counter()
        frames = read_conditioning_frames(request.input_path, request.num_conditional_frames)
        read_s = time.perf_counter() - start
        generation = self.generate_from_frames(request, frames)
        timings = generation.sidecar["timings"]
        timings["read_input_s"] = round(read_s, 4)
        timings["total_s"] = round(timings["total_s"] + read_s, 4)
        return generation

    def round_trip_psnr(self, condition_video: torch.Tensor, latents: torch.Tensor, input_path: str) -> float:
        """PSNR (dB) of the conditioning frames through the VAE and back: what the model can see of its
        input. Below ROUND_TRIP_WARN_DB the input lies outside what the model represents (an embedded-world
        model given a photograph, say) and the video will not follow it: a warning says so."""
        decoded = self.bundle.vae.decode(latents.to(self.bundle.dtype))
        db = psnr(to_uint8_frames(condition_video), to_uint8_frames(decoded)[: condition_video.shape[2]])
        if db < ROUND_TRIP_WARN_DB:
            log.warning(
                "conditioning input %s: its VAE round trip is %.1f dB (below %.0f dB): this model cannot "
                "represent it well, and the video will not follow it%s",
                input_path,
                db,
                ROUND_TRIP_WARN_DB,
                " (the embedded model knows its own world only: see assets/embedded/)"
                if self.bundle.preset.embedded
                else "",
            )
        return db

    @torch.no_grad()
    def generate_from_frames(self, request: Video2WorldRequest, frames: np.ndarray) -> Generation:
        """Generate from conditioning frames already in memory: (n, H, W, 3) uint8, n >= the request's
        num_conditional_frames (the last ones are used; request.input_path is not read)."""
        b = self.bundle
        start = time.perf_counter()
        timings = Timings(b.device)
        width, height = b.preset.size(request.aspect_ratio)
        sc = b.vae.spatial_compression
        num_cond_latents = latent_frames(request.num_conditional_frames)

        if frames.ndim != 4 or frames.shape[0] < request.num_conditional_frames or frames.shape[-1] != 3:
            raise ConditioningError(
                f"conditioning frames should be (n >= {request.num_conditional_frames}, H, W, 3) uint8, "
                f"got {tuple(frames.shape)}"
            )
        with timings.stage("prepare_input_s"):
            frames = frames[-request.num_conditional_frames :]
            condition_video = resize_cover_center_crop(frames, width, height).to(b.device)

        with timings.stage("vae_encode_s"):
            cond_latents = b.vae.encode(condition_video.to(b.dtype)).float()  # (1, z, n, h, w)

        with timings.stage("round_trip_s"):
            round_trip_db = self.round_trip_psnr(condition_video, cond_latents, request.input_path)

        with timings.stage("text_encode_s"):
            emb = b.text_encoder.encode([request.prompt, request.negative_prompt]).to(b.device)

        with timings.stage("sampling_s"):
            shape = (1, b.vae.cfg.z_dim, latent_frames(b.preset.num_frames), height // sc, width // sc)
            condition = FrameCondition(cond_latents, num_cond_latents)
            denoiser = Denoiser(
                b.dit, emb[:1], emb[1:], request.guidance, condition, self.cp, step_cache=request.step_cache
            )
            noise = initial_noise(shape, request.seed).to(b.device)
            latents = sample(
                denoiser,
                noise,
                karras_sigmas(request.steps),
                progress("video2world"),
                final_denoise=FINAL_DENOISE,
            )

        with timings.stage("decode_s"):
            chunk = GPU_DECODE_CHUNK if b.device.type == "cuda" else 1
            video = to_uint8_frames(b.vae.decode(latents.to(b.dtype), temporal_chunk=chunk))

        sidecar = base_sidecar(self.task, b, request)
        sidecar.update(
            width=width,
            height=height,
            frames=len(video),
            fps=b.preset.fps,
            conditional_latent_frames=num_cond_latents,
            conditioning_round_trip_psnr_db=round(round_trip_db, 2),
            dit_evaluations=denoiser.calls,
        )
        if round_trip_db < ROUND_TRIP_WARN_DB:
            sidecar["warnings"].append(
                f"conditioning input poorly represented by the model: VAE round trip {round_trip_db:.1f} dB "
                f"(below {ROUND_TRIP_WARN_DB:.0f} dB)"
            )
        sidecar.update(step_cache_summary(denoiser))
        sidecar["timings"] = {**timings, "total_s": round(time.perf_counter() - start, 4)}
        return Generation(video, fps=b.preset.fps, sidecar=sidecar)
