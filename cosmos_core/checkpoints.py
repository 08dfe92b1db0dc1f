"""Checkpoint loading, strict and in one place.

Formats:
- the official layout: `checkpoints/nvidia/Cosmos-Predict2-2B-Video2World/model-720p-16fps.pt` (DiT keys
  prefixed `net.` or `net_ema.`), `.../tokenizer/tokenizer.pth` (Wan2.1 VAE keys), `google-t5/t5-11b/`;
  pickles are read with `torch.load(weights_only=True)` only;
- diffusers-format folders as Hugging Face hosts them (`transformer/`, `vae/`: config.json + safetensors);
- any DiT file (`--dit_path`, .pt or .safetensors) for post-trained weights.

Networks are built on the meta device and the loaded tensors assigned to them, so a 14B model is never
allocated twice. Every failure is one `CheckpointError` naming the path, what was expected and the
missing/unexpected keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from cosmos_core.dit import DIT_PRESETS, CosmosDiT, DiTConfig
from cosmos_core.vae import VAE_PRESETS, VAEConfig, WanVAE, vae_key_from_diffusers


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or holds other weights than expected."""


# ----------------------------------------------------------------------------------------------------
# Reading files
# ----------------------------------------------------------------------------------------------------


def read_state_dict(path: str | Path, expected: str) -> dict[str, torch.Tensor]:
    """Tensors of a .pt/.pth (weights_only pickle, memory-mapped) or .safetensors file, on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path} (expected {expected})")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # zip, pickle and safetensors errors all mean: not a readable checkpoint
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(error).__name__}: {error}); "
            f"the file is truncated, corrupt or not a checkpoint (expected {expected}); download it again"
        ) from error
    # Training checkpoints sometimes wrap the weights one level down.
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and set(state) == {wrapper} and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} does not hold a flat dict of tensors (expected {expected})")
    return state


def read_diffusers_folder(folder: Path, expected: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """config.json and the (possibly sharded) safetensors weights of a diffusers model folder."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(
            f"{folder} is not a diffusers model folder: no config.json (expected {expected})"
        )
    config = json.loads(config_path.read_text())
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        shards = ["diffusion_pytorch_model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(read_state_dict(folder / shard, expected))
    return config, state


# ----------------------------------------------------------------------------------------------------
# Strict assignment onto a meta-device network
# ----------------------------------------------------------------------------------------------------


def build_on_meta(factory: Callable[[], nn.Module]) -> nn.Module:
    with torch.device("meta"):
        return factory()


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def assign_strict(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    path: Path,
    expected: str,
    found: str | None = None,
) -> None:
    """Assign `state` to `model` (built on meta); any key or shape difference is one CheckpointError."""
    wanted = model.state_dict()
    missing = sorted(set(wanted) - set(state))
    unexpected = sorted(set(state) - set(wanted))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(wanted[k].shape)}"
        for k in set(wanted) & set(state)
        if state[k].shape != wanted[k].shape
    )
    if missing or unexpected or mismatched:
        parts = [f"checkpoint {path} does not match {expected}"]
        if found:
            parts.append(f"it looks like {found}")
        if missing:
            parts.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listing(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches (checkpoint != expected): {_listing(mismatched)}")
        raise CheckpointError("; ".join(parts))
    model.load_state_dict(state, strict=True, assign=True)


def _finish(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------------------
# DiT
# ----------------------------------------------------------------------------------------------------

# Keys in official checkpoints that are not weights of the network (training counters, RoPE buffers,
# Transformer Engine metadata).
_DIT_NON_WEIGHTS = re.compile(r"^(accum_.*|pos_embedder\..*|.*\._extra_state|logvar\..*)$")

# diffusers CosmosTransformer3DModel names -> official names, applied in order to each key.
_DIT_DIFFUSERS_RENAMES: list[tuple[str, str]] = [
    (r"^patch_embed\.proj\.", "x_embedder.proj.1."),
    (r"^time_embed\.t_embedder\.", "t_embedder.1."),
    (r"^time_embed\.norm\.", "t_embedding_norm."),
    (r"^norm_out\.linear_1\.", "final_layer.adaln_modulation.1."),
    (r"^norm_out\.linear_2\.", "final_layer.adaln_modulation.2."),
    (r"^proj_out\.", "final_layer.linear."),
    (r"^transformer_blocks\.", "blocks."),
    (r"\.norm1\.linear_(\d)\.", r".adaln_modulation_self_attn.\1."),
    (r"\.norm2\.linear_(\d)\.", r".adaln_modulation_cross_attn.\1."),
    (r"\.norm3\.linear_(\d)\.", r".adaln_modulation_mlp.\1."),
    (r"\.attn1\.", ".self_attn."),
    (r"\.attn2\.", ".cross_attn."),
    (r"\.to_q\.", ".q_proj."),
    (r"\.to_k\.", ".k_proj."),
    (r"\.to_v\.", ".v_proj."),
    (r"\.to_out\.0\.", ".output_proj."),
    (r"\.norm_q\.", ".q_norm."),
    (r"\.norm_k\.", ".k_norm."),
    (r"\.ff\.net\.0\.proj\.", ".mlp.layer1."),
    (r"\.ff\.net\.2\.", ".mlp.layer2."),
]


def dit_key_from_diffusers(key: str) -> str:
    for pattern, replacement in _DIT_DIFFUSERS_RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def dit_config_from_diffusers(config: dict) -> DiTConfig:
    """Our DiTConfig from a diffusers `transformer/config.json`."""
    in_channels = config["in_channels"]
    condition_mask = in_channels == config["out_channels"] + 1
    if config.get("extra_pos_embed_type") or not config.get("concat_padding_mask", True):
        raise CheckpointError(
            "the diffusers transformer config is not a Cosmos-Predict2 DiT (Predict1 layout)"
        )
    rope_t, rope_h, rope_w = config["rope_scale"]
    return DiTConfig(
        model_channels=config["num_attention_heads"] * config["attention_head_dim"],
        num_blocks=config["num_layers"],
        num_heads=config["num_attention_heads"],
        latent_channels=config["out_channels"],
        crossattn_dim=config["text_embed_dim"],
        adaln_lora_dim=config["adaln_lora_dim"],
        mlp_ratio=config["mlp_ratio"],
        patch_temporal=config["patch_size"][0],
        patch_spatial=config["patch_size"][1],
        condition_mask=condition_mask,
        rope_extrapolation=(rope_t, rope_h, rope_w),
        max_latent_size=tuple(config["max_size"]),
    )


def describe_dit_state(state: dict[str, torch.Tensor]) -> str | None:
    """What a DiT state dict holds, for error messages: size, task and block count."""
    embed = state.get("x_embedder.proj.1.weight")
    if embed is None:
        return None
    channels, in_features = embed.shape
    blocks = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("blocks.")), default=-1)
    task = {68: "Text2Image", 72: "Video2World"}.get(in_features, f"{in_features}-input-feature")
    size = {1280: "0.6B", 2048: "2B", 5120: "14B"}.get(channels, f"{channels}-channel")
    return f"a {size} {task} DiT ({channels} channels, {blocks} blocks)"


