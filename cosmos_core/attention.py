"""Scaled dot-product attention with the fastest backend for the GPU at hand.

On Hopper, cuDNN's fused attention runs the 2B 720p shape about 1.8x faster than the flash backend
(`benchmarks/gpu_speed.py --sections attention`; results in benchmarks/results/); PyTorch's default order
tries flash first, so we state ours.
On the CPU PyTorch picks its own kernel.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

_HOPPER_ORDER = [
    SDPBackend.CUDNN_ATTENTION,
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
]
_DEFAULT_GPU_ORDER = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


@functools.cache
def _backend_order(device_index: int) -> list[SDPBackend]:
    major, _ = torch.cuda.get_device_capability(device_index)
    return _HOPPER_ORDER if major >= 9 else _DEFAULT_GPU_ORDER


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention, no mask. q (B, H, Lq, D), k/v (B, H, Lk, D) -> (B, H, Lq, D)."""
    if q.device.type != "cuda":
        return F.scaled_dot_product_attention(q, k, v)
    with sdpa_kernel(_backend_order(q.device.index or 0), set_priority=True):
        return F.scaled_dot_product_attention(q, k, v)
