"""The sampler against an independent float64 implementation of its equations, written here.

Independent form: with s = -log(sigma), the probability-flow ODE is dx/ds = x0(s) - x. One step from s
to s + h with x0 taken linear in s through the last two predictions integrates exactly to
  x' = e^-h x + (1 - e^-h) x0 + (h - 1 + e^-h) (x0 - x0_prev) / (s - s_prev),
and the first step (x0 constant) drops the last term.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosmos_core.denoiser import Denoiser, FrameCondition, cfg_combine
from cosmos_core.dit import CosmosDiT, dit_config
from cosmos_core.sampler import DISTILLED_SIGMAS, distilled_sample, initial_noise, karras_sigmas, sample


def reference_sigmas(n, smin=0.002, smax=80.0, rho=7.0):
    return np.array(
        [(smax ** (1 / rho) + i / n * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho for i in range(n + 1)]
    )


def reference_solve(x0_fn, x, sigmas):
    """float64 NumPy integration of the ODE above; x0_fn maps (array, sigma) -> array."""
    s = -np.log(sigmas)
    x0_prev = None
    for i in range(len(sigmas) - 1):
        h = s[i + 1] - s[i]
        x0 = x0_fn(x, sigmas[i])
        x_next = math.exp(-h) * x + (1 - math.exp(-h)) * x0
        if x0_prev is not None:
            x_next += (h - 1 + math.exp(-h)) * (x0 - x0_prev) / (s[i] - s[i - 1])
        x, x0_prev = x_next, x0
    return x0_fn(x, sigmas[-1])


def toy_x0(x, sigma):
    """A smooth nonlinear stand-in for a trained denoiser (works on arrays and tensors)."""
    lib = torch if isinstance(x, torch.Tensor) else np
    return 0.8 * lib.tanh(x / (1.0 + sigma)) + 0.05 * sigma / (1 + sigma)


def test_schedule_values():
    for n in (1, 10, 35):
        sigmas = karras_sigmas(n)
        assert sigmas.dtype == torch.float64 and len(sigmas) == n + 1
        np.testing.assert_allclose(sigmas.numpy(), reference_sigmas(n), rtol=1e-13)
    s = karras_sigmas(35)
    assert s[0] == pytest.approx(80.0) and s[-1] == pytest.approx(0.002)
    assert torch.all(s[1:] < s[:-1])


@pytest.mark.parametrize("steps", [1, 2, 5, 35])
def test_solver_matches_independent_float64(steps):
    sigmas = karras_sigmas(steps)
    noise = initial_noise((1, 4, 3, 5, 5), seed=3)
    calls = []

    def x0_fn(x, sigma):
        calls.append(sigma)
        return toy_x0(x, sigma)

    ours = sample(x0_fn, noise, sigmas)
    theirs = reference_solve(toy_x0, noise.double().numpy(), sigmas.numpy())
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=2e-5, atol=2e-6)
    assert calls == [float(s) for s in sigmas]  # each level once, the last is the final denoise


def test_without_the_final_denoise_the_state_at_sigma_min_is_returned():
    """final_denoise=False: the same trajectory, one call fewer, and the state at sigma_min returned."""
    sigmas = karras_sigmas(5)
    noise = initial_noise((1, 4, 3, 5, 5), seed=3)
    calls, steps = [], []

    def x0_fn(x, sigma):
        calls.append(sigma)
        return toy_x0(x, sigma)

    short = sample(x0_fn, noise, sigmas, lambda i, n: steps.append((i, n)), final_denoise=False)
    assert calls == [float(s) for s in sigmas[:-1]] and steps[-1] == (5, 5)
    full = sample(toy_x0, noise, sigmas)
    # the final denoise of the toy model moves the state by about sigma_min relative to its size
    assert not torch.equal(short, full)
    torch.testing.assert_close(toy_x0(short, float(sigmas[-1])), full)


def test_first_and_second_order_updates_single_step():
    """One step of each kind against the closed forms (not only the whole trajectory)."""
    from cosmos_core.sampler import euler_x0_step, multistep_x0_step

    rng = np.random.default_rng(0)
    x, x0, x0p = (torch.from_numpy(rng.standard_normal(7)) for _ in range(3))
    sp, s, sn = 5.0, 2.0, 0.7
    h = math.log(s / sn)
    euler = math.exp(-h) * x + (1 - math.exp(-h)) * x0
    torch.testing.assert_close(euler_x0_step(x, s, sn, x0), euler, rtol=1e-12, atol=1e-12)
    slope = (x0 - x0p) / (math.log(sp) - math.log(s))
    second = euler + (h - 1 + math.exp(-h)) * slope
    torch.testing.assert_close(multistep_x0_step(x, s, sn, x0, sp, x0p), second, rtol=1e-12, atol=1e-12)


def tiny_dit(video2world: bool) -> CosmosDiT:
    model = CosmosDiT(dit_config("tiny-Video2World" if video2world else "tiny-Text2Image")).eval()
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
    return model


def test_35_steps_take_72_dit_evaluations_and_keep_condition():
    dit = tiny_dit(video2world=True)
    text, uncond = torch.randn(1, 5, 32), torch.randn(1, 5, 32)
    cond_latents = torch.randn(1, 16, 2, 4, 4)
    denoiser = Denoiser(dit, text, uncond, guidance=7.0, condition=FrameCondition(cond_latents, num_frames=2))
    with torch.no_grad():
        x0 = sample(denoiser, initial_noise((1, 16, 4, 4, 4), seed=0), karras_sigmas(35))
    assert denoiser.calls == 72
    assert torch.equal(x0[:, :, :2], cond_latents)  # conditioned latents untouched, bit for bit
    assert torch.isfinite(x0).all() and not torch.equal(x0[:, :, 2:], torch.zeros_like(x0[:, :, 2:]))


def test_denoiser_equations_and_cfg():
    """The batched CFG denoiser equals separate branch calls with the preconditioning written out."""
    dit = tiny_dit(video2world=True)
    text, uncond = torch.randn(1, 5, 32), torch.randn(1, 5, 32)
    gt = torch.randn(1, 16, 1, 4, 4)
    x = torch.randn(1, 16, 3, 4, 4) * 3.0
    sigma, g = 3.0, 7.0
    t, t_cond = sigma / (1 + sigma), 1e-4 / (1 + 1e-4)
    net_in = torch.cat([gt, x[:, :, 1:] * (1 - t)], dim=2)
    timesteps = torch.tensor([[t_cond, t, t]])
    mask = torch.zeros(1, 1, 3, 4, 4)
    mask[:, :, 0] = 1
    with torch.no_grad():
        branch = [(1 - t) * x - t * dit(net_in, timesteps, e, condition_mask=mask) for e in (text, uncond)]
        expected = branch[0] + g * (branch[0] - branch[1])
        expected[:, :, :1] = gt
        got = Denoiser(dit, text, uncond, g, FrameCondition(gt, 1))(x, sigma)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(cfg_combine(torch.tensor(2.0), torch.tensor(1.0), 4.0), torch.tensor(6.0))


def test_same_seed_gives_bitwise_identical_latents():
    def run(seed):
        dit = tiny_dit(video2world=False)
        denoiser = Denoiser(dit, torch.ones(1, 5, 32), torch.zeros(1, 5, 32), guidance=4.0)
        with torch.no_grad():
            return sample(denoiser, initial_noise((1, 16, 1, 6, 6), seed=seed), karras_sigmas(6))

    a, b = run(11), run(11)
    assert torch.equal(a, b)
    assert not torch.equal(a, run(12))
    assert torch.equal(initial_noise((2, 3), 5), initial_noise((2, 3), 5))
    assert initial_noise((4000,), 0).std().item() == pytest.approx(80.0, rel=0.05)


@pytest.mark.parametrize("steps", [1, 2, 3, 4])
def test_distilled_schedule(steps):
    seen = []

    def x0_fn(x, sigma):
        seen.append(sigma)
        return torch.zeros_like(x)

    out = distilled_sample(x0_fn, (1, 2, 1, 3, 3), seed=0, num_steps=steps)
    assert seen == list(DISTILLED_SIGMAS[:steps])
    assert torch.equal(out, torch.zeros_like(out))  # the last x0 is returned without re-noising
    with pytest.raises(ValueError, match="1 to 4"):
        distilled_sample(x0_fn, (1,), seed=0, num_steps=5)
