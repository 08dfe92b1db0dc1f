"""Text2Image: prompt -> image. Reference: cosmos_predict2/pipelines/text2image.py."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from cosmos_core.acceleration import Acceleration
from cosmos_core.denoiser import Denoiser, step_cache_summary
from cosmos_core.models import ModelBundle, load_bundle
from cosmos_core.pipelines.base import (
    FINAL_DENOISE,
    Generation,
    Timings,
    base_sidecar,
    progress,
    resolve_preset,
    to_uint8_frames,
)
from cosmos_core.sampler import distilled_sample, initial_noise, karras_sigmas, sample
from cosmos_core.text_encoder import T5TextEncoder
from manifests.requests import Text2ImageRequest


class Text2ImagePipeline:
    task = "text2image"
    makes_video = False  # what the guardrail checks and whether a prompt refiner applies

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle

    @classmethod
    def load(
        cls,
        model_size: str | None = None,
        checkpoint_dir: Path | None = None,
        dit_path: str | None = None,
        distilled: bool = False,
        device: str | None = None,
        text_encoder: T5TextEncoder | None = None,
        ema: bool = False,
        acceleration: Acceleration | None = None,
    ) -> Text2ImagePipeline:
        preset = resolve_preset("text2image", model_size, checkpoint_dir, dit_path=dit_path)
        if distilled and not preset.embedded:
            preset = dataclasses.replace(preset, dit_file="model_distilled.pt")
        return cls(
            load_bundle(
                preset,
                checkpoint_dir,
                dit_path,
                device,
                text_encoder=text_encoder,
                ema=ema,
                acceleration=acceleration,
            )
        )

    @torch.no_grad()
    def generate(self, request: Text2ImageRequest) -> Generation:
        b = self.bundle
        start = time.perf_counter()
        timings = Timings(b.device)
        width, height = b.preset.size(request.aspect_ratio)
        sc = b.vae.spatial_compression
        shape = (1, b.vae.cfg.z_dim, 1, height // sc, width // sc)

        with timings.stage("text_encode_s"):
            prompts = [request.prompt] + ([request.negative_prompt] if request.negative_prompt else [])
            emb = b.text_encoder.encode(prompts).to(b.device)
            # An empty negative prompt means zero text embeddings for the unconditional branch (reference).
            uncond = emb[1:] if request.negative_prompt else torch.zeros_like(emb[:1])

        with timings.stage("sampling_s"):
            if request.distill_steps:
                denoiser = Denoiser(b.dit, emb[:1], None, 0.0)
                latents = distilled_sample(denoiser, shape, request.seed, request.distill_steps, b.device)
            else:
                denoiser = Denoiser(b.dit, emb[:1], uncond, request.guidance, step_cache=request.step_cache)
                noise = initial_noise(shape, request.seed).to(b.device)
                latents = sample(
                    denoiser,
                    noise,
                    karras_sigmas(request.steps),
                    progress("text2image"),
                    final_denoise=FINAL_DENOISE,
                )

        with timings.stage("decode_s"):
            frames = to_uint8_frames(b.vae.decode(latents.to(b.dtype)))

        sidecar = base_sidecar(self.task, b, request)
        sidecar.update(width=width, height=height, frames=1, dit_evaluations=denoiser.calls)
        sidecar.update(step_cache_summary(denoiser))
        sidecar["timings"] = {**timings, "total_s": round(time.perf_counter() - start, 4)}
        return Generation(frames, fps=0, sidecar=sidecar)
