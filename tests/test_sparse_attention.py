"""Neighborhood (sparse) attention: exact semantics against natten's own flex-fna and a brute-force mask.

The brute-force mask below is written from the rule's statement (a window shifted inward at the
borders), not from our implementation; natten is the reference's own library, run on the CPU.
"""

from __future__ import annotations

import functools
import itertools
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from cosmos_core.acceleration import compile_blocks
from cosmos_core.dit import CosmosDiT, dit_config
from cosmos_core.parallel import ContextParallel
from cosmos_core.sparse_attention import (
    FLEX_BLOCK,
    NATTEN_PATTERNS,
    Neighborhood,
    NeighborhoodAttention,
    NeighborhoodPattern,
    TokenOrder,
    layer_attention,
)
from tests.prefect_server import free_port

# ----------------------------------------------------------------------------------------------------
# Independent statements of the rule
# ----------------------------------------------------------------------------------------------------


def brute_axis(n: int, window: int, stride: int, dilation: int) -> list[list[bool]]:
    """Per axis, in plain Python: own dilation sub-grid; the stride block's centre query picks the window,
    centred on it and slid back inside the sub-grid when it would stick out."""
    mask = [[False] * n for _ in range(n)]
    for i in range(n):
        members = list(range(i % dilation, n, dilation))  # the sub-grid, in order
        m, p = len(members), members.index(i)
        leader = min(p - p % stride + stride // 2, m - 1)
        start = leader - window // 2
        start = max(0, min(start, m - window))
        for j in members[start : start + window]:
            mask[i][j] = True
    return mask


@functools.cache  # the reference's layers share a few patterns
def brute_mask(hood: Neighborhood) -> torch.Tensor:
    """(L, L) bool, row-major tokens: AND of the three axes, pair by pair."""
    axes = [
        brute_axis(n, w, s, d)
        for n, w, s, d in zip(hood.grid, hood.window, hood.stride, hood.dilation, strict=True)
    ]
    T, H, W = hood.grid
    coords = list(itertools.product(range(T), range(H), range(W)))
    return torch.tensor(
        [[all(axes[a][q[a]][k[a]] for a in range(3)) for k in coords] for q in coords], dtype=torch.bool
    )


def natten_attention(q, k, v, hood: Neighborhood) -> torch.Tensor:
    """natten's flex-fna backend on (B, heads, L, D) row-major tokens."""
    natten = pytest.importorskip("natten")
    B, heads, L, D = q.shape

    def grid(x):
        return x.transpose(1, 2).reshape(B, *hood.grid, heads, D)

    out = natten.na3d(
        grid(q),
        grid(k),
        grid(v),
        kernel_size=hood.window,
        stride=hood.stride,
        dilation=hood.dilation,
        backend="flex-fna",
    )
    return out.reshape(B, L, heads, D).transpose(1, 2)


def qkv(hood: Neighborhood, dtype=torch.float32, batch=2, heads=2, dim=16, seed=0):
    gen = torch.Generator().manual_seed(seed)
    L = hood.grid[0] * hood.grid[1] * hood.grid[2]
    return tuple(torch.randn(batch, heads, L, dim, generator=gen, dtype=dtype) for _ in range(3))


def in_order(x: torch.Tensor, order: TokenOrder) -> torch.Tensor:
    return x[:, :, order.positions]


def from_order(x: torch.Tensor, order: TokenOrder) -> torch.Tensor:
    return x[:, :, torch.argsort(order.positions)]


# Small grids covering strides (dividing the sub-grid or not), dilations (dividing the axis or not),
# even and odd windows, windows pushed inward at both borders, and whole axes.
HOODS = [
    Neighborhood((3, 7, 9), (3, 3, 4), (1, 1, 1), (1, 1, 1)),  # odd/even windows, borders
    Neighborhood((2, 9, 10), (2, 4, 5), (1, 2, 3), (1, 1, 1)),  # strides, even stride
    Neighborhood((3, 10, 11), (2, 3, 3), (1, 2, 3), (1, 3, 2)),  # stride and dilation, uneven sub-grids
    Neighborhood((4, 8, 12), (4, 2, 3), (1, 1, 1), (1, 4, 4)),  # dense inside each dilation group
    Neighborhood((2, 6, 16), (2, 6, 4), (1, 1, 4), (1, 1, 4)),  # a whole axis, dense groups along W
    Neighborhood((3, 5, 8), (2, 5, 6), (1, 5, 6), (1, 1, 1)),  # stride = window: blocked attention
]


@pytest.mark.parametrize("hood", HOODS, ids=str)
def test_mask_equals_brute_force(hood):
    assert torch.equal(hood.mask(), brute_mask(hood))


@pytest.mark.parametrize("hood", HOODS, ids=str)
def test_attention_equals_natten_flex_fna(hood):
    q, k, v = qkv(hood)
    expected = natten_attention(q, k, v, hood)
    # both our token orders: row-major, and the tiles the DiT keeps sparse networks in
    for order in (TokenOrder.row_major(hood.grid), TokenOrder.tiled(hood.grid)):
        attend = NeighborhoodAttention(hood, order, torch.device("cpu"))
        out = from_order(attend(*(in_order(x, order) for x in (q, k, v))), order)
        torch.testing.assert_close(out, expected, atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("hood", HOODS, ids=str)
def test_attention_equals_brute_force_mask_in_float64(hood):
    q, k, v = qkv(hood, torch.float64)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=brute_mask(hood))
    order = TokenOrder.tiled(hood.grid)
    attend = NeighborhoodAttention(hood, order, torch.device("cpu"))
    out = from_order(attend(*(in_order(x, order) for x in (q, k, v))), order)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=1e-12)