def describe_dit_config(cfg: DiTConfig) -> str:
    task = "Video2World" if cfg.condition_mask else "Text2Image"
    names = [n for n, c in DIT_PRESETS.items() if c == cfg]
    label = names[0] if names else f"{task} DiT"
    return f"{label} ({cfg.model_channels} channels, {cfg.num_blocks} blocks, {task})"


def official_dit_state(raw: dict[str, torch.Tensor], path: Path, ema: bool) -> dict[str, torch.Tensor]:
    """Strip the `net.`/`net_ema.` prefix (unprefixed files, e.g. exported post-trained weights, pass as is)."""
    prefix = "net_ema." if ema else "net."
    if any(k.startswith(prefix) for k in raw):
        state = {k.removeprefix(prefix): v for k, v in raw.items() if k.startswith(prefix)}
    elif any(k.startswith(("net.", "net_ema.")) for k in raw):
        raise CheckpointError(
            f"checkpoint {path} has no {prefix!r} weights (asked for {'EMA' if ema else 'regular'})"
        )
    else:
        state = dict(raw)
    return {k: v for k, v in state.items() if not _DIT_NON_WEIGHTS.match(k)}


def load_dit(
    source: str | Path,
    cfg: DiTConfig | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    ema: bool = False,
) -> CosmosDiT:
    """A DiT from an official .pt, any .pt/.safetensors file, or a diffusers folder (or its repo root).

    For files, `cfg` says what to expect; a diffusers folder carries its config (checked against `cfg`
    when given).
    """
    path = Path(source)
    if path.is_dir():
        folder = path / "transformer" if (path / "transformer").is_dir() else path
        expected = describe_dit_config(cfg) if cfg else "a Cosmos-Predict2 DiT"
        config, raw = read_diffusers_folder(folder, expected)
        found_cfg = dit_config_from_diffusers(config)
        if cfg is not None and found_cfg != cfg:
            raise CheckpointError(
                f"checkpoint {folder} holds {describe_dit_config(found_cfg)}, expected {describe_dit_config(cfg)}"
            )
        cfg = found_cfg
        state = {dit_key_from_diffusers(k): v for k, v in raw.items()}
    else:
        if cfg is None:
            raise ValueError("load_dit needs the expected DiTConfig for a checkpoint file")
        expected = describe_dit_config(cfg)
        state = official_dit_state(read_state_dict(path, expected), path, ema)
    model = build_on_meta(lambda: CosmosDiT(cfg))
    assign_strict(model, state, path, describe_dit_config(cfg), describe_dit_state(state))
    return _finish(model, torch.device(device), dtype)


