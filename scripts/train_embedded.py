"""Train the embedded world model from scratch: the VAE, then the Text2Image DiT, then the Video2World DiT.

Data is the procedural world (cosmos_core/world): scenes from seeds below HELD_OUT_SEED, rendered on
the fly by DataLoader workers. The text encoder is the embedded T5, random and frozen like the real one
(cosmos_core/world/text.py). Each stage trains for a planned wall-clock time (`PLANS`); its learning
rate warms up, then follows a cosine over that time, so the schedule fits whatever speed the GPU has.
A call stops cleanly at its own `--minutes` (setup included) and the next call resumes exactly where
it stopped: weights, optimizer, step, elapsed time and random state.

Workdir (everything a later call needs; at most 10 files):
    t5.safetensors                       the frozen text encoder
    vae.pt, vae_decoder.pt, t2i.pt, v2w.pt   weights (fp32), step, time, RNG, plan, latent statistics (VAE)
    vae.optim.pt, ...                    AdamW state, only while the stage is unfinished
    log.json                             losses, throughput, validation numbers per stage
At the end of every call the finished weights are exported in the shipped layout (`--out`, default
cosmos_core/embedded/): vae.safetensors, text2image.safetensors, video2world.safetensors, t5/, and
the workdir's log.json as training-log.json.

What ships was trained with `PLANS` in two calls of a lent H100 (under 10 minutes each; the first
call's workdir came back through $OUT and was carried into the second as runs/embedded; `--minutes`
is the stage's training time plus setup: rendering and encoding the scenes, validation, saves):
    python scripts/train_embedded.py --stage vae --minutes 3.8 --workdir $OUT/embedded
    python scripts/train_embedded.py --stage t2i --minutes 4.7 --workdir $OUT/embedded
    python scripts/train_embedded.py --stage vae_decoder --minutes 3.0 --resume runs/embedded --workdir $OUT/embedded
    python scripts/train_embedded.py --stage v2w --minutes 6.0 --workdir $OUT/embedded
    python scripts/train_embedded.py --stage export --workdir runs/embedded      # here: cosmos_core/embedded/
To train the DiTs again on the shipped VAE and T5 (they fix the latents and the embeddings; no
transformers needed, so a device call carries fewer wheels), start a workdir from them; with
--warm_start the DiTs continue from the shipped ones under a new schedule. The shipped DiTs then had
these (both stages at once on one H100, one call; then Text2Image twice more, alone):
    python scripts/train_embedded.py --stage t2i --from_shipped cosmos_core/embedded --warm_start \
        --batch_size 1024 --train_minutes 6.5 --scenes 120000 --minutes 9.3 --workers 7 --workdir $OUT/t2i
    python scripts/train_embedded.py --stage v2w --from_shipped cosmos_core/embedded --warm_start \
        --batch_size 256 --train_minutes 6.5 --scenes 16000 --minutes 9.3 --workers 8 --workdir $OUT/v2w
    python scripts/train_embedded.py --stage t2i --from_shipped cosmos_core/embedded --warm_start \
        --batch_size 1024 --train_minutes 5.2 --scenes 160000 --minutes 6.7 --workers 14 --workdir $OUT/t2i
    python scripts/train_embedded.py --stage t2i --from_shipped cosmos_core/embedded --warm_start \
        --batch_size 1024 --lr 3e-4 --train_minutes 2.4 --scenes 100000 --minutes 4.0 --workers 15 --workdir $OUT/t2i
The log (training-log.json) keeps every call's records, a {"call": ...} record between them.
A call that runs out of time leaves its stage unfinished; the same command with --resume continues it.
Training objective (matching cosmos_core/denoiser.py and sampler.py): x_t = (1 - t) x0 + t eps, the DiT
predicts eps - x0 at timestep t; Video2World's first 1 (or 2) latent frames are the clean latents with
t = 1e-4 / (1 + 1e-4) and condition mask 1, and carry no loss. Classifier-free guidance: 10% of the
captions are replaced by an unconditional embedding, half zeros (what Text2Image uses for an empty
negative prompt) and half the encoded default negative prompt (what Video2World and Text2World use).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_file, save_model
from torch import nn
from torch.utils.data import DataLoader, Dataset

from cosmos_core.checkpoints import load_vae
from cosmos_core.denoiser import SIGMA_CONDITIONAL, rectified_flow_t
from cosmos_core.device import configure_backends, pick_device
from cosmos_core.dit import CosmosDiT, dit_config
from cosmos_core.models import EMBEDDED_DIR
from cosmos_core.sampler import RHO, SIGMA_MAX, SIGMA_MIN
from cosmos_core.small_t5 import load_small_t5
from cosmos_core.text_encoder import T5TextEncoder
from cosmos_core.vae import VAE_PRESETS, WanVAE
from cosmos_core.world import render, scene_from_seed
from cosmos_core.world.scene import HELD_OUT_SEED, NUM_FRAMES
from cosmos_core.world.text import embedded_text_encoder
from manifests.presets import model_preset
from manifests.requests import DEFAULT_NEGATIVE_PROMPT

# vae_decoder: the VAE's decoder fine-tuned on whole clips with the encoder frozen (the latents, hence the
# DiTs' training data, do not change). The VAE stage trains on 5-frame clips, which is fast and teaches
# the first frame and one 4-frame chunk; decoding the later chunks of a 17-frame clip needs this stage.
STAGES = ("vae", "vae_decoder", "t2i", "v2w")
SEEDS = {"vae": 0, "t2i": 1, "v2w": 2, "vae_decoder": 3}  # each stage's initialisation and noise seed
PRESETS = {"t2i": "embedded-Text2Image", "v2w": "embedded-Video2World"}
P_UNCOND = 0.1  # captions replaced by an unconditional embedding (classifier-free guidance)
P_TWO_CONDITION_FRAMES = 0.25  # Video2World samples conditioned on 2 latent frames (5 video frames)
# VAE: a tiny KL term only keeps the latents bounded. A first run with KL 1e-4 and posterior std 0.14 at
# the start learned the backgrounds (36.8 dB) and blurred the objects away (10.8 dB): the posterior noise
# was as large as the weaker latent channels' signal. Near-deterministic now, and object pixels weigh more.
KL_WEIGHT = 1e-6
# VAE posterior log-variance at initialisation (std 0.01; PyTorch's init gives ~0: std 1, slow to learn).
INITIAL_LOG_VAR = -9.0
# Reconstruction weight of object pixels (saturated ones: the world's backgrounds are gray or pastel).
# Objects cover 1-4% of a frame; weighted they make about half the loss, so the VAE learns them early.
OBJECT_WEIGHT = 25.0
OBJECT_SATURATION = 0.3
MAX_FILE_BYTES = 16 * 2**20
T_CONDITIONAL = float(rectified_flow_t(torch.tensor(SIGMA_CONDITIONAL)))  # the conditioning frames' t


@dataclass(frozen=True)
class StagePlan:
    train_minutes: float  # training-loop time of the whole stage, over all calls (the LR schedule spans it)
    batch_size: int
    lr: float
    warmup_steps: int
    scenes: int  # DiT stages: training scenes, rendered and VAE-encoded once per call
    clip_frames: int = NUM_FRAMES  # VAE stage: frames per training window (1 + 4k)
    val_scenes: int = 64  # held-out scenes for the validation numbers in the log


# Sized for one H100 (see the module docstring); models: VAE 0.83M, DiTs 3.7M parameters.
PLANS = {
    "vae": StagePlan(train_minutes=3.0, batch_size=16, lr=1e-3, warmup_steps=100, scenes=0, clip_frames=5),
    "vae_decoder": StagePlan(train_minutes=2.2, batch_size=8, lr=5e-4, warmup_steps=50, scenes=0),
    "t2i": StagePlan(train_minutes=3.6, batch_size=256, lr=1e-3, warmup_steps=200, scenes=60_000),
    "v2w": StagePlan(train_minutes=4.6, batch_size=128, lr=1e-3, warmup_steps=200, scenes=16_000),
}
# --toy: the same networks, a few tiny steps on a CPU (tests).
TOY_PLANS = {
    "vae": StagePlan(10.0, 1, 1e-3, 2, 0, clip_frames=1, val_scenes=1),
    "vae_decoder": StagePlan(10.0, 1, 1e-3, 2, 0, clip_frames=5, val_scenes=1),
    "t2i": StagePlan(10.0, 2, 1e-3, 2, 4, val_scenes=1),
    "v2w": StagePlan(10.0, 2, 1e-3, 2, 2, val_scenes=1),
}


@dataclass
class Run:
    """One call of this script: where, on what, until when."""

    workdir: Path
    device: torch.device
    plans: dict[str, StagePlan]
    deadline: float  # time.monotonic()
    workers: int
    max_steps: int | None = None
    save_every: float = 60.0

    @property
    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, torch.bfloat16, enabled=self.device.type == "cuda")

    def loader(self, seeds: range, frames: int, batch_size: int, windows: bool = False) -> DataLoader:
        """Batches (uint8 (B, T, H, W, 3) numpy, captions). Numpy batches travel through pipes, not
        /dev/shm, which containers often keep small."""
        return DataLoader(
            SceneClips(seeds, frames, windows),
            batch_size=batch_size,
            num_workers=self.workers,
            collate_fn=collate,
            prefetch_factor=2 if self.workers else None,
        )


# ----------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------


class SceneClips(Dataset):
    """Item i: the clip of the i-th seed (its first `frames` frames), uint8 (T, H, W, 3), and its caption.

    With `windows`, a `frames`-long window starting at frame 0, 4 or 8 (by seed) instead: the VAE sees
    later frames as a clip's first frame too.
    """

    def __init__(self, seeds: range, frames: int, windows: bool = False) -> None:
        self.seeds, self.frames, self.windows = seeds, frames, windows

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> tuple[np.ndarray, str]:
        scene = scene_from_seed(self.seeds[i])
        start = 4 * (self.seeds[i] % 3) if self.windows else 0
        start = min(start, NUM_FRAMES - self.frames)
        return render(scene, start + self.frames)[start:], scene.caption


def collate(items: list[tuple[np.ndarray, str]]) -> tuple[np.ndarray, list[str]]:
    return np.stack([frames for frames, _ in items]), [caption for _, caption in items]


def to_video(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 -> (B, 3, T, H, W) float32 in [-1, 1] on `device`."""
    return torch.from_numpy(frames).to(device).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


