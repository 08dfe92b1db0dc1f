"""GPU speed of the whole stack, ours next to diffusers (the peer to beat), with the same random weights.

    python benchmarks/gpu_speed.py --sections dit,vae,t5,generate --out benchmarks/results/<date>-<gpu>.json

Sections (`dit=2B-720p+14B-720p` picks the dit shapes inline; each adds its entries to --out, which several
calls can fill in turn; a 10-minute device call holds a few sections, not all):
  dit       one DiT forward per shape (--shapes): ours eager, ours compiled (the pipelines' default on a GPU),
            ours compiled + CUDA graphs (Text2Image only: it is launch-bound), diffusers as shipped and at
            its best (cuDNN attention backend + torch.compile of each block). ms, TFLOP/s against the
            counted FLOPs, peak memory, ours/diffusers, and how far the outputs differ.
  profile   the 2B 720p compiled forward under torch.profiler: the kernels that take the time.
  attention SDPA alone at the 2B 720p self-attention shape, per backend and memory layout, and 28 cuDNN
            calls back to back (a forward's worth: the clock falls under a sustained load).
  vae       Wan2.1 VAE decode of a 720p 93-frame clip (--vae_variants): ours one latent frame per decoder
            call (the reference's way), ours_chunk2 (as Video2World runs it on a GPU), ours_chunk4,
            ours_pad128 (96-channel convolutions padded to 128), channels-last 3D, and diffusers'
            AutoencoderKLWan; each with its top kernels.
  t5        T5-11B encoder (random, our plain-torch T5) over the prompt and the negative prompt, 512 tokens.
  generate  full generations through our pipelines at the reference's defaults (35 steps, guidance 7 / 4):
            2B Text2Image 1024 and 2B Video2World 720p 93 frames, warm (the model loaded and compiled, as in
            a batch worker): T5 + all DiT evaluations + VAE decode + uint8 frames; the image is written as a
            PNG. The MP4 write needs ffmpeg, which the device image lacks: section `write` times it alone.
  write     H.264 encoding of a 720p 93-frame clip as the pipelines write it (runs on any machine).
  natten-check     the sparse-attention (NATTEN) DiTs' GPU path is right: each 2B/14B layer pattern at 720p
            16:9 through FlexAttention against SDPA with the boolean mask (2,048 random queries, float32),
            and a whole 2B sparse DiT, compiled and CUDA-graphed, against its masked-SDPA path (4 frames).
  natten-attention each pattern's self-attention alone at 720p 16:9, next to dense cuDNN attention.
  natten-dit=2B+14B  one forward, sparse and dense, compiled, 720p 16:9 93 frames, batch 1, shared weights.
  natten-tune      FlexAttention kernel settings on the two largest 2B patterns, and a profile of the 2B
            sparse compiled forward.
  natten-variants  the 2B sparse compiled forward with and without inductor's prologue fusion (RMSNorm and
            RoPE computed inside the attention kernel's loads) and with candidate kernel settings.
  natten-generate  a full 2B 720p 93-frame Video2World generation with the sparse DiT (as `generate`).
Sections starting with natten write under the top-level key "natten".
Every timing carries the SM clock and power that NVML read while it ran (sm_clock_mhz), where NVML is there.
Needs a CUDA GPU (all but `write`) and diffusers (dit, vae).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.dit_forward import SHAPES, diffusers_best, diffusers_twin, dit_flops, time_cuda
from cosmos_core import media
from cosmos_core.acceleration import CudaGraphDiT, compile_blocks
from cosmos_core.device import configure_backends
from cosmos_core.dit import CosmosDiT, dit_config

SECTIONS = (
    "dit",
    "profile",
    "attention",
    "vae",
    "t5",
    "generate",
    "write",
    "natten-check",
    "natten-attention",
    "natten-dit",
    "natten-generate",
    "natten-tune",
    "natten-variants",
)
# google-t5/t5-11b's encoder (what Cosmos-Predict2 uses): T5 v1.0, ReLU feed-forward.
T5_11B = dict(vocab_size=32128, d_model=1024, d_kv=128, d_ff=65536, num_layers=24, num_heads=128)
VIDEO_LATENTS = (24, 88, 160)  # 93 frames at 1280x704 (the 720p 16:9 size)


def measure(fn: Callable[[], object], warmup: int, iters: int) -> dict:
    """Median of CUDA-event timings after warm-up (dit_forward.time_cuda), and the peak memory."""
    torch.cuda.reset_peak_memory_stats()
    times = time_cuda(fn, warmup, iters)
    return {
        "ms": statistics.median(times),
        "ms_all": [round(t, 3) for t in times],
        "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
    }


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm()).item()


def fresh() -> None:
    torch._dynamo.reset()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------------
# DiT forward
# ----------------------------------------------------------------------------------------------------


def dit_inputs(cfg, T: int, H: int, W: int, device: torch.device, batch: int = 1):
    gen = torch.Generator(device).manual_seed(0)
    x = torch.randn(batch, cfg.latent_channels, T, H, W, device=device, generator=gen, dtype=torch.bfloat16)
    t = torch.rand(batch, T, device=device, generator=gen).to(torch.bfloat16)
    text = torch.randn(batch, 512, cfg.crossattn_dim, device=device, generator=gen, dtype=torch.bfloat16)
    mask = None
    if cfg.condition_mask:
        mask = torch.zeros(batch, 1, T, H, W, device=device, dtype=torch.bfloat16)
        mask[:, :, :1] = 1
    return x, t, text, mask


def bench_dit(
    shape: str, device: torch.device, warmup: int, iters: int, variants: list[str], out: dict, save
) -> None:
    """Fills `out` variant by variant, calling save() after each (a 14B shape takes minutes)."""
    preset, (T, H, W) = SHAPES[shape]
    cfg = dit_config(preset)
    torch.manual_seed(0)
    with torch.device(device):
        ours = CosmosDiT(cfg).to(torch.bfloat16).eval().requires_grad_(False)
    theirs = diffusers_twin(ours)  # shares our weight tensors
    x, t, text, mask = dit_inputs(cfg, T, H, W, device)
    flops = dit_flops(cfg, T, H, W)
    out.update(preset=preset, latent_thw=[T, H, W], gflop=flops / 1e9)

    def run_ours(model=ours):
        return model(x, t, text, condition_mask=mask)

    def run_theirs():
        return theirs(
            hidden_states=x,
            timestep=t[:, None, :, None, None],
            encoder_hidden_states=text,
            condition_mask=mask,
            padding_mask=torch.zeros(1, 1, H, W, device=device, dtype=torch.bfloat16),
            return_dict=False,
        )[0]

    with torch.no_grad():
        reference = run_ours()
        out["rel_diff_ours_vs_diffusers"] = rel_diff(reference, run_theirs())
        graphed = CudaGraphDiT(ours)
        plan = [
            ("ours", run_ours),
            ("ours_compiled", run_ours),  # after compile_blocks below
            ("ours_compiled_cuda_graphs", lambda: graphed(x, t, text, condition_mask=mask)),
            ("diffusers", run_theirs),
            ("diffusers_best", diffusers_best(theirs, run_theirs)),
        ]
        for name, fn in plan:
            if name == "ours_compiled":
                compile_blocks(ours)
            if name not in variants:
                continue
            wall = time.perf_counter()
            with ClockSampler(device) as clocks:
                r = measure(fn, warmup, iters)
            r["sm_clock_mhz"] = clocks.summary()
            r["tflops"] = flops / r["ms"] / 1e9
            r["wall_s"] = round(time.perf_counter() - wall, 1)
            if name.startswith("ours_"):
                r["rel_diff_vs_eager"] = rel_diff(fn(), reference)
            out[name] = r
            save()
            print(
                f"  {shape:12s} {name:26s} {r['ms']:9.2f} ms {r['tflops']:6.1f} TFLOP/s peak {r['peak_gb']:5.1f} GB",
                flush=True,
            )
    best_ours = min((out[k]["ms"], k) for k in out if k.startswith("ours") and isinstance(out[k], dict))
    theirs_keys = [k for k in ("diffusers_best", "diffusers") if k in out]
    if theirs_keys:
        best_theirs = min((out[k]["ms"], k) for k in theirs_keys)
        out["best_ours"], out["best_diffusers"] = best_ours[1], best_theirs[1]
        out["ratio_best_ours_over_best_diffusers"] = best_ours[0] / best_theirs[0]
        print(
            f"  {shape:12s} best ours {best_ours[0]:.2f} ms ({best_ours[1]}) / best diffusers "
            f"{best_theirs[0]:.2f} ms ({best_theirs[1]}) = {out['ratio_best_ours_over_best_diffusers']:.3f}"
        )


def profile_forward(device: torch.device, out_dir: Path) -> dict:
    """Top CUDA kernels of one compiled 2B 720p forward (Video2World)."""
    preset, (T, H, W) = SHAPES["2B-720p"]
    cfg = dit_config(preset)
    with torch.device(device):
        ours = CosmosDiT(cfg).to(torch.bfloat16).eval().requires_grad_(False)
    return {"top_kernels_ms": profile_compiled(ours, (T, H, W), out_dir / "profile-2B-720p-compiled.txt")}


def profile_compiled(model: CosmosDiT, latents_thw, out_file: Path) -> list:
    """Compile the DiT's blocks, warm up, profile one forward: the kernel table to out_file, the top 25."""
    compile_blocks(model)
    x, t, text, mask = dit_inputs(model.cfg, *latents_thw, next(model.parameters()).device)
    with torch.no_grad():
        for _ in range(2):
            model(x, t, text, condition_mask=mask)
        prof = cuda_profile(lambda: model(x, t, text, condition_mask=mask))
    table = prof.key_averages().table(sort_by="device_time_total", row_limit=30, max_name_column_width=90)
    out_file.write_text(table)
    print(table, flush=True)
    return top_kernels(prof, 25, 120)