def save_official_dit(model: CosmosDiT, path: str | Path, prefix: str = "net.") -> None:
    """Write a DiT in the official layout (`net.`-prefixed keys in a .pt): tests and exports use it."""
    torch.save({prefix + k: v.detach().cpu() for k, v in model.state_dict().items()}, path)


# ----------------------------------------------------------------------------------------------------
# VAE
# ----------------------------------------------------------------------------------------------------


def vae_config_from_diffusers(config: dict) -> VAEConfig:
    return VAEConfig(
        dim=config["base_dim"],
        z_dim=config["z_dim"],
        dim_mult=tuple(config["dim_mult"]),
        num_res_blocks=config["num_res_blocks"],
        temporal_downsample=tuple(config["temperal_downsample"]),
        latents_mean=tuple(config["latents_mean"]),
        latents_std=tuple(config["latents_std"]),
    )


def load_vae(
    source: str | Path,
    cfg: VAEConfig | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> WanVAE:
    """The Wan2.1 VAE from an official `tokenizer.pth` or a diffusers `vae/` folder (or its repo root)."""
    path = Path(source)
    expected = "the Wan2.1 VAE (Cosmos-Predict2 tokenizer)"
    if path.is_dir():
        folder = path / "vae" if (path / "vae").is_dir() else path
        config, raw = read_diffusers_folder(folder, expected)
        if config.get("_class_name", "AutoencoderKLWan") != "AutoencoderKLWan":
            raise CheckpointError(
                f"{folder} holds a {config['_class_name']}, expected {expected} (AutoencoderKLWan)"
            )
        cfg = vae_config_from_diffusers(config)
        state = {}
        for key, value in raw.items():
            mapped = vae_key_from_diffusers(key, cfg.num_res_blocks)
            if mapped is not None:
                state[mapped] = value
    else:
        cfg = cfg or VAE_PRESETS["wan2.1"]
        state = read_state_dict(path, expected)
    model = build_on_meta(lambda: WanVAE(cfg))
    assign_strict(model, state, path, expected)
    model.reset_latent_stats()  # non-persistent buffers were on meta
    return _finish(model, torch.device(device), dtype)
