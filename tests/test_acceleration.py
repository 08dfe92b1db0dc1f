"""torch.compile / CUDA graphs of the DiT: what the CPU can check, and the GPU checks (skipped here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cosmos_core.acceleration import Acceleration, CudaGraphDiT, accelerate
from cosmos_core.cli import acceleration_from_args, text2image_parser
from cosmos_core.dit import CosmosDiT, dit_config
from cosmos_core.pipelines import Video2WorldPipeline
from cosmos_core.pipelines.video2world import ConditioningError
from manifests.requests import Video2WorldRequest


def tiny(name: str = "tiny-Video2World") -> CosmosDiT:
    torch.manual_seed(0)
    return CosmosDiT(dit_config(name)).eval().requires_grad_(False)


def inputs(cfg, device="cpu", batch=2):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, cfg.latent_channels, 3, 4, 4, generator=gen).to(device)
    t = torch.rand(batch, 3, generator=gen).to(device)
    text = torch.randn(batch, 5, cfg.crossattn_dim, generator=gen).to(device)
    mask = torch.zeros(batch, 1, 3, 4, 4, device=device)
    mask[:, :, 0] = 1
    return x, t, text, mask


def test_on_the_cpu_the_dit_is_left_as_it_is():
    dit = tiny()
    assert accelerate(dit, torch.device("cpu"), Acceleration(compile=True, cuda_graphs=True)) is dit
    assert not any(
        hasattr(block, "_compiled_call_impl") and block._compiled_call_impl for block in dit.blocks
    )


def test_graph_wrapper_runs_the_plain_forward_off_the_gpu():
    dit = tiny()
    graphed = CudaGraphDiT(dit)
    x, t, text, mask = inputs(dit.cfg)
    with torch.no_grad():
        torch.testing.assert_close(
            graphed(x, t, text, condition_mask=mask), dit(x, t, text, condition_mask=mask)
        )
    assert graphed.graphs == 0 and graphed.cfg is dit.cfg


def test_command_flags_choose_the_acceleration():
    args = text2image_parser().parse_args(["--prompt", "a", "--use_cuda_graphs", "--disable_compile"])
    assert acceleration_from_args(args) == Acceleration(compile=False, cuda_graphs=True)
    args = text2image_parser().parse_args(["--prompt", "a"])
    assert acceleration_from_args(args) == Acceleration(compile=True, cuda_graphs=False)


@pytest.mark.gpu
def test_graph_replays_match_the_compiled_forward_on_the_gpu():
    """One capture per input signature; replays with new inputs give the compiled forward's output."""
    dit = tiny().cuda().to(torch.bfloat16)
    graphed = accelerate(dit, torch.device("cuda"), Acceleration(compile=True, cuda_graphs=True))
    with torch.no_grad():
        for seed in range(3):
            torch.manual_seed(seed)
            x, t, text, mask = (v.to(torch.bfloat16) for v in inputs(dit.cfg, "cuda"))
            x = x + seed
            torch.testing.assert_close(
                graphed(x, t, text, condition_mask=mask),
                dit(x, t, text, condition_mask=mask),
                atol=2e-2,
                rtol=2e-2,
            )
        assert graphed.graphs == 1
        graphed(
            *(v[:1].to(torch.bfloat16) for v in inputs(dit.cfg, "cuda")[:3]),
            condition_mask=mask[:1].bfloat16(),
        )
        assert graphed.graphs == 2


def test_video2world_generates_from_frames_in_memory(tmp_path):
    """generate_from_frames is generate() without the file read: same video; bad frames are a clear error."""
    from cosmos_core import media

    pipeline = Video2WorldPipeline.load("embedded", device="cpu")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    path = str(tmp_path / "in.png")
    media.write_image(path, image)
    request = Video2WorldRequest(prompt="A red ball rolls to the left.", input_path=path, steps=2)
    from_file = pipeline.generate(request)
    in_memory = pipeline.generate_from_frames(request, image[None])
    np.testing.assert_array_equal(from_file.frames, in_memory.frames)
    assert "read_input_s" in from_file.sidecar["timings"]
    with pytest.raises(ConditioningError, match=r"\(n >= 1, H, W, 3\) uint8, got \(96, 128, 3\)"):
        pipeline.generate_from_frames(request, image)


@pytest.mark.gpu
def test_stage_timings_wait_for_the_gpu():
    """A stage that only queues GPU work is charged for that work, not the stage after it."""
    from cosmos_core.pipelines.base import Timings

    timings = Timings(torch.device("cuda"))
    a = torch.randn(4096, 4096, device="cuda")
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with timings.stage("queued_s"):
        start.record()
        for _ in range(50):
            a = a @ a / 64  # queued in well under the time the GPU takes to run it
        end.record()
    with timings.stage("next_s"):
        pass
    gpu_s = start.elapsed_time(end) / 1000
    assert timings["queued_s"] >= 0.9 * gpu_s
    assert timings["next_s"] < 0.5 * gpu_s
