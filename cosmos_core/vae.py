"""The Wan2.1 causal 3D VAE, which Cosmos-Predict2 uses as its video "tokenizer".

A video in [-1, 1] of shape (B, 3, T, H, W) with T = 1 + 4k frames becomes latents of shape
(B, 16, 1 + k, H/8, W/8): 8x spatial and 4x temporal compression. Frame 0 is encoded on its own (so an
image is a 1-frame video); every later group of 4 frames becomes one latent frame.

Everything temporal is *causal*: a frame only ever sees itself and earlier frames. That is what lets
the reference run the encoder over a long clip in chunks and the decoder one latent frame at a time,
carrying a few trailing frames of every temporal convolution's input from one chunk to the next. Here
that carried state is an explicit `CausalCache` object passed down through `forward(x, cache)`.
`cache=None` means "the whole clip in one call", which gives the same result (up to float rounding).

Module and parameter names reproduce the official `tokenizer.pth` (the Wan2.1 VAE state dict) exactly,
so that file loads with `load_state_dict(strict=True)` and no renaming. `vae_key_from_diffusers` maps
the diffusers `AutoencoderKLWan` layout onto those names.

Behaviour compared with the two other implementations (the NVIDIA reference and diffusers):
  * `decode` does not clamp its output to [-1, 1]. The reference does not either; diffusers does.
  * T must be 1 + 4k. The reference encodes leftover frames as a short last chunk, diffusers
    silently drops them; we raise instead of guessing.
  * RMS norms are taken in float32 for bf16/fp16 activations (as diffusers does).
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ----------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------

# Per-channel statistics of Wan2.1's 16 latent channels; `encode` returns (mu - mean) / std.
WAN21_LATENTS_MEAN: tuple[float, ...] = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENTS_STD: tuple[float, ...] = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip

# Wan2.1 geometry, for callers that size buffers before a VAE exists.
SPATIAL_COMPRESSION = 8
TEMPORAL_COMPRESSION = 4


@dataclass(frozen=True)
class VAEConfig:
    """Shape of the Wan2.1 VAE. The defaults are the real model (`tokenizer.pth`).

    The official model has no attention outside the two middle blocks (`attn_scales=[]`), so there is
    no option for it here.
    """

    dim: int = 96  # channels at full resolution
    z_dim: int = 16  # latent channels (the encoder emits 2 * z_dim: mu and log_var)
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)  # channel multiplier per resolution level
    num_res_blocks: int = 2  # residual blocks per encoder level (the decoder has one more)
    # Per encoder level transition: does the downsample also halve time? The decoder mirrors it.
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    latents_mean: tuple[float, ...] = WAN21_LATENTS_MEAN
    latents_std: tuple[float, ...] = WAN21_LATENTS_STD

    def __post_init__(self) -> None:
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ValueError("temporal_downsample needs one entry per level transition (len(dim_mult) - 1)")
        if len(self.latents_mean) != self.z_dim or len(self.latents_std) != self.z_dim:
            raise ValueError(f"latents_mean and latents_std need z_dim={self.z_dim} values each")

    @property
    def temporal_upsample(self) -> tuple[bool, ...]:
        """Decoder level transitions, deepest first: the encoder's temporal_downsample reversed."""
        return tuple(reversed(self.temporal_downsample))

    @property
    def spatial_compression(self) -> int:
        return 2 ** (len(self.dim_mult) - 1)

    @property
    def temporal_compression(self) -> int:
        return 2 ** sum(self.temporal_downsample)


