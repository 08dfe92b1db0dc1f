"""The official Cosmos-Predict2 sampler as plain functions (not diffusers' scheduler).

The state is x_sigma = x0 + sigma * noise (EDM form). Sigmas follow a Karras schedule from 80 down to
0.002 (rho 7). The first step is an Euler step in x0 form; every later step is a second-order multistep
exponential-integrator step that reuses the previous x0 ("AB2" in the reference); after the last step
one more denoiser call at sigma_min returns x0. 35 steps -> 36 denoiser calls (72 DiT evaluations with
classifier-free guidance); our pipelines leave that last call out (`final_denoise`): 35 calls. Updates
run in float64 and the state is kept in float32, as in the reference
(cosmos_predict2/schedulers/rectified_flow_scheduler.py, functional/runge_kutta.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
RHO = 7.0
DEFAULT_STEPS = 35
# Few-step schedule of the distilled Text2Image checkpoints (model_distilled.pt), before the final 0.
DISTILLED_SIGMAS = (80.0, 3.6, 1.5574, 0.684)

# x0_fn(x_sigma float32 (B, C, T, H, W), sigma) -> x0 float32, same shape.
X0Fn = Callable[[torch.Tensor, float], torch.Tensor]


def karras_sigmas(
    num_steps: int = DEFAULT_STEPS,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
) -> torch.Tensor:
    """num_steps + 1 noise levels, float64: (sigma_max^(1/rho) + i/n (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho."""
    if num_steps < 1:
        raise ValueError(f"the number of sampling steps must be at least 1, got {num_steps}")
    ramp = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def initial_noise(shape: tuple[int, ...], seed: int, sigma_max: float = SIGMA_MAX) -> torch.Tensor:
    """Seeded standard normal x sigma_max, float32 on the CPU.

    Drawn with NumPy's RandomState like the reference's `arch_invariant_rand`, so a seed gives the same
    noise on every machine and device (move it to the device afterwards).
    """
    normal = np.random.RandomState(seed).standard_normal(shape).astype(np.float32)
    return torch.from_numpy(normal) * sigma_max


def euler_x0_step(x: torch.Tensor, sigma: float, sigma_next: float, x0: torch.Tensor) -> torch.Tensor:
    """First-order step: keep x0, shrink the noise from sigma to sigma_next."""
    return (sigma - sigma_next) / sigma * x0 + sigma_next / sigma * x


def multistep_x0_step(
    x: torch.Tensor,
    sigma: float,
    sigma_next: float,
    x0: torch.Tensor,
    sigma_prev: float,
    x0_prev: torch.Tensor,
) -> torch.Tensor:
    """Second-order exponential-integrator step in log-sigma time, x0 extrapolated from the last two.

    h = log(sigma / sigma_next); c = log(sigma / sigma_prev) / h (< 0, the previous point lies behind);
    x_next = e^-h x + h [(phi1 - phi2 / c) x0 + (phi2 / c) x0_prev], phi1(z) = (e^z - 1)/z, phi2 = (phi1 - 1)/z at z = -h.
    """
    h = math.log(sigma / sigma_next)
    c = math.log(sigma / sigma_prev) / h
    phi1 = math.expm1(-h) / -h
    phi2 = (phi1 - 1.0) / -h
    b_prev = phi2 / c
    return math.exp(-h) * x + h * ((phi1 - b_prev) * x0 + b_prev * x0_prev)


def sample(
    x0_fn: X0Fn,
    noise: torch.Tensor,
    sigmas: torch.Tensor,
    on_step: Callable[[int, int], None] | None = None,
    final_denoise: bool = True,
) -> torch.Tensor:
    """Run the solver from `noise` (already x sigma_max) through `sigmas`; returns the final x0 (float32).

    final_denoise: one more denoiser call at the last level (sigma_min, 0.002), as the reference does.
    Without it the state at sigma_min is returned as it is: it differs from that call's x0 by noise of
    std 0.002 against latents of std ~1 (invisible after decoding), and sampling costs one DiT call (two
    with guidance) less: 35 instead of 36 for 35 steps (see FINAL_DENOISE of the pipelines).
    on_step(i, total) is called after each denoiser call (a progress bar hooks here).
    """
    levels = [float(s) for s in sigmas]
    total = len(levels) if final_denoise else len(levels) - 1  # denoiser calls
    x = noise.float()
    x0_prev: torch.Tensor | None = None
    for i in range(len(levels) - 1):
        sigma, sigma_next = levels[i], levels[i + 1]
        x0 = x0_fn(x, sigma).double()
        if x0_prev is None:
            x_next = euler_x0_step(x.double(), sigma, sigma_next, x0)
        else:
            x_next = multistep_x0_step(x.double(), sigma, sigma_next, x0, levels[i - 1], x0_prev.double())
        x, x0_prev = x_next.float(), x0.float()
        if on_step:
            on_step(i + 1, total)
    if not final_denoise:
        return x
    x0 = x0_fn(x, levels[-1])  # final denoise at sigma_min
    if on_step:
        on_step(total, total)
    return x0


def distilled_sample(
    x0_fn: X0Fn,
    shape: tuple[int, ...],
    seed: int,
    num_steps: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Few-step sampling of the distilled Text2Image model (1-4 steps, conditional branch only).

    x starts at 80 * noise; each step predicts x0, then re-noises it to the next level of
    [80, 3.6, 1.5574, 0.684][:num_steps] + [0]. Noise comes from a seeded CPU generator so that it does
    not depend on the device.
    """
    if not 1 <= num_steps <= len(DISTILLED_SIGMAS):
        raise ValueError(f"distilled sampling takes 1 to {len(DISTILLED_SIGMAS)} steps, got {num_steps}")
    generator = torch.Generator().manual_seed(seed)
    levels = [*DISTILLED_SIGMAS[:num_steps], 0.0]
    x = (torch.randn(shape, generator=generator) * levels[0]).to(device)
    for sigma, sigma_next in itertools.pairwise(levels):
        x = x0_fn(x, sigma)
        if sigma_next > 0:
            x = x + sigma_next * torch.randn(shape, generator=generator).to(device)
    return x