# ----------------------------------------------------------------------------------------------------
# Checkpoints and log
# ----------------------------------------------------------------------------------------------------


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    if isinstance(obj, dict) and path.suffix == ".safetensors":
        save_file({k: v.detach().cpu().contiguous() for k, v in obj.items()}, tmp)
    else:
        torch.save(obj, tmp)
    if path.suffix == ".safetensors" and tmp.stat().st_size > MAX_FILE_BYTES:
        print(
            f"warning: {path.name} is {tmp.stat().st_size / 2**20:.1f} MiB, over the 16 MiB a file may take"
        )
    os.replace(tmp, path)


def load_checkpoint(workdir: Path, stage: str) -> dict | None:
    path = workdir / f"{stage}.pt"
    return torch.load(path, map_location="cpu", weights_only=True) if path.is_file() else None


def append_log(workdir: Path, stage: str, record: dict) -> None:
    path = workdir / "log.json"
    log = json.loads(path.read_text()) if path.is_file() else {}
    log.setdefault(stage, []).append(record)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(log, indent=1) + "\n")
    os.replace(tmp, path)


def adopt_shipped(workdir: Path, folder: Path, warm_start: bool = False) -> None:
    """Start a workdir from shipped-layout weights: folder/vae.safetensors (statistics folded in: mean 0,
    std 1) becomes the finished VAE stage and folder/t5/ the text encoder, so the DiT stages can train
    again on the same latents and embeddings. With `warm_start` the shipped DiTs are copied too, as
    <stage>.init.safetensors: a new DiT stage starts from them instead of from adaLN-Zero."""
    if (workdir / "vae.pt").exists() or (workdir / "t5.safetensors").exists():
        raise SystemExit(f"--from_shipped {folder}: {workdir} has a VAE or T5 of its own already")
    vae = load_vae(folder / "vae.safetensors", VAE_PRESETS["embedded"])  # strict; names the file on error
    load_small_t5(folder / "t5")  # checks it before anything is written
    z = vae.cfg.z_dim
    record = {"model": vae.state_dict(), "step": 0, "train_seconds": 0.0, "finished": True}
    save_atomic({**record, "latents_mean": torch.zeros(z), "latents_std": torch.ones(z)}, workdir / "vae.pt")
    shutil.copytree(folder / "t5", workdir / "t5", dirs_exist_ok=True)
    if warm_start:
        for stage, preset in PRESETS.items():
            shipped = folder / f"{model_preset(preset).dit_file}.safetensors"
            if shipped.is_file():
                shutil.copy2(shipped, workdir / f"{stage}.init.safetensors")


