"""Step caching (cosmos_core.dit.StepCache): off means bitwise the plain forward; on, it reuses blocks
2..N exactly as recorded and only while the first block's output stays within the threshold."""

from __future__ import annotations

import pytest
import torch

from cosmos_core import media
from cosmos_core.denoiser import Denoiser
from cosmos_core.dit import CosmosDiT, StepCache, dit_config
from cosmos_core.pipelines import Video2WorldPipeline
from cosmos_core.world import render, scene_from_seed
from cosmos_core.world.metrics import psnr
from cosmos_core.world.scene import HELD_OUT_SEED
from manifests.requests import Video2WorldRequest


@pytest.fixture(scope="module")
def dit():
    torch.manual_seed(0)
    return CosmosDiT(dit_config("tiny-Text2Image")).eval()


def inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, 1, 8, 8, generator=g)
    return (
        x,
        torch.full((2,), 0.5),
        torch.randn(2, 6, dit_config("tiny-Text2Image").crossattn_dim, generator=g),
    )


@torch.no_grad()
def test_a_cache_that_never_reuses_is_the_plain_forward(dit):
    cache = StepCache(threshold=1e-12)
    for seed in range(3):
        x, t, text = inputs(seed)
        assert torch.equal(dit(x, t, text, step_cache=cache), dit(x, t, text))
    assert (cache.full, cache.reused) == (3, 0)


@torch.no_grad()
def test_reuse_adds_the_recorded_residual_of_blocks_2_to_n(dit):
    """Observed through hooks: a reused call feeds the final layer block 1's output plus what blocks 2..N
    added at the last full call."""
    seen = {}
    hooks = [
        dit.blocks[0].register_forward_hook(lambda m, args, out: seen.__setitem__("first", out)),
        dit.blocks[-1].register_forward_hook(lambda m, args, out: seen.__setitem__("last", out)),
        dit.final_layer.register_forward_pre_hook(lambda m, args: seen.__setitem__("final_in", args[0])),
    ]
    try:
        cache = StepCache(threshold=10.0)  # reuse whenever there is something to reuse
        x, t, text = inputs(0)
        full = dit(x, t, text, step_cache=cache)
        residual = seen["last"] - seen["first"]
        torch.testing.assert_close(dit(x, t, text, step_cache=cache), full)  # same input: same output
        x2, _, _ = inputs(1)
        seen.clear()
        reused = dit(x2, t, text, step_cache=cache)
        assert "last" not in seen  # blocks 2..N did not run
        torch.testing.assert_close(seen["final_in"], seen["first"] + residual)
        assert (cache.full, cache.reused) == (1, 2)
        assert not torch.allclose(reused, dit(x2, t, text))
    finally:
        for hook in hooks:
            hook.remove()


def test_context_parallel_refuses_step_caching(dit):
    class FakeGroup:  # only its presence matters: the check happens before any communication
        world_size = 2

    with pytest.raises(ValueError, match="context parallelism"):
        Denoiser(dit, torch.zeros(1, 6, 32), None, 0.0, cp=FakeGroup(), step_cache=0.05)


def test_embedded_video2world_with_step_caching_stays_close(tmp_path):
    """On the trained embedded model: about half the steps reuse blocks 2..8 at 0.05, PSNR >= 40 dB."""
    pipeline = Video2WorldPipeline.load(model_size="embedded", device="cpu")
    scene = scene_from_seed(HELD_OUT_SEED)
    media.write_image(str(tmp_path / "first.png"), render(scene, 1)[0])
    request = Video2WorldRequest(prompt=scene.caption, input_path=str(tmp_path / "first.png"), seed=0)
    plain = pipeline.generate(request)
    cached = pipeline.generate(request.model_copy(update={"step_cache": 0.05}))
    assert "step_cache" not in plain.sidecar
    counts = cached.sidecar["step_cache"]
    assert (
        counts["reused_calls"] >= 10
        and counts["full_calls"] + counts["reused_calls"] == plain.sidecar["dit_evaluations"] // 2
    )  # the CFG pair is one batched call
    assert psnr(cached.frames, plain.frames) >= 40.0
