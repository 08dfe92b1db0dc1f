"""Time one DiT forward, ours next to diffusers' CosmosTransformer3DModel, with the same random weights.

    python benchmarks/dit_forward.py --shape 2B-720p [--out results.json]

Prints milliseconds (median of CUDA-event timings), achieved TFLOP/s against the counted FLOPs, peak
memory, the relative difference of the two outputs, and the ratio ours/diffusers. Needs a CUDA GPU
and diffusers (the device tool carries it as a wheel).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cosmos_core.checkpoints import dit_key_from_diffusers
from cosmos_core.device import configure_backends
from cosmos_core.dit import CosmosDiT, DiTConfig, dit_config

# name -> (DiT preset, latent (T, H, W)); 720p 16:9 93 frames -> 24 x 88 x 160 latents = 84,480 tokens.
SHAPES = {
    "2B-720p": ("2B-Video2World", (24, 88, 160)),
    "2B-480p": ("2B-Video2World", (24, 54, 96)),
    "14B-720p": ("14B-Video2World", (24, 88, 160)),
    "2B-T2I-1024": ("2B-Text2Image", (1, 128, 128)),
}


def dit_flops(cfg: DiTConfig, T: int, H: int, W: int, text_tokens: int = 512) -> float:
    """Multiply-adds x 2 of one forward at batch 1 (matmuls and attention; elementwise work ignored)."""
    L = T * (H // cfg.patch_spatial) * (W // cfg.patch_spatial)
    D = cfg.model_channels
    per_block = (
        2 * L * D * D * 4  # self-attn q, k, v, out
        + 2 * 2 * L * L * D  # self-attn scores and values
        + 2 * L * D * D * 2  # cross-attn q, out
        + 2 * text_tokens * cfg.crossattn_dim * D * 2  # cross-attn k, v
        + 2 * 2 * L * text_tokens * D  # cross-attn scores and values
        + 2 * L * D * int(D * cfg.mlp_ratio) * 2  # MLP
    )
    embed = (
        2 * L * cfg.in_channels * cfg.patch_volume * D + 2 * L * D * cfg.patch_volume * cfg.latent_channels
    )
    return cfg.num_blocks * per_block + embed


def diffusers_twin(ours: CosmosDiT):
    """diffusers' model with our weights (their names mapped to ours by the production key map)."""
    from diffusers import CosmosTransformer3DModel

    cfg = ours.cfg
    with torch.device("meta"):
        theirs = CosmosTransformer3DModel(
            in_channels=cfg.latent_channels + int(cfg.condition_mask),
            out_channels=cfg.latent_channels,
            num_attention_heads=cfg.num_heads,
            attention_head_dim=cfg.head_dim,
            num_layers=cfg.num_blocks,
            mlp_ratio=cfg.mlp_ratio,
            text_embed_dim=cfg.crossattn_dim,
            adaln_lora_dim=cfg.adaln_lora_dim,
            max_size=cfg.max_latent_size,
            patch_size=(cfg.patch_temporal, cfg.patch_spatial, cfg.patch_spatial),
            rope_scale=cfg.rope_extrapolation,
            concat_padding_mask=True,
            extra_pos_embed_type=None,
        )
    state = ours.state_dict()
    theirs.load_state_dict({k: state[dit_key_from_diffusers(k)] for k in theirs.state_dict()}, assign=True)
    return theirs.eval().requires_grad_(False)


def compiled(model: CosmosDiT, run):
    """`run` after compiling each block on first call (compilation stays out of the timings: warm-up)."""
    state = {"done": False}

    def fn():
        if not state["done"]:
            start = time.perf_counter()
            for block in model.blocks:
                block.compile()
            run()
            torch.cuda.synchronize()
            print(f"compile + first run: {time.perf_counter() - start:.1f} s", flush=True)
            state["done"] = True
        return run()

    return fn


def diffusers_best(theirs, run):
    """diffusers at its best: the cuDNN attention backend and each transformer block compiled."""
    state = {"done": False}

    def fn():
        if not state["done"]:
            theirs.set_attention_backend("_native_cudnn")
            for block in theirs.transformer_blocks:
                block.compile()
            state["done"] = True
        return run()

    return fn


