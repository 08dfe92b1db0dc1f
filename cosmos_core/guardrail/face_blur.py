"""Face pixelation (the reference's RetinaFace post-processor): checkpoint discovery only, for now.

Reference: cosmos_predict2/auxiliary/guardrail/face_blur_filter/ runs RetinaFace (ResNet50 backbone, FPN,
SSH context modules; the `retinaface` package, weights face_blur_filter/Resnet50_Final.pth) on every
frame, keeps detections with confidence >= 0.7 after NMS 0.4 and at least 20x20 pixels, and pixelates
each face to 5x5 blocks. The detector is not re-implemented in this version: when its checkpoint is
present the guardrail says so in one log line, and faces are not pixelated.
"""

from __future__ import annotations

from pathlib import Path

FACE_CHECKPOINT = Path("nvidia/Cosmos-Guardrail1/face_blur_filter/Resnet50_Final.pth")


def present(checkpoint_dir: Path | None) -> Path | None:
    if checkpoint_dir is None:
        return None
    path = checkpoint_dir / FACE_CHECKPOINT
    return path if path.is_file() else None
