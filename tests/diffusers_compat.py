"""Test-only shim: diffusers' Cosmos transformer calls torchvision's resize on the padding mask, and there is
no CPU build of torchvision here. We give its module the one function it needs (nearest-neighbour resize)."""

from __future__ import annotations

from types import SimpleNamespace

import torch.nn.functional as F


def _resize(image, size, interpolation=None):
    return F.interpolate(image, size=tuple(size), mode="nearest")


def install_torchvision_resize() -> None:
    import diffusers.models.transformers.transformer_cosmos as cosmos

    if not hasattr(cosmos, "transforms"):
        cosmos.transforms = SimpleNamespace(
            functional=SimpleNamespace(resize=_resize), InterpolationMode=SimpleNamespace(NEAREST="nearest")
        )