# ----------------------------------------------------------------------------------------------------
# The reference's patterns and their scaling
# ----------------------------------------------------------------------------------------------------


def test_reference_pattern_lists():
    two, fourteen = NATTEN_PATTERNS["2B"], NATTEN_PATTERNS["14B"]
    assert len(two) == 28 and len(fourteen) == 36
    assert None not in two and [i for i, p in enumerate(fourteen) if p is None] == [27]
    # sparsest first: layers 0-1 (2B) and 0-10 (14B) are dense inside 11 x 5 dilation groups
    assert {p.dilation for p in two[:2] + fourteen[:11]} == {(1, 11, 5)}
    assert [i for i, p in enumerate(two) if p.window == (-1, 28, 56)] == [23]


def test_scaling_follows_the_reference():
    hw, gw, local = NATTEN_PATTERNS["2B"][0], NATTEN_PATTERNS["2B"][2], NATTEN_PATTERNS["2B"][3]
    # the base grid: unchanged, the T window is the whole axis
    assert hw.on_grid((24, 44, 80)) == Neighborhood((24, 44, 80), (24, 4, 16), (1, 1, 1), (1, 11, 5))
    assert local.on_grid((16, 44, 80)) == Neighborhood((16, 44, 80), (16, 12, 24), (1, 4, 8), (1, 1, 1))
    # half the grid: 5.5 -> 6 and 2.5 -> 2 (round half to even, as Python's round)
    assert hw.on_grid((3, 22, 40)) == Neighborhood((3, 22, 40), (3, 2, 8), (1, 1, 1), (1, 6, 2))
    assert gw.on_grid((3, 22, 40)) == Neighborhood((3, 22, 40), (3, 6, 8), (1, 2, 1), (1, 1, 2))
    # 720p 1:1 (60 x 60 tokens): windows scaled, dilation clamped to what the axis holds (60 // 5)
    assert hw.on_grid((24, 60, 60)) == Neighborhood((24, 60, 60), (24, 5, 12), (1, 1, 1), (1, 12, 4))
    assert local.on_grid((24, 60, 60)) == Neighborhood((24, 60, 60), (24, 16, 18), (1, 5, 6), (1, 1, 1))
    # tiny grids: windows of at least 2 (or the axis), never past the axis
    assert local.on_grid((2, 3, 1)) == Neighborhood((2, 3, 1), (2, 2, 1), (1, 1, 1), (1, 1, 1))
    # one latent frame (an image): dense
    assert hw.on_grid((1, 44, 80)) is None


@pytest.mark.parametrize("size", ["2B", "14B"])
def test_reference_patterns_on_a_small_grid_equal_natten_and_brute_force(size):
    grid = (3, 11, 20)  # a quarter of the 720p 16:9 grid: every pattern scaled
    for index, pattern in enumerate(dict.fromkeys(NATTEN_PATTERNS[size])):  # each distinct pattern once
        order = TokenOrder.tiled(grid)
        attend = layer_attention(pattern, grid, order, torch.device("cpu"))
        if pattern is None:
            assert attend is None
            continue
        hood = pattern.on_grid(grid)
        assert torch.equal(hood.mask(), brute_mask(hood)), index
        q, k, v = qkv(hood, seed=index)
        out = from_order(attend(*(in_order(x, order) for x in (q, k, v))), order)
        torch.testing.assert_close(out, natten_attention(q, k, v, hood), atol=2e-5, rtol=2e-5)


# ----------------------------------------------------------------------------------------------------
# The GPU path's block mask, checked on the CPU
# ----------------------------------------------------------------------------------------------------


