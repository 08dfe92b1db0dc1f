"""Tests for cosmos_core.vae: geometry, causality/chunking invariances, and parity with diffusers."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from cosmos_core.checkpoints import CheckpointError, load_vae
from cosmos_core.vae import (
    VAE_PRESETS,
    CausalCache,
    VAEConfig,
    WanVAE,
    latent_frames,
    pixel_frames,
    vae_key_from_diffusers,
)

TINY = VAE_PRESETS["tiny"]


def _randomise(module: torch.nn.Module, seed: int, std: float = 0.2) -> torch.nn.Module:
    """Overwrite every parameter with N(0, std): default inits zero some weights, which hides bugs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    return module


def _video(t: int, h: int = 32, w: int = 32, batch: int = 1, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, t, h, w, generator=gen) * 2 - 1


@pytest.fixture(scope="module")
def tiny_vae() -> WanVAE:
    return _randomise(WanVAE(TINY), seed=1).eval()


# ----------------------------------------------------------------------------------------------------
# Geometry and config
# ----------------------------------------------------------------------------------------------------


def test_frame_counts() -> None:
    assert [latent_frames(t) for t in (1, 5, 9, 93, 121)] == [1, 2, 3, 24, 31]
    assert [pixel_frames(n) for n in (1, 2, 3, 24, 31)] == [1, 5, 9, 93, 121]


def test_config() -> None:
    real = VAE_PRESETS["wan2.1"]
    assert (real.dim, real.z_dim, real.dim_mult, real.num_res_blocks) == (96, 16, (1, 2, 4, 4), 2)
    assert real.temporal_upsample == (True, True, False)
    assert (real.spatial_compression, real.temporal_compression) == (8, 4)
    assert (TINY.spatial_compression, TINY.temporal_compression) == (8, 4)
    with pytest.raises(ValueError, match="z_dim"):
        dataclasses.replace(TINY, z_dim=16)  # tiny's 4 mean/std values no longer fit


def test_latent_stats_are_buffers_outside_the_state_dict() -> None:
    vae = WanVAE(TINY)
    assert not any("latents_" in k for k in vae.state_dict())
    assert vae.latents_mean.flatten().tolist() == pytest.approx(TINY.latents_mean)
    assert vae.latents_std.shape == (1, TINY.z_dim, 1, 1, 1)


@pytest.mark.parametrize(("frames", "latents"), [(1, 1), (5, 2), (9, 3)])
def test_shapes(tiny_vae: WanVAE, frames: int, latents: int) -> None:
    with torch.no_grad():
        z = tiny_vae.encode(_video(frames, 16, 24, batch=2))
        assert z.shape == (2, TINY.z_dim, latents, 2, 3)
        video = tiny_vae.decode(z)
    assert video.shape == (2, 3, pixel_frames(latents), 16, 24)
    assert tiny_vae.spatial_compression == 8 and tiny_vae.temporal_compression == 4