VAE_PRESETS: dict[str, VAEConfig] = {
    "wan2.1": VAEConfig(),
    # The built-in small model's VAE (cosmos_core/embedded): same topology, 16 latent channels, CPU-sized
    # (channels 16-16-32-32-32, 0.83M parameters). Its latent statistics are folded into conv1/conv2 by
    # scripts/train_embedded.py, so mean 0 and std 1 here.
    "embedded": VAEConfig(
        dim=16,
        z_dim=16,
        dim_mult=(1, 2, 2, 2),
        num_res_blocks=1,
        latents_mean=(0.0,) * 16,
        latents_std=(1.0,) * 16,
    ),
    # For tests: same topology (8x spatial, 4x temporal), a few thousand parameters.
    "tiny": VAEConfig(
        dim=8,
        z_dim=4,
        dim_mult=(1, 2, 2, 2),
        num_res_blocks=1,
        latents_mean=(-0.5, 0.25, 0.1, 0.8),
        latents_std=(1.5, 0.75, 2.0, 1.25),
    ),
}


def latent_frames(num_frames: int) -> int:
    """Latent frames for a clip of `num_frames` = 1 + 4k pixel frames: 1 + k."""
    return 1 + (num_frames - 1) // TEMPORAL_COMPRESSION


def pixel_frames(num_latent_frames: int) -> int:
    """Pixel frames decoded from `num_latent_frames` = 1 + k latent frames: 1 + 4k."""
    return 1 + TEMPORAL_COMPRESSION * (num_latent_frames - 1)


# ----------------------------------------------------------------------------------------------------
# Causal cache
# ----------------------------------------------------------------------------------------------------


class CausalCache:
    """The frames each temporal convolution remembers from the previous chunk of the same clip.

    Keyed by the module that owns the memory:
      * a `CausalConv3d` with temporal padding keeps the last 2 frames of its input (its own receptive
        field into the past); on the next chunk they replace that many of its zero padding frames;
      * a downsample3d `Resample` keeps, under its `time_conv`, the last frame of its spatially
        downsampled input, which is the left edge of the next chunk's first stride-2 window;
      * an upsample3d `Resample`'s `time_conv` starts with an *empty* memory after the clip's first
        frame, because that frame is never fed to it (see `Resample._upsample_time`).
    A module absent from the cache has not seen this clip yet. Make a fresh cache per clip.
    """

    def __init__(self) -> None:
        self._frames: dict[nn.Module, Tensor] = {}

    def __contains__(self, module: nn.Module) -> bool:
        return module in self._frames

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, module: nn.Module) -> Tensor | None:
        return self._frames.get(module)

    def put(self, module: nn.Module, frames: Tensor) -> None:
        # clone: a slice would keep the whole chunk's activation alive until the next chunk.
        self._frames[module] = frames.clone()


def _at_least_fp32(x: Tensor) -> Tensor:
    """x in float32 if it is in a narrower float type (bf16, fp16), else unchanged."""
    return x.float() if torch.finfo(x.dtype).bits < 32 else x


def _run(layers: nn.Sequential, x: Tensor, cache: CausalCache | None) -> Tensor:
    """Apply `layers` in order, handing the cache to the layers that have temporal memory.

    On a GPU an RMSNorm followed by a SiLU runs as one compiled kernel (`_rms_norm_silu`): at 720p the
    activations are gigabytes, and the eager pair makes about six passes over them (to float32, norm,
    divide, back to bf16, gain, SiLU) where one suffices.
    """
    layers = list(layers)
    i = 0
    while i < len(layers):
        layer = layers[i]
        fusable = isinstance(layer, RMSNorm) and i + 1 < len(layers) and isinstance(layers[i + 1], nn.SiLU)
        if fusable and x.is_cuda:
            x = _compiled_rms_norm_silu()(x, layer.gain)
            i += 2
            continue
        x = layer(x, cache) if isinstance(layer, (CausalConv3d, ResidualBlock, Resample)) else layer(x)
        i += 1
    return x


def _rms_norm(x: Tensor, gain: Tensor) -> Tensor:
    """x / rms(x) over channels (dim 1) times gain = gamma * sqrt(C): see RMSNorm."""
    return F.normalize(_at_least_fp32(x), dim=1).to(x.dtype) * gain


