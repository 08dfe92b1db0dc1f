"""Loading errors: one CheckpointError naming the path, what was expected and the key differences."""

from __future__ import annotations

import pytest
import torch

from cosmos_core.checkpoints import CheckpointError, load_dit, save_official_dit
from cosmos_core.dit import CosmosDiT, dit_config


@pytest.fixture
def official_t2i(tmp_path):
    """A tiny Text2Image DiT written in the official layout (net.-prefixed .pt, with non-weight extras)."""
    model = CosmosDiT(dit_config("tiny-Text2Image"))
    path = tmp_path / "model.pt"
    save_official_dit(model, path)
    state = torch.load(path, weights_only=True)
    # What real training checkpoints carry besides weights: counters, RoPE buffers, TE metadata, EMA copy.
    state["net.accum_iteration"] = torch.tensor(100)
    state["net.pos_embedder.seq"] = torch.arange(128.0)
    state["net.blocks.0.self_attn.q_norm._extra_state"] = torch.zeros(0)
    state.update({"net_ema." + k: v + 1 for k, v in model.state_dict().items()})
    torch.save(state, path)
    return model, path


def test_official_checkpoint_loads_strictly_with_ema_choice(official_t2i):
    model, path = official_t2i
    cfg = dit_config("tiny-Text2Image")
    loaded = load_dit(path, cfg)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    ema = load_dit(path, cfg, ema=True)
    k = "blocks.0.mlp.layer1.weight"
    assert torch.equal(ema.state_dict()[k], model.state_dict()[k] + 1)


def test_missing_file(tmp_path):
    path = tmp_path / "checkpoints/nvidia/Cosmos-Predict2-2B-Video2World/model-720p-16fps.pt"
    with pytest.raises(CheckpointError) as error:
        load_dit(path, dit_config("tiny-Video2World"))
    message = str(error.value)
    assert (
        "checkpoint not found" in message and str(path) in message and "expected tiny-Video2World" in message
    )


def test_truncated_file(official_t2i, tmp_path):
    _, path = official_t2i
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt could not be read .* truncated, corrupt"):
        load_dit(truncated, dit_config("tiny-Text2Image"))


def test_checkpoint_of_another_size(official_t2i):
    _, path = official_t2i
    bigger = dit_config("tiny-Text2Image", model_channels=96, num_heads=6)
    with pytest.raises(CheckpointError) as error:
        load_dit(path, bigger)
    message = str(error.value)
    assert str(path) in message and "does not match Text2Image DiT (96 channels" in message
    assert "looks like a 64-channel Text2Image DiT (64 channels, 2 blocks)" in message
    assert "shape mismatches" in message and "blocks.0.mlp.layer1.weight (256, 64) != (384, 96)" in message
    assert "(39 in all)" in message  # long listings are cut, with the count


def test_checkpoint_of_another_type(official_t2i):
    _, path = official_t2i
    with pytest.raises(CheckpointError) as error:
        load_dit(path, dit_config("tiny-Video2World"))
    message = str(error.value)
    assert "does not match tiny-Video2World" in message and "Text2Image DiT" in message
    assert "x_embedder.proj.1.weight (64, 68) != (64, 72)" in message


def test_missing_and_unexpected_keys(tmp_path):
    model = CosmosDiT(dit_config("tiny-Text2Image"))
    state = {"net." + k: v for k, v in model.state_dict().items() if not k.startswith("blocks.1.")}
    state["net.blocks.2.mlp.layer1.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as error:
        load_dit(path, dit_config("tiny-Text2Image"))
    message = str(error.value)
    assert "missing keys: blocks.1.adaln_modulation_cross_attn.1.weight" in message
    assert "unexpected keys: blocks.2.mlp.layer1.weight" in message


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    torch.save({"step": 3, "lr": "high"}, path)
    with pytest.raises(CheckpointError, match="does not hold a flat dict of tensors"):
        load_dit(path, dit_config("tiny-Text2Image"))


def test_post_trained_safetensors_without_prefix(tmp_path):
    from safetensors.torch import save_file

    model = CosmosDiT(dit_config("tiny-Video2World"))
    path = tmp_path / "post_trained.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    loaded = load_dit(path, dit_config("tiny-Video2World"))
    assert torch.equal(loaded.x_embedder.proj[1].weight, model.x_embedder.proj[1].weight)


def test_loaded_model_is_not_on_meta_and_in_requested_dtype(official_t2i):
    _, path = official_t2i
    model = load_dit(path, dit_config("tiny-Text2Image"), dtype=torch.bfloat16)
    assert all(p.device.type == "cpu" and p.dtype == torch.bfloat16 for p in model.parameters())
    assert not any(p.requires_grad for p in model.parameters())
