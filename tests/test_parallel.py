"""Context and data parallelism on CPU: gloo process groups, real torch.distributed collectives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cosmos_core.acceleration import compile_blocks
from cosmos_core.denoiser import Denoiser, FrameCondition
from cosmos_core.dit import CosmosDiT, dit_config
from cosmos_core.parallel import ContextParallel, check_context_parallel
from cosmos_core.sampler import initial_noise, karras_sigmas, sample
from tests.prefect_server import free_port

REPO = Path(__file__).resolve().parents[1]


def tiny_video2world() -> CosmosDiT:
    """tiny-Video2World (4 heads) with every weight random, identical in every process."""
    model = CosmosDiT(dit_config("tiny-Video2World")).eval()
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
    return model


def inputs(dtype=torch.float32):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 16, 4, 6, 8, generator=gen)  # 4 latent frames: splits over 2 and 4 ranks
    t = torch.rand(2, 4, generator=gen)
    text = torch.randn(2, 5, 32, generator=gen)
    mask = torch.zeros(2, 1, 4, 6, 8)
    mask[:, :, :1] = 1
    return tuple(v.to(dtype) for v in (x, t, text, mask))


def run_single(dit):
    x, t, text, mask = inputs(dit.x_embedder.proj[1].weight.dtype)
    with torch.no_grad():
        forward = dit(x, t, text, condition_mask=mask)
        denoiser = Denoiser(dit, text[:1], text[1:], 7.0, FrameCondition(x[:1, :, :1], 1))
        sampled = sample(denoiser, initial_noise((1, 16, 4, 6, 8), seed=1), karras_sigmas(4))
    return forward, sampled


def _context_parallel_rank(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        cp, results = ContextParallel(), {}
        for dtype in (torch.float32, torch.float64):
            dit = tiny_video2world().to(dtype)
            x, t, text, mask = inputs(dtype)
            with torch.no_grad():
                forward = dit(x, t, text, condition_mask=mask, cp=cp)
                denoiser = Denoiser(dit, text[:1], text[1:], 7.0, FrameCondition(x[:1, :, :1], 1), cp=cp)
                sampled = sample(denoiser, initial_noise((1, 16, 4, 6, 8), seed=1), karras_sigmas(4))
            results[str(dtype)] = (forward, sampled)
        torch.save(results, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.parametrize("world_size", [2, 4])
def test_context_parallel_forward_and_sample_equal_single_process(tmp_path, world_size):
    mp.spawn(
        _context_parallel_rank, args=(world_size, free_port(), str(tmp_path)), nprocs=world_size, join=True
    )
    single = {
        str(dtype): run_single(tiny_video2world().to(dtype)) for dtype in (torch.float32, torch.float64)
    }
    for rank in range(world_size):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        # float32: the forward at float32 tolerance; the whole sample (5 guided evaluations, guidance
        # multiplying differences by 8) within a few float32 ulps in norm.
        forward, sampled = result[str(torch.float32)]
        torch.testing.assert_close(forward, single[str(torch.float32)][0], rtol=1e-5, atol=1e-5)
        reference = single[str(torch.float32)][1]
        assert ((sampled - reference).norm() / reference.norm()).item() < 1e-5
        # float64: the split computes the same function (differences only from the float32 sampler state).
        forward, sampled = result[str(torch.float64)]
        torch.testing.assert_close(forward, single[str(torch.float64)][0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(sampled, single[str(torch.float64)][1], rtol=1e-6, atol=1e-6)


def _compiled_context_parallel_rank(rank: int, world_size: int, port: int, out: str) -> None:
    import torch._dynamo

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        dit = tiny_video2world()
        compile_blocks(dit)  # what the pipelines do on a GPU (there through NCCL instead of gloo)
        x, t, text, mask = inputs()
        with torch.no_grad():
            forward = dit(x, t, text, condition_mask=mask, cp=ContextParallel())
        graph_breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
        torch.save({"forward": forward, "graph_breaks": graph_breaks}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_compiled_blocks_under_context_parallelism_equal_one_eager_process(tmp_path):
    """torch.compile of each block with its all-to-alls inside: traced whole (no graph break), and the
    same numbers as the eager single-process forward."""
    mp.spawn(_compiled_context_parallel_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    x, t, text, mask = inputs()
    with torch.no_grad():
        single = tiny_video2world()(x, t, text, condition_mask=mask)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["graph_breaks"] == 0
        torch.testing.assert_close(result["forward"], single, rtol=1e-5, atol=1e-5)


def test_bad_world_size_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"over 3 ranks .* heads \(16\) and of latent frames \(24\).*\[1, 2, 4, 8\]"
    ):
        check_context_parallel(3, 16, 24)
    check_context_parallel(8, 16, 24)  # fine: 8 divides both
    with pytest.raises(ValueError, match=r"latent frames \(16\)"):
        check_context_parallel(32, 32, 16)


def _shard(tmp_path: Path, output_root: Path) -> Path:
    from manifests import ModelSpec, plan_shards, read_manifest, write_shard

    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(f'{{"prompt": "a ball {i}", "seed": {i}, "steps": 2}}\n' for i in range(5)))
    loaded = read_manifest(str(manifest), "text2image", str(output_root))
    (shard,) = plan_shards(loaded, 10, str(output_root / ".records"), ModelSpec(model_size="embedded"))
    path = tmp_path / f"{output_root.name}.json"
    write_shard(shard, str(path))
    return path


@pytest.mark.distributed
def test_data_parallel_generates_every_row_once_like_one_process(tmp_path):
    env = {**os.environ, "WORLDMILL_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    one, two = tmp_path / "one", tmp_path / "two"
    subprocess.run(
        [sys.executable, "-m", "cosmos_core.worker", str(_shard(tmp_path, one))], env=env, check=True
    )
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    subprocess.run(
        [*command, "-m", "cosmos_core.worker", str(_shard(tmp_path, two))], env=env, check=True, cwd=REPO
    )

    import json

    records = [json.loads(p.read_text()) for p in sorted((two / ".records").glob("*.json"))]
    assert len(records) == 5 and sorted(r["rank"] for r in records) == [0, 0, 0, 1, 1]
    images = sorted(p.name for p in two.glob("*.jpg"))
    assert images == sorted(p.name for p in one.glob("*.jpg")) and len(images) == 5
    for name in images:
        assert (two / name).read_bytes() == (one / name).read_bytes()
