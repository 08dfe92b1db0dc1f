"""The Cosmos-Predict2 diffusion transformer ("MiniTrainDIT" in the reference).

One class serves Text2Image and Video2World: Video2World adds one input channel, the condition mask.
Module names follow the official checkpoints' keys (after the `net.` prefix), so an official state dict
loads with no renaming; `checkpoints.py` maps the diffusers names onto these.

Shapes: B batch, C latent channels (16), T latent frames, H/W latent height/width, D model channels,
L = T*(H/2)*(W/2) tokens, N text tokens (512), Dt text channels (1024).
Reference: cosmos_predict2/models/text2image_dit.py and video2world_dit.py.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from cosmos_core.attention import attention
from cosmos_core.parallel import ContextParallel, check_context_parallel
from cosmos_core.sparse_attention import (
    NATTEN_PATTERNS,
    NeighborhoodAttention,
    NeighborhoodPattern,
    OrderedTokens,
    TokenOrder,
    layer_attention,
)


@dataclass(frozen=True)
class DiTConfig:
    model_channels: int = 2048
    num_blocks: int = 28
    num_heads: int = 16
    latent_channels: int = 16
    crossattn_dim: int = 1024  # T5-11B encoder width
    adaln_lora_dim: int = 256
    mlp_ratio: float = 4.0
    patch_spatial: int = 2
    patch_temporal: int = 1
    # Video2World concatenates a condition-mask channel to the latents; Text2Image does not.
    condition_mask: bool = False
    # NTK RoPE extrapolation ratios (t, h, w): T2I 1/4/4, V2W 2B 1/3/3, V2W 14B (20/24)/2/2.
    rope_extrapolation: tuple[float, float, float] = (1.0, 4.0, 4.0)
    # Largest input the RoPE table covers, in latent frames/pixels (reference max_frames, max_img_h/w).
    max_latent_size: tuple[int, int, int] = (128, 240, 240)
    # Sparse self-attention, one entry per block (None: dense); the reference's `-natten` DiTs
    # (cosmos_core/sparse_attention.py). None: every block dense.
    neighborhoods: tuple[NeighborhoodPattern | None, ...] | None = None

    def __post_init__(self) -> None:
        if self.neighborhoods is not None and len(self.neighborhoods) != self.num_blocks:
            raise ValueError(
                f"neighborhoods has {len(self.neighborhoods)} entries for {self.num_blocks} blocks: give one per block"
            )

    @property
    def head_dim(self) -> int:
        return self.model_channels // self.num_heads

    @property
    def in_channels(self) -> int:
        """Channels entering the patch embedding: latents + condition mask (V2W) + padding mask."""
        return self.latent_channels + int(self.condition_mask) + 1

    @property
    def patch_volume(self) -> int:
        return self.patch_temporal * self.patch_spatial**2


DIT_PRESETS: dict[str, DiTConfig] = {
    "0.6B-Text2Image": DiTConfig(model_channels=1280, num_blocks=20, num_heads=20),
    "2B-Text2Image": DiTConfig(model_channels=2048, num_blocks=28, num_heads=16),
    "14B-Text2Image": DiTConfig(model_channels=5120, num_blocks=36, num_heads=40),
    "2B-Video2World": DiTConfig(
        model_channels=2048,
        num_blocks=28,
        num_heads=16,
        condition_mask=True,
        rope_extrapolation=(1.0, 3.0, 3.0),
    ),
    "14B-Video2World": DiTConfig(
        model_channels=5120,
        num_blocks=36,
        num_heads=40,
        condition_mask=True,
        rope_extrapolation=(20 / 24, 2.0, 2.0),
    ),
    # The built-in small model (cosmos_core/embedded): same architecture, CPU-sized (3.7M parameters: 14.7 MB
    # in float32, under the 16 MiB a shipped file may take; head_dim 32; scripts/train_embedded.py trains them).
    "embedded-Text2Image": DiTConfig(
        model_channels=160,
        num_blocks=8,
        num_heads=5,
        crossattn_dim=64,
        adaln_lora_dim=32,
        max_latent_size=(32, 64, 64),
    ),
    "embedded-Video2World": DiTConfig(
        model_channels=160,
        num_blocks=8,
        num_heads=5,
        crossattn_dim=64,
        adaln_lora_dim=32,
        condition_mask=True,
        rope_extrapolation=(1.0, 1.0, 1.0),
        max_latent_size=(32, 64, 64),
    ),
    # Small presets for tests: same code paths, head_dim 16 so that the RoPE split (8, 4, 4) is non-trivial.
    "tiny-Text2Image": DiTConfig(
        model_channels=64, num_blocks=2, num_heads=4, crossattn_dim=32, adaln_lora_dim=16
    ),
    "tiny-Video2World": DiTConfig(
        model_channels=64,
        num_blocks=2,
        num_heads=4,
        crossattn_dim=32,
        adaln_lora_dim=16,
        condition_mask=True,
        rope_extrapolation=(1.0, 3.0, 3.0),
    ),
}


# The reference's sparse-attention fine-tunes (`model-720p-{10,16}fps-natten.pt`): the Video2World
# networks with a neighborhood per block.
for _size in NATTEN_PATTERNS:
    DIT_PRESETS[f"{_size}-Video2World-natten"] = replace(
        DIT_PRESETS[f"{_size}-Video2World"], neighborhoods=NATTEN_PATTERNS[_size]
    )


def dit_config(name: str, **overrides) -> DiTConfig:
    """A preset by exact name, with optional field overrides (tests shrink real presets this way)."""
    if name not in DIT_PRESETS:
        raise KeyError(f"unknown DiT preset {name!r}; known: {', '.join(DIT_PRESETS)}")
    return DiTConfig(**{**DIT_PRESETS[name].__dict__, **overrides})


# ----------------------------------------------------------------------------------------------------
# Positional and timestep embeddings
# ----------------------------------------------------------------------------------------------------


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """How a head's channels split between t, h and w (128 -> 44, 42, 42)."""
    dim_h = head_dim // 6 * 2
    return head_dim - 2 * dim_h, dim_h, dim_h


