"""Neighborhood (sparse) self-attention of the reference's `-natten` Video2World DiTs, on any device.

The reference fine-tuned its 2B and 14B Video2World DiTs for generalized neighborhood attention
(GNA, arXiv 2504.16922) and runs them through NATTEN's Hopper/Blackwell kernels only
(cosmos_predict2/configs/base/config_natten.py, module/neighborhood_attn.py). Here the same pattern is
stated from its definition and run by PyTorch: FlexAttention on a CUDA GPU, masked SDPA elsewhere.

The pattern, per layer (a NeighborhoodPattern; None = dense) and per axis of the (T, H, W) token grid
(non-causal; the 3D mask is the AND of the three axes):
- the axis splits into `dilation` interleaved sub-grids (index mod d); a query sees keys of its own;
- inside a sub-grid (positions i // d, length m), queries are grouped in blocks of `stride`; a block
  shares the window of its leader, the centre query min(start + stride // 2, m - 1);
- the window, `window` keys wide (an even window has one more key on the left), is centred on the
  leader and shifted inward at the borders, never cut: every query sees exactly `window` keys per axis.
Windows, strides and dilations are stated for the 720p 16:9 grid (base_size, T any) and scaled to the
actual grid as the reference does; a grid of one latent frame (an image) attends densely.

Speed (cosmos_core/dit.py holds its tokens in a TokenOrder): tokens are ordered in tiles of
(4, 4, 8) (T, H, W), so that a FlexAttention block of 128 queries or keys is one tile. At 720p 16:9 every
(query block, key block) pair of every 2B and 14B pattern is then wholly in or wholly out: the kernel
skips the empty pairs and runs no mask function on the others. A layer with dilation attends in its own
order (per axis: the residues outermost), gathered from the DiT's and scattered back. A layer whose
windows cover whole dilation groups ("dense inside each group") runs plain SDPA (cuDNN on Hopper) on the
groups as a batch.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cosmos_core.attention import attention
from cosmos_core.device import allow_recompiles

Triple = tuple[int, int, int]

# FlexAttention's block (queries and keys), and the tile of (T, H, W) tokens that fills one.
FLEX_BLOCK = 128
PREFERRED_TILE: Triple = (4, 4, 8)


# ----------------------------------------------------------------------------------------------------
# The pattern
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeighborhoodPattern:
    """One layer's neighborhood as the reference states it, for its base grid."""

    window: Triple  # keys per axis; <= 1 (the reference writes -1): the whole axis
    stride: Triple = (1, 1, 1)
    dilation: Triple = (1, 1, 1)
    base_size: Triple = (-1, 44, 80)  # the grid these numbers are for (720p 16:9 latents after 2x2 patching)

    def on_grid(self, grid: Triple) -> Neighborhood | None:
        """This pattern scaled to an actual (T, H, W) grid (the reference's get_adaptive_parameters, whose
        clamps keep every combination runnable); None: attend densely (one latent frame)."""
        if grid[0] == 1:
            return None
        window = tuple(w if w > 1 else n for w, n in zip(self.window, grid, strict=True))
        base = tuple(b if b > 0 else n for b, n in zip(self.base_size, grid, strict=True))
        scale = tuple(n / b for n, b in zip(grid, base, strict=True))
        # Python's round (half to even), as the reference's.
        window = tuple(min(max(2, round(w * s)), n) for w, s, n in zip(window, scale, grid, strict=True))
        stride = tuple(
            min(max(1, round(st * s)), w) for st, s, w in zip(self.stride, scale, window, strict=True)
        )
        dilation = tuple(
            min(max(1, round(d * s)), n // w)
            for d, s, n, w in zip(self.dilation, scale, grid, window, strict=True)
        )
        return Neighborhood(grid, window, stride, dilation)


def _hw(window: tuple[int, int], stride=(1, 1), dilation=(1, 1)) -> NeighborhoodPattern:
    """A pattern over the whole T axis, as every one of the reference's is."""
    return NeighborhoodPattern((-1, *window), (1, *stride), (1, *dilation))


# The reference's layer patterns (config_natten.py), by name. "sparse global": dilated so that the window
# spans the whole axis at the base grid; "local": strided sliding windows.
_GLOBAL_HW = _hw((4, 16), dilation=(11, 5))  # dense inside each of 11 x 5 dilation groups
_GLOBAL_W = _hw((12, 16), stride=(4, 1), dilation=(1, 5))
_LOCAL_S = _hw((12, 24), stride=(4, 8))
_LOCAL_M = _hw((20, 40), stride=(4, 8))
_LOCAL_L = _hw((28, 56), stride=(4, 8))

NATTEN_PATTERNS: dict[str, tuple[NeighborhoodPattern | None, ...]] = {
    "2B": (
        (_GLOBAL_HW,) * 2
        + (_GLOBAL_W, _LOCAL_S, _LOCAL_S, _GLOBAL_W)
        + (_LOCAL_S,) * 4
        + (_GLOBAL_W,)
        + (_LOCAL_M,) * 12
        + (_LOCAL_L, _LOCAL_M, _LOCAL_M, _LOCAL_M, _LOCAL_S)
    ),
    "14B": (
        (_GLOBAL_HW,) * 11
        + (_GLOBAL_W,) * 2
        + (_LOCAL_S,) * 10
        + (_LOCAL_M, _LOCAL_L, _LOCAL_M, _LOCAL_L, None, _LOCAL_L, _LOCAL_M, _LOCAL_M)
        + (_LOCAL_L, _LOCAL_L, _LOCAL_M, _LOCAL_L, _LOCAL_M)
    ),
}


@dataclass(frozen=True)
class Neighborhood:
    """A pattern on an actual grid: window, stride and dilation per axis of (T, H, W)."""

    grid: Triple
    window: Triple
    stride: Triple
    dilation: Triple

    def axis_mask(self, axis: int, device: torch.device | str | None = None) -> torch.Tensor:
        """(n, n) bool: along this axis, may query i see key j."""
        n, w, s, d = self.grid[axis], self.window[axis], self.stride[axis], self.dilation[axis]
        i = torch.arange(n, device=device)
        residue, pos = i % d, i // d
        length = (n - residue + d - 1) // d  # length of each index's sub-grid
        leader = torch.minimum(pos // s * s + s // 2, length - 1)
        centre = torch.clamp(torch.minimum(leader, length - 1 - (w - 1) // 2), min=w // 2)
        start = centre - w // 2  # the window is [start, start + w) in sub-grid positions
        inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < start[:, None] + w)
        return inside & (residue[:, None] == residue[None, :])

    def mask(self, device: torch.device | str | None = None) -> torch.Tensor:
        """(L, L) bool over tokens in (T, H, W) row-major order: the brute-force statement of the pattern."""
        t, h, w = (self.axis_mask(a, device) for a in range(3))
        full = (
            t[:, None, None, :, None, None]
            & h[None, :, None, None, :, None]
            & w[None, None, :, None, None, :]
        )
        L = math.prod(self.grid)
        return full.reshape(L, L)

    @property
    def dense_groups(self) -> bool:
        """Every query sees exactly its own dilation group (per axis: the group's length is the window)."""
        return all(
            n % d == 0 and w == n // d for n, w, d in zip(self.grid, self.window, self.dilation, strict=True)
        )


# ----------------------------------------------------------------------------------------------------
# Token orders
# ----------------------------------------------------------------------------------------------------


def fitting_tile(n: int, preferred: int) -> int:
    """The largest tile length <= preferred that divides an axis of n."""
    return max(t for t in range(1, min(n, preferred) + 1) if n % t == 0)


@dataclass(frozen=True)
class TokenOrder:
    """An order of a (T, H, W) grid's tokens: each axis's indices by dilation residue (0, d, 2d, ..., 1,
    1 + d, ...), cut in tiles of `tile`; tokens go tile by tile (T, H, W), and inside a tile (t, h, w).

    With tile (1, H, W) and no dilation this is the row-major order. `view` and `per_frame` let the DiT's
    per-frame modulation broadcast over tokens in this order: tokens (B, L, C) are (B, T/tt, G, tt, P, C)
    with G tiles per frame group and P tokens per tile and frame.
    """

    grid: Triple
    tile: Triple
    dilation: Triple = (1, 1, 1)

    @classmethod
    def tiled(cls, grid: Triple, dilation: Triple = (1, 1, 1)) -> TokenOrder:
        return cls(
            grid, tuple(fitting_tile(n, p) for n, p in zip(grid, PREFERRED_TILE, strict=True)), dilation
        )

    @classmethod
    def row_major(cls, grid: Triple) -> TokenOrder:
        return cls(grid, (1, grid[1], grid[2]))

    @property
    def is_row_major(self) -> bool:
        return self.tile[1:] == self.grid[1:] and self.dilation == (1, 1, 1)

    @functools.cached_property
    def positions(self) -> torch.Tensor:
        """(L,) long: the row-major index of each token in this order."""
        _, H, W = self.grid
        axes = []
        for n, t, d in zip(self.grid, self.tile, self.dilation, strict=True):
            by_residue = torch.cat([torch.arange(r, n, d) for r in range(d)])
            axes.append(by_residue.view(n // t, t))
        t, h, w = axes
        index = (t[:, None, None, :, None, None] * H + h[None, :, None, None, :, None]) * W + w[
            None, None, :, None, None, :
        ]
        return index.flatten()

    def view(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, T/tt, G, tt, P, C)."""
        tt, th, tw = self.tile
        T, H, W = self.grid
        return x.view(x.shape[0], T // tt, (H // th) * (W // tw), tt, th * tw, x.shape[-1])

    def per_frame(self, m: torch.Tensor) -> torch.Tensor:
        """(B, T, C), one value per latent frame -> (B, T/tt, 1, tt, 1, C), broadcasting over `view`."""
        tt = self.tile[0]
        return m.view(m.shape[0], m.shape[1] // tt, 1, tt, 1, m.shape[-1])


@dataclass
class OrderedTokens:
    """The DiT's token order on one device: gathers from and to row-major (no-ops when row-major)."""

    order: TokenOrder
    positions: torch.Tensor | None  # (L,) on the device; None when row-major
    inverse: torch.Tensor | None

    @classmethod
    def build(cls, order: TokenOrder, device: torch.device) -> OrderedTokens:
        if order.is_row_major:
            return cls(order, None, None)
        positions = order.positions.to(device)
        return cls(order, positions, torch.argsort(positions))

    def from_row_major(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, ...) row-major -> this order."""
        return x if self.positions is None else x[:, self.positions]

    def to_row_major(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.inverse is None else x[:, self.inverse]


# ----------------------------------------------------------------------------------------------------
# One layer's attention
# ----------------------------------------------------------------------------------------------------


# On Hopper: 128 x 128 tiles of queries and keys (one block-mask block each), loaded by TMA. At 720p
# 16:9 this runs the 2B's two largest patterns about 9% faster than FlexAttention's own choice (128 x 64,
# no TMA); benchmarks/gpu_speed.py's natten-tune and natten-variants sections measure the candidates.
_HOPPER_FLEX_TILES = {"BLOCK_M": 128, "BLOCK_N": 128, "num_stages": 2, "num_warps": 8, "USE_TMA": True}


def flex_kernel_options(device: torch.device) -> dict:
    """FlexAttention's kernel settings for 16-bit q, k, v with heads of up to 128 channels (what the tiles'
    shared memory holds). Not ROWS_GUARANTEED_SAFE: although every query sees keys, a partial block can
    mask a whole row before its visible keys come, and that option then turns the row into NaN."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device) == (9, 0):
        return dict(_HOPPER_FLEX_TILES)
    return {}


@functools.cache
def _compiled_flex_attention():
    from torch.nn.attention.flex_attention import flex_attention

    allow_recompiles()  # one graph per pattern's mask function
    return torch.compile(flex_attention, dynamic=False)


class NeighborhoodAttention:
    """One layer's neighborhood attention on one grid, for q, k, v in the DiT's token order.

    Built once per pattern, grid and device (cosmos_core/dit.py caches it). Three ways to run:
    - dense groups: gather the tokens group by group, SDPA with the groups as a batch, scatter back;
    - FlexAttention (CUDA): a block mask of the pattern in the layer's order (the DiT's, or with the
      dilation residues outermost), compiled with the DiT's blocks or on its own;
    - elsewhere: SDPA with the boolean mask, a chunk of queries at a time (exact, slow).
    """

    def __init__(self, hood: Neighborhood, dit_order: TokenOrder, device: torch.device) -> None:
        self.hood = hood
        self.device = device
        L = math.prod(hood.grid)
        self.groups = math.prod(hood.dilation) if hood.dense_groups else 0
        if hood.dense_groups:  # tiles of one whole dilation group: group-major order
            group = tuple(n // d for n, d in zip(hood.grid, hood.dilation, strict=True))
            order = TokenOrder(hood.grid, group, hood.dilation)
        elif hood.dilation != (1, 1, 1):
            order = TokenOrder.tiled(hood.grid, hood.dilation)
        else:
            order = dit_order
        if order == dit_order:
            self.gather = self.scatter = None
        else:  # token k of the layer's order is token gather[k] of the DiT's
            dit_inverse = torch.argsort(dit_order.positions)
            self.gather = dit_inverse[order.positions].to(device)
            self.scatter = torch.argsort(self.gather)
        # Each token's (t, h, w) in the layer's order, and the per-axis masks.
        positions = order.positions.to(device)
        _, H, W = hood.grid
        self.coords = (positions // (H * W), positions // W % H, positions % W)
        self.axis_masks = tuple(hood.axis_mask(a, device) for a in range(3))
        self.length = L
        self.block_mask = self._block_mask() if device.type == "cuda" and not self.groups else None
        self.kernel_options = flex_kernel_options(device)

    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q, k, v (B, heads, L, Dh) in the DiT's order -> (B, heads, L, Dh)."""
        if self.gather is not None:
            q, k, v = (x[:, :, self.gather] for x in (q, k, v))
        if self.groups:
            B, heads, L, Dh = q.shape
            q, k, v = (x.reshape(B, heads * self.groups, L // self.groups, Dh) for x in (q, k, v))
            out = attention(q, k, v).reshape(B, heads, L, Dh)
        elif self.block_mask is not None:
            out = self._flex(q, k, v)
        else:
            out = self._masked_sdpa(q, k, v)
        return out if self.scatter is None else out[:, :, self.scatter]

    def mask_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), L) bool: the mask of these queries (indices in the layer's order)."""
        mask = None
        for coord, axis_mask in zip(self.coords, self.axis_masks, strict=True):
            part = axis_mask[coord[rows]][:, coord]
            mask = part if mask is None else mask & part
        return mask

    def _block_mask(self):
        """FlexAttention's block mask: per (query block, key block), partial (mask function runs) or
        full (it does not); pairs with no visible key are skipped."""
        from torch.nn.attention.flex_attention import BlockMask

        L, n = self.length, -(-self.length // FLEX_BLOCK)
        pad = n * FLEX_BLOCK - L
        any_rows, all_rows = [], []
        step = max(1, (1 << 26) // (L * FLEX_BLOCK))  # query blocks per chunk: ~64M mask entries
        for first in range(0, n, step):
            rows = torch.arange(first * FLEX_BLOCK, min((first + step) * FLEX_BLOCK, L), device=self.device)
            mask = self.mask_rows(rows)
            mask = F.pad(mask, (0, pad, 0, FLEX_BLOCK * math.ceil(len(rows) / FLEX_BLOCK) - len(rows)))
            blocks = mask.view(-1, FLEX_BLOCK, n, FLEX_BLOCK)
            any_rows.append(blocks.any(dim=3).any(dim=1))
            all_rows.append(blocks.all(dim=3).all(dim=1))  # padding is False: an edge block is never full
        full = torch.cat(all_rows)
        partial = torch.cat(any_rows) & ~full

        def blocks_of(kind: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            indices = torch.argsort((~kind).to(torch.int8), dim=-1, stable=True)  # kind's blocks first
            return kind.sum(-1).to(torch.int32)[None, None], indices.to(torch.int32)[None, None]

        (t, h, w), (mt, mh, mw) = self.coords, self.axis_masks

        def mask_mod(b, head, q_idx, kv_idx):  # runs only on partial blocks
            return mt[t[q_idx], t[kv_idx]] & mh[h[q_idx], h[kv_idx]] & mw[w[q_idx], w[kv_idx]]

        self.block_counts = {"full": int(full.sum()), "partial": int(partial.sum()), "total": n * n}
        return BlockMask.from_kv_blocks(
            *blocks_of(partial), *blocks_of(full), FLEX_BLOCK, mask_mod, seq_lengths=(L, L)
        )

    def _flex(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        options = self.kernel_options if q.element_size() == 2 and q.shape[-1] <= 128 else {}
        if torch.compiler.is_compiling():
            from torch.nn.attention.flex_attention import flex_attention

            return flex_attention(q, k, v, block_mask=self.block_mask, kernel_options=options)
        return _compiled_flex_attention()(q, k, v, block_mask=self.block_mask, kernel_options=options)

    def _masked_sdpa(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        L = self.length
        budget = 1 << (28 if q.is_cuda else 24)  # score entries per chunk
        chunk = max(1, budget // (L * q.shape[0] * q.shape[1]))
        outs = []
        for first in range(0, L, chunk):
            rows = torch.arange(first, min(first + chunk, L), device=q.device)
            mask = self.mask_rows(rows)
            outs.append(F.scaled_dot_product_attention(q[:, :, rows], k, v, attn_mask=mask))
        return torch.cat(outs, dim=2)


def layer_attention(
    pattern: NeighborhoodPattern | None, grid: Triple, dit_order: TokenOrder, device: torch.device
) -> NeighborhoodAttention | None:
    """A layer's self-attention on this grid; None: dense (no pattern, one frame, or a pattern that
    covers the whole grid)."""
    hood = pattern.on_grid(grid) if pattern is not None else None
    if hood is None or hood.window == hood.grid:
        return None
    return NeighborhoodAttention(hood, dit_order, device)