def copy_resume(source: Path, workdir: Path) -> None:
    """Start from a previous call's workdir (e.g. carried in), without overwriting newer files here."""
    if not source.is_dir():
        raise SystemExit(f"--resume {source}: no such directory (a previous call's --workdir)")
    if source.resolve() == workdir.resolve():
        return
    for path in source.iterdir():
        if path.is_file() and not (workdir / path.name).exists():
            shutil.copy2(path, workdir / path.name)


# ----------------------------------------------------------------------------------------------------
# Networks
# ----------------------------------------------------------------------------------------------------


def text_encoder(workdir: Path, device: torch.device) -> T5TextEncoder:
    """The frozen T5 of the embedded model: adopted from a shipped folder (workdir/t5/, read without
    transformers), or created once and read back from workdir/t5.safetensors."""
    if (workdir / "t5" / "config.json").is_file():
        model, tokenizer = load_small_t5(workdir / "t5")
        return T5TextEncoder(model.to(device), tokenizer)
    encoder = embedded_text_encoder()
    path = workdir / "t5.safetensors"
    if path.is_file():
        load_model(encoder.model, path, strict=True)
    else:
        save_model(encoder.model, path.with_suffix(".tmp"))  # save_model: T5 ties two weights
        os.replace(path.with_suffix(".tmp"), path)
    encoder.model.to(device)
    return encoder


