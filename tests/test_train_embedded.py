"""scripts/train_embedded.py at toy scale on the CPU: every stage writes weights in the shipped layout that
the real loaders and pipelines accept, a resumed run continues exactly, and the evaluation reads them."""

from __future__ import annotations

import dataclasses
import re
import shutil

import pytest
import torch
from safetensors.torch import load_file

from cosmos_core.checkpoints import load_dit, load_vae
from cosmos_core.dit import dit_config
from cosmos_core.text_encoder import T5TextEncoder
from cosmos_core.vae import VAE_PRESETS, WanVAE
from cosmos_core.world.text import embedded_text_encoder
from scripts import evaluate_embedded, train_embedded

TOY = ["--toy", "--workers", "0", "--save_every", "1000"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One toy run of every stage (2 steps each): its workdir and its export."""
    root = tmp_path_factory.mktemp("train")
    work, out = root / "work", root / "export"
    train_embedded.main(
        ["--stage", "all", "--max_steps", "2", "--workdir", str(work), "--out", str(out), *TOY]
    )
    return work, out


def test_every_stage_exports_the_shipped_layout(trained):
    work, out = trained
    assert sorted(p.name for p in out.iterdir()) == [
        "t5",
        "text2image.safetensors",
        "training-log.json",
        "vae.safetensors",
        "video2world.safetensors",
    ]
    sizes = [p.stat().st_size for p in out.rglob("*") if p.is_file()]
    assert max(sizes) <= 16 * 2**20 and sum(sizes) <= 40e6
    # A finished stage keeps its weights only (the optimizer state of an unfinished one may be larger).
    assert all(p.stat().st_size <= 16 * 2**20 for p in work.iterdir() if not p.name.endswith(".optim.pt"))
    assert len(list(work.iterdir())) <= 10  # 4 stages x (weights, optimizer), t5, log

    vae = load_vae(out / "vae.safetensors", VAE_PRESETS["embedded"])
    load_dit(out / "text2image.safetensors", dit_config("embedded-Text2Image"))
    load_dit(out / "video2world.safetensors", dit_config("embedded-Video2World"))
    # The shipped T5 is the frozen random encoder the untrained fallback also builds.
    shipped = T5TextEncoder.from_pretrained(out / "t5")
    prompt = "A red ball falls and bounces on a gray floor in front of a white wall."
    torch.testing.assert_close(shipped.encode(prompt), embedded_text_encoder().encode(prompt))
    # The VAE's latent statistics are folded into its weights: its preset keeps mean 0, std 1.
    assert vae.cfg.latents_mean == (0.0,) * vae.cfg.z_dim and vae.cfg.latents_std == (1.0,) * vae.cfg.z_dim


def test_latent_statistics_fold_into_the_vae_exactly():
    torch.manual_seed(0)
    cfg = dataclasses.replace(VAE_PRESETS["tiny"], latents_mean=(0.0,) * 4, latents_std=(1.0,) * 4)
    raw, folded = WanVAE(cfg).eval(), WanVAE(cfg).eval()
    mean, std = torch.randn(4), torch.rand(4) + 0.5
    folded.load_state_dict(train_embedded.fold_latent_stats(raw.state_dict(), mean, std))
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        mu, latents = raw.encode(video), folded.encode(video)
        torch.testing.assert_close(latents, (mu - mean.view(1, -1, 1, 1, 1)) / std.view(1, -1, 1, 1, 1))
        torch.testing.assert_close(folded.decode(latents), raw.decode(mu), rtol=1e-4, atol=1e-5)


def test_resume_continues_exactly(trained, tmp_path):
    work, _ = trained
    once, twice = tmp_path / "once", tmp_path / "twice"
    for folder in (once, twice):
        folder.mkdir()
        for name in ("t5.safetensors", "vae.pt"):
            shutil.copy(work / name, folder / name)
    args = ["--stage", "v2w", "--out", str(tmp_path / "export"), *TOY]
    train_embedded.main([*args, "--workdir", str(once), "--max_steps", "2"])
    train_embedded.main([*args, "--workdir", str(twice), "--max_steps", "1"])
    train_embedded.main(
        [*args, "--resume", str(twice), "--workdir", str(tmp_path / "third"), "--max_steps", "1"]
    )
    a = torch.load(once / "v2w.pt", weights_only=True)
    b = torch.load(tmp_path / "third" / "v2w.pt", weights_only=True)
    assert a["step"] == b["step"] == 2 and not b["finished"]
    assert (tmp_path / "third" / "v2w.optim.pt").is_file()
    torch.testing.assert_close(a["model"], b["model"])


def test_dits_train_again_on_shipped_weights(trained, tmp_path):
    """--from_shipped: the DiT stages start from an export's VAE and T5, which export again unchanged."""
    _, out = trained
    work, again = tmp_path / "work", tmp_path / "export"
    args = ["--stage", "t2i", "--max_steps", "1", "--workdir", str(work), "--out", str(again)]
    train_embedded.main([*args, "--from_shipped", str(out), *TOY])
    assert torch.load(work / "t2i.pt", weights_only=True)["step"] == 1
    assert not (work / "t5.safetensors").exists()  # the shipped T5 is read, not re-created
    shipped = load_vae(out / "vae.safetensors", VAE_PRESETS["embedded"]).state_dict()
    torch.testing.assert_close(
        load_vae(again / "vae.safetensors", VAE_PRESETS["embedded"]).state_dict(), shipped
    )
    prompt = "A red ball falls and bounces on a gray floor in front of a white wall."
    reexported = train_embedded.text_encoder(again, torch.device("cpu"))  # again/t5 through small_t5
    torch.testing.assert_close(
        reexported.encode(prompt), T5TextEncoder.from_pretrained(out / "t5").encode(prompt)
    )
    with pytest.raises(SystemExit, match="has a VAE or T5 of its own already"):
        train_embedded.main([*args, "--from_shipped", str(out), *TOY])


def test_warm_start_continues_from_the_shipped_dits(trained, tmp_path):
    """--warm_start: a new DiT stage starts from the folder's DiT (not adaLN-Zero) and trains on."""
    _, out = trained
    work = tmp_path / "work"
    args = ["--stage", "t2i", "--workdir", str(work), "--out", str(tmp_path / "export"), *TOY]
    train_embedded.main([*args, "--from_shipped", str(out), "--warm_start", "--max_steps", "0"])
    shipped = load_file(out / "text2image.safetensors")
    torch.testing.assert_close(torch.load(work / "t2i.pt", weights_only=True)["model"], shipped)
    train_embedded.main([*args, "--resume", str(work), "--max_steps", "1"])
    stepped = torch.load(work / "t2i.pt", weights_only=True)
    assert stepped["step"] == 1
    assert any(not torch.equal(stepped["model"][k], v) for k, v in shipped.items())
    with pytest.raises(SystemExit, match="needs --from_shipped"):
        train_embedded.main([*args, "--warm_start"])


def test_a_finished_stage_keeps_its_weights_only_and_trains_no_further(trained, tmp_path):
    work, _ = trained
    shutil.copytree(work, tmp_path / "work")
    args = ["--stage", "t2i", "--workdir", str(tmp_path / "work"), "--out", str(tmp_path / "export")]
    train_embedded.main([*args, *TOY, "--train_minutes", "0.0001"])
    finished = torch.load(tmp_path / "work" / "t2i.pt", weights_only=True)
    assert finished["finished"] and not (tmp_path / "work" / "t2i.optim.pt").exists()
    train_embedded.main([*args, *TOY, "--train_minutes", "0.0001"])
    assert torch.load(tmp_path / "work" / "t2i.pt", weights_only=True)["step"] == finished["step"]


def test_the_evaluation_runs_the_real_pipelines_on_the_export(trained, capsys, monkeypatch):
    _, out = trained
    monkeypatch.setenv("COSMOS_EMBEDDED_DIR", str(out))  # what --weights sets
    evaluate_embedded.main(["--limit", "1", "--steps", "1", "--device", "cpu"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.fullmatch(
        r"color_accuracy=\d\.\d\d count_accuracy=\d\.\d\d motion_accuracy=\d\.\d\d first_frame_psnr=-?\d+\.\d",
        last,
    ), last


class OracleDiT(torch.nn.Module):
    """The ideal network for data that is the single latent x0: velocity = (x_t - x0) / t."""

    def __init__(self, x0: torch.Tensor, video2world: bool) -> None:
        super().__init__()
        self.x0 = x0
        self.cfg = dit_config("embedded-Video2World" if video2world else "embedded-Text2Image")
        self.unused = torch.nn.Parameter(torch.zeros(1))  # the Denoiser reads the dtype from a parameter

    def forward(self, x, timesteps, text_emb, condition_mask=None, **_):
        t = timesteps[:, None, :, None, None]
        return (x - self.x0) / t


@pytest.mark.parametrize("video2world", [False, True])
def test_the_training_target_is_what_the_sampler_integrates(video2world):
    """A network with zero training loss (the oracle) makes the real sampler return the data exactly."""
    from cosmos_core.denoiser import Denoiser, FrameCondition
    from cosmos_core.sampler import initial_noise, karras_sigmas, sample

    T = 5 if video2world else 1
    x0 = torch.randn(1, 16, T, 12, 20)
    oracle = OracleDiT(x0, video2world)
    text = torch.randn(3, 512, 64)
    pool = train_embedded.LatentPool(x0.expand(4, -1, -1, -1, -1), torch.zeros(4, dtype=torch.long), text)
    loss = train_embedded.dit_loss(oracle, pool, torch.arange(4), torch.Generator().manual_seed(0))
    assert loss.item() < 1e-8

    condition = FrameCondition(x0, 1) if video2world else None
    denoiser = Denoiser(oracle, text[:1], text[1:2], 7.0, condition)
    result = sample(denoiser, initial_noise(tuple(x0.shape), 0), karras_sigmas(35))
    torch.testing.assert_close(result, x0, rtol=1e-4, atol=1e-4)