@functools.lru_cache(maxsize=16)
def rope_cos_sin(
    head_dim: int,
    size_thw: tuple[int, int, int],
    extrapolation: tuple[float, float, float],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """3D RoPE tables for a (T, H, W) token grid: cos, sin of shape (L, head_dim), float32.

    Each axis gets frequencies theta_a^(-2i/d_a) with NTK-scaled theta_a = 10000 * ratio^(d_a/(d_a-2));
    channels are laid out [t | h | w] twice (non-interleaved "rotate half" RoPE).
    """
    angles = []
    for n, dim, ratio, axis in zip(size_thw, rope_split(head_dim), extrapolation, range(3), strict=True):
        theta = 10000.0 * ratio ** (dim / (dim - 2))
        freqs = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32, device=device)[: dim // 2] / dim)
        pos = torch.arange(n, dtype=torch.float32, device=device)
        axis_angles = torch.outer(pos, freqs)  # (n, dim/2)
        shape = [1, 1, 1, dim // 2]
        shape[axis] = n
        angles.append(axis_angles.view(shape).expand(*size_thw, dim // 2))
    half = torch.cat(angles, dim=-1).flatten(0, 2)  # (L, head_dim/2)
    full = torch.cat([half, half], dim=-1)
    return full.cos(), full.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (B, heads, L, Dh) rotated by the (L, Dh) tables; computed in float32 like the reference's TE kernel."""
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return (x.float() * cos + rotated * sin).type_as(x)


def timestep_sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """t (...,) in [0, 1] -> (..., dim) float32 features [cos | sin], frequencies 10000^(-i/(dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[..., None] * freqs
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class Timesteps(nn.Module):
    """Parameter-free sinusoid; a module only so that `t_embedder.1` keeps the official key names."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return timestep_sinusoid(t, self.dim)


class TimestepEmbedding(nn.Module):
    """sinusoid (D) -> Linear -> SiLU -> Linear (3D): the AdaLN-LoRA term shared by every block."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(dim, dim, bias=False)
        self.linear_2 = nn.Linear(dim, 3 * dim, bias=False)

    def forward(self, sinusoid: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.silu(self.linear_1(sinusoid)))


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), (x.shape[-1],), eps=self.eps).type_as(x) * self.weight


# ----------------------------------------------------------------------------------------------------
# Patching
# ----------------------------------------------------------------------------------------------------


class Patchify(nn.Module):
    """(B, C, T, H, W) -> (B, T/pt, H/p, W/p, C*pt*p*p), features ordered (c, pt, ph, pw)."""

    def __init__(self, patch_spatial: int, patch_temporal: int) -> None:
        super().__init__()
        self.p, self.pt = patch_spatial, patch_temporal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, T, H, W = x.shape
        p, pt = self.p, self.pt
        x = x.reshape(B, C, T // pt, pt, H // p, p, W // p, p)
        return x.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4)


class PatchEmbed(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        # proj.0 is the reference's einops Rearrange: keeping the index keeps the key `x_embedder.proj.1`.
        self.proj = nn.Sequential(
            Patchify(cfg.patch_spatial, cfg.patch_temporal),
            nn.Linear(cfg.in_channels * cfg.patch_volume, cfg.model_channels, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def adaln_modulation(dim: int, lora_dim: int, chunks: int) -> nn.Sequential:
    """SiLU -> Linear(D, lora) -> Linear(lora, chunks*D): per-sub-layer part of AdaLN-LoRA."""
    return nn.Sequential(
        nn.SiLU(), nn.Linear(dim, lora_dim, bias=False), nn.Linear(lora_dim, chunks * dim, bias=False)
    )


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """LayerNorm (no affine, eps 1e-6) then x*(1+scale)+shift. x (B,T,S,D), shift/scale (B,T,1,D)."""
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6) * (1 + scale) + shift


# ----------------------------------------------------------------------------------------------------
# Transformer block
# ----------------------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head attention, no biases, RMSNorm on q and k; RoPE only when given (self-attention)."""

    def __init__(self, dim: int, context_dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.q_proj = nn.Linear(dim, dim, bias=False)
        self.k_proj = nn.Linear(context_dim, dim, bias=False)
        self.v_proj = nn.Linear(context_dim, dim, bias=False)
        self.q_norm = RMSNorm(head_dim)
        self.k_norm = RMSNorm(head_dim)
        self.output_proj = nn.Linear(dim, dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        cp: ContextParallel | None = None,
        sparse: NeighborhoodAttention | None = None,
    ) -> torch.Tensor:
        """x (B, L, D), context (B, N, Dc) -> (B, L, D).

        With `cp` (self-attention under context parallelism) x holds this rank's L/P tokens: q, k, v
        are traded to (B, heads/P, L, Dh) for the attention and back, so that `sparse` (a neighborhood,
        self-attention only) sees the whole grid.
        """

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, heads, L, Dh)
            return t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

        q = self.q_norm(heads(self.q_proj(x)))
        k = self.k_norm(heads(self.k_proj(context)))
        v = heads(self.v_proj(context))
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        attend = attention if sparse is None else sparse
        if cp is None:
            out = attend(q, k, v)  # (B, heads, L, Dh)
        else:
            q, k, v = (cp.heads_to_tokens(t) for t in (q, k, v))
            out = cp.tokens_to_heads(attend(q, k, v))
        return self.output_proj(out.transpose(1, 2).flatten(2))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layer1 = nn.Linear(dim, hidden, bias=False)
        self.layer2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(F.gelu(self.layer1(x)))


class Block(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        D = cfg.model_channels
        self.self_attn = Attention(D, D, cfg.num_heads)
        self.cross_attn = Attention(D, cfg.crossattn_dim, cfg.num_heads)
        self.mlp = MLP(D, int(D * cfg.mlp_ratio))
        self.adaln_modulation_self_attn = adaln_modulation(D, cfg.adaln_lora_dim, 3)
        self.adaln_modulation_cross_attn = adaln_modulation(D, cfg.adaln_lora_dim, 3)
        self.adaln_modulation_mlp = adaln_modulation(D, cfg.adaln_lora_dim, 3)

    def forward(
        self,
        x: torch.Tensor,
        emb: torch.Tensor,
        adaln_lora: torch.Tensor,
        text_emb: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        cp: ContextParallel | None = None,
        order: TokenOrder | None = None,
        sparse: NeighborhoodAttention | None = None,
    ) -> torch.Tensor:
        """x (B, L, D), tokens in `order` (default row-major); emb (B, T, D); adaln_lora (B, T, 3D).

        Modulation is computed per latent frame and broadcast over the frame's tokens: in the order's
        view x is (B, T/tt, G, tt, P, D) and a modulation (B, T/tt, 1, tt, 1, D).
        """
        B, L, D = x.shape
        order = order or TokenOrder.row_major((emb.shape[1], L // emb.shape[1], 1))
        x = order.view(x)

        def mod(layer: nn.Module) -> tuple[torch.Tensor, ...]:
            return order.per_frame(layer(emb) + adaln_lora).chunk(3, dim=-1)

        # 1. Self-attention over all tokens, with 3D RoPE (sparse: over each token's neighborhood)
        shift, scale, gate = mod(self.adaln_modulation_self_attn)
        h = modulate(x, shift, scale).reshape(B, L, D)
        x = x + gate * self.self_attn(h, h, rope, cp, sparse).view(x.shape)

        # 2. Cross-attention to the text embeddings
        shift, scale, gate = mod(self.adaln_modulation_cross_attn)
        h = modulate(x, shift, scale).reshape(B, L, D)
        x = x + gate * self.cross_attn(h, text_emb).view(x.shape)

        # 3. MLP
        shift, scale, gate = mod(self.adaln_modulation_mlp)
        return (x + gate * self.mlp(modulate(x, shift, scale))).reshape(B, L, D)


class FinalLayer(nn.Module):
    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        D = cfg.model_channels
        self.adaln_modulation = adaln_modulation(D, cfg.adaln_lora_dim, 2)
        self.linear = nn.Linear(D, cfg.patch_volume * cfg.latent_channels, bias=False)

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor, adaln_lora: torch.Tensor, order: TokenOrder
    ) -> torch.Tensor:
        """x (B, L, D) in `order` -> (B, L, patch_volume * C) in the same order."""
        B, L, D = x.shape
        modulation = order.per_frame(self.adaln_modulation(emb) + adaln_lora[..., : 2 * D])
        shift, scale = modulation.chunk(2, dim=-1)
        return self.linear(modulate(order.view(x), shift, scale)).reshape(B, L, -1)


# ----------------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------------


class StepCache:
    """First-block caching across sampling steps: when the first block's output has barely moved since
    the last step that ran every block, reuse what blocks 2..N added then.

    The relative L1 change of the first block's output, (mean |h1 - h1_ref|) / (mean |h1_ref|), is
    measured against the output of the last full step (not the previous step), so small changes add
    up and force a full step once they pass `threshold`. One cache per generation (the CFG pair is one
    batch: both branches are reused or computed together). threshold 0 never reuses.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.reference: torch.Tensor | None = None  # first block's output at the last full step
        self.residual: torch.Tensor | None = None  # what blocks 2..N added at that step
        self.full = self.reused = 0

    def reusable(self, first: torch.Tensor) -> bool:
        if self.reference is None or self.reference.shape != first.shape or self.threshold <= 0:
            return False
        change = (first - self.reference).abs().mean() / self.reference.abs().mean().clamp_min(1e-12)
        if change.item() < self.threshold:
            self.reused += 1
            return True
        return False

    def store(self, first: torch.Tensor, last: torch.Tensor) -> None:
        self.reference, self.residual = first, last - first
        self.full += 1


@dataclass
class TokenPlan:
    """How one grid's tokens go through the blocks: their order on this rank, the whole grid's order
    (what self-attention sees), each block's self-attention (None: dense) and the RoPE tables."""

    tokens: OrderedTokens
    whole: TokenOrder
    sparse: list[NeighborhoodAttention | None]
    device: torch.device
    rope: tuple[torch.Tensor, torch.Tensor] | None = None


class CosmosDiT(nn.Module):
    """Denoiser network: latents + per-frame timestep + text embeddings -> velocity (noise - x0)."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D = cfg.model_channels
        self.x_embedder = PatchEmbed(cfg)
        self.t_embedder = nn.Sequential(Timesteps(D), TimestepEmbedding(D))
        self.t_embedding_norm = RMSNorm(D)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_blocks))
        self.final_layer = FinalLayer(cfg)
        self._plans: dict[tuple, TokenPlan] = {}  # per grid and device: see _plan

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        text_emb: torch.Tensor,
        condition_mask: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        cp: ContextParallel | None = None,
        step_cache: StepCache | None = None,
    ) -> torch.Tensor:
        """
        x: (B, C, T, H, W) latents (already scaled by c_in).
        timesteps: (B, T) per latent frame, or (B,), rectified-flow t in [0, 1].
        text_emb: (B, N, Dt).
        condition_mask: (B, 1, T, H, W), 1 on conditioning frames; Video2World only (zeros if None).
        padding_mask: (B, 1, H', W'), resized (nearest) to (H, W); zeros if None, as at inference.
        cp: context parallelism: every rank passes the full inputs, computes its T/P frames and gets
            the full output back (all-gathered).
        step_cache: reuse of blocks 2..N between sampling steps (see StepCache); None: every block runs.
        Returns (B, C, T, H, W).
        """
        cfg = self.cfg
        B, _, T, H, W = x.shape
        self._check_size(T, H, W)
        if timesteps.ndim == 1:
            timesteps = timesteps[:, None]
        timesteps = timesteps.expand(B, T)
        frame_offset = 0
        if cp is not None:
            check_context_parallel(cp.world_size, cfg.num_heads, T // cfg.patch_temporal)
            x, timesteps = cp.split(x, dim=2), cp.split(timesteps, dim=1)
            condition_mask = None if condition_mask is None else cp.split(condition_mask, dim=2)
            frame_offset = cp.rank * (T // cp.world_size)
            T = x.shape[2]
        extra = []
        if cfg.condition_mask:
            extra.append(
                condition_mask.to(x.dtype) if condition_mask is not None else x.new_zeros(B, 1, T, H, W)
            )
        elif condition_mask is not None:
            raise ValueError(
                "a condition_mask was given to a Text2Image DiT (it has no condition-mask channel)"
            )
        if padding_mask is None:
            extra.append(x.new_zeros(B, 1, T, H, W))
        else:
            mask = F.interpolate(padding_mask.to(x.dtype), size=(H, W), mode="nearest")
            extra.append(mask.unsqueeze(2).expand(B, 1, T, H, W))
        x = torch.cat([x, *extra], dim=1)

        tokens = self.x_embedder(x)  # (B, Tp, Hp, Wp, D)
        _, Tp, Hp, Wp, D = tokens.shape
        plan = self._plan(Tp, Hp, Wp, tokens.device, cp)
        tokens = plan.tokens.from_row_major(tokens.reshape(B, Tp * Hp * Wp, D))  # (B, L, D) in plan order

        sinusoid = self.t_embedder[0](timesteps).to(tokens.dtype)  # (B, T, D)
        adaln_lora = self.t_embedder[1](sinusoid)  # (B, T, 3D)
        emb = self.t_embedding_norm(sinusoid)  # (B, T, D)

        rope = self._rope(plan, cp, frame_offset // cfg.patch_temporal)
        text = text_emb.to(tokens.dtype)
        order, sparse = plan.tokens.order, plan.sparse

        def run(i: int, tokens: torch.Tensor) -> torch.Tensor:
            return self.blocks[i](tokens, emb, adaln_lora, text, rope, cp, order, sparse[i])

        tokens = run(0, tokens)
        if step_cache is not None and step_cache.reusable(tokens):
            tokens = tokens + step_cache.residual
        else:
            first = tokens
            for i in range(1, len(self.blocks)):
                tokens = run(i, tokens)
            if step_cache is not None:
                step_cache.store(first, tokens)

        out = plan.tokens.to_row_major(self.final_layer(tokens, emb, adaln_lora, order))
        out = self._unpatchify(out, Tp, Hp, Wp)  # (B, C, T, H, W)
        return out if cp is None else cp.gather(out, dim=2)

    def _plan(self, Tp: int, Hp: int, Wp: int, device: torch.device, cp: ContextParallel | None) -> TokenPlan:
        """Token order and per-block attention for this rank's (Tp, Hp, Wp) tokens, built once and cached.

        Dense networks keep tokens row-major. Sparse ones order them in tiles (sparse_attention.py); under
        context parallelism the tile's T side divides each rank's frames, so the ranks' tokens, in rank
        order, are the whole grid's tiled order, which the self-attention sees after its all-to-all.
        """
        world = 1 if cp is None else cp.world_size
        key = (Tp, Hp, Wp, world, str(device))
        if key not in self._plans:
            grid = (Tp * world, Hp, Wp)
            patterns = self.cfg.neighborhoods or (None,) * len(self.blocks)
            local = TokenOrder.row_major((Tp, Hp, Wp))
            if any(p is not None and p.on_grid(grid) is not None for p in patterns):
                local = TokenOrder.tiled((Tp, Hp, Wp))
            whole = TokenOrder(grid, local.tile)
            sparse = [layer_attention(p, grid, whole, device) for p in patterns]
            self._plans[key] = TokenPlan(OrderedTokens.build(local, device), whole, sparse, device)
        return self._plans[key]

    def _rope(
        self, plan: TokenPlan, cp: ContextParallel | None, frame_offset: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE tables for this rank's tokens in the plan's order: the whole grid's, this rank's rows."""
        cfg = self.cfg
        Tp, Hp, Wp = plan.tokens.order.grid
        if plan.rope is None:
            cos, sin = rope_cos_sin(cfg.head_dim, plan.whole.grid, cfg.rope_extrapolation, plan.device)
            if not plan.whole.is_row_major:
                positions = plan.whole.positions.to(plan.device)
                cos, sin = cos[positions], sin[positions]
            plan.rope = (cos, sin)
        rows = slice(frame_offset * Hp * Wp, (frame_offset + Tp) * Hp * Wp)
        return plan.rope[0][rows], plan.rope[1][rows]

    def _unpatchify(self, out: torch.Tensor, Tp: int, Hp: int, Wp: int) -> torch.Tensor:
        """(B, Tp*Hp*Wp, (ph pw pt C)) row-major -> (B, C, Tp*pt, Hp*ph, Wp*pw)."""
        p, pt = self.cfg.patch_spatial, self.cfg.patch_temporal
        B = out.shape[0]
        out = out.reshape(B, Tp, Hp, Wp, p, p, pt, -1)
        out = out.permute(0, 7, 1, 6, 2, 4, 3, 5)  # (B, C, Tp, pt, Hp, ph, Wp, pw)
        return out.reshape(B, -1, Tp * pt, Hp * p, Wp * p)

    def _check_size(self, T: int, H: int, W: int) -> None:
        p, pt = self.cfg.patch_spatial, self.cfg.patch_temporal
        if H % p or W % p or T % pt:
            raise ValueError(
                f"latent size T={T}, H={H}, W={W} is not divisible by the patch size ({pt}, {p}, {p})"
            )
        max_t, max_h, max_w = self.cfg.max_latent_size
        if T > max_t or H > max_h or W > max_w:
            raise ValueError(
                f"latent size T={T}, H={H}, W={W} exceeds the model's maximum {max_t}x{max_h}x{max_w}"
            )