def fold_latent_stats(state: dict[str, torch.Tensor], mean: torch.Tensor, std: torch.Tensor) -> dict:
    """VAE weights whose latents come out normalised, (mu - mean) / std, with the preset's mean 0, std 1.

    conv1 (-> mu, log_var) is 1x1x1: mu' = (W mu_in + b - mean) / std, log_var' = log_var - 2 log std;
    conv2 (post-quant, 1x1x1) takes z = z' std + mean: W2' = W2 std (input channels), b2' = b2 + W2 mean.
    """
    state = {k: v.clone() for k, v in state.items()}
    z = mean.numel()
    w1, b1 = state["conv1.weight"], state["conv1.bias"]
    w1[:z] /= std.view(-1, 1, 1, 1, 1)
    b1[:z] = (b1[:z] - mean) / std
    b1[z:] -= 2 * std.log()
    w2, b2 = state["conv2.weight"], state["conv2.bias"]
    b2 += w2.flatten(1) @ mean
    w2 *= std.view(1, -1, 1, 1, 1)
    return state


def vae_checkpoint(workdir: Path) -> dict | None:
    """The VAE's latest weights: the decoder fine-tuning's if it started, else the VAE stage's."""
    return load_checkpoint(workdir, "vae_decoder") or load_checkpoint(workdir, "vae")


def trained_vae(workdir: Path, device: torch.device) -> WanVAE:
    """The VAE of the workdir with its latent statistics folded in, as it ships."""
    checkpoint = vae_checkpoint(workdir)
    if checkpoint is None:
        raise SystemExit(f"{workdir}/vae.pt not found: train the VAE first (--stage vae)")
    if not checkpoint["finished"]:
        print("warning: the VAE is not finished; training on its current weights")
    vae = WanVAE(VAE_PRESETS["embedded"])
    vae.load_state_dict(exported_vae_state(checkpoint), strict=True)
    return vae.to(device).eval().requires_grad_(False)


def exported_vae_state(checkpoint: dict) -> dict[str, torch.Tensor]:
    return fold_latent_stats(checkpoint["model"], checkpoint["latents_mean"], checkpoint["latents_std"])


def new_dit(stage: str) -> CosmosDiT:
    """The stage's DiT with adaLN-Zero initialisation: every block starts as the identity, output 0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEEDS[stage])
        dit = CosmosDiT(dit_config(PRESETS[stage]))
    zero = [block.adaln_modulation_self_attn[2] for block in dit.blocks]
    zero += [block.adaln_modulation_cross_attn[2] for block in dit.blocks]
    zero += [block.adaln_modulation_mlp[2] for block in dit.blocks]
    zero += [dit.t_embedder[1].linear_2, dit.final_layer.adaln_modulation[2], dit.final_layer.linear]
    for layer in zero:
        nn.init.zeros_(layer.weight)
    return dit


# ----------------------------------------------------------------------------------------------------
# The training loop, shared by the stages
# ----------------------------------------------------------------------------------------------------


def learning_rate(plan: StagePlan, step: int, progress: float) -> float:
    """Linear warmup over steps, then a cosine to 0 over the planned training time."""
    warmup = min(1.0, (step + 1) / plan.warmup_steps)
    return plan.lr * warmup * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def train(
    run: Run,
    stage: str,
    model: nn.Module,
    checkpoint: dict | None,
    loss_fn: Callable[[int, torch.Generator], torch.Tensor],
    validate: Callable[[], dict],
    samples_per_step: int,
) -> None:
    """Optimise `model` on `loss_fn(step, generator)` until the stage's time is spent or the call ends."""
    plan = run.plans[stage]
    total = plan.train_minutes * 60
    step, seconds = (checkpoint["step"], checkpoint["train_seconds"]) if checkpoint else (0, 0.0)
    generator = torch.Generator(run.device).manual_seed(SEEDS[stage])
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=plan.lr, betas=(0.9, 0.99), weight_decay=0.01, fused=run.device.type == "cuda"
    )
    optim_path = run.workdir / f"{stage}.optim.pt"
    if checkpoint:
        generator.set_state(checkpoint["generator"])
        if optim_path.is_file():
            optimizer.load_state_dict(torch.load(optim_path, map_location=run.device, weights_only=True))
        elif not checkpoint["finished"]:
            print(f"warning: {optim_path.name} missing; resuming {stage} with a fresh optimizer")
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"[{stage}] {n_params / 1e6:.2f}M parameters, step {step}, {seconds / 60:.2f}/{total / 60:.2f} min trained"
    )
    if run.deadline - time.monotonic() < total - seconds:
        print(
            f"[{stage}] this call ends before the stage's planned time: it will stay unfinished (resumable)"
        )

    def checkpoint() -> None:
        """Validate, then save; a finished stage keeps its weights only."""
        extra = validate()
        state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
        finished = seconds >= total
        record = {"model": state, "step": step, "train_seconds": seconds, "finished": finished}
        save_atomic(
            {**record, "generator": generator.get_state(), "plan": asdict(plan), **extra},
            run.workdir / f"{stage}.pt",
        )
        if finished:
            optim_path.unlink(missing_ok=True)
        else:
            save_atomic(optimizer.state_dict(), optim_path)
        numbers = {k: v for k, v in extra.items() if not isinstance(v, torch.Tensor)}
        report(
            run, stage, step=step, train_seconds=round(seconds, 1), finished=finished, saved=True, **numbers
        )

    model.train()
    steps, losses = 0, []
    last_report = last_save = time.monotonic()
    reported = (step, seconds)
    while seconds < total and time.monotonic() < run.deadline and steps != run.max_steps:
        start = time.monotonic()
        lr = learning_rate(plan, step, seconds / total)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with run.autocast:
            loss = loss_fn(step, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.detach())
        step, steps, seconds = step + 1, steps + 1, seconds + time.monotonic() - start
        if time.monotonic() - last_report >= 15 or seconds >= total:
            mean_loss = torch.stack(losses).mean().item()  # synchronises: the rate below is real
            rate = (step - reported[0]) * samples_per_step / max(seconds - reported[1], 1e-9)
            report(
                run,
                stage,
                step=step,
                loss=round(mean_loss, 5),
                lr=lr,
                train_seconds=round(seconds, 1),
                samples_per_s=round(rate, 1),
            )
            losses, last_report, reported = [], time.monotonic(), (step, seconds)
        if time.monotonic() - last_save >= run.save_every:
            checkpoint()
            last_save = time.monotonic()
    checkpoint()