def time_cuda(fn, warmup: int, iters: int) -> list[float]:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=SHAPES, default="2B-720p")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--compile", action="store_true", help="also time ours with torch.compile of each block"
    )
    parser.add_argument(
        "--diffusers_best",
        action="store_true",
        help="also time diffusers with its best knobs: cuDNN attention backend + torch.compile of each block",
    )
    parser.add_argument(
        "--context_parallel_1",
        action="store_true",
        help="also time our forward through the context-parallel code path with world size 1",
    )
    args = parser.parse_args()

    device = torch.device("cuda", torch.cuda.current_device())
    configure_backends(device)
    preset, (T, H, W) = SHAPES[args.shape]
    cfg = dit_config(preset)
    torch.manual_seed(0)
    with torch.device(device):
        ours = CosmosDiT(cfg).to(torch.bfloat16).eval().requires_grad_(False)
    theirs = diffusers_twin(ours)

    gen = torch.Generator(device).manual_seed(0)
    x = torch.randn(1, cfg.latent_channels, T, H, W, device=device, generator=gen, dtype=torch.bfloat16)
    t = torch.rand(1, T, device=device, generator=gen).to(torch.bfloat16)
    text = torch.randn(1, 512, cfg.crossattn_dim, device=device, generator=gen, dtype=torch.bfloat16)
    mask = torch.zeros(1, 1, T, H, W, device=device, dtype=torch.bfloat16)
    mask[:, :, :1] = 1
    cond = mask if cfg.condition_mask else None

    def run_ours():
        return ours(x, t, text, condition_mask=cond)

    cp = None
    if args.context_parallel_1:
        import os

        import torch.distributed as dist

        from cosmos_core.parallel import ContextParallel

        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29533")
        dist.init_process_group("nccl", rank=0, world_size=1, device_id=device)
        cp = ContextParallel()

    def run_ours_cp1():
        return ours(x, t, text, condition_mask=cond, cp=cp)

    def run_theirs():
        return theirs(
            hidden_states=x,
            timestep=t[:, None, :, None, None],
            encoder_hidden_states=text,
            condition_mask=cond,
            padding_mask=torch.zeros(1, 1, H, W, device=device, dtype=torch.bfloat16),
            return_dict=False,
        )[0]

    flops = dit_flops(cfg, T, H, W)
    results = {"shape": args.shape, "preset": preset, "latent_thw": [T, H, W], "gflop": flops / 1e9}
    with torch.no_grad():
        a, b = run_ours().float(), run_theirs().float()
        results["rel_diff_vs_diffusers"] = ((a - b).norm() / b.norm()).item()
        del a, b
        runs = [("ours", run_ours), ("diffusers", run_theirs)]
        if cp is not None:
            runs.append(("ours_context_parallel_1", run_ours_cp1))
        if args.compile:
            runs.append(("ours_compiled", compiled(ours, run_ours)))
        if args.diffusers_best:
            runs.append(("diffusers_best", diffusers_best(theirs, run_theirs)))
        for name, fn in runs:
            torch.cuda.reset_peak_memory_stats()
            wall = time.perf_counter()
            times = time_cuda(fn, args.warmup, args.iters)
            ms = statistics.median(times)
            results[name] = {
                "ms": ms,
                "ms_all": times,
                "tflops": flops / ms / 1e9,
                "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
                "wall_s": time.perf_counter() - wall,
            }
    results["ratio_ours_over_diffusers"] = results["ours"]["ms"] / results["diffusers"]["ms"]
    results["gpu"] = torch.cuda.get_device_name()
    results["torch"] = torch.__version__
    if cp is not None:
        results["ratio_cp1_over_plain"] = results["ours_context_parallel_1"]["ms"] / results["ours"]["ms"]
    for name in [n for n, _ in runs]:
        r = results[name]
        print(
            f"{args.shape:12s} {name:10s} {r['ms']:9.1f} ms  {r['tflops']:6.1f} TFLOP/s  peak {r['peak_gb']:5.1f} GB"
        )
    if cp is not None:
        print(
            f"{args.shape:12s} context-parallel path (world size 1) / plain: {results['ratio_cp1_over_plain']:.4f}"
        )
    print(
        f"{args.shape:12s} ratio ours/diffusers {results['ratio_ours_over_diffusers']:.3f}  "
        f"rel diff {results['rel_diff_vs_diffusers']:.2e}"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
