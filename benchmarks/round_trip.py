"""The cost of the conditioning round-trip check (Video2WorldPipeline.round_trip_psnr): one VAE decode of the
conditioning latents and a PSNR, per generation, at a real preset's size.

    python benchmarks/round_trip.py [--device cuda] [--json F]

Wan2.1 VAE with random weights (the cost does not depend on them) at 720p 16:9 (1280x704), in the
pipeline's dtype, for 1 and 5 conditioning frames: the encode every generation already pays, and the
round trip added to it; median of 5 after 2 warm-ups.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cosmos_core.device import compute_dtype, pick_device
from cosmos_core.pipelines.video2world import Video2WorldPipeline
from cosmos_core.vae import VAE_PRESETS, WanVAE
from manifests.presets import video2world_preset


def timed(fn, device: torch.device, runs: int = 5, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    device = pick_device(args.device)
    dtype = compute_dtype(device)
    preset = video2world_preset("2B", "720", 16)
    width, height = preset.size("16:9")
    vae = WanVAE(VAE_PRESETS[preset.vae]).to(device, dtype).eval()
    pipeline = Video2WorldPipeline(SimpleNamespace(vae=vae, dtype=dtype, preset=preset))
    results = []
    for frames in (1, 5):
        video = torch.rand(1, 3, frames, height, width, device=device, dtype=dtype) * 2 - 1
        latents = vae.encode(video).float()
        encode_s = timed(lambda video=video: vae.encode(video), device)
        check_s = timed(
            lambda video=video, latents=latents: pipeline.round_trip_psnr(video, latents, "x"), device
        )
        results.append(
            {"frames": frames, "encode_s": round(encode_s, 4), "round_trip_check_s": round(check_s, 4)}
        )
        print(
            f"{frames} conditioning frame(s) at {width}x{height}: encode {encode_s * 1e3:.1f} ms, "
            f"round-trip check {check_s * 1e3:.1f} ms",
            flush=True,
        )
    summary = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype),
        "size": [width, height],
        "results": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
