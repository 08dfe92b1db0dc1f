"""A T5 encoder in plain torch for the embedded model's small T5 (no transformers import: ~2 s saved).

The embedded model's text encoder is a 2-layer T5 encoder saved by transformers (config.json,
model.safetensors, tokenizer.json). Importing transformers' T5 takes about 2.2 s on a 2-core CPU, more
than the whole Text2Image generation, so the embedded model loads the same files into this module, with
the same parameter names, and tokenises with the `tokenizers` library directly. The real T5-11B still
loads through transformers (cosmos_core/text_encoder.py). tests/test_text_encoder.py checks both give
the same embeddings.

T5 encoder, v1.0 (what t5-11b and the embedded T5 use):
    h = embed(ids)                                           (B, L, d_model)
    per layer: h += SelfAttention(RMSNorm(h)) + bias;  h += Wo relu(Wi RMSNorm(h))
    out = RMSNorm(h)
Attention logits are q.k unscaled plus a learned bias per (head, relative-position bucket), computed
by the first layer and shared by all; padded keys get the dtype's minimum.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from cosmos_core.checkpoints import CheckpointError


@dataclass(frozen=True)
class SmallT5Config:
    vocab_size: int
    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int
    num_heads: int
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6

    @classmethod
    def from_json(cls, path: Path) -> SmallT5Config:
        raw = json.loads(path.read_text())
        if raw.get("model_type") != "t5" or raw.get("feed_forward_proj", "relu") != "relu":
            raise CheckpointError(
                f"{path}: expected a T5 v1.0 encoder config (model_type t5, feed_forward_proj relu), "
                f"got model_type {raw.get('model_type')!r}, feed_forward_proj {raw.get('feed_forward_proj')!r}"
            )
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


class RMSNorm(nn.Module):
    """T5's layer norm: scale by the root mean square (no mean, no bias), in float32."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        variance = x.float().square().mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(variance + self.eps)).to(self.weight.dtype)


def relative_buckets(relative: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    """Bidirectional buckets of key - query offsets: half the buckets per direction; in each, offsets
    below half exactly, larger ones log-spaced up to max_distance (and clamped there)."""
    half = num_buckets // 2
    bucket = (relative > 0).long() * half
    distance = relative.abs()
    exact = half // 2
    log_spaced = (
        exact
        + (
            torch.log(distance.float().clamp_min(1) / exact) / math.log(max_distance / exact) * (half - exact)
        ).long()
    )
    log_spaced = log_spaced.clamp_max(half - 1)
    return bucket + torch.where(distance < exact, distance, log_spaced)


class SelfAttention(nn.Module):
    def __init__(self, cfg: SmallT5Config, has_bias: bool) -> None:
        super().__init__()
        inner = cfg.num_heads * cfg.d_kv
        self.cfg = cfg
        self.q = nn.Linear(cfg.d_model, inner, bias=False)
        self.k = nn.Linear(cfg.d_model, inner, bias=False)
        self.v = nn.Linear(cfg.d_model, inner, bias=False)
        self.o = nn.Linear(inner, cfg.d_model, bias=False)
        if has_bias:
            self.relative_attention_bias = nn.Embedding(cfg.relative_attention_num_buckets, cfg.num_heads)

    def position_bias(self, length: int) -> Tensor:
        """(1, heads, L, L) learned bias of each key offset from each query."""
        positions = torch.arange(length, device=self.relative_attention_bias.weight.device)
        relative = positions[None, :] - positions[:, None]  # key - query
        buckets = relative_buckets(
            relative, self.cfg.relative_attention_num_buckets, self.cfg.relative_attention_max_distance
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1)[None]

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        b, length, _ = x.shape
        q, k, v = (
            proj(x).view(b, length, -1, self.cfg.d_kv).transpose(1, 2) for proj in (self.q, self.k, self.v)
        )
        scores = q @ k.transpose(-1, -2) + bias  # (B, heads, L, L); T5 does not scale by sqrt(d_kv)
        weights = scores.float().softmax(-1).to(v.dtype)
        return self.o((weights @ v).transpose(1, 2).reshape(b, length, -1))


class Block(nn.Module):
    """One encoder layer with transformers' parameter names (layer.0: attention, layer.1: feed-forward)."""

    def __init__(self, cfg: SmallT5Config, has_bias: bool) -> None:
        super().__init__()
        attention = nn.Module()
        attention.SelfAttention = SelfAttention(cfg, has_bias)
        attention.layer_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)
        feed_forward = nn.Module()
        feed_forward.DenseReluDense = nn.Module()
        feed_forward.DenseReluDense.wi = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        feed_forward.DenseReluDense.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        feed_forward.layer_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)
        self.layer = nn.ModuleList([attention, feed_forward])

    def forward(self, h: Tensor, bias: Tensor) -> Tensor:
        attention, feed_forward = self.layer
        h = h + attention.SelfAttention(attention.layer_norm(h), bias)
        dense = feed_forward.DenseReluDense
        return h + dense.wo(torch.relu(dense.wi(feed_forward.layer_norm(h))))