def cuda_profile(fn: Callable[[], object]):
    """torch.profiler over one call of fn (CUDA activity), the device drained before and after."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return prof


def top_kernels(prof, n: int = 12, width: int = 100) -> list:
    """[name, total ms, calls] of a profile's CUDA kernels, the costliest first."""
    averages = sorted(prof.key_averages(), key=lambda e: -e.device_time_total)
    return [[e.key[:width], round(e.device_time_total / 1e3, 2), e.count] for e in averages[:n]]


def bench_attention(device: torch.device, iters: int) -> dict:
    """SDPA at the 2B 720p shapes (84,480 tokens, 16 heads x 128) per backend: cross-attention over the
    512 text tokens, and self-attention in two memory layouts: (B, H, L, D) contiguous, or the
    (B, L, H, D) buffer the projections write, seen transposed."""
    from torch.nn.attention import SDPBackend

    B, H, L, D = 1, 16, 84480, 128
    gen = torch.Generator(device).manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, device=device, dtype=torch.bfloat16, generator=gen)

    out = {"shape_bhld": [B, H, L, D], "gflop": 4 * B * H * L * L * D / 1e9}
    cudnn, flash, efficient = (
        SDPBackend.CUDNN_ATTENTION,
        SDPBackend.FLASH_ATTENTION,
        SDPBackend.EFFICIENT_ATTENTION,
    )
    cross = (randn(B, H, L, D), randn(B, H, 512, D), randn(B, H, 512, D))
    self_bhld = tuple(randn(B, H, L, D) for _ in range(3))
    self_blhd = tuple(randn(B, L, H, D).transpose(1, 2) for _ in range(3))
    cases = [("cross_512", cross, (cudnn, flash, efficient)), ("bhld", self_bhld, (cudnn, flash))]
    cases.append(("blhd", self_blhd, (cudnn, flash)))
    for case, qkv, backends in cases:
        for backend in backends:
            name = f"{backend.name.split('_')[0].lower()}_{case}"
            with ClockSampler(device) as clocks:
                out[name] = time_sdpa(qkv, backend, iters)
            out[name]["sm_clock_mhz"] = clocks.summary()
            print(
                f"  sdpa {name:18s} {out[name]['ms']:8.2f} ms {out[name]['tflops']:4.0f} TFLOP/s "
                f"SM clock {out[name]['sm_clock_mhz']}",
                flush=True,
            )
    out["cudnn_sustained"] = sustained_attention(self_bhld, self_blhd, cudnn, device)
    return out


