"""Context and data parallelism of Video2World on several GPUs: seconds, speedup, equality, rows/hour.

    python benchmarks/multi_gpu.py --gpus 1,2,4,8 --modes cp,dp --machine nvidia-h200-x8 \
        --out benchmarks/results/<date>-<machine>-parallel.json

For each GPU count P the driver starts `torchrun --nproc_per_node=P benchmarks/multi_gpu.py --worker ...`
and merges what rank 0 reports into --out (several calls can fill it in turn: a 10-minute device call
holds a few GPU counts, not all). Random weights at the real sizes (no checkpoint can be fetched): 2B
Video2World 720p 16 fps (93 frames at 1280x704), T5-11B, bf16, blocks compiled as the pipelines run them;
each process builds its models once and warms up (compiles) with a 2-step generation before timing.

  cp  one generation of --steps steps with the DiT's latent frames split over P GPUs (Ulysses all-to-all,
      cosmos_core/parallel.py): rank 0's wall seconds, the speedup over P=1, and the PSNR of the video
      against the P=1 video of the same seed and input (its frames kept under --work between runs).
  dp  rows striped over P GPUs as the batch worker stripes a shard (rows rank, rank+P, ...), one model
      per GPU, each row its own seed: rows/hour from the common start (after loading and warm-up) to the
      last row's end, and the efficiency rows/hour(P) / (P x rows/hour(1)). P=1 generates --baseline_rows
      rows (its rate is per row; a full 16-row pass on one GPU outlasts a device call). Loading and
      warm-up seconds are reported apart: a shard pays them once, however many rows it holds.

`--scale tiny` runs the same code in CPU processes (gloo) at a tiny random configuration: what the test
suite runs (tests/test_multi_gpu_benchmark.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosmos_core.device import configure_backends, pick_device  # noqa: E402
from cosmos_core.parallel import SAFE_NCCL_ENV, ContextParallel, maybe_init_distributed  # noqa: E402
from cosmos_core.world.metrics import psnr  # noqa: E402

PROMPT = "A robot arm picks up a red cube from a wooden table and places it in a blue bin."
SCALES = ("2B-720p", "tiny")


# ----------------------------------------------------------------------------------------------------
# Models (random weights)
# ----------------------------------------------------------------------------------------------------


def tiny_bundle(device: torch.device):
    """tiny-Video2World DiT (4 heads), the embedded VAE's shape, a 1-layer T5: 13 frames at 160x96
    (4 latent frames, so 1, 2 and 4 ranks divide them), float32 on the CPU."""
    from cosmos_core.dit import CosmosDiT, dit_config
    from cosmos_core.models import EMBEDDED_DIR, ModelBundle
    from cosmos_core.small_t5 import SmallT5Config, SmallT5Encoder, WordTokenizer
    from cosmos_core.text_encoder import T5TextEncoder
    from cosmos_core.vae import VAE_PRESETS, WanVAE
    from manifests.presets import ModelPreset

    preset = ModelPreset(
        "tiny-Video2World", "video2world", "tiny-Video2World", "embedded", "", "", "embedded", 16, 13
    )
    torch.manual_seed(0)
    t5 = SmallT5Encoder(SmallT5Config(vocab_size=64, d_model=32, d_kv=8, d_ff=32, num_layers=1, num_heads=2))
    encoder = T5TextEncoder(t5.to(device), WordTokenizer(EMBEDDED_DIR / "t5" / "tokenizer.json"))
    dit = CosmosDiT(dit_config(preset.dit)).to(device).eval().requires_grad_(False)
    vae = WanVAE(VAE_PRESETS[preset.vae]).to(device).eval().requires_grad_(False)
    return ModelBundle(
        preset, dit, vae, encoder, device, torch.float32, {"preset": preset.name, "random": True}
    )


def build_bundle(scale: str, device: torch.device):
    if scale == "tiny":
        return tiny_bundle(device)
    from benchmarks.gpu_speed import random_bundle, random_t5_encoder

    return random_bundle("video2world", device, False, random_t5_encoder(device))


def conditioning_frames(bundle) -> np.ndarray:
    """One random conditioning image at the output size, the same in every process: (1, H, W, 3) uint8."""
    width, height = bundle.preset.size("16:9")
    return np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------------------------------
# Worker: one torchrun job, every rank runs this
# ----------------------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if dist.is_initialized():
        dist.barrier()


def run_worker(args) -> None:
    from cosmos_core.pipelines import Video2WorldPipeline
    from manifests.requests import Video2WorldRequest

    ctx = maybe_init_distributed()
    rank, world = (ctx.rank, ctx.world_size) if ctx else (0, 1)
    device = ctx.device if ctx else pick_device(os.environ.get("WORLDMILL_DEVICE"))  # as the batch worker
    configure_backends(device)
    start = time.perf_counter()
    bundle = build_bundle(args.scale, device)
    cp = ContextParallel() if args.worker == "cp" and world > 1 else None
    pipeline = Video2WorldPipeline(bundle, cp)
    frames = conditioning_frames(bundle)

    def generate(seed: int, steps: int):
        request = Video2WorldRequest(
            prompt=f"{PROMPT} Seed {seed}.", input_path="in.png", seed=seed, steps=steps
        )
        return pipeline.generate_from_frames(request, frames)

    generate(0, 2)  # warm-up: compiles the blocks for this shape (and the VAE's kernels)
    synchronize(device)
    load_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    began = time.perf_counter()
    if args.worker == "cp":
        video = generate(args.seed, args.steps).frames
        rows = 1
    else:
        mine = range(rank, args.rows, world)
        for row in mine:
            generate(args.seed + row, args.steps)
        rows = args.rows
    synchronize(device)
    seconds = time.perf_counter() - began

    if rank == 0:
        report = {
            "gpus": world,
            "seconds": round(seconds, 3),
            "load_and_warm_up_s": round(load_s, 1),
            "steps": args.steps,
            "rows": rows,
            "peak_gb": torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        }
        if args.worker == "cp":
            np.save(Path(args.work) / f"cp-{world}.npy", video)
            report["frames"] = list(video.shape)
        Path(args.report).write_text(json.dumps(report))
    if dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------


def launch(mode: str, gpus: int, args, work: Path) -> dict:
    report = work / f"{mode}-{gpus}.json"
    report.unlink(missing_ok=True)
    rows = args.baseline_rows if (mode == "dp" and gpus == 1) else args.rows
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
        str(Path(__file__).resolve()), "--worker", mode, "--scale", args.scale, "--steps", str(args.steps),
        "--rows", str(rows), "--seed", str(args.seed), "--work", str(work), "--report", str(report),
    ]  # fmt: skip
    env = {**os.environ, **SAFE_NCCL_ENV, "PYTHONUNBUFFERED": "1"}
    if args.scale == "tiny":
        env.update(WORLDMILL_DEVICE="cpu", OMP_NUM_THREADS="1")
    print(f"[{mode} on {gpus} GPU(s)]", flush=True)
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    return json.loads(report.read_text())


def summarise(results: dict, work: Path) -> None:
    """Speedups, PSNR against one GPU and data-parallel efficiency, from what the runs recorded."""
    cp, dp = results.get("cp", {}), results.get("dp", {})
    one = cp.get("1")
    reference = work / "cp-1.npy"
    for key, run in cp.items():
        if one:
            run["speedup"] = round(one["seconds"] / run["seconds"], 3)
        if key != "1" and reference.is_file() and (work / f"cp-{key}.npy").is_file():
            db = psnr(np.load(work / f"cp-{key}.npy"), np.load(reference))
            run["psnr_vs_1_gpu_db"] = round(db, 2) if np.isfinite(db) else "inf"  # inf: identical frames
    for run in dp.values():
        run["rows_per_hour"] = round(3600.0 * run["rows"] / run["seconds"], 2)
    if "1" in dp:
        base = dp["1"]["rows_per_hour"]
        for key, run in dp.items():
            run["efficiency"] = round(run["rows_per_hour"] / (int(key) * base), 3)


def print_table(results: dict) -> None:
    for key, run in sorted(results.get("cp", {}).items(), key=lambda kv: int(kv[0])):
        psnr_text = f", PSNR vs 1 GPU {run['psnr_vs_1_gpu_db']} dB" if "psnr_vs_1_gpu_db" in run else ""
        speedup = f", speedup {run['speedup']}x" if "speedup" in run else ""
        print(f"cp {key} GPU(s): {run['seconds']:.1f} s{speedup}{psnr_text}")
    for key, run in sorted(results.get("dp", {}).items(), key=lambda kv: int(kv[0])):
        efficiency = f", efficiency {run['efficiency']:.0%}" if "efficiency" in run else ""
        print(
            f"dp {key} GPU(s): {run['rows']} rows in {run['seconds']:.1f} s, {run['rows_per_hour']} rows/h{efficiency}"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpus", default="1,2,4,8", help="comma-separated GPU counts, each run in turn")
    p.add_argument("--modes", default="cp,dp", help="cp (context parallelism), dp (data parallelism)")
    p.add_argument("--scale", choices=SCALES, default="2B-720p")
    p.add_argument("--steps", type=int, default=35, help="sampling steps of every timed generation")
    p.add_argument("--rows", type=int, default=16, help="dp: rows of the manifest for P > 1")
    p.add_argument("--baseline_rows", type=int, default=2, help="dp: rows timed on one GPU")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--machine", default="", help="the machine's name in the results, e.g. nvidia-h200-x8")
    p.add_argument("--work", type=Path, default=Path("/tmp/worldmill-multi-gpu"), help="videos kept for PSNR")
    p.add_argument("--out", type=Path, help="results JSON (read and updated)")
    p.add_argument("--worker", choices=("cp", "dp"), help=argparse.SUPPRESS)
    p.add_argument("--report", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return run_worker(args)
    if args.out is None:
        p.error("--out is required")

    args.work.mkdir(parents=True, exist_ok=True)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.update(scale=args.scale, machine=args.machine or results.get("machine", ""))
    for mode in args.modes.split(","):
        for gpus in sorted(int(g) for g in args.gpus.split(",")):
            results.setdefault(mode, {})[str(gpus)] = launch(mode, gpus, args, args.work)
            summarise(results, args.work)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1) + "\n")
    print_table(results)


if __name__ == "__main__":
    main()
