"""The video content safety filter: SigLIP image features of every frame -> a 7-class MLP.

Reference: cosmos_predict2/auxiliary/guardrail/video_content_safety_filter/. Files, under
<checkpoints>/nvidia/Cosmos-Guardrail1/video_content_safety_filter/:
- safety_filter.pt: {"model": state dict} of `network.layers` = Linear(1152, 512), BatchNorm1d(512), ReLU,
  Linear(512, 256), BatchNorm1d(256), ReLU, Linear(256, 7) (loaded with torch.load(weights_only=True));
- google/siglip-so400m-patch14-384 in Hugging Face cache layout
  (models--google--siglip-so400m-patch14-384/snapshots/<revision>/), as the reference's
  `SiglipModel.from_pretrained(..., cache_dir=...)` stores it.
Each frame: resized to SigLIP's input size (bicubic, antialiased; the reference's processor resizes with
PIL), scaled to [0, 1], normalised with the processor's mean/std; the pooled image features are
L2-normalised and classified. Any frame whose class is not 0 (Safe) blocks the video.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cosmos_core.device import Placement
from cosmos_core.guardrail.verdict import Verdict

log = logging.getLogger("cosmos_core")

FILTER_DIR = Path("nvidia/Cosmos-Guardrail1/video_content_safety_filter")
SIGLIP_CACHE = "models--google--siglip-so400m-patch14-384"
CLASSES = ("Safe", "Sexual_Content", "Violence", "Drugs", "Child_Abuse", "Hate_and_Harassment", "Self-Harm")
FRAMES_PER_BATCH = 16


class SafetyClassifier(nn.Module):
    """The reference's MLP: in -> 512 -> 256 -> 7 with BatchNorm and ReLU. Keys `layers.{0,1,3,4,6}.*`."""

    def __init__(self, in_features: int = 1152, num_classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(),
            nn.Linear(512, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(),
            nn.Linear(256, num_classes),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # (N, in) -> (N, 7) logits
        return self.layers(features)


def present(checkpoint_dir: Path | None) -> tuple[Path, Path] | None:
    """(safety_filter.pt, SigLIP snapshot folder) when both are under the checkpoints root."""
    if checkpoint_dir is None:
        return None
    folder = checkpoint_dir / FILTER_DIR
    weights = folder / "safety_filter.pt"
    snapshots = sorted((folder / SIGLIP_CACHE / "snapshots").glob("*/config.json"))
    if not weights.is_file() or not snapshots:
        return None
    return weights, snapshots[-1].parent


def load_classifier(path: Path) -> SafetyClassifier:
    """safety_filter.pt -> SafetyClassifier, strictly: an error lists missing and unexpected keys."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or "network.layers.0.weight" not in state:
        raise ValueError(f"{path}: expected {{'model': state dict}} with 'network.layers.*' keys")
    state = {k.removeprefix("network."): v for k, v in state.items()}
    in_features, num_classes = state["layers.0.weight"].shape[1], state["layers.6.weight"].shape[0]
    classifier = SafetyClassifier(in_features, num_classes)
    expected, found = set(classifier.state_dict()), set(state)
    if expected != found:
        raise ValueError(
            f"{path}: missing keys {sorted(expected - found)}, unexpected keys {sorted(found - expected)}"
        )
    classifier.load_state_dict(state)
    return classifier.eval().requires_grad_(False)


class VideoSafetyFilter:
    name = "video-content-safety-filter"

    def __init__(self, encoder, classifier: SafetyClassifier, preprocess: dict, placement: Placement) -> None:
        self.encoder = encoder
        self.classifier = classifier
        self.preprocess = preprocess  # size (H, W), mean, std
        self.placement = placement

    @classmethod
    def load(cls, weights: Path, siglip_dir: Path, device: torch.device, offload: bool) -> VideoSafetyFilter:
        from transformers import SiglipVisionModel

        placement = Placement(device, offload)
        # float32, as the reference runs it: the classifier's decision boundaries were fit on fp32 features.
        encoder = (
            SiglipVisionModel.from_pretrained(siglip_dir, dtype=torch.float32).eval().requires_grad_(False)
        )
        classifier = load_classifier(weights)
        hidden = encoder.config.hidden_size
        if classifier.layers[0].in_features != hidden:
            raise ValueError(
                f"{weights} expects {classifier.layers[0].in_features}-d features, but the SigLIP model at "
                f"{siglip_dir} gives {hidden}-d ones"
            )
        encoder.to(placement.resting)
        classifier.to(placement.resting)
        return cls(
            encoder, classifier, siglip_preprocessing(siglip_dir, encoder.config.image_size), placement
        )

    def describe(self) -> str:
        return "SigLIP video content safety filter"

    @torch.no_grad()
    def classify(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 -> (T,) class index per frame."""
        classes = []
        device = self.placement.device
        with self.placement.use(self.encoder, self.classifier):
            for start in range(0, len(frames), FRAMES_PER_BATCH):
                pixels = self._pixels(frames[start : start + FRAMES_PER_BATCH]).to(device)
                features = self.encoder(pixel_values=pixels).pooler_output
                features = features / features.norm(dim=-1, keepdim=True)
                classes.append(self.classifier(features).argmax(dim=-1).cpu())
        return torch.cat(classes).numpy()

    def check(self, frames: np.ndarray) -> Verdict:
        classes = self.classify(frames)
        unsafe = np.flatnonzero(classes != 0)
        if len(unsafe):
            first = int(unsafe[0])
            name = CLASSES[classes[first]] if classes[first] < len(CLASSES) else f"class {classes[first]}"
            return Verdict(False, self.name, f"{name} at frame {first}")
        return Verdict(True)

    def _pixels(self, frames: np.ndarray) -> torch.Tensor:
        """(n, H, W, 3) uint8 -> (n, 3, h, w) normalised float32, SigLIP's input."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(
            x, size=self.preprocess["size"], mode="bicubic", antialias=True, align_corners=False
        )
        mean = torch.tensor(self.preprocess["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(self.preprocess["std"]).view(1, 3, 1, 1)
        return (x.clamp(0, 1) - mean) / std


def siglip_preprocessing(siglip_dir: Path, image_size: int) -> dict:
    """Input size and normalisation from the snapshot's preprocessor_config.json (SigLIP's defaults:
    the model's image size, mean = std = 0.5)."""
    config_path = siglip_dir / "preprocessor_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    size = config.get("size", {})
    return {
        "size": (int(size.get("height", image_size)), int(size.get("width", image_size))),
        "mean": [float(v) for v in config.get("image_mean", [0.5, 0.5, 0.5])],
        "std": [float(v) for v in config.get("image_std", [0.5, 0.5, 0.5])],
    }