@pytest.mark.parametrize(
    ("shape", "chunk", "match"),
    [
        ((1, 3, 4, 16, 16), 16, "1 \\+ 4k"),
        ((1, 3, 6, 16, 16), 16, "1 \\+ 4k"),
        ((1, 3, 5, 12, 16), 16, "multiples of 8"),
        ((1, 3, 5, 16, 16), 6, "temporal_chunk"),
        ((1, 3, 5, 16, 16), 0, "temporal_chunk"),
        ((1, 4, 5, 16, 16), 16, "B, 3, T, H, W"),
    ],
)
def test_bad_inputs_raise(tiny_vae: WanVAE, shape: tuple[int, ...], chunk: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny_vae.encode(torch.zeros(shape), temporal_chunk=chunk)


def test_decode_rejects_wrong_channels(tiny_vae: WanVAE) -> None:
    with pytest.raises(ValueError, match="latents"):
        tiny_vae.decode(torch.zeros(1, TINY.z_dim + 1, 2, 2, 2))


# ----------------------------------------------------------------------------------------------------
# Causality and chunking: results must not depend on how the clip is cut
# ----------------------------------------------------------------------------------------------------


def test_chunk_size_does_not_change_latents(tiny_vae: WanVAE) -> None:
    video = _video(13)  # frame 0 + 12: chunk 8 leaves a shorter last chunk of 4
    with torch.no_grad():
        ref = tiny_vae.encode(video, temporal_chunk=4)
        for chunk in (8, 12, 16):
            torch.testing.assert_close(tiny_vae.encode(video, temporal_chunk=chunk), ref)


def test_decode_chunk_size_does_not_change_video(tiny_vae: WanVAE) -> None:
    """Several latent frames per decoder call (fewer, larger convolutions on a GPU) give the video of
    the reference's one-at-a-time decode; chunk 2 of 5 latents leaves a shorter last chunk."""
    z = torch.randn(1, TINY.z_dim, 6, 4, 4, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = tiny_vae.decode(z)
        assert ref.shape[2] == pixel_frames(6)
        for chunk in (2, 3, 5, 8):
            torch.testing.assert_close(tiny_vae.decode(z, temporal_chunk=chunk), ref)
    with pytest.raises(ValueError, match="temporal_chunk"):
        tiny_vae.decode(z, temporal_chunk=0)


def test_whole_clip_equals_chunked(tiny_vae: WanVAE) -> None:
    """cache=None (one call, zero padded) == the chunked / frame-by-frame paths with a CausalCache."""
    video = _video(9, seed=3)
    with torch.no_grad():
        whole = tiny_vae.encoder(video)
        cache = CausalCache()
        chunks = [video[:, :, :1], video[:, :, 1:5], video[:, :, 5:9]]
        chunked = torch.cat([tiny_vae.encoder(c, cache) for c in chunks], dim=2)
        torch.testing.assert_close(whole, chunked)
        assert whole.shape[2] == 3

        z = tiny_vae.conv2(torch.randn(1, TINY.z_dim, 3, 4, 4, generator=torch.Generator().manual_seed(4)))
        whole = tiny_vae.decoder(z)
        cache = CausalCache()
        per_frame = torch.cat([tiny_vae.decoder(z[:, :, i : i + 1], cache) for i in range(3)], dim=2)
        torch.testing.assert_close(whole, per_frame)
        assert whole.shape[2] == 9


def test_causal(tiny_vae: WanVAE) -> None:
    """Later frames never change earlier latents, nor later latents earlier frames."""
    video = _video(9, seed=5)
    with torch.no_grad():
        z = tiny_vae.encode(video)
        torch.testing.assert_close(tiny_vae.encode(video[:, :, :5]), z[:, :, :2])
        out = tiny_vae.decode(z)
        torch.testing.assert_close(tiny_vae.decode(z[:, :, :2]), out[:, :, :5])


def test_bf16_runs_close_to_fp32(tiny_vae: WanVAE) -> None:
    video = _video(5, 16, 16, seed=6)
    half = WanVAE(TINY).eval()
    half.load_state_dict(tiny_vae.state_dict())
    half.to(torch.bfloat16)
    with torch.no_grad():
        z32, z16 = tiny_vae.encode(video), half.encode(video.bfloat16())
        assert z16.dtype == torch.bfloat16
        scale = z32.abs().max()
        assert (z16.float() - z32).abs().max() < 0.1 * scale
        assert half.decode(z16).dtype == torch.bfloat16


# ----------------------------------------------------------------------------------------------------
# Parity with diffusers' AutoencoderKLWan (an independent implementation of the same network)
# ----------------------------------------------------------------------------------------------------


def _diffusers_vae(cfg: VAEConfig):
    diffusers = pytest.importorskip("diffusers")
    return diffusers.AutoencoderKLWan(
        base_dim=cfg.dim,
        z_dim=cfg.z_dim,
        dim_mult=list(cfg.dim_mult),
        num_res_blocks=cfg.num_res_blocks,
        temperal_downsample=list(cfg.temporal_downsample),
        latents_mean=list(cfg.latents_mean),
        latents_std=list(cfg.latents_std),
    )


def _convert(state_dict: dict[str, torch.Tensor], cfg: VAEConfig) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        new = vae_key_from_diffusers(key, cfg.num_res_blocks)
        assert new is not None, f"diffusers key {key} not mapped"
        assert new not in out, f"two diffusers keys map to {new}"
        out[new] = value
    return out


@pytest.mark.parity
@pytest.mark.parametrize("preset", ["tiny", "wan2.1"])
def test_diffusers_keys_map_one_to_one(preset: str) -> None:
    cfg = VAE_PRESETS[preset]
    with torch.device("meta"):  # the real size costs nothing on the meta device
        theirs = _diffusers_vae(cfg).state_dict()
        ours = WanVAE(cfg).state_dict()
    converted = _convert(theirs, cfg)
    assert converted.keys() == ours.keys()
    assert {k: v.shape for k, v in converted.items()} == {k: v.shape for k, v in ours.items()}


def test_key_mapping_examples() -> None:
    examples = {
        "quant_conv.bias": "conv1.bias",
        "encoder.conv_in.weight": "encoder.conv1.weight",
        "encoder.down_blocks.4.conv_shortcut.weight": "encoder.downsamples.4.shortcut.weight",
        "encoder.down_blocks.5.time_conv.weight": "encoder.downsamples.5.time_conv.weight",
        "encoder.mid_block.attentions.0.norm.gamma": "encoder.middle.1.norm.gamma",
        "decoder.mid_block.resnets.1.norm2.gamma": "decoder.middle.2.residual.3.gamma",
        "decoder.up_blocks.1.resnets.2.conv2.bias": "decoder.upsamples.6.residual.6.bias",
        "decoder.up_blocks.2.upsamplers.0.resample.1.weight": "decoder.upsamples.11.resample.1.weight",
        "decoder.norm_out.gamma": "decoder.head.0.gamma",
    }
    assert {k: vae_key_from_diffusers(k, num_res_blocks=2) for k in examples} == examples
    # not part of the Wan2.1 layout (Wan2.2 residual down blocks, garbage)
    for key in ("encoder.down_blocks.0.resnets.0.norm1.gamma", "clip.weight", "encoder"):
        assert vae_key_from_diffusers(key, num_res_blocks=2) is None


def test_official_key_names() -> None:
    """Spot checks of `tokenizer.pth` names and shapes (real size, meta device)."""
    with torch.device("meta"):
        sd = WanVAE(VAE_PRESETS["wan2.1"]).state_dict()
    expected = {
        "encoder.conv1.weight": (96, 3, 3, 3, 3),
        "encoder.downsamples.0.residual.0.gamma": (96, 1, 1, 1),
        "encoder.downsamples.3.shortcut.weight": (192, 96, 1, 1, 1),
        "encoder.downsamples.5.time_conv.weight": (192, 192, 3, 1, 1),
        "encoder.downsamples.8.resample.1.weight": (384, 384, 3, 3),
        "encoder.middle.1.norm.gamma": (384, 1, 1),
        "encoder.middle.1.to_qkv.weight": (1152, 384, 1, 1),
        "encoder.head.2.weight": (32, 384, 3, 3, 3),
        "conv1.weight": (32, 32, 1, 1, 1),
        "conv2.weight": (16, 16, 1, 1, 1),
        "decoder.upsamples.3.time_conv.weight": (768, 384, 3, 1, 1),
        "decoder.upsamples.3.resample.1.weight": (192, 384, 3, 3),
        "decoder.upsamples.4.shortcut.weight": (384, 192, 1, 1, 1),
        "decoder.upsamples.11.resample.1.weight": (96, 192, 3, 3),
        "decoder.upsamples.14.residual.6.weight": (96, 96, 3, 3, 3),
        "decoder.head.2.weight": (3, 96, 3, 3, 3),
    }
    assert {k: tuple(sd[k].shape) for k in expected} == expected
    assert len(sd) == 194
    assert "encoder.downsamples.2.time_conv.weight" not in sd  # first level downsamples space only
    assert "decoder.upsamples.11.time_conv.weight" not in sd  # last upsample: space only


@pytest.fixture(scope="module")
def vae_pair(tmp_path_factory):
    """(diffusers model, our model) with the same random weights, float32, eval mode.

    Ours is loaded through the production loader from the diffusers folder that `save_pretrained` writes.
    """
    torch.manual_seed(0)
    theirs = _randomise(_diffusers_vae(TINY), seed=2).eval()
    repo = tmp_path_factory.mktemp("vae-repo")
    theirs.save_pretrained(repo / "vae")
    ours = load_vae(repo)
    return theirs, ours


@pytest.mark.parity
def test_official_tokenizer_pth_loads_strictly(vae_pair, tmp_path) -> None:
    """The same weights written under the official key names (`tokenizer.pth`) give the same outputs."""
    _, from_diffusers = vae_pair
    path = tmp_path / "tokenizer" / "tokenizer.pth"
    path.parent.mkdir()
    torch.save(from_diffusers.state_dict(), path)
    from_official = load_vae(path, TINY)
    video = _video(5, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(from_official.encode(video), from_diffusers.encode(video), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match=r"does not match the Wan2.1 VAE.*shape mismatches"):
        load_vae(path)  # the real-size preset expects other shapes


def _stats(cfg: VAEConfig) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(cfg.latents_mean).view(1, -1, 1, 1, 1),
        torch.tensor(cfg.latents_std).view(1, -1, 1, 1, 1),
    )


@pytest.mark.parity
def test_encode_matches_diffusers(vae_pair) -> None:
    theirs, ours = vae_pair
    mean, std = _stats(TINY)
    video = _video(9, seed=7)
    with torch.no_grad():
        expected = (theirs.encode(video).latent_dist.mean - mean) / std
        assert expected.shape == (1, TINY.z_dim, 3, 4, 4)
        assert expected.std() > 0.1  # a meaningful signal, not collapsed
        for chunk in (4, 8):
            torch.testing.assert_close(
                ours.encode(video, temporal_chunk=chunk), expected, rtol=1e-4, atol=1e-4
            )


@pytest.mark.parity
def test_decode_matches_diffusers(vae_pair) -> None:
    theirs, ours = vae_pair
    mean, std = _stats(TINY)
    latents = torch.randn(1, TINY.z_dim, 3, 4, 4, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        expected = theirs.decode(latents * std + mean).sample  # diffusers clamps to [-1, 1]
        got = ours.decode(latents)  # we do not
    assert got.shape == expected.shape == (1, 3, 9, 32, 32)
    # The comparison must not be vacuous: most outputs lie inside the clamp range.
    assert (got.abs() < 1).float().mean() > 0.9
    assert got.std() > 0.1
    torch.testing.assert_close(got.clamp(-1, 1), expected, rtol=1e-4, atol=1e-4)
