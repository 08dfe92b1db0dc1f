"""Step caching: speed and quality cost against the uncached output, same seeds.

    python benchmarks/step_cache.py [--scenes 4] [--thresholds 0.03,0.05,0.1] [--device cuda] [--json F]

Video2World on the embedded model (trained weights, so the quality cost means something) from the
first `--scenes` held-out scenes' first frames, at default settings; per threshold: the share of DiT
calls that reused blocks 2..N, the block evaluations relative to uncached, the sampling wall time and
its speedup, and the PSNR of the video against the uncached one (same seed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cosmos_core import media
from cosmos_core.pipelines import Video2WorldPipeline
from cosmos_core.world import render, scene_from_seed
from cosmos_core.world.metrics import psnr
from cosmos_core.world.scene import HELD_OUT_SEED
from manifests.requests import Video2WorldRequest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenes", type=int, default=4)
    p.add_argument("--thresholds", default="0.03,0.05,0.1")
    p.add_argument("--device")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    pipeline = Video2WorldPipeline.load(model_size="embedded", device=args.device)
    blocks = pipeline.bundle.dit.cfg.num_blocks
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        requests = []
        for i in range(args.scenes):
            scene = scene_from_seed(HELD_OUT_SEED + i)
            media.write_image(f"{tmp}/{i}.png", render(scene, 1)[0])
            requests.append(Video2WorldRequest(prompt=scene.caption, input_path=f"{tmp}/{i}.png", seed=i))
        pipeline.generate(requests[0])  # warm-up
        plain = [pipeline.generate(r) for r in requests]
        base_s = np.mean([g.sidecar["timings"]["sampling_s"] for g in plain])
        for threshold in [float(t) for t in args.thresholds.split(",")]:
            cached = [pipeline.generate(r.model_copy(update={"step_cache": threshold})) for r in requests]
            full = sum(g.sidecar["step_cache"]["full_calls"] for g in cached)
            reused = sum(g.sidecar["step_cache"]["reused_calls"] for g in cached)
            sampling_s = np.mean([g.sidecar["timings"]["sampling_s"] for g in cached])
            row = {
                "threshold": threshold,
                "reused_share": round(reused / (full + reused), 3),
                "block_evaluations_vs_uncached": round(
                    (full * blocks + reused) / ((full + reused) * blocks), 3
                ),
                "sampling_s": round(float(sampling_s), 3),
                "uncached_sampling_s": round(float(base_s), 3),
                "speedup": round(float(base_s / sampling_s), 2),
                "psnr_db": round(
                    float(np.mean([psnr(c.frames, u.frames) for c, u in zip(cached, plain, strict=True)])), 1
                ),
            }
            results.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps({"model": "embedded-Video2World", "results": results}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
