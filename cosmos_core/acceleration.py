"""GPU speed-ups of the DiT forward that leave its numbers alone: torch.compile and CUDA graphs.

* compile (on by default on a CUDA GPU): each transformer block goes through torch.compile, which fuses
  the elementwise work around the matmuls and the attention (LayerNorm + modulation, RMSNorm of q and k +
  RoPE, GELU, gated residuals) into a few Triton kernels. The blocks share one class, so one compilation
  serves all of them (a few tens of seconds on the first forward of a process, paid once per shape).
* CUDA graphs (`--use_cuda_graphs`, off by default): the whole forward is captured once per input
  signature (shapes and dtypes) and replayed: one launch instead of thousands. Text2Image at 1024x1024
  is launch-bound (about 4,000 tokens; 28 blocks of ~15 kernels each), a 720p video is not.
  Replays write into the captured output buffer, so every call returns a copy of it. The capture keeps
  a private memory pool per signature: worth it for a worker that generates many images of one size.

Neither applies on the CPU (the embedded model there is small; compiling would cost more than it saves).
Context parallelism and step caching run the plain forward: their per-step collectives and decisions
(`.item()`) cannot live inside a graph. Under context parallelism the blocks are still compiled: dynamo
traces each block's two all-to-alls (`dist.all_to_all_single`) as functional collectives, with no graph
break (tests/test_parallel.py checks this on CPU with gloo, outputs equal to one eager process).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from cosmos_core.device import allow_recompiles
from cosmos_core.dit import CosmosDiT, DiTConfig

log = logging.getLogger("cosmos_core")


@dataclass(frozen=True)
class Acceleration:
    compile: bool = True  # torch.compile of each block (CUDA only)
    cuda_graphs: bool = False  # capture and replay the whole forward (CUDA only)


def compile_blocks(dit: CosmosDiT) -> None:
    """torch.compile each transformer block in place (fixed shapes: one graph per resolution)."""
    allow_recompiles()
    for block in dit.blocks:
        block.compile(dynamic=False)


class CudaGraphDiT(nn.Module):
    """A CosmosDiT whose forward is replayed from CUDA graphs, one per input signature.

    Same call as CosmosDiT.forward. Inputs are copied into the graph's static buffers; the output is a
    fresh tensor (the graph's buffer is overwritten by the next replay).
    """

    def __init__(self, dit: CosmosDiT, warmup: int = 2) -> None:
        super().__init__()
        self.dit = dit
        self.warmup = warmup
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor], torch.Tensor]] = {}

    @property
    def cfg(self) -> DiTConfig:
        return self.dit.cfg

    @property
    def graphs(self) -> int:
        return len(self._graphs)

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        text_emb: torch.Tensor,
        condition_mask: torch.Tensor | None = None,
        padding_mask: torch.Tensor | None = None,
        cp=None,
        step_cache=None,
    ) -> torch.Tensor:
        inputs = {"x": x, "timesteps": timesteps, "text_emb": text_emb}
        if condition_mask is not None:
            inputs["condition_mask"] = condition_mask
        if padding_mask is not None:
            inputs["padding_mask"] = padding_mask
        if cp is not None or step_cache is not None or x.device.type != "cuda":
            return self.dit(**inputs, cp=cp, step_cache=step_cache)
        key = tuple((name, tuple(t.shape), t.dtype) for name, t in inputs.items())
        if key not in self._graphs:
            self._graphs[key] = self._capture(inputs)
        graph, static, out = self._graphs[key]
        for name, tensor in inputs.items():
            static[name].copy_(tensor)
        graph.replay()
        return out.clone()

    def _capture(self, inputs: dict[str, torch.Tensor]):
        static = {name: t.clone() for name, t in inputs.items()}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up outside the graph: compilation, cuBLAS/cuDNN plans
            for _ in range(self.warmup):
                self.dit(**static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.dit(**static)
        log.info(
            "captured a CUDA graph of the DiT forward for %s", {k: tuple(v.shape) for k, v in inputs.items()}
        )
        return graph, static, out


def accelerate(dit: CosmosDiT, device: torch.device, acceleration: Acceleration | None) -> nn.Module:
    """The DiT to sample with: compiled and/or graphed on a CUDA GPU as asked, unchanged elsewhere."""
    acceleration = acceleration or Acceleration()
    if device.type != "cuda":
        if acceleration.cuda_graphs:
            log.info("--use_cuda_graphs: no CUDA GPU here; running without CUDA graphs")
        return dit
    if acceleration.compile:
        compile_blocks(dit)
    return CudaGraphDiT(dit) if acceleration.cuda_graphs else dit