def _rms_norm_silu(x: Tensor, gain: Tensor) -> Tensor:
    """RMSNorm then SiLU, to be compiled into one kernel. (The gain comes in as one tensor: a Python
    float sqrt(C) would recompile the kernel per width.)"""
    return F.silu(_rms_norm(x, gain))


@functools.cache
def _compiled_rms_norm_silu():
    # dynamic: one kernel for every resolution, frame count and channel width of the network
    return torch.compile(_rms_norm_silu, dynamic=True)


# ----------------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------------


class CausalConv3d(nn.Conv3d):
    """Conv3d (with bias) whose temporal padding is all in the past: output frame t sees input <= t.

    `padding=(pt, ph, pw)` means: 2*pt frames before the clip, none after, and ph / pw symmetric in
    space (the spatial padding is left to the convolution itself). With a cache, the frames
    remembered from the previous chunk take the place of the leading zero frames.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
    ) -> None:
        pt, ph, pw = (padding,) * 3 if isinstance(padding, int) else padding
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=(0, ph, pw))
        self.time_pad = 2 * pt  # frames of past context; also how many input frames the cache keeps

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:
        # x: (B, C, T, H, W) -> (B, C_out, T', H', W'); T' = T for the stride-1 kernels used with padding.
        if self.time_pad == 0:
            return super().forward(x)  # 1x1x1 convs and the stride-2 time_conv: nothing to remember
        past = cache.get(self) if cache is not None else None
        if past is not None:
            x = torch.cat([past, x], dim=2)
        if cache is not None:
            cache.put(self, x[:, :, -self.time_pad :])  # past + this chunk's input, last 2 frames
        n_zeros = self.time_pad - (0 if past is None else past.shape[2])
        if n_zeros == self.time_pad and x.shape[2] == 1:
            # One frame after nothing but zeros (an image, a clip's first frame): only the kernel's last
            # temporal tap meets data, so convolve with that tap alone: a third of the work, same sums.
            return self._conv_forward(x, self.weight[:, :, -1:], self.bias)
        if n_zeros > 0:
            zeros = x.new_zeros(x.shape[0], x.shape[1], n_zeros, *x.shape[3:])
            x = torch.cat([zeros, x], dim=2)
        return super().forward(x)


class RMSNorm(nn.Module):
    """x / rms(x) over channels, times a learned per-channel gain `gamma` (no bias).

    Written as F.normalize(x) * sqrt(C): the L2 norm over C channels is sqrt(C) * rms. `gamma` has
    shape (C, 1, 1, 1) for video (B, C, T, H, W) or (C, 1, 1) for images (B, C, H, W), matching the
    checkpoint. The norm is taken in (at least) float32 so bf16 activations keep the sum of squares.
    """

    def __init__(self, dim: int, images: bool = False) -> None:
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, *((1,) * (2 if images else 3))))

    def forward(self, x: Tensor) -> Tensor:
        return _rms_norm(x, self.gain)

    @property
    def gain(self) -> Tensor:
        return self.gamma * self.scale


class ResidualBlock(nn.Module):
    """norm -> SiLU -> conv3x3x3 -> norm -> SiLU -> dropout -> conv3x3x3, plus a (1x1x1) shortcut.

    The `residual` indices (0, 2, 3, 6 hold weights) are the checkpoint's key names.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim),
            nn.SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim),
            nn.SiLU(),
            nn.Dropout(0.0),  # inference only; kept so the next conv is index 6 as in the checkpoint
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:
        # (B, in_dim, T, H, W) -> (B, out_dim, T, H, W)
        return _run(self.residual, x, cache) + self.shortcut(x)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions of each frame separately (so it is causal).

    Used only in the middle of encoder and decoder, where it is the one non-local operation.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # fold time into batch
        qkv = self.to_qkv(self.norm(frames))  # (BT, 3C, H, W); channels are [q | k | v]
        # -> (3, BT, 1 head, HW, C), contiguous so fused attention kernels accept it
        qkv = qkv.reshape(b * t, 3, 1, c, h * w).permute(1, 0, 2, 4, 3).contiguous()
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (BT, 1, HW, C), scale 1/sqrt(C)
        out = self.proj(out.squeeze(1).transpose(1, 2).reshape(b * t, c, h, w))
        return out.reshape(b, t, c, h, w).transpose(1, 2) + x