class SmallT5Encoder(nn.Module):
    """transformers' T5EncoderModel state dict and call: model(input_ids=, attention_mask=) -> (B, L, d)."""

    def __init__(self, cfg: SmallT5Config) -> None:
        super().__init__()
        self.config = cfg
        self.shared = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.encoder = nn.Module()
        self.encoder.block = nn.ModuleList(Block(cfg, has_bias=i == 0) for i in range(cfg.num_layers))
        self.encoder.final_layer_norm = RMSNorm(cfg.d_model, cfg.layer_norm_epsilon)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        h = self.shared(input_ids)
        blocks = self.encoder.block
        bias = blocks[0].layer[0].SelfAttention.position_bias(input_ids.shape[1]).to(h.dtype)
        padding = (1 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        bias = bias + padding  # (B, heads, L, L)
        for block in blocks:
            h = block(h, bias)
        return self.encoder.final_layer_norm(h)


class WordTokenizer:
    """tokenizer.json through the `tokenizers` library, called like transformers' tokenizers are here."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path))
        self.pad_id = self.tokenizer.token_to_id("<pad>")
        if self.pad_id is None:
            raise CheckpointError(f"{path}: the tokenizer has no <pad> token")

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def count_tokens(self, prompt: str) -> int:
        """The prompt's tokens, end-of-sequence included, before any truncation."""
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        return len(self.tokenizer.encode(prompt).ids)

    def __call__(self, prompts: list[str], max_length: int, **_: object) -> dict[str, Tensor]:
        """Max-length padding and truncation (the end-of-sequence token kept), as PyTorch tensors."""
        self.tokenizer.enable_truncation(max_length)
        self.tokenizer.enable_padding(length=max_length, pad_id=self.pad_id, pad_token="<pad>")
        encodings = self.tokenizer.encode_batch(prompts)
        return {
            "input_ids": torch.tensor([e.ids for e in encodings]),
            "attention_mask": torch.tensor([e.attention_mask for e in encodings]),
        }


def load_small_t5(folder: Path) -> tuple[SmallT5Encoder, WordTokenizer]:
    """A transformers-saved T5 encoder folder (config.json, model.safetensors, tokenizer.json), strictly."""
    from safetensors.torch import load_file

    cfg = SmallT5Config.from_json(folder / "config.json")
    model = SmallT5Encoder(cfg)
    state = load_file(folder / "model.safetensors")
    state.setdefault("shared.weight", state.get("encoder.embed_tokens.weight"))  # tied: either may be saved
    state.pop("encoder.embed_tokens.weight", None)
    missing, unexpected = model.load_state_dict(
        {k: v for k, v in state.items() if v is not None}, strict=False
    )
    if missing or unexpected:
        raise CheckpointError(
            f"{folder / 'model.safetensors'}: not the T5 encoder its config.json describes; "
            f"missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}"
        )
    return model.eval().requires_grad_(False), WordTokenizer(folder / "tokenizer.json")