def report(run: Run, stage: str, **record) -> None:
    """One line on stdout and one record in log.json."""
    print(
        f"[{stage}] " + " ".join(f"{k} {v:.2e}" if k == "lr" else f"{k} {v}" for k, v in record.items()),
        flush=True,
    )
    append_log(run.workdir, stage, record)


# ----------------------------------------------------------------------------------------------------
# Stage 1: the VAE
# ----------------------------------------------------------------------------------------------------


def object_weights(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1] -> (B, 1, T, H, W): OBJECT_WEIGHT on saturated (object) pixels, else 1."""
    high, low = video.amax(1, keepdim=True), video.amin(1, keepdim=True)
    saturation = (high - low) / (high + 1.0).clamp_min(1e-3)  # (max - min) / max on the [0, 2] scale
    return 1.0 + (OBJECT_WEIGHT - 1.0) * (saturation > OBJECT_SATURATION).float()


def vae_loss(
    vae: WanVAE, video: torch.Tensor, generator: torch.Generator, train_encoder: bool = True
) -> torch.Tensor:
    """Object-weighted reconstruction (MSE + L1) of a sampled latent, plus KL_WEIGHT x the KL to N(0, 1)."""
    with torch.set_grad_enabled(train_encoder and torch.is_grad_enabled()):
        mu, log_var = vae.conv1(vae.encoder(video)).float().chunk(2, dim=1)
    log_var = log_var.clamp(-30.0, 20.0)
    noise = torch.randn(mu.shape, generator=generator, device=mu.device)
    recon = vae.decoder(vae.conv2(mu + (0.5 * log_var).exp() * noise)).float()
    kl = 0.5 * (mu.square() + log_var.exp() - 1.0 - log_var).mean()
    weights = object_weights(video)
    error = recon - video
    reconstruction = (weights * (error.square() + error.abs())).mean() / weights.mean()
    return reconstruction + KL_WEIGHT * kl


@torch.no_grad()
def vae_validation(run: Run, vae: WanVAE, videos: np.ndarray) -> dict:
    """PSNR of the posterior-mean reconstruction (first frames, all frames, object pixels) and the latent
    statistics."""
    vae.eval()
    mus, psnr_first, psnr_all, object_errors = [], [], [], []
    for first in range(0, len(videos), 8):
        video = to_video(videos[first : first + 8], run.device)
        with run.autocast:
            mu, _ = vae.conv1(vae.encoder(video)).float().chunk(2, dim=1)
            recon = vae.decoder(vae.conv2(mu)).float().clamp(-1, 1)
        error = ((recon - video) / 2).square()  # in [0, 1] units
        psnr_first.append(-10 * torch.log10(error[:, :, 0].mean((1, 2, 3))))
        psnr_all.append(-10 * torch.log10(error.mean((1, 2, 3, 4))))
        object_errors.append(error.mean(1, keepdim=True)[object_weights(video) > 1.0])
        mus.append(mu.transpose(0, 1).flatten(1))  # (z, B*n*h*w)
    vae.train()
    mu = torch.cat(mus, dim=1)
    return {
        "psnr_first_frame": round(torch.cat(psnr_first).mean().item(), 2),
        "psnr": round(torch.cat(psnr_all).mean().item(), 2),
        "psnr_objects": round(-10 * torch.log10(torch.cat(object_errors).mean()).item(), 2),
        "latents_mean": mu.mean(1).cpu(),
        "latents_std": mu.std(1).clamp_min(1e-3).cpu(),
    }


def train_vae(run: Run) -> None:
    plan = run.plans["vae"]
    checkpoint = load_checkpoint(run.workdir, "vae")
    torch.manual_seed(0)
    vae = WanVAE(VAE_PRESETS["embedded"])
    with torch.no_grad():  # posterior std 0.14 to start: noisy enough to regularise, not to blur
        vae.conv1.bias[vae.cfg.z_dim :] = INITIAL_LOG_VAR
    if checkpoint:
        vae.load_state_dict(checkpoint["model"], strict=True)
    vae.to(run.device)
    held_out = range(HELD_OUT_SEED, HELD_OUT_SEED + plan.val_scenes)
    val_videos = next(iter(run.loader(held_out, NUM_FRAMES, plan.val_scenes)))[0]  # (N, T, H, W, 3)
    step = checkpoint["step"] if checkpoint else 0
    # Seeds in order from where the last call stopped: every batch is new, and resuming is exact.
    seeds = range(step * plan.batch_size, HELD_OUT_SEED)
    batches = iter(run.loader(seeds, plan.clip_frames, plan.batch_size, windows=True))

    def loss_fn(step: int, generator: torch.Generator) -> torch.Tensor:
        return vae_loss(vae, to_video(next(batches)[0], run.device), generator)

    train(run, "vae", vae, checkpoint, loss_fn, lambda: vae_validation(run, vae, val_videos), plan.batch_size)


def train_vae_decoder(run: Run) -> None:
    """The VAE stage's weights, the decoder (and post-quant conv2) trained further on whole clips."""
    plan = run.plans["vae_decoder"]
    start = load_checkpoint(run.workdir, "vae")
    if start is None:
        raise SystemExit(f"{run.workdir}/vae.pt not found: train the VAE first (--stage vae)")
    checkpoint = load_checkpoint(run.workdir, "vae_decoder")
    vae = WanVAE(VAE_PRESETS["embedded"])
    vae.load_state_dict((checkpoint or start)["model"], strict=True)
    vae.encoder.requires_grad_(False)
    vae.conv1.requires_grad_(False)
    vae.to(run.device)
    held_out = range(HELD_OUT_SEED, HELD_OUT_SEED + plan.val_scenes)
    val_videos = next(iter(run.loader(held_out, NUM_FRAMES, plan.val_scenes)))[0]
    step = checkpoint["step"] if checkpoint else 0
    seeds = range(step * plan.batch_size, HELD_OUT_SEED)
    batches = iter(run.loader(seeds, plan.clip_frames, plan.batch_size))

    def loss_fn(step: int, generator: torch.Generator) -> torch.Tensor:
        video = to_video(next(batches)[0], run.device)
        return vae_loss(vae, video, generator, train_encoder=False)

    def validate() -> dict:
        # The encoder is frozen: keep the statistics the DiTs' latents were normalised with.
        stats = {k: start[k] for k in ("latents_mean", "latents_std")}
        return {**vae_validation(run, vae, val_videos), **stats}

    train(run, "vae_decoder", vae, checkpoint, loss_fn, validate, plan.batch_size)