class ClockSampler:
    """SM clock (MHz) and power (W) read through NVML every 20 ms while the block runs: a forward that
    keeps the tensor cores busy for seconds can run at lower clocks than a short kernel timing."""

    def __init__(self, device: torch.device) -> None:
        self.index = device.index or 0
        self.samples: list[tuple[int, float]] = []

    def __enter__(self):
        import threading

        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
        except Exception:  # no NVML: the timings stand without clocks
            self.thread = None
            return self
        self.stop = threading.Event()

        def sample():
            while not self.stop.wait(0.02):
                clock = pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)
                power = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000
                self.samples.append((clock, power))

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.thread is not None:
            self.stop.set()
            self.thread.join()

    def summary(self) -> dict | None:
        if not self.samples:
            return None
        clocks = sorted(c for c, _ in self.samples)
        powers = sorted(w for _, w in self.samples)
        return {
            "median": clocks[len(clocks) // 2],
            "min": clocks[0],
            "max": clocks[-1],
            "median_power_w": round(powers[len(powers) // 2]),
            "max_power_w": round(powers[-1]),
            "samples": len(clocks),
        }


def sustained_attention(self_bhld, self_blhd, backend, device: torch.device) -> dict:
    """28 self-attention calls back to back (one 2B 720p forward's worth, ~2.5 s), in both layouts,
    against the per-call timing of short runs: shows whether the in-forward attention time (97 ms a
    call in the H100 profile vs 89 ms alone) is the clock falling under a sustained load."""
    from torch.nn.attention import sdpa_kernel

    out = {}
    for layout, (q, k, v) in (("bhld", self_bhld), ("blhd", self_blhd)):
        with sdpa_kernel([backend]), torch.no_grad():

            def forward_worth(q=q, k=k, v=v):
                for _ in range(28):
                    torch.nn.functional.scaled_dot_product_attention(q, k, v)

            with ClockSampler(device) as clocks:
                r = measure(forward_worth, 1, 3)
        r["ms_per_call"] = r["ms"] / 28
        r["sm_clock_mhz"] = clocks.summary()
        out[layout] = r
        print(
            f"  sdpa cudnn {layout} x28 back to back: {r['ms_per_call']:.2f} ms a call, SM clock {r['sm_clock_mhz']}",
            flush=True,
        )
    return out


def time_sdpa(qkv: tuple[torch.Tensor, ...], backend, iters: int) -> dict:
    from torch.nn.attention import sdpa_kernel

    q, k, v = qkv
    with sdpa_kernel([backend]), torch.no_grad():
        r = measure(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v), 2, iters)
    r["tflops"] = 4 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.shape[3] / r["ms"] / 1e9
    return r


# ----------------------------------------------------------------------------------------------------
# VAE decode
# ----------------------------------------------------------------------------------------------------


def pad_out_channels(vae, multiple: int = 128):
    """A copy of `vae` whose convolutions with out_channels not a multiple of `multiple` (the 96-channel
    full-resolution level) run with zero filters added up to the next multiple, the extra output
    channels sliced off. A probe: does cuDNN leave its sm80 kernel for a Hopper (sm90) one, and does
    that pay for the extra third of the work? For batch 1 the slice is contiguous (no copy)."""
    padded = copy.deepcopy(vae)

    def forward_padded(module):
        def conv(x, weight, bias):
            extra = -weight.shape[0] % multiple
            w = torch.cat([weight, weight.new_zeros(extra, *weight.shape[1:])])
            b = torch.cat([bias, bias.new_zeros(extra)])
            return torch.nn.Conv3d._conv_forward(module, x, w, b)[:, : weight.shape[0]]

        return conv

    for module in padded.modules():
        if isinstance(module, torch.nn.Conv3d) and module.out_channels % multiple and module.out_channels > 8:
            module._conv_forward = forward_padded(module)
    return padded


def bench_vae(device: torch.device, iters: int, variants: list[str]) -> dict:
    """Our decode as the pipelines run it, its candidate speed-ups (latent frames per decoder call,
    96-channel convolutions padded to 128, channels-last 3D activations) and diffusers' decode, each
    with its top kernels."""
    from diffusers import AutoencoderKLWan

    from cosmos_core.vae import VAE_PRESETS, WanVAE, vae_key_from_diffusers

    cfg = VAE_PRESETS["wan2.1"]
    torch.manual_seed(0)
    ours = WanVAE(cfg).to(device, torch.bfloat16).eval().requires_grad_(False)
    theirs = AutoencoderKLWan(
        base_dim=cfg.dim,
        z_dim=cfg.z_dim,
        dim_mult=list(cfg.dim_mult),
        num_res_blocks=cfg.num_res_blocks,
        temperal_downsample=list(cfg.temporal_downsample),
        latents_mean=list(cfg.latents_mean),
        latents_std=list(cfg.latents_std),
    )
    state = ours.state_dict()
    theirs.load_state_dict(
        {k: state[vae_key_from_diffusers(k, cfg.num_res_blocks)] for k in theirs.state_dict()}
    )
    theirs = theirs.to(device, torch.bfloat16).eval().requires_grad_(False)
    z = torch.randn(
        1, cfg.z_dim, *VIDEO_LATENTS, device=device, generator=torch.Generator(device).manual_seed(0)
    )
    z = z.to(torch.bfloat16)
    raw = (z.float() * ours.latents_std + ours.latents_mean).to(torch.bfloat16)  # diffusers takes raw latents

    def channels_last_copy():
        model = copy.deepcopy(ours)
        for module in model.modules():
            if isinstance(module, torch.nn.Conv3d):
                module.to(memory_format=torch.channels_last_3d)
        return lambda: model.decode(z.to(memory_format=torch.channels_last_3d))

    def padded(chunk: int):
        model = pad_out_channels(ours)
        return lambda: model.decode(z, temporal_chunk=chunk)

    makers = {
        "ours": lambda: lambda: ours.decode(z),
        "ours_chunk2": lambda: lambda: ours.decode(z, temporal_chunk=2),
        "ours_chunk4": lambda: lambda: ours.decode(z, temporal_chunk=4),
        "ours_pad128": lambda: padded(1),
        "ours_pad128_chunk4": lambda: padded(4),
        "ours_channels_last_3d": channels_last_copy,
        "diffusers": lambda: lambda: theirs.decode(raw, return_dict=False)[0],
    }
    out = {"latents": list(z.shape), "frames": 1 + 4 * (VIDEO_LATENTS[0] - 1)}
    with torch.no_grad():
        reference = ours.decode(z)
        # cudnn.benchmark (autotuned convolution algorithms) was timed too: no change for either (+-0.3%)
        for name in ["ours", *(v for v in variants if v != "ours")]:
            fn = makers[name]()
            r = measure(fn, 1, iters)
            result = fn()
            r["rel_diff_vs_ours"] = rel_diff(
                result.clamp(-1, 1) if name != "diffusers" else result, reference.clamp(-1, 1)
            )
            r["top_kernels_ms"] = top_kernels(cuda_profile(fn))
            out[name] = r
            print(
                f"  vae decode {name:28s} {r['ms']:9.1f} ms peak {r['peak_gb']:5.1f} GB rel {r['rel_diff_vs_ours']:.2e}",
                flush=True,
            )
            for kernel, ms, count in r["top_kernels_ms"][:6]:
                print(f"    {ms:8.1f} ms {count:5d}x {kernel}")
            del fn, result
            fresh()
        best = min((out[k]["ms"], k) for k in out if k.startswith("ours"))
        out["best_ours"] = best[1]
        if "diffusers" in out:
            out["ratio_best_ours_over_diffusers"] = best[0] / out["diffusers"]["ms"]
    return out


# ----------------------------------------------------------------------------------------------------
# T5
# ----------------------------------------------------------------------------------------------------


def t5_11b(device: torch.device):
    from cosmos_core.small_t5 import SmallT5Config, SmallT5Encoder

    with torch.device(device):
        model = SmallT5Encoder(SmallT5Config(**T5_11B))
    return model.to(torch.bfloat16).eval().requires_grad_(False)


def bench_t5(device: torch.device, iters: int) -> dict:
    model = t5_11b(device)
    params = sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, 32000, (2, 512), device=device)
    mask = torch.ones(2, 512, dtype=torch.long, device=device)
    mask[:, 80:] = 0  # a typical prompt: the rest is padding (encoded anyway, masked out)
    with torch.no_grad():
        r = measure(lambda: model(input_ids=ids, attention_mask=mask), 2, iters)
    r["params_b"] = params / 1e9
    r["tflops"] = 2 * (params - T5_11B["vocab_size"] * T5_11B["d_model"]) * ids.numel() / r["ms"] / 1e9
    print(
        f"  t5-11b encode 2 x 512 tokens {r['ms']:.1f} ms {r['tflops']:.0f} TFLOP/s peak {r['peak_gb']:.1f} GB"
    )
    return r


# ----------------------------------------------------------------------------------------------------
# Full generations
# ----------------------------------------------------------------------------------------------------


def random_t5_encoder(device: torch.device):
    """T5-11B (random) with the embedded model's word tokenizer (tokenizing is not timed work worth
    speaking of; the encoder runs at the full 512 tokens either way). Built once per section."""
    from cosmos_core.models import EMBEDDED_DIR
    from cosmos_core.small_t5 import WordTokenizer
    from cosmos_core.text_encoder import T5TextEncoder

    return T5TextEncoder(t5_11b(device), WordTokenizer(EMBEDDED_DIR / "t5" / "tokenizer.json"))


def random_bundle(task: str, device: torch.device, cuda_graphs: bool, encoder, natten: bool = False):
    """A 2B preset's networks with random weights (no checkpoint can be fetched), accelerated as the
    pipelines load them, around a shared text encoder (random_t5_encoder)."""
    from cosmos_core.acceleration import Acceleration, accelerate
    from cosmos_core.models import ModelBundle
    from cosmos_core.vae import VAE_PRESETS, WanVAE
    from manifests.presets import text2image_preset, video2world_preset

    if task == "text2image":
        preset = text2image_preset("2B")
    else:
        preset = video2world_preset("2B", "720", 16, natten=natten)
    torch.manual_seed(0)
    with torch.device(device):
        dit = CosmosDiT(dit_config(preset.dit))
        vae = WanVAE(VAE_PRESETS[preset.vae])
    dit = dit.to(torch.bfloat16).eval().requires_grad_(False)
    vae = vae.to(torch.bfloat16).eval().requires_grad_(False)
    dit = accelerate(dit, device, Acceleration(compile=True, cuda_graphs=cuda_graphs))
    return ModelBundle(
        preset, dit, vae, encoder, device, torch.bfloat16, {"preset": preset.name, "random": True}
    )


def timed_generation(generate: Callable[[], object]) -> tuple[object, dict]:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    generation = generate()
    torch.cuda.synchronize()
    wall = time.perf_counter() - start
    return generation, {
        "wall_s": round(wall, 3),
        "peak_gb": torch.cuda.max_memory_allocated() / 1e9,
        "timings": generation.sidecar["timings"],
        "dit_evaluations": generation.sidecar["dit_evaluations"],
    }


def bench_generate(device: torch.device, which: list[str], out_dir: Path, natten: bool = False) -> dict:
    from cosmos_core.pipelines import Text2ImagePipeline, Video2WorldPipeline
    from manifests.requests import Text2ImageRequest, Video2WorldRequest

    out = {}
    prompt = "A robot arm picks up a red cube from a wooden table and places it in a blue bin."
    encoder = random_t5_encoder(device)
    if "text2image" in which:
        for graphs in (False, True):
            pipeline = Text2ImagePipeline(random_bundle("text2image", device, graphs, encoder))
            start = time.perf_counter()
            pipeline.generate(
                Text2ImageRequest(prompt=prompt + " warm-up", aspect_ratio="1:1")
            )  # compiles, captures
            warm_up_s = time.perf_counter() - start
            runs = []
            for i in range(
                3
            ):  # a new prompt each time (T5's prompt cache would hide its time; shared encoder)
                request = Text2ImageRequest(prompt=f"{prompt} Take {i}, graphs {graphs}.", aspect_ratio="1:1")
                generation, r = timed_generation(lambda p=pipeline, q=request: p.generate(q))
                start = time.perf_counter()
                media.write_image(str(out_dir / "t2i.png"), generation.frames[0])
                r["write_png_s"] = round(time.perf_counter() - start, 3)
                r["total_with_write_s"] = round(r["wall_s"] + r["write_png_s"], 3)
                runs.append(r)
            key = "2B-text2image-1024" + ("-cuda-graphs" if graphs else "")
            out[key] = {
                "first_call_s": round(warm_up_s, 1),
                "runs": runs,
                "median_total_with_write_s": statistics.median(r["total_with_write_s"] for r in runs),
            }
            print(
                f"  {key}: first call {warm_up_s:.1f} s, then {[r['total_with_write_s'] for r in runs]} s",
                flush=True,
            )
            del pipeline
            fresh()
    if "video2world" in which:
        pipeline = Video2WorldPipeline(random_bundle("video2world", device, False, encoder, natten))
        rng = np.random.default_rng(0)
        frames = rng.integers(0, 256, (1, 704, 1280, 3), dtype=np.uint8)
        start = time.perf_counter()
        pipeline.generate_from_frames(Video2WorldRequest(prompt=prompt, input_path="in.png", steps=2), frames)
        warm_up_s = time.perf_counter() - start
        generation, r = timed_generation(
            lambda: pipeline.generate_from_frames(
                Video2WorldRequest(prompt=prompt + " Again.", input_path="in.png"), frames
            )
        )
        r["warm_up_s"] = round(warm_up_s, 1)
        r["frames"] = list(generation.frames.shape)
        out["2B-video2world-720p-93f" + ("-natten" if natten else "")] = r
        print(
            f"  2B video2world 720p{' natten' if natten else ''}: {r['wall_s']:.1f} s (without the MP4 write), peak {r['peak_gb']:.1f} GB, {r['timings']}",
            flush=True,
        )
        del pipeline
        fresh()
    return out


def bench_write() -> dict:
    """H.264 encode of 93 frames at 1280x704 (smooth moving content, like a generation), as the pipelines write."""
    y, x = np.mgrid[0:704, 0:1280]
    frames = np.stack(
        [
            np.stack([(x + 4 * i) % 256, (y + 2 * i) % 256, ((x + y) // 2 + i) % 256], -1).astype(np.uint8)
            for i in range(93)
        ]
    )
    with tempfile.TemporaryDirectory() as tmp:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            media.write_video(f"{tmp}/v.mp4", frames, 16)
            times.append(time.perf_counter() - start)
    r = {
        "s": statistics.median(times),
        "s_all": [round(t, 3) for t in times],
        "frames": 93,
        "size": "1280x704",
    }
    print(f"  mp4 write 93 frames 1280x704: {r['s']:.2f} s")
    return r


# ----------------------------------------------------------------------------------------------------
# Sparse attention (the reference's -natten DiTs)
# ----------------------------------------------------------------------------------------------------


def natten_twins(size: str, device: torch.device) -> tuple[CosmosDiT, CosmosDiT]:
    """The dense Video2World DiT (random bf16 weights) and its sparse variant sharing those weights."""
    torch.manual_seed(0)
    with torch.device(device):
        dense = CosmosDiT(dit_config(f"{size}-Video2World")).to(torch.bfloat16).eval().requires_grad_(False)
    with torch.device("meta"):
        sparse = CosmosDiT(dit_config(f"{size}-Video2World-natten"))
    sparse.load_state_dict(dense.state_dict(), assign=True)
    return dense, sparse.eval().requires_grad_(False)


def unique_layer_attention(size: str, grid, device: torch.device) -> dict:
    """{pattern name: NeighborhoodAttention or None (dense)} for the distinct patterns of a size."""
    from cosmos_core.sparse_attention import NATTEN_PATTERNS, TokenOrder, layer_attention

    order = TokenOrder.tiled(grid)
    found = {}
    for index, pattern in enumerate(NATTEN_PATTERNS[size]):
        name = (
            "dense"
            if pattern is None
            else f"w{pattern.window[1:]}s{pattern.stride[1:]}d{pattern.dilation[1:]}"
        )
        if name not in found:
            found[name] = {"layers": [], "attend": layer_attention(pattern, grid, order, device)}
        found[name]["layers"].append(index)
    return found


def bench_natten_check(device: torch.device) -> dict:
    out = {"patterns": {}}
    grid = (VIDEO_LATENTS[0], VIDEO_LATENTS[1] // 2, VIDEO_LATENTS[2] // 2)
    L = grid[0] * grid[1] * grid[2]
    gen = torch.Generator(device).manual_seed(1)
    for size in ("2B", "14B"):
        for name, entry in unique_layer_attention(size, grid, device).items():
            attend = entry["attend"]
            if attend is None or name in out["patterns"]:
                continue
            q, k, v = (
                torch.randn(1, 16, L, 128, device=device, generator=gen, dtype=torch.bfloat16)
                for _ in range(3)
            )
            got = attend(q, k, v)
            if attend.gather is not None:  # compare in the layer's own order
                q, k, v, got = (x[:, :, attend.gather] for x in (q, k, v, got))
            rows = torch.randperm(L, device=device, generator=gen)[:2048]
            want = torch.nn.functional.scaled_dot_product_attention(
                q[:, :, rows].float(), k.float(), v.float(), attn_mask=attend.mask_rows(rows)
            )
            out["patterns"][name] = {
                "layers": entry["layers"],
                "kind": "dense groups" if attend.groups else "flex",
                "blocks": getattr(attend, "block_counts", None),
                "rel_diff_vs_masked_sdpa": rel_diff(got[:, :, rows], want),
            }
            print(f"  {name}: {out['patterns'][name]}", flush=True)
    # The whole 2B sparse DiT on 4 latent frames: compiled (FlexAttention) and CUDA-graphed against an
    # eager twin (same weights) whose layers run masked SDPA, the CPU path (its block masks dropped).
    _, sparse = natten_twins("2B", device)
    with torch.device("meta"):
        eager = CosmosDiT(sparse.cfg)
    eager.load_state_dict(sparse.state_dict(), assign=True)
    x, t, text, mask = dit_inputs(sparse.cfg, 4, *VIDEO_LATENTS[1:], device)
    with torch.no_grad():
        compile_blocks(sparse)
        compiled = sparse(x, t, text, condition_mask=mask)
        graphed = CudaGraphDiT(sparse)(x, t, text, condition_mask=mask)
        eager._plan(4, VIDEO_LATENTS[1] // 2, VIDEO_LATENTS[2] // 2, device, None)
        for plan in eager._plans.values():
            for attend in plan.sparse:
                if attend is not None:
                    attend.block_mask = None
        masked = eager(x, t, text, condition_mask=mask)
    out["dit_2B_4_frames"] = {
        "rel_diff_compiled_flex_vs_masked_sdpa": rel_diff(compiled, masked),
        "rel_diff_cuda_graphs_vs_compiled": rel_diff(graphed, compiled),
    }
    print(f"  2B sparse DiT, 4 frames: {out['dit_2B_4_frames']}", flush=True)
    return out


def bench_natten_attention(device: torch.device, iters: int) -> dict:
    grid = (VIDEO_LATENTS[0], VIDEO_LATENTS[1] // 2, VIDEO_LATENTS[2] // 2)
    L = grid[0] * grid[1] * grid[2]
    q, k, v = (torch.randn(1, 16, L, 128, device=device, dtype=torch.bfloat16) for _ in range(3))
    from cosmos_core.attention import attention

    out = {"dense_cudnn": measure(lambda: attention(q, k, v), 2, iters)}
    print(f"  dense: {out['dense_cudnn']['ms']:.1f} ms", flush=True)
    layer_ms = {}
    for size in ("2B", "14B"):
        total = 0.0
        for name, entry in unique_layer_attention(size, grid, device).items():
            if name not in out:
                attend = entry["attend"]
                out[name] = measure(lambda a=attend: a(q, k, v), 2, iters) if attend else out["dense_cudnn"]
                print(f"  {name}: {out[name]['ms']:.1f} ms", flush=True)
            total += out[name]["ms"] * len(entry["layers"])
        layer_ms[size] = {"sparse_all_layers_ms": total}
    out["per_network_at_16_heads"] = layer_ms  # the 2B's heads: a 14B layer has 40
    return out


NATTEN_KERNEL_CANDIDATES_2 = {
    "m128_n128_s2_w8_tma": {"BLOCK_M": 128, "BLOCK_N": 128, "num_stages": 2, "num_warps": 8, "USE_TMA": True},
    "m128_n128_s3_w8_tma": {"BLOCK_M": 128, "BLOCK_N": 128, "num_stages": 3, "num_warps": 8, "USE_TMA": True},
    "m128_n128_s2_w4_tma": {"BLOCK_M": 128, "BLOCK_N": 128, "num_stages": 2, "num_warps": 4, "USE_TMA": True},
    "m128_n64_s3_w8_tma_rows_safe": {
        "BLOCK_M": 128,
        "BLOCK_N": 64,
        "num_stages": 3,
        "num_warps": 8,
        "USE_TMA": True,
        "ROWS_GUARANTEED_SAFE": True,
    },
    "m128_n128_s2_w8_tma_rows_safe": {
        "BLOCK_M": 128,
        "BLOCK_N": 128,
        "num_stages": 2,
        "num_warps": 8,
        "USE_TMA": True,
        "ROWS_GUARANTEED_SAFE": True,
    },
}


def bench_natten_variants(device: torch.device, iters: int) -> dict:
    grid = (VIDEO_LATENTS[0], VIDEO_LATENTS[1] // 2, VIDEO_LATENTS[2] // 2)
    L = grid[0] * grid[1] * grid[2]
    q, k, v = (torch.randn(1, 16, L, 128, device=device, dtype=torch.bfloat16) for _ in range(3))
    out = {"kernels": {}, "forward_ms": {}}
    attend = unique_layer_attention("2B", grid, device)["w(20, 40)s(4, 8)d(1, 1)"]["attend"]
    reference = attend(q, k, v)
    for option, kernel_options in NATTEN_KERNEL_CANDIDATES_2.items():
        torch._dynamo.reset()
        attend.kernel_options = kernel_options
        try:
            r = measure(lambda a=attend: a(q, k, v), 2, iters)
            r["rel_diff"] = rel_diff(attend(q, k, v), reference)
        except Exception as error:
            r = {"error": f"{type(error).__name__}: {str(error)[:200]}"}
        out["kernels"][option] = r
        print(f"  w(20, 40) {option}: {r.get('ms', r.get('error'))}", flush=True)
    q = k = v = reference = None  # free the memory for the forwards
    best = min((r["ms"], name) for name, r in out["kernels"].items() if "ms" in r and r["rel_diff"] < 1e-2)[1]
    variants = {
        "prologue_fusion_rows_safe": (True, {"ROWS_GUARANTEED_SAFE": True}),
        "no_prologue_fusion_rows_safe": (False, {"ROWS_GUARANTEED_SAFE": True}),
        f"no_prologue_fusion_{best}": (False, NATTEN_KERNEL_CANDIDATES_2[best]),
        f"prologue_fusion_{best}": (True, NATTEN_KERNEL_CANDIDATES_2[best]),
    }
    for name, (prologue, kernel_options) in variants.items():
        fresh()
        _, sparse = natten_twins("2B", device)
        plan = sparse._plan(VIDEO_LATENTS[0], *grid[1:], device, None)
        for a in plan.sparse:
            if a is not None:
                a.kernel_options = kernel_options
        for block in sparse.blocks:
            block.compile(dynamic=False, options={"prologue_fusion": prologue})
        x, t, text, mask = dit_inputs(sparse.cfg, *VIDEO_LATENTS, device)
        with torch.no_grad():
            r = measure(lambda m=sparse, a=(x, t, text), c=mask: m(*a, condition_mask=c), 2, iters)
        out["forward_ms"][name] = r["ms"]
        print(f"  2B sparse forward {name}: {r['ms']:.0f} ms", flush=True)
        del sparse
    return out


NATTEN_KERNEL_CANDIDATES = {
    "default": {},
    "rows_safe": {"ROWS_GUARANTEED_SAFE": True},
    "tma": {"USE_TMA": True},
    "rows_safe_tma": {"ROWS_GUARANTEED_SAFE": True, "USE_TMA": True},
    "m128_n128_s2_w8": {"BLOCK_M": 128, "BLOCK_N": 128, "num_stages": 2, "num_warps": 8},
    "m128_n128_s2_w8_tma": {"BLOCK_M": 128, "BLOCK_N": 128, "num_stages": 2, "num_warps": 8, "USE_TMA": True},
    "m128_n64_s4_w8": {"BLOCK_M": 128, "BLOCK_N": 64, "num_stages": 4, "num_warps": 8},
    "m128_n64_s3_w8_prescale": {
        "BLOCK_M": 128,
        "BLOCK_N": 64,
        "num_stages": 3,
        "num_warps": 8,
        "PRESCALE_QK": True,
    },
    "m64_n128_s3_w4": {"BLOCK_M": 64, "BLOCK_N": 128, "num_stages": 3, "num_warps": 4},
}


def bench_natten_tune(device: torch.device, iters: int, out_dir: Path) -> dict:
    grid = (VIDEO_LATENTS[0], VIDEO_LATENTS[1] // 2, VIDEO_LATENTS[2] // 2)
    L = grid[0] * grid[1] * grid[2]
    q, k, v = (torch.randn(1, 16, L, 128, device=device, dtype=torch.bfloat16) for _ in range(3))
    out = {}
    for name, entry in unique_layer_attention("2B", grid, device).items():
        attend = entry["attend"]
        if (
            attend is None
            or attend.groups
            or name not in ("w(20, 40)s(4, 8)d(1, 1)", "w(28, 56)s(4, 8)d(1, 1)")
        ):
            continue
        reference = attend(q, k, v)
        out[name] = {}
        for option, kernel_options in NATTEN_KERNEL_CANDIDATES.items():
            attend.kernel_options = kernel_options
            try:
                r = measure(lambda a=attend: a(q, k, v), 2, iters)
                r["rel_diff"] = rel_diff(attend(q, k, v), reference)
            except Exception as error:  # a setting the GPU cannot hold (shared memory)
                r = {"error": f"{type(error).__name__}: {str(error)[:200]}"}
            out[name][option] = r
            print(f"  {name} {option}: {r.get('ms', r.get('error'))}", flush=True)
    _, sparse = natten_twins("2B", device)
    out["profile_2B_720p_natten_compiled"] = profile_compiled(
        sparse, VIDEO_LATENTS, out_dir / "profile-2B-720p-natten-compiled.txt"
    )
    return out


def bench_natten_dit(
    sizes: list[str], device: torch.device, warmup: int, iters: int, entry: dict, save
) -> None:
    for size in sizes:
        dense, sparse = natten_twins(size, device)
        x, t, text, mask = dit_inputs(dense.cfg, *VIDEO_LATENTS, device)
        big = size == "14B"
        with torch.no_grad():
            reference = dense(x, t, text, condition_mask=mask) if not big else None
            for name, model in (
                (f"{size}_720p_forward_ms", sparse),
                (f"{size}_720p_dense_forward_ms", dense),
            ):
                compile_blocks(model)
                start = time.perf_counter()
                model(x, t, text, condition_mask=mask)  # compiles
                first_s = time.perf_counter() - start
                with ClockSampler(device) as clocks:
                    r = measure(
                        lambda m=model, a=(x, t, text), c=mask: m(*a, condition_mask=c),
                        1 if big else warmup,
                        3 if big else iters,
                    )
                entry[name] = r["ms"]
                entry.setdefault("detail", {})[name] = {
                    **r,
                    "first_call_s": round(first_s, 1),
                    "clocks": clocks.summary(),
                }
                entry[f"{size}_720p_peak_gb"] = max(entry.get(f"{size}_720p_peak_gb", 0.0), r["peak_gb"])
                print(
                    f"  {name}: {r['ms']:.0f} ms (first call {first_s:.0f} s), peak {r['peak_gb']:.1f} GB",
                    flush=True,
                )
                save()
            if reference is not None:  # how far sparse attention moves a random-weight forward (not an error)
                entry["detail"][f"{size}_rel_diff_sparse_vs_dense_output"] = rel_diff(
                    sparse(x, t, text, condition_mask=mask), reference
                )
        del dense, sparse
        fresh()


# ----------------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--sections", default="dit,vae,t5,generate", help=f"comma-separated: {', '.join(SECTIONS)}"
    )
    p.add_argument("--shapes", default="2B-T2I-1024,2B-720p,2B-480p,14B-720p", help="dit section shapes")
    p.add_argument(
        "--variants",
        default="ours,ours_compiled,ours_compiled_cuda_graphs,diffusers,diffusers_best",
        help="dit section variants (CUDA graphs are timed for Text2Image only)",
    )
    p.add_argument(
        "--vae_variants",
        default="ours,ours_chunk2,ours_chunk4,ours_pad128,ours_pad128_chunk4,ours_channels_last_3d,diffusers",
        help="vae section variants",
    )
    p.add_argument("--generations", default="text2image,video2world")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--out", type=Path, required=True, help="results JSON (read and updated)")
    args = p.parse_args()
    sections = args.sections.split(",")
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    out_dir = args.out.parent
    out_dir.mkdir(parents=True, exist_ok=True)

    def save():
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    if sections != ["write"]:
        device = torch.device("cuda", torch.cuda.current_device())
        configure_backends(device)
        results.setdefault("machine", {}).update(gpu=torch.cuda.get_device_name(), torch=torch.__version__)
        try:
            import diffusers

            results["machine"]["diffusers"] = diffusers.__version__
        except ImportError:
            pass
    for section in sections:
        start = time.perf_counter()
        print(f"[{section}]", flush=True)
        try:
            run_section(section, args, results, device if sections != ["write"] else None, out_dir, save)
            fresh()  # the section's models are gone with its frames: give their memory back
        except Exception as error:  # one broken section must not lose the others' numbers
            import traceback

            traceback.print_exc()
            results.setdefault("errors", {})[section] = f"{type(error).__name__}: {error}"
            fresh()
        results.setdefault("section_wall_s", {})[section] = round(time.perf_counter() - start, 1)
        save()


def run_section(section: str, args, results: dict, device, out_dir: Path, save) -> None:
    if section.split("=")[0] == "dit":  # dit=SHAPE+SHAPE: these shapes instead of --shapes
        entry = results.setdefault("dit_forward", {})
        shapes = section.split("=")[1].split("+") if "=" in section else args.shapes.split(",")
        for shape in shapes:
            variants = args.variants.split(",")
            if shape != "2B-T2I-1024":
                variants = [v for v in variants if v != "ours_compiled_cuda_graphs"]
            big = shape.startswith("14B")
            entry[shape] = {}
            bench_dit(
                shape,
                device,
                1 if big else args.warmup,
                3 if big else args.iters,
                variants,
                entry[shape],
                save,
            )
            fresh()
            save()
    elif section == "profile":
        results["profile_2B_720p_compiled"] = profile_forward(device, out_dir)
    elif section == "attention":
        results["sdpa_2B_720p_attention"] = bench_attention(device, args.iters)
    elif section == "vae":
        results["vae_decode_720p_93f"] = bench_vae(device, 3, args.vae_variants.split(","))
    elif section == "t5":
        results["t5_11b_encode"] = bench_t5(device, args.iters)
    elif section == "generate":
        results.setdefault("generate", {}).update(
            bench_generate(device, args.generations.split(","), out_dir)
        )
    elif section == "natten-check":
        results.setdefault("natten", {})["check"] = bench_natten_check(device)
    elif section == "natten-attention":
        results.setdefault("natten", {})["attention_720p"] = bench_natten_attention(device, args.iters)
    elif section.split("=")[0] == "natten-dit":
        sizes = section.split("=")[1].split("+") if "=" in section else ["2B", "14B"]
        bench_natten_dit(sizes, device, args.warmup, args.iters, results.setdefault("natten", {}), save)
    elif section == "natten-tune":
        results.setdefault("natten", {})["tune"] = bench_natten_tune(device, args.iters, out_dir)
    elif section == "natten-variants":
        results.setdefault("natten", {})["variants"] = bench_natten_variants(device, args.iters)
    elif section == "natten-generate":
        generation = bench_generate(device, ["video2world"], out_dir, natten=True)[
            "2B-video2world-720p-93f-natten"
        ]
        natten = results.setdefault("natten", {})
        natten["2B_720p_generation_s"] = generation["wall_s"]
        natten["2B_720p_generation_peak_gb"] = generation["peak_gb"]
        natten.setdefault("detail", {})["2B_720p_generation"] = generation
    elif section == "write":
        import os

        results["mp4_write_720p_93f"] = {**bench_write(), "cpus": os.cpu_count()}
    else:
        raise SystemExit(f"unknown section {section!r}; choose from {', '.join(SECTIONS)}")


if __name__ == "__main__":
    main()