def effective_mask(attend: NeighborhoodAttention) -> torch.Tensor:
    """What FlexAttention computes from the block mask: full blocks all in, partial blocks through the
    mask function, the rest out. (L, L) bool in the layer's order."""
    bm = attend.block_mask
    L = attend.length
    n = -(-L // FLEX_BLOCK)
    state = torch.zeros(n, n, dtype=torch.int8)  # 0 out, 1 partial, 2 full
    for kind, (counts, indices) in (
        (1, (bm.kv_num_blocks, bm.kv_indices)),
        (2, (bm.full_kv_num_blocks, bm.full_kv_indices)),
    ):
        for i in range(n):
            for j in indices[0, 0, i, : counts[0, 0, i]].tolist():
                assert state[i, j] == 0, "a block listed twice"
                state[i, j] = kind
    per_token = state.repeat_interleave(FLEX_BLOCK, 0).repeat_interleave(FLEX_BLOCK, 1)[:L, :L]
    q_idx, kv_idx = torch.arange(L)[:, None], torch.arange(L)[None, :]
    computed = bm.mask_mod(0, 0, q_idx, kv_idx)
    return (per_token == 2) | ((per_token == 1) & computed)


def block_mask_attention(hood: Neighborhood, order: TokenOrder) -> NeighborhoodAttention:
    attend = NeighborhoodAttention(hood, order, torch.device("cpu"))
    attend.block_mask = attend._block_mask()  # built on the CPU here; the GPU builds it the same way
    return attend


@pytest.mark.parametrize("hood", HOODS[:3] + HOODS[5:], ids=str)
def test_block_mask_is_the_pattern(hood):
    order = TokenOrder.tiled(hood.grid)
    attend = block_mask_attention(hood, order)
    layer_positions = order.positions if attend.gather is None else order.positions[attend.gather]
    expected = brute_mask(hood)[layer_positions][:, layer_positions]
    assert torch.equal(effective_mask(attend), expected)


@pytest.mark.parametrize("size", ["2B", "14B"])
def test_720p_patterns_have_no_partial_blocks(size):
    """At 720p 16:9 every (query tile, key tile) pair is wholly in or out: no mask function runs in the
    kernel. One T tile stands for all: the T window is the whole axis."""
    grid = (4, 44, 80)
    order = TokenOrder.tiled(grid)
    assert order.tile == (4, 4, 8)
    seen = set()
    for pattern in NATTEN_PATTERNS[size]:
        hood = None if pattern is None else pattern.on_grid(grid)
        if hood is None or hood.dense_groups or hood in seen:
            continue
        seen.add(hood)
        attend = block_mask_attention(hood, order)
        counts = attend.block_counts
        assert counts["partial"] == 0, (hood, counts)
        assert 0 < counts["full"] < counts["total"]
    assert len(seen) == 4  # the W-dilated pattern and three local ones


# ----------------------------------------------------------------------------------------------------
# The whole sparse DiT
# ----------------------------------------------------------------------------------------------------

GRID = (4, 8, 16)  # latent frames, and latent height/width after 2x2 patching: tiles of (4, 4, 8)
TINY_PATTERNS = (
    NeighborhoodPattern((-1, 4, 4), dilation=(1, 2, 4), base_size=(-1, *GRID[1:])),  # dense groups
    NeighborhoodPattern((-1, 3, 4), (1, 2, 1), (1, 1, 3), (-1, *GRID[1:])),  # W dilated, uneven sub-grids
    NeighborhoodPattern((-1, 4, 6), (1, 2, 4), base_size=(-1, *GRID[1:])),  # local, strided
    None,  # dense
)


def tiny_dit(neighborhoods, dtype=torch.float64) -> CosmosDiT:
    cfg = dit_config("tiny-Video2World", num_blocks=len(TINY_PATTERNS), neighborhoods=neighborhoods)
    model = CosmosDiT(cfg).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
    return model.to(dtype)


def dit_inputs(dtype=torch.float64, frames=GRID[0]):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 16, frames, 2 * GRID[1], 2 * GRID[2], generator=gen)
    t = torch.rand(2, frames, generator=gen)
    text = torch.randn(2, 5, 32, generator=gen)
    mask = torch.zeros(2, 1, frames, 2 * GRID[1], 2 * GRID[2])
    mask[:, :, :1] = 1
    return tuple(v.to(dtype) for v in (x, t, text, mask))


