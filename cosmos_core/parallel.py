"""Several GPUs: torch.distributed set-up and Ulysses context parallelism for the DiT.

Context parallelism (latency): the latent frames are split over P ranks; each rank embeds its frames
and runs the blocks on its tokens. Around self-attention an all-to-all trades the split: tokens split,
all heads (B, H, L/P, Dh) -> all tokens, heads split (B, H/P, L, Dh); attention runs locally and a
second all-to-all trades back. Cross-attention (to the text) and the MLP need no communication. RoPE
is computed for all frames and each rank takes its frames' rows. The DiT output is all-gathered, so
the sampler state stays identical (and replicated) on every rank. P must divide the heads and the
latent frames. Reference: cosmos_predict2/module/a2a_cp.py.

Data parallelism (throughput) needs none of this: rows are striped over ranks (cosmos_core/worker.py).
The object is passed in explicitly (`CosmosDiT.forward(..., cp=...)`); nothing is patched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Safe on shared hosts: NVLink multicast (NVLS) can take a host's GPUs down for others (KINDS.md).
SAFE_NCCL_ENV = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def maybe_init_distributed() -> DistributedContext | None:
    """Join the torchrun job if there is one (None outside torchrun), one device per process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return None
    for key, value in SAFE_NCCL_ENV.items():
        os.environ.setdefault(key, value)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and os.environ.get("WORLDMILL_DEVICE", "") != "cpu"
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", device_id=device if use_cuda else None)
    return DistributedContext(rank, world_size, local_rank, device)


def check_context_parallel(world_size: int, num_heads: int, latent_frames: int) -> None:
    if num_heads % world_size or latent_frames % world_size:
        raise ValueError(
            f"context parallelism over {world_size} ranks needs a world size that divides both the number of "
            f"attention heads ({num_heads}) and of latent frames ({latent_frames}); use a divisor of both, "
            f"e.g. one of {[p for p in range(1, num_heads + 1) if num_heads % p == 0 and latent_frames % p == 0]}"
        )


class ContextParallel:
    """The process group a DiT splits its frames over."""

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        self.group = group
        self.world_size = dist.get_world_size(group)
        self.rank = dist.get_rank(group)

    def split(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """This rank's contiguous chunk along `dim`."""
        return x.chunk(self.world_size, dim=dim)[self.rank].contiguous()

    def gather(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """Concatenate every rank's chunk along `dim`, in rank order."""
        chunks = [torch.empty_like(x) for _ in range(self.world_size)]
        dist.all_gather(chunks, x.contiguous(), group=self.group)
        return torch.cat(chunks, dim=dim)

    def heads_to_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, L/P, Dh), all heads of my tokens -> (B, H/P, L, Dh), my heads of all tokens."""
        B, H, L, Dh = x.shape
        P = self.world_size
        send = x.reshape(B, P, H // P, L, Dh).transpose(0, 1).contiguous()  # (P, B, H/P, L/P, Dh): to rank p
        received = torch.empty_like(send)  # received[r]: rank r's tokens, my heads
        dist.all_to_all_single(received, send, group=self.group)
        return received.permute(1, 2, 0, 3, 4).reshape(B, H // P, P * L, Dh)

    def tokens_to_heads(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of heads_to_tokens: (B, H/P, L, Dh) -> (B, H, L/P, Dh)."""
        B, Hp, L, Dh = x.shape
        P = self.world_size
        send = x.reshape(B, Hp, P, L // P, Dh).permute(2, 0, 1, 3, 4).contiguous()  # (P, B, H/P, L/P, Dh)
        received = torch.empty_like(send)  # received[r]: rank r's heads, my tokens
        dist.all_to_all_single(received, send, group=self.group)
        return received.transpose(0, 1).reshape(B, P * Hp, L // P, Dh)