# ----------------------------------------------------------------------------------------------------
# Stages 2 and 3: the DiTs
# ----------------------------------------------------------------------------------------------------


@dataclass
class LatentPool:
    """Encoded training scenes, on the device: latents, and per scene its caption's row in `text`."""

    latents: torch.Tensor  # (N, C, T, H, W) float32
    caption: torch.Tensor  # (N,) long
    # (captions + 2, 512, D): each caption's T5 embedding, then zeros, then the default negative prompt's
    text: torch.Tensor

    @property
    def uncond_rows(self) -> tuple[int, int]:
        return len(self.text) - 2, len(self.text) - 1


@torch.no_grad()
def encode_scenes(run: Run, seeds: range, frames: int, vae: WanVAE, encoder: T5TextEncoder) -> LatentPool:
    start = time.monotonic()
    latents, captions = [], []
    for video, caption in run.loader(seeds, frames, 32):
        with run.autocast:
            latents.append(vae.encode(to_video(video, run.device)).float())
        captions += caption
    unique = sorted(set(captions))
    row = {c: i for i, c in enumerate(unique)}
    rows = []
    for i in range(0, len(unique), 256):
        rows.append(encoder.encode(unique[i : i + 256]).float())
    rows += [torch.zeros_like(rows[0][:1]), encoder.encode(DEFAULT_NEGATIVE_PROMPT).float()]
    pool = LatentPool(
        torch.cat(latents), torch.tensor([row[c] for c in captions], device=run.device), torch.cat(rows)
    )
    print(
        f"encoded {len(seeds)} scenes ({frames} frames, {len(unique)} captions) in {time.monotonic() - start:.1f}s; "
        f"latents mean {pool.latents.mean().item():.3f} std {pool.latents.std().item():.3f}",
        flush=True,
    )
    return pool


