"""Where an auxiliary model (guardrail, Reason1) lives: on its device, or parked on the CPU between uses
(--offload_guardrail, --offload_prompt_refiner), moved to the device only while it runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from cosmos_core.device import compute_dtype


@dataclass(frozen=True)
class Placement:
    device: torch.device
    offload: bool = False

    @property
    def dtype(self) -> torch.dtype:
        return compute_dtype(self.device)

    @property
    def resting(self) -> torch.device:
        """Where the model waits between uses."""
        return torch.device("cpu") if self.offload else self.device

    @contextmanager
    def use(self, *modules: torch.nn.Module) -> Iterator[None]:
        """Run with `modules` on the device; park them back on the CPU afterwards when offloading."""
        moved = self.offload and self.device.type != "cpu"
        if moved:
            for module in modules:
                module.to(self.device)
        try:
            yield
        finally:
            if moved:
                for module in modules:
                    module.to("cpu")
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
