"""Our DiT against diffusers' CosmosTransformer3DModel, loaded through our loader from a diffusers folder."""

from __future__ import annotations

import pytest
import torch

from cosmos_core.checkpoints import load_dit, save_official_dit
from cosmos_core.dit import CosmosDiT, dit_config, rope_split
from tests.diffusers_compat import install_torchvision_resize


def randomize_(module: torch.nn.Module, seed: int = 1) -> None:
    """Every parameter random (diffusers zero-inits some), so a wiring mistake cannot hide."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim == 1:  # norm weights
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)


def diffusers_transformer(video2world: bool, rope_scale: tuple[float, float, float]):
    from diffusers import CosmosTransformer3DModel

    install_torchvision_resize()
    model = CosmosTransformer3DModel(
        in_channels=16 + int(video2world),
        out_channels=16,
        num_attention_heads=4,
        attention_head_dim=16,
        num_layers=2,
        mlp_ratio=4.0,
        text_embed_dim=32,
        adaln_lora_dim=16,
        max_size=(128, 240, 240),
        patch_size=(1, 2, 2),
        rope_scale=rope_scale,
        concat_padding_mask=True,
        extra_pos_embed_type=None,
    )
    randomize_(model)
    return model.eval()


def inputs(B=2, T=3, H=8, W=12, N=7):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(B, 16, T, H, W, generator=gen)
    t = torch.rand(B, T, generator=gen)  # per-frame timesteps
    text = torch.randn(B, N, 32, generator=gen)
    return x, t, text


@pytest.mark.parity
@pytest.mark.parametrize("video2world", [False, True], ids=["text2image", "video2world"])
def test_dit_matches_diffusers(tmp_path, video2world):
    preset = "tiny-Video2World" if video2world else "tiny-Text2Image"
    cfg = dit_config(preset)
    theirs = diffusers_transformer(video2world, rope_scale=cfg.rope_extrapolation)
    theirs.save_pretrained(tmp_path / "transformer")

    ours = load_dit(tmp_path, cfg)  # through the repo root, as Hugging Face lays it out
    x, t, text = inputs()
    B, _, T, H, W = x.shape
    mask = torch.zeros(B, 1, T, H, W)
    mask[:, :, :1] = 1.0
    with torch.no_grad():
        expected = theirs(
            hidden_states=x,
            timestep=t[:, None, :, None, None],
            encoder_hidden_states=text,
            condition_mask=mask if video2world else None,
            padding_mask=torch.zeros(1, 1, H, W),
            return_dict=False,
        )[0]
        got = ours(x, t, text, condition_mask=mask if video2world else None)
    assert got.shape == x.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parity
def test_official_layout_gives_same_outputs(tmp_path):
    cfg = dit_config("tiny-Video2World")
    theirs = diffusers_transformer(True, cfg.rope_extrapolation)
    theirs.save_pretrained(tmp_path / "transformer")
    from_diffusers = load_dit(tmp_path / "transformer", cfg)

    save_official_dit(from_diffusers, tmp_path / "model-720p-16fps.pt")
    raw = torch.load(tmp_path / "model-720p-16fps.pt", weights_only=True)
    assert all(k.startswith("net.") for k in raw)
    assert "net.x_embedder.proj.1.weight" in raw and "net.blocks.0.self_attn.q_norm.weight" in raw
    from_official = load_dit(tmp_path / "model-720p-16fps.pt", cfg)

    x, t, text = inputs()
    mask = torch.zeros(2, 1, 3, 8, 12)
    mask[:, :, :2] = 1.0
    with torch.no_grad():
        torch.testing.assert_close(
            from_official(x, t, text, condition_mask=mask),
            from_diffusers(x, t, text, condition_mask=mask),
            rtol=0,
            atol=0,
        )


def test_rope_split_matches_reference_head_dims():
    assert rope_split(128) == (44, 42, 42)
    assert rope_split(64) == (24, 20, 20)  # 0.6B


def test_timesteps_are_per_frame():
    """Changing one frame's timestep changes that frame's output most: timesteps are not pooled."""
    model = CosmosDiT(dit_config("tiny-Text2Image")).eval()
    randomize_(model)
    x, t, text = inputs(B=1)
    t2 = t.clone()
    t2[0, 2] = 1.0 - t2[0, 2]
    with torch.no_grad():
        a, b = model(x, t, text), model(x, t2, text)
    assert not torch.allclose(a[:, :, 2], b[:, :, 2])
    # A (B,) timestep is the same as that value on every frame.
    with torch.no_grad():
        torch.testing.assert_close(model(x, t[:, 0], text), model(x, t[:, :1].expand(1, 3), text))
