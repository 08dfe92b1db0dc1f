"""Device and dtype choice, in one place.

bf16 on a CUDA GPU (the checkpoints are bf16 and the reference runs them so), float32 on the CPU
(CPU bf16 matmuls are slow and lossy). Nothing else in cosmos_core names "cuda".
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """The device to run on: the requested one, else the current CUDA device, else the CPU."""
    if requested is not None:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {requested!r} was requested but no CUDA GPU is visible to torch")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


THREADS_ENV = "WORLDMILL_TORCH_THREADS"  # torch threads per process, overriding the share below


def torch_threads(processes: int = 1) -> int:
    """This process's share of the host's cores: cores // processes running torch at once (at least 1).
    `processes` defaults to 1 (a command alone); $WORLDMILL_TORCH_THREADS overrides.
    Several processes each using every core (torch's default) slow each other down several times over on a
    shared CPU host: their OpenMP threads spin against each other."""
    if os.environ.get(THREADS_ENV):
        return max(1, int(os.environ[THREADS_ENV]))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(processes, 1))


def configure_threads(processes: int = 1) -> int:
    """Size torch's intra-op threads to this process's share (torch_threads); returns the count."""
    threads = torch_threads(processes)
    torch.set_num_threads(threads)
    return threads


def compute_dtype(device: torch.device, requested: torch.dtype | None = None) -> torch.dtype:
    """The dtype the networks run in on `device`: bf16 on GPU, float32 on CPU, unless asked otherwise."""
    if requested is not None:
        return requested
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def allow_recompiles(limit: int = 64) -> None:
    """Let torch.compile keep more graphs per code object than its default 8: the DiT's blocks share one
    code object, and a sparse network compiles one graph per self-attention pattern (five) and batch
    size (the CFG pair); past the limit dynamo would silently run the rest eagerly."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, limit)


def configure_backends(device: torch.device) -> None:
    """Fast-math settings the reference also uses on GPU (TF32 matmuls and convolutions)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


# Where an auxiliary model (guardrail, Reason1, T5) lives: on its device, or parked on the CPU between uses
# (--offload_guardrail, --offload_prompt_refiner, --offload_text_encoder), moved to the device only while it runs.
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