class MaskedAttention:
    """Self-attention through SDPA with an explicit (L, L) boolean mask over row-major tokens."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def __call__(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.mask)


def dense_dit_with_brute_force_masks(sparse: CosmosDiT) -> CosmosDiT:
    """The same weights in a dense DiT (row-major tokens, no tiles, no gathers), each block's
    self-attention given the brute-force mask of its pattern."""
    dense = tiny_dit(None)
    dense.load_state_dict(sparse.state_dict())
    plan = dense._plan(*GRID, torch.device("cpu"), None)
    assert plan.tokens.order.is_row_major
    plan.sparse[:] = [
        None if p is None else MaskedAttention(brute_mask(p.on_grid(GRID))) for p in sparse.cfg.neighborhoods
    ]
    return dense


def test_sparse_dit_forward_equals_dense_dit_with_brute_force_masks():
    sparse = tiny_dit(TINY_PATTERNS)
    x, t, text, mask = dit_inputs()
    out = sparse(x, t, text, condition_mask=mask)
    plan = sparse._plan(*GRID, torch.device("cpu"), None)
    assert plan.tokens.order.tile == (4, 4, 8) and not plan.tokens.order.is_row_major
    assert [type(a).__name__ for a in plan.sparse] == ["NeighborhoodAttention"] * 3 + ["NoneType"]
    expected = dense_dit_with_brute_force_masks(sparse)(x, t, text, condition_mask=mask)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    # the mask matters: a dense forward of the same weights differs
    assert not torch.allclose(out, tiny_dit(None)(x, t, text, condition_mask=mask), atol=1e-3)


def test_sparse_dit_with_one_frame_attends_densely():
    sparse = tiny_dit(TINY_PATTERNS)
    x, t, text, mask = dit_inputs(frames=1)
    plan = sparse._plan(1, *GRID[1:], torch.device("cpu"), None)
    assert plan.tokens.order.is_row_major and plan.sparse == [None] * 4
    torch.testing.assert_close(
        sparse(x, t, text, condition_mask=mask), tiny_dit(None)(x, t, text, condition_mask=mask)
    )


def test_compiled_sparse_blocks_equal_eager():
    eager = tiny_dit(TINY_PATTERNS, torch.float32)
    compiled = tiny_dit(TINY_PATTERNS, torch.float32)
    compile_blocks(compiled)
    x, t, text, mask = dit_inputs(torch.float32)
    torch.testing.assert_close(
        compiled(x, t, text, condition_mask=mask),
        eager(x, t, text, condition_mask=mask),
        rtol=1e-4,
        atol=1e-4,
    )


def _sparse_context_parallel_rank(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        x, t, text, mask = dit_inputs()
        forward = tiny_dit(TINY_PATTERNS)(x, t, text, condition_mask=mask, cp=ContextParallel())
        torch.save(forward, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
def test_sparse_dit_under_context_parallelism_equals_one_process(tmp_path):
    """2 ranks of 2 latent frames each: each rank's tokens in tiles of (2, 4, 8), which in rank order are
    the whole grid's tiled order that the self-attention sees after its all-to-all."""
    mp.spawn(_sparse_context_parallel_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    x, t, text, mask = dit_inputs()
    single = tiny_dit(TINY_PATTERNS)(x, t, text, condition_mask=mask)
    for rank in range(2):
        torch.testing.assert_close(torch.load(tmp_path / f"rank{rank}.pt"), single, rtol=1e-10, atol=1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gpu_flex_path_equals_masked_sdpa_compiled_and_graphed(dtype):
    """On a CUDA GPU: the reference's 2B patterns through FlexAttention (compiled blocks, then CUDA graphs)
    equal the masked-SDPA path of the same weights, at a small grid whose blocks are all partial and whose
    token count is no multiple of the block (bf16: the Hopper tiles)."""
    from cosmos_core.acceleration import CudaGraphDiT

    device = torch.device("cuda")
    cfg = dit_config("tiny-Video2World", num_blocks=28, neighborhoods=NATTEN_PATTERNS["2B"])
    flex = CosmosDiT(cfg).to(device, dtype).eval().requires_grad_(False)
    masked = CosmosDiT(cfg).to(device, dtype).eval().requires_grad_(False)
    masked.load_state_dict(flex.state_dict())
    x, t, text, mask = (v.to(device, dtype) for v in dit_inputs(torch.float32, frames=4))
    x, mask = x[..., :22, :40], mask[..., :22, :40]  # tokens (4, 11, 20): a quarter of 720p 16:9
    for plan_attention in masked._plan(4, 11, 20, device, None).sparse:
        plan_attention.block_mask = None  # the CPU's masked SDPA
    expected = masked(x, t, text, condition_mask=mask).float()
    compile_blocks(flex)
    graphed = CudaGraphDiT(flex)
    for out in (flex(x, t, text, condition_mask=mask), graphed(x, t, text, condition_mask=mask)):
        assert out.isfinite().all()
        rel = ((out.float() - expected).norm() / expected.norm()).item()
        assert rel < (1e-4 if dtype == torch.float32 else 2e-2), rel