def sample_t(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Training timesteps: half where the sampler steps (sigma^(1/rho) uniform in [0.002, 80]), half
    logit-normal(0, 1), which stresses the middle noise levels where layout and motion are decided."""
    u = torch.rand(n, generator=generator, device=device)
    lo, hi = SIGMA_MIN ** (1 / RHO), SIGMA_MAX ** (1 / RHO)
    karras = rectified_flow_t((hi + u * (lo - hi)) ** RHO)
    logit_normal = torch.sigmoid(torch.randn(n, generator=generator, device=device))
    pick = torch.rand(n, generator=generator, device=device) < 0.5
    return torch.where(pick, karras, logit_normal)


def dit_loss(
    dit: CosmosDiT,
    pool: LatentPool,
    index: torch.Tensor,
    generator: torch.Generator,
    t: torch.Tensor | None = None,
) -> torch.Tensor:
    """Rectified-flow loss of a batch of pool rows, exactly as cosmos_core/denoiser.py queries the DiT."""
    device = pool.latents.device
    x0 = pool.latents[index]  # (B, C, T, H, W)
    B, _, T, H, W = x0.shape
    text_rows = pool.caption[index]
    zeros_row, negative_row = pool.uncond_rows
    drop = torch.rand(B, generator=generator, device=device) < P_UNCOND
    uncond = torch.where(torch.rand(B, generator=generator, device=device) < 0.5, zeros_row, negative_row)
    text = pool.text[torch.where(drop, uncond, text_rows)]

    t = sample_t(B, generator, device) if t is None else t
    noise = torch.randn(x0.shape, generator=generator, device=device)
    x_t = (1 - t.view(B, 1, 1, 1, 1)) * x0 + t.view(B, 1, 1, 1, 1) * noise
    timesteps = t[:, None].expand(B, T)
    condition_mask = None
    generated = torch.ones(B, T, device=device)
    if dit.cfg.condition_mask:
        two = torch.rand(B, generator=generator, device=device) < P_TWO_CONDITION_FRAMES
        conditioned = torch.arange(T, device=device)[None] < (1 + two.long())[:, None]  # (B, T)
        x_t = torch.where(conditioned[:, None, :, None, None], x0, x_t)
        timesteps = torch.where(conditioned, T_CONDITIONAL, timesteps)
        condition_mask = conditioned[:, None, :, None, None].float().expand(B, 1, T, H, W)
        generated = (~conditioned).float()
    velocity = dit(x_t, timesteps, text, condition_mask=condition_mask).float()
    per_frame = (velocity - (noise - x0)).square().mean(dim=(1, 3, 4))  # (B, T)
    return (per_frame * generated).sum() / generated.sum()


@torch.no_grad()
def dit_validation(run: Run, dit: CosmosDiT, pool: LatentPool) -> dict:
    """Loss on held-out scenes at three fixed noise levels (same noise every time: comparable over steps)."""
    dit.eval()
    out = {}
    for t_value in (0.1, 0.5, 0.9):
        generator = torch.Generator(run.device).manual_seed(0)
        index = torch.arange(len(pool.latents), device=run.device)
        t = torch.full((len(index),), t_value, device=run.device)
        losses = []
        for chunk in index.split(64):
            with run.autocast:
                losses.append(dit_loss(dit, pool, chunk, generator, t[: len(chunk)]).item() * len(chunk))
        out[f"val_loss_t{t_value}"] = round(sum(losses) / len(index), 4)
    dit.train()
    return out


def train_dit(run: Run, stage: str) -> None:
    plan = run.plans[stage]
    vae = trained_vae(run.workdir, run.device)
    encoder = text_encoder(run.workdir, run.device)
    frames = 1 if stage == "t2i" else NUM_FRAMES
    pool = encode_scenes(run, range(plan.scenes), frames, vae, encoder)
    held_out = range(HELD_OUT_SEED, HELD_OUT_SEED + plan.val_scenes)
    val_pool = encode_scenes(run, held_out, frames, vae, encoder)
    del vae, encoder
    checkpoint = load_checkpoint(run.workdir, stage)
    dit = new_dit(stage)
    init = run.workdir / f"{stage}.init.safetensors"
    if checkpoint:
        dit.load_state_dict(checkpoint["model"], strict=True)
    elif init.is_file():
        load_model(dit, init, strict=True)
        print(f"[{stage}] warm start from {init.name}")
    dit.to(run.device)

    def loss_fn(step: int, generator: torch.Generator) -> torch.Tensor:
        index = torch.randint(len(pool.latents), (plan.batch_size,), generator=generator, device=run.device)
        return dit_loss(dit, pool, index, generator)

    def validate() -> dict:
        return dit_validation(run, dit, val_pool)

    train(run, stage, dit, checkpoint, loss_fn, validate, plan.batch_size)


# ----------------------------------------------------------------------------------------------------
# Export in the shipped layout
# ----------------------------------------------------------------------------------------------------


def export(workdir: Path, out: Path) -> None:
    """The workdir's networks as cosmos_core/embedded/ ships them (what cosmos_core.models loads)."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "vae": out / "vae.safetensors",
        "t2i": out / f"{model_preset(PRESETS['t2i']).dit_file}.safetensors",
        "v2w": out / f"{model_preset(PRESETS['v2w']).dit_file}.safetensors",
    }
    for stage, path in files.items():
        checkpoint = vae_checkpoint(workdir) if stage == "vae" else load_checkpoint(workdir, stage)
        if checkpoint is None:
            continue
        state = exported_vae_state(checkpoint) if stage == "vae" else checkpoint["model"]
        save_atomic(state, path)
        status = "" if checkpoint["finished"] else " (stage unfinished)"
        print(f"exported {path} ({path.stat().st_size / 2**20:.2f} MiB, step {checkpoint['step']}){status}")
    if (workdir / "log.json").is_file():
        shutil.copy2(workdir / "log.json", out / "training-log.json")
    if (workdir / "t5" / "config.json").is_file():
        if (workdir / "t5").resolve() != (out / "t5").resolve():
            shutil.copytree(workdir / "t5", out / "t5", dirs_exist_ok=True)
        print(f"exported {out / 't5'}")
    elif (workdir / "t5.safetensors").is_file():
        encoder = text_encoder(workdir, torch.device("cpu"))
        encoder.model.save_pretrained(out / "t5")
        encoder.tokenizer.save_pretrained(out / "t5")
        print(f"exported {out / 't5'}")


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", required=True, choices=[*STAGES, "all", "export"])
    p.add_argument(
        "--minutes", type=float, default=8.5, help="wall-clock budget of this call, setup included"
    )
    p.add_argument(
        "--workdir", type=Path, default=Path("runs/embedded"), help="checkpoints and log (read and written)"
    )
    p.add_argument(
        "--resume", type=Path, help="a previous call's workdir to continue from (copied into --workdir)"
    )
    p.add_argument(
        "--from_shipped",
        type=Path,
        help="a shipped-layout folder (e.g. cosmos_core/embedded) whose VAE and T5 the DiTs train on",
    )
    p.add_argument(
        "--warm_start",
        action="store_true",
        help="with --from_shipped: the DiT stages continue from the folder's DiTs (a new schedule)",
    )
    p.add_argument("--out", type=Path, default=EMBEDDED_DIR, help="where the shipped layout is exported")
    p.add_argument("--device", help="cuda, cpu, ... (default: the GPU if there is one)")
    p.add_argument(
        "--toy", action="store_true", help="tiny batches and data, for a CPU check of the whole run"
    )
    p.add_argument("--batch_size", type=int, help="override the stage plan's batch size")
    p.add_argument("--train_minutes", type=float, help="override the stage plan's total training time")
    p.add_argument("--scenes", type=int, help="override the stage plan's number of training scenes")
    p.add_argument("--lr", type=float, help="override the stage plan's peak learning rate")
    p.add_argument("--max_steps", type=int, help="at most this many steps per stage in this call")
    p.add_argument(
        "--workers", type=int, default=min(14, max((os.cpu_count() or 1) - 2, 0)), help="rendering processes"
    )
    p.add_argument("--save_every", type=float, default=60.0, help="seconds between checkpoints")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    deadline = time.monotonic() + args.minutes * 60 - 20  # leave time for the last save and the export
    if args.stage == "export" and not args.workdir.is_dir():
        raise SystemExit(f"--workdir {args.workdir}: no such directory (the training run's workdir)")
    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.resume:
        copy_resume(args.resume, args.workdir)
    if args.from_shipped:
        adopt_shipped(args.workdir, args.from_shipped, args.warm_start)
    elif args.warm_start:
        raise SystemExit("--warm_start needs --from_shipped (the folder whose DiTs to start from)")
    if args.stage != "export":
        overrides = {
            "batch_size": args.batch_size,
            "train_minutes": args.train_minutes,
            "scenes": args.scenes,
            "lr": args.lr,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        plans = {k: replace(v, **overrides) for k, v in (TOY_PLANS if args.toy else PLANS).items()}
        device = pick_device(args.device)
        configure_backends(device)
        run = Run(args.workdir, device, plans, deadline, args.workers, args.max_steps, args.save_every)
        text_encoder(args.workdir, device)  # created once, with the first stage
        for stage in STAGES if args.stage == "all" else [args.stage]:
            if stage == "vae":
                train_vae(run)
            elif stage == "vae_decoder":
                train_vae_decoder(run)
            else:
                train_dit(run, stage)
    export(args.workdir, args.out)


if __name__ == "__main__":
    main()