class Upsample2x(nn.Module):
    """Nearest-neighbour 2x spatial upsampling of (N, C, H, W).

    bf16 / fp16 go through float32 and back, as in the reference (bf16 nearest upsampling was not
    supported everywhere); for nearest that changes no value.
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(_at_least_fp32(x), scale_factor=2.0, mode="nearest-exact").to(x.dtype)


class Resample(nn.Module):
    """Halve (encoder) or double (decoder) the resolution; the "3d" modes also halve/double time.

    downsample2d / 3d: pad right and bottom by 1, conv3x3 stride 2 (C -> C), frame by frame; "3d" then
        halves time with `time_conv` (kernel 3, stride 2, no padding) -- see `_downsample_time`.
    upsample2d / 3d: "3d" first doubles time with `time_conv` (C -> 2C, split into two frames) -- see
        `_upsample_time`; then nearest 2x and conv3x3 (C -> C/2), frame by frame.
    """

    MODES = ("downsample2d", "downsample3d", "upsample2d", "upsample3d")

    def __init__(self, dim: int, mode: str) -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown Resample mode {mode!r}; expected one of {self.MODES}")
        self.mode = mode
        if mode.startswith("down"):
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
            if mode == "downsample3d":
                self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1), padding=0)
        else:
            self.resample = nn.Sequential(Upsample2x(), nn.Conv2d(dim, dim // 2, 3, padding=1))
            if mode == "upsample3d":
                self.time_conv = CausalConv3d(dim, 2 * dim, (3, 1, 1), padding=(1, 0, 0))

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:
        if self.mode == "upsample3d":
            x = self._upsample_time(x, cache)
        b, _, t, _, _ = x.shape
        y = self.resample(x.transpose(1, 2).flatten(0, 1))  # (B*T, C, H, W) -> (B*T, C', H', W')
        x = y.unflatten(0, (b, t)).transpose(1, 2)
        if self.mode == "downsample3d":
            x = self._downsample_time(x, cache)
        return x

    def _downsample_time(self, x: Tensor, cache: CausalCache | None) -> Tensor:
        """(B, C, T, H, W) -> (B, C, T', H, W): frame 0 of the clip alone, then one per 2 frames.

        At the start of the clip T = 1 + 2m -> 1 + m: frame 0 passes through unchanged and the
        windows (0,1,2), (2,3,4), ... give the rest. In a later chunk (T = 2m -> m) the previous
        chunk's last frame is put in front so that the windows continue (p,0,1), (1,2,3), ...
        """
        past = cache.get(self.time_conv) if cache is not None else None
        if cache is not None:
            cache.put(self.time_conv, x[:, :, -1:])
        if past is not None:
            return self.time_conv(torch.cat([past, x], dim=2))
        if x.shape[2] == 1:
            return x
        return torch.cat([x[:, :, :1], self.time_conv(x)], dim=2)

    def _upsample_time(self, x: Tensor, cache: CausalCache | None) -> Tensor:
        """(B, C, T, H, W) -> (B, C, T', H, W): frame 0 of the clip stays one frame, others become two.

        `time_conv` maps each frame to 2C channels, read as two consecutive output frames (C each).
        The clip's frame 0 skips it entirely and is also left out of its causal history, so the
        next frame sees zeros in the past (the reference marks this state "Rep"). With a cache we
        record that by giving `time_conv` an empty memory after the first chunk.
        """
        starts_clip = cache is None or self.time_conv not in cache
        if not starts_clip:
            return self._split_in_two(self.time_conv(x, cache))
        if cache is not None:
            cache.put(self.time_conv, x[:, :, :0])  # zero frames remembered
        if x.shape[2] == 1:
            return x
        return torch.cat([x[:, :, :1], self._split_in_two(self.time_conv(x[:, :, 1:], cache))], dim=2)

    @staticmethod
    def _split_in_two(y: Tensor) -> Tensor:
        # (B, 2C, T, H, W) -> (B, C, 2T, H, W): channels [0, C) become frame 2t, [C, 2C) frame 2t+1.
        b, c2, t, h, w = y.shape
        return y.view(b, 2, c2 // 2, t, h, w).permute(0, 2, 3, 1, 4, 5).reshape(b, c2 // 2, 2 * t, h, w)


# ----------------------------------------------------------------------------------------------------
# Encoder and decoder
# ----------------------------------------------------------------------------------------------------


def _middle(dim: int) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(dim, dim), AttentionBlock(dim), ResidualBlock(dim, dim))


def _head(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(RMSNorm(in_dim), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1))


class Encoder3d(nn.Module):
    """(B, 3, T, H, W) video -> (B, 2*z_dim, 1 + (T-1)/4, H/8, W/8) mu and log_var.

    Real model channels per level: 96 -> 96 -> 192 -> 384 -> 384, with a Resample between levels
    (spatial only, then spatial+time twice). `downsamples` is flat, as in the checkpoint.
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        dims = [cfg.dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3, padding=1)
        blocks: list[nn.Module] = []
        last = len(cfg.dim_mult) - 1
        for i, (in_dim, out_dim) in enumerate(itertools.pairwise(dims)):
            for j in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(in_dim if j == 0 else out_dim, out_dim))
            if i != last:
                blocks.append(
                    Resample(out_dim, "downsample3d" if cfg.temporal_downsample[i] else "downsample2d")
                )
        self.downsamples = nn.Sequential(*blocks)
        self.middle = _middle(dims[-1])
        self.head = _head(dims[-1], 2 * cfg.z_dim)

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:
        x = self.conv1(x, cache)
        x = _run(self.downsamples, x, cache)
        x = _run(self.middle, x, cache)
        return _run(self.head, x, cache)


class Decoder3d(nn.Module):
    """(B, z_dim, n, h, w) latents (after `conv2`) -> (B, 3, 1 + 4(n-1), 8h, 8w) video.

    Real model channels per level: 384 -> 384 -> 384 -> 192 -> 96. Each upsampling Resample halves
    the channels, so every level after the first starts from half its predecessor's width.
    """

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        dims = [cfg.dim * m for m in (cfg.dim_mult[-1], *reversed(cfg.dim_mult))]
        self.conv1 = CausalConv3d(cfg.z_dim, dims[0], 3, padding=1)
        self.middle = _middle(dims[0])
        blocks: list[nn.Module] = []
        last = len(cfg.dim_mult) - 1
        for i, (in_dim, out_dim) in enumerate(itertools.pairwise(dims)):
            if i > 0:
                in_dim //= 2  # the previous level's upsample halved its channels
            for j in range(cfg.num_res_blocks + 1):
                blocks.append(ResidualBlock(in_dim if j == 0 else out_dim, out_dim))
            if i != last:
                blocks.append(Resample(out_dim, "upsample3d" if cfg.temporal_upsample[i] else "upsample2d"))
        self.upsamples = nn.Sequential(*blocks)
        self.head = _head(dims[-1], 3)

    def forward(self, x: Tensor, cache: CausalCache | None = None) -> Tensor:
        x = self.conv1(x, cache)
        x = _run(self.middle, x, cache)
        x = _run(self.upsamples, x, cache)
        return _run(self.head, x, cache)


# ----------------------------------------------------------------------------------------------------
# The VAE
# ----------------------------------------------------------------------------------------------------


class WanVAE(nn.Module):
    """Wan2.1 VAE: `encode` video -> normalised latents, `decode` back. State dict = `tokenizer.pth`.

    Neither method disables autograd; wrap calls in `torch.inference_mode()` for inference. Both run
    in the dtype of the parameters and return the dtype they were given.
    """

    def __init__(self, cfg: VAEConfig | None = None) -> None:
        super().__init__()
        cfg = cfg if cfg is not None else VAEConfig()
        self.cfg = cfg
        self.encoder = Encoder3d(cfg)
        self.conv1 = CausalConv3d(2 * cfg.z_dim, 2 * cfg.z_dim, 1)  # "quant_conv": -> mu, log_var
        self.conv2 = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)  # "post_quant_conv"
        self.decoder = Decoder3d(cfg)
        self.reset_latent_stats()

    def reset_latent_stats(self) -> None:
        """(Re)create the latent mean/std buffers from the config, on the CPU.

        Not in the checkpoint, hence non-persistent; the loader calls this after building on the meta
        device. Shape (1, z, 1, 1, 1) to broadcast over latents.
        """
        stats = {"latents_mean": self.cfg.latents_mean, "latents_std": self.cfg.latents_std}
        for name, values in stats.items():
            self.register_buffer(name, torch.tensor(values).view(1, -1, 1, 1, 1), persistent=False)

    @property
    def spatial_compression(self) -> int:
        return self.cfg.spatial_compression

    @property
    def temporal_compression(self) -> int:
        return self.cfg.temporal_compression

    def encode(self, video: Tensor, temporal_chunk: int = 16) -> Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> normalised latents (B, z, 1 + (T-1)/4, H/8, W/8).

        T must be 1 + 4k and H, W multiples of 8. The encoder runs causally: frame 0 alone, then
        chunks of `temporal_chunk` frames (a multiple of 4; the last one may be shorter). The chunk
        size only trades memory for speed: the latents do not depend on it. The latent is the
        posterior mean mu (no sampling), normalised per channel: (mu - mean) / std.
        """
        tc, sc = self.temporal_compression, self.spatial_compression
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected video (B, 3, T, H, W), got shape {tuple(video.shape)}")
        _, _, t, h, w = video.shape
        if (t - 1) % tc:
            raise ValueError(f"number of frames must be 1 + {tc}k, got {t}")
        if h % sc or w % sc:
            raise ValueError(f"height and width must be multiples of {sc}, got {h}x{w}")
        if temporal_chunk <= 0 or temporal_chunk % tc:
            raise ValueError(f"temporal_chunk must be a positive multiple of {tc}, got {temporal_chunk}")

        x = video.to(self.conv1.weight.dtype)
        cache = CausalCache()
        chunks = [x[:, :, :1]] + [x[:, :, s : s + temporal_chunk] for s in range(1, t, temporal_chunk)]
        feats = torch.cat([self.encoder(chunk, cache) for chunk in chunks], dim=2)  # (B, 2z, n, h, w)
        mu, _log_var = self.conv1(feats).chunk(2, dim=1)
        latents = (_at_least_fp32(mu) - self.latents_mean) / self.latents_std
        return latents.to(video.dtype)

    def decode(self, latents: Tensor, temporal_chunk: int = 1) -> Tensor:
        """Normalised latents (B, z, n, h, w) -> video (B, 3, 1 + 4(n-1), 8h, 8w).

        Decodes causally, carrying the cache: latent frame 0 alone (1 frame out), then chunks of
        `temporal_chunk` latent frames (4 frames out each; the last chunk may be shorter). Like the
        encoder's chunk, it trades memory for speed and leaves the result unchanged: the reference
        decodes one latent frame at a time (temporal_chunk=1). The output is NOT clamped: it is
        nominally in [-1, 1] but can overshoot slightly; callers clamp (diffusers' `decode` clamps
        internally, the reference does not).
        """
        if latents.ndim != 5 or latents.shape[1] != self.cfg.z_dim:
            raise ValueError(f"expected latents (B, {self.cfg.z_dim}, n, h, w), got {tuple(latents.shape)}")
        if temporal_chunk <= 0:
            raise ValueError(
                f"temporal_chunk must be a positive number of latent frames, got {temporal_chunk}"
            )
        z = _at_least_fp32(latents) * self.latents_std + self.latents_mean
        x = self.conv2(z.to(self.conv2.weight.dtype))
        cache = CausalCache()
        n = x.shape[2]
        chunks = [x[:, :, :1]] + [x[:, :, s : s + temporal_chunk] for s in range(1, n, temporal_chunk)]
        frames = [self.decoder(chunk, cache) for chunk in chunks]
        return torch.cat(frames, dim=2).to(latents.dtype)


# ----------------------------------------------------------------------------------------------------
# diffusers key names
# ----------------------------------------------------------------------------------------------------

# diffusers WanResidualBlock attribute -> our ResidualBlock submodule
_RESNET_PARTS = {
    "norm1": "residual.0",
    "conv1": "residual.2",
    "norm2": "residual.3",
    "conv2": "residual.6",
    "conv_shortcut": "shortcut",
}
# keys whose prefix only changes name
_RENAMES = {
    "quant_conv": "conv1",
    "post_quant_conv": "conv2",
    "encoder.conv_in": "encoder.conv1",
    "encoder.norm_out": "encoder.head.0",
    "encoder.conv_out": "encoder.head.2",
    "decoder.conv_in": "decoder.conv1",
    "decoder.norm_out": "decoder.head.0",
    "decoder.conv_out": "decoder.head.2",
}


# Parameter-holding children of our Resample and AttentionBlock, whose names diffusers shares.
_SAME_NAME_PARTS = ("resample", "time_conv", "norm", "to_qkv", "proj")

_DOWN_BLOCK = re.compile(r"encoder\.down_blocks\.(\d+)\.(.+)")
_MID_BLOCK = re.compile(r"(encoder|decoder)\.mid_block\.(resnets|attentions)\.(\d+)\.(.+)")
_UP_BLOCK = re.compile(r"decoder\.up_blocks\.(\d+)\.(resnets|upsamplers)\.(\d+)\.(.+)")


def _in_block(rest: str) -> str | None:
    """Name inside one block: `norm1.gamma` -> `residual.0.gamma`; Resample / attention names stay.

    None for anything else (e.g. Wan2.2's `resnets.*` / `avg_shortcut` inside down blocks).
    """
    part, _, tail = rest.partition(".")
    if part in _RESNET_PARTS:
        return f"{_RESNET_PARTS[part]}.{tail}"
    return rest if part in _SAME_NAME_PARTS else None


def vae_key_from_diffusers(key: str, num_res_blocks: int) -> str | None:
    """Official Wan2.1 key for a key of a diffusers `AutoencoderKLWan` state dict (None: drop it).

    `num_res_blocks` is the encoder's per level (2 for Wan2.1); each decoder level holds one more
    plus its upsample, which fixes where `up_blocks.i` starts in the flat `decoder.upsamples`.
    Keys outside the Wan2.1 layout give None; a strict load then reports what is missing.
    """
    for old, new in _RENAMES.items():
        if key.startswith(old + "."):
            return new + key[len(old) :]
    if m := _DOWN_BLOCK.fullmatch(key):  # diffusers' down_blocks is flat like ours: same index
        index, rest = m.groups()
        prefix = f"encoder.downsamples.{index}"
    elif m := _MID_BLOCK.fullmatch(key):  # middle = [resnets.0, attentions.0, resnets.1]
        side, kind, k, rest = m.groups()
        prefix = f"{side}.middle.{2 * int(k) + (1 if kind == 'attentions' else 0)}"
    elif m := _UP_BLOCK.fullmatch(key):
        level, kind, j, rest = m.groups()
        # each decoder level is num_res_blocks + 1 residual blocks, then its upsample
        index = int(level) * (num_res_blocks + 2) + (int(j) if kind == "resnets" else num_res_blocks + 1)
        prefix = f"decoder.upsamples.{index}"
    else:
        return None
    name = _in_block(rest)
    return None if name is None else f"{prefix}.{name}"
