"""A small Text2World generation end to end on random-initialised tiny presets (the main job until the
batch pipeline and trained small weights land).

    python -m cosmos_core.quickstart [--prompt ...] [--seed 0] [--save_path output/quickstart.mp4]

Text2Image (guidance 4, 35 steps) -> first frame -> Video2World (guidance 7, 35 steps, 1 conditioning
frame) -> MP4. Same code paths as the real models (T5 wrapper, DiT, official sampler, Wan VAE), tiny
sizes, random weights: the video is noise, which this command says.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from cosmos_core.denoiser import Denoiser, FrameCondition
from cosmos_core.device import compute_dtype, pick_device
from cosmos_core.dit import CosmosDiT, dit_config
from cosmos_core.sampler import initial_noise, karras_sigmas, sample
from cosmos_core.text_encoder import T5TextEncoder, word_level_tokenizer
from cosmos_core.vae import VAE_PRESETS, WanVAE, latent_frames

NEGATIVE_PROMPT = "blurry jittery static distorted"


def tiny_text_encoder(prompts: list[str]) -> T5TextEncoder:
    from transformers import T5Config, T5EncoderModel

    words = " ".join(prompts).lower().split()
    tokenizer = word_level_tokenizer(words)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
    return T5TextEncoder(T5EncoderModel(config), tokenizer)


def write_mp4(video: torch.Tensor, path: Path, fps: int) -> None:
    """video (3, T, H, W) in [-1, 1] -> H.264 yuv420p MP4."""
    import imageio_ffmpeg

    frames = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()
    _, height, width, _ = frames.shape
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(
        str(path), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p", macro_block_size=1
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompt", default="A red ball falls and bounces on a gray floor.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="square frame size in pixels (multiple of 16)")
    parser.add_argument("--frames", type=int, default=17, help="1 + 4k frames")
    parser.add_argument("--save_path", type=Path, default=Path("output/quickstart.mp4"))
    args = parser.parse_args()

    print("quickstart: random-initialised tiny presets (no trained weights yet): the video is noise")
    start = time.perf_counter()
    device = pick_device()
    dtype = compute_dtype(device)
    torch.manual_seed(args.seed)
    vae = WanVAE(VAE_PRESETS["tiny"]).to(device, dtype).eval()
    z = vae.cfg.z_dim
    t2i = CosmosDiT(dit_config("tiny-Text2Image", latent_channels=z)).to(device, dtype).eval()
    v2w = CosmosDiT(dit_config("tiny-Video2World", latent_channels=z)).to(device, dtype).eval()
    text = tiny_text_encoder([args.prompt, NEGATIVE_PROMPT])
    prompt_emb, negative_emb = text.encode([args.prompt, NEGATIVE_PROMPT]).split(1)

    latent_hw = args.size // vae.spatial_compression
    sigmas = karras_sigmas(35)
    # 1. Text2Image: the first frame
    noise = initial_noise((1, z, 1, latent_hw, latent_hw), args.seed).to(device)
    image_latents = sample(Denoiser(t2i, prompt_emb, torch.zeros_like(prompt_emb), 4.0), noise, sigmas)
    image = vae.decode(image_latents.to(dtype)).float().clamp(-1, 1)  # (1, 3, 1, H, W)
    # 2. Video2World from that frame: its latent conditions the first latent frame
    condition = FrameCondition(vae.encode(image.to(dtype)).float(), num_frames=1)
    noise = initial_noise((1, z, latent_frames(args.frames), latent_hw, latent_hw), args.seed).to(device)
    video_latents = sample(Denoiser(v2w, prompt_emb, negative_emb, 7.0, condition), noise, sigmas)
    video = vae.decode(video_latents.to(dtype)).float()[0]
    write_mp4(video, args.save_path, fps=16)
    print(
        f"quickstart: wrote {args.save_path} ({video.shape[1]} frames, {args.size}x{args.size}, 16 fps) "
        f"in {time.perf_counter() - start:.1f} s on {device}"
    )


if __name__ == "__main__":
    main()
