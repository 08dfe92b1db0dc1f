"""From the DiT to an x0 predictor: rectified-flow preconditioning, classifier-free guidance and the
Video2World frame replacement.

Rectified-flow scaling (reference: cosmos_predict2/module/denoiser_scaling.py): t = sigma / (sigma + 1),
the network sees (1 - t) * x_sigma = (1 - t) x0 + t noise at timestep t and predicts the velocity
noise - x0, so x0 = (1 - t) x_sigma - t * net.

Video2World (FRAME_REPLACE, reference pipelines/video2world.py::denoise): the first latent frames are the
clean conditioning latents, fed as they are with the timestep of sigma 1e-4 and a mask channel of ones,
and copied into x0 afterwards. The unconditional branch keeps this conditioning; only its text differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cosmos_core.dit import CosmosDiT, StepCache
from cosmos_core.parallel import ContextParallel

SIGMA_CONDITIONAL = 1e-4


@dataclass
class FrameCondition:
    """Clean latents for the first `num_frames` latent frames (later frames of `latents` are ignored)."""

    latents: torch.Tensor  # (B, C, T', H, W), T' >= num_frames
    num_frames: int  # 1 (one conditioning frame) or 2 (five frames)
    sigma: float = SIGMA_CONDITIONAL

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, H, W) ones on the conditioned frames."""
        B, _, T, H, W = x.shape
        mask = x.new_zeros(B, 1, T, H, W)
        mask[:, :, : self.num_frames] = 1.0
        return mask


def rectified_flow_t(sigma: torch.Tensor) -> torch.Tensor:
    return sigma / (sigma + 1)


def cfg_combine(cond: torch.Tensor, uncond: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance as the reference writes it: cond + g * (cond - uncond)."""
    return cond + guidance * (cond - uncond)


class Denoiser:
    """x0_fn for the sampler: one batched DiT call per step (the CFG pair shares the batch).

    text_emb: (1, N, Dt) conditional embeddings; uncond_emb: the same for the unconditional branch, or
    None for conditional-only sampling (distilled models, guidance 0).
    """

    def __init__(
        self,
        dit: CosmosDiT,
        text_emb: torch.Tensor,
        uncond_emb: torch.Tensor | None,
        guidance: float,
        condition: FrameCondition | None = None,
        cp: ContextParallel | None = None,
        step_cache: float = 0.0,
    ) -> None:
        self.dit = dit
        # step_cache > 0: reuse the DiT's blocks 2..N between steps below this change (cosmos_core.dit.StepCache)
        self.step_cache = StepCache(step_cache) if step_cache > 0 else None
        if self.step_cache is not None and cp is not None:
            # each rank would judge the change on its own frames and could skip blocks the others run
            raise ValueError("step caching does not work with context parallelism yet: use --step_cache 0")
        self.cp = cp  # context parallelism: the DiT splits the frames over these ranks
        self.guidance = guidance
        self.condition = condition
        self.dtype = next(dit.parameters()).dtype
        self.use_cfg = uncond_emb is not None and guidance != 0.0
        texts = [text_emb, uncond_emb] if self.use_cfg else [text_emb]
        self.text = torch.cat(texts).to(self.dtype)  # (branches, N, Dt)
        self.calls = 0  # DiT forward passes, counted per batch item

    def __call__(self, x_sigma: torch.Tensor, sigma: float) -> torch.Tensor:
        """x_sigma (B, C, T, H, W) float32 -> x0 float32."""
        B, _, T, _, _ = x_sigma.shape
        sigma_bt = torch.full((B, T), sigma, dtype=torch.float32, device=x_sigma.device)
        t = rectified_flow_t(sigma_bt)
        c_skip = c_in = (1 - t)[:, None, :, None, None]
        c_out = -t[:, None, :, None, None]

        net_in = x_sigma * c_in
        mask = None
        if self.condition is not None:
            n = self.condition.num_frames
            cond_latents = self.condition.latents[:, :, :n].to(net_in)
            net_in = torch.cat([cond_latents.expand(B, -1, -1, -1, -1), net_in[:, :, n:]], dim=2)
            t = t.clone()
            t[:, :n] = rectified_flow_t(torch.tensor(self.condition.sigma, dtype=torch.float32))
            mask = self.condition.mask(x_sigma)

        branches = self.text.shape[0]
        repeat = (branches,) + (1,) * (net_in.ndim - 1)
        net_out = self.dit(
            net_in.to(self.dtype).repeat(repeat),
            t.to(self.dtype).repeat(branches, 1),  # the reference feeds timesteps in the network's dtype
            self.text.repeat_interleave(B, dim=0),
            condition_mask=None if mask is None else mask.to(self.dtype).repeat(repeat),
            cp=self.cp,
            step_cache=self.step_cache,
        ).float()
        self.calls += net_out.shape[0]

        x0 = c_skip * x_sigma.repeat(repeat) + c_out * net_out  # (branches*B, C, T, H, W)
        x0 = cfg_combine(x0[:B], x0[B:], self.guidance) if self.use_cfg else x0
        if self.condition is not None:
            n = self.condition.num_frames
            x0 = torch.cat(
                [self.condition.latents[:, :, :n].to(x0).expand(B, -1, -1, -1, -1), x0[:, :, n:]], dim=2
            )
        return x0


def step_cache_summary(denoiser: Denoiser) -> dict:
    """Sidecar fields of a generation with step caching: DiT calls with every block, with block 1 only."""
    cache = denoiser.step_cache
    if cache is None:
        return {}
    return {
        "step_cache": {"threshold": cache.threshold, "full_calls": cache.full, "reused_calls": cache.reused}
    }
