"""Face pixelation: the RetinaFace network (size, keys, anchors), its strict loading from a checkpoint
written here in the official layout, NMS and pixelation on hand-computed cases, the whole detect +
pixelate path on a detector whose head weights force known detections, and the guardrail running it."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from cosmos_core.checkpoints import CheckpointError
from cosmos_core.guardrail import Guardrail, face_blur
from cosmos_core.guardrail.face_blur import VARIANCE, FacePixelator, RetinaFace, anchors, nms, pixelate

FRAME = (64, 96)  # (H, W): a 2 x 3 grid of stride-32 cells
FACE_SIZE = 24  # pixels: the forced detections, one per stride-32 cell, 8 pixels apart
SHIFT = 4  # pixels: the forced detections sit this far right of their cell's centre


def forced_retinaface() -> RetinaFace:
    """Random weights, except the heads: only the first anchor size (256 pixels) of the stride-32 grid
    says "face" (whatever the image), and its boxes shrink to FACE_SIZE, SHIFT right of each cell's centre."""
    network = RetinaFace()
    with torch.no_grad():
        for classes, boxes in zip(network.ClassHead, network.BboxHead, strict=True):
            classes.conv1x1.weight.zero_()
            classes.conv1x1.bias.copy_(torch.tensor([10.0, -10.0, 10.0, -10.0]))  # (bg, face) x 2 sizes
            boxes.conv1x1.weight.zero_()
            boxes.conv1x1.bias.zero_()  # boxes = anchors
        network.ClassHead[2].conv1x1.bias.copy_(torch.tensor([-10.0, 10.0, 10.0, -10.0]))
        # (dx, dy, dw, dh) of the first size: dx * 0.1 * 256 = SHIFT, exp(dw * 0.2) * 256 = FACE_SIZE
        network.BboxHead[2].conv1x1.bias[0] = SHIFT / (VARIANCE[0] * 256)
        network.BboxHead[2].conv1x1.bias[2:4] = math.log(FACE_SIZE / 256) / VARIANCE[1]
    return network


def official_state(network: RetinaFace) -> dict[str, torch.Tensor]:
    """As Resnet50_Final.pth holds it: saved from DataParallel, every key prefixed `module.`."""
    return {f"module.{k}": v for k, v in network.state_dict().items()}


@pytest.fixture(scope="module")
def forced_root(tmp_path_factory) -> Path:
    """A checkpoints root with the forced detector at the official path, in torch's pre-1.6 file format
    (as the 2019 release is)."""
    root = tmp_path_factory.mktemp("checkpoints")
    path = root / face_blur.FACE_CHECKPOINT
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(official_state(forced_retinaface()), path, _use_new_zipfile_serialization=False)
    return root


def expected_faces() -> np.ndarray:
    """(x1, y1, x2, y2) of the forced detections: FACE_SIZE squares centred at 16 + 32 * cell (+ SHIFT)."""
    half = FACE_SIZE // 2
    centres = [(16 + 32 * col + SHIFT, 16 + 32 * row) for row in range(2) for col in range(3)]
    return np.array([(x - half, y - half, x + half, y + half) for x, y in centres])


def assert_blocky(region: np.ndarray, blocks: int = 5) -> None:
    """Constant within each of the blocks x blocks cells (cv2.INTER_NEAREST's split of the region)."""
    h, w = region.shape[:2]
    rows, cols = np.arange(h) * blocks // h, np.arange(w) * blocks // w
    for r in range(blocks):
        for c in range(blocks):
            cell = region[rows == r][:, cols == c]
            assert cell.size and (cell == cell[:1, :1]).all(), (r, c)


# ----------------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------------


def test_retinaface_resnet50_has_the_reference_size_keys_and_anchors():
    with torch.device("meta"):
        network = RetinaFace()
    # ResNet-50 without fc 23,508,032 + FPN 2,099,712 + 3 SSH 1,661,184 + heads 24,672
    assert sum(p.numel() for p in network.parameters()) == 27_293_600
    keys = set(network.state_dict())
    assert {
        "body.conv1.weight",
        "body.layer1.0.downsample.0.weight",
        "body.layer4.2.bn3.running_var",
        "fpn.output1.0.weight",
        "fpn.merge1.1.bias",
        "ssh1.conv3X3.0.weight",
        "ssh1.conv5X5_1.0.weight",
        "ssh3.conv7x7_3.1.running_mean",
        "ClassHead.0.conv1x1.weight",
        "BboxHead.2.conv1x1.bias",
        "LandmarkHead.1.conv1x1.weight",
    } <= keys
    assert not any(k.startswith(("body.fc", "body.avgpool")) for k in keys)

    assert anchors(640, 640).shape == (16800, 4)  # (80^2 + 40^2 + 20^2) cells x 2 sizes
    priors = anchors(*FRAME)
    assert priors.shape == (2 * (8 * 12 + 4 * 6 + 2 * 3), 4)
    torch.testing.assert_close(priors[0], torch.tensor([4 / 96, 4 / 64, 16 / 96, 16 / 64]))
    torch.testing.assert_close(priors[1], torch.tensor([4 / 96, 4 / 64, 32 / 96, 32 / 64]))
    torch.testing.assert_close(priors[2], torch.tensor([12 / 96, 4 / 64, 16 / 96, 16 / 64]))
    torch.testing.assert_close(priors[240], torch.tensor([16 / 96, 16 / 64, 256 / 96, 256 / 64]))

    network = RetinaFace().eval()
    with torch.no_grad():
        offsets, logits = network(torch.randn(1, 3, *FRAME))
    assert offsets.shape == (1, len(priors), 4) and logits.shape == (1, len(priors), 2)


# ----------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------


def test_the_official_layout_loads_strictly(forced_root, tmp_path):
    path = face_blur.present(forced_root)
    assert path == forced_root / "nvidia/Cosmos-Guardrail1/face_blur_filter/Resnet50_Final.pth"
    pixelator = FacePixelator.load(path, torch.device("cpu"), offload=False)
    saved = torch.load(path, weights_only=True)
    loaded = pixelator.network.state_dict()
    assert set(saved) == {f"module.{k}" for k in loaded}
    for key, value in loaded.items():
        assert torch.equal(value, saved[f"module.{key}"]), key
    assert not pixelator.network.training

    # torch's zip format too, and without BatchNorm's step counters (unused at inference)
    state = {k: v for k, v in saved.items() if not k.endswith("num_batches_tracked")}
    good = tmp_path / "good.pth"
    torch.save(state, good)
    FacePixelator.load(good, torch.device("cpu"), offload=False)

    # a renamed key: one error naming the file, the missing key and the unexpected one
    state["module.ssh1.conv7X7_3.0.weight"] = state.pop("module.ssh1.conv7x7_3.0.weight")
    bad = tmp_path / "Resnet50_Final.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError) as error:
        FacePixelator.load(bad, torch.device("cpu"), offload=False)
    message = str(error.value)
    assert str(bad) in message
    assert "missing keys: ssh1.conv7x7_3.0.weight;" in message
    assert message.endswith("unexpected keys: ssh1.conv7X7_3.0.weight")


def test_an_unreadable_face_checkpoint_stops_the_guardrail(tmp_path):
    path = tmp_path / face_blur.FACE_CHECKPOINT
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} could not be read"):
        Guardrail.load(tmp_path)


# ----------------------------------------------------------------------------------------------------
# NMS and pixelation
# ----------------------------------------------------------------------------------------------------


def test_nms_on_a_hand_computed_case():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 9.0, 9.0],  # A: 10 x 10 pixels (inclusive), area 100
            [1.0, 1.0, 10.0, 10.0],  # B: A shifted by 1; A & B: 9 x 9 = 81, IoU 81 / 119 = 0.68
            [5.0, 0.0, 14.0, 9.0],  # C: A & C: 5 x 10 = 50, IoU 1/3; B & C: 6 x 9 = 54, IoU 54 / 146 = 0.37
            [20.0, 20.0, 29.0, 29.0],  # D: apart from all
        ]
    )
    assert nms(boxes, torch.tensor([0.9, 0.8, 0.7, 0.6]), 0.4).tolist() == [0, 2, 3]  # A drops B
    assert nms(boxes, torch.tensor([0.8, 0.9, 0.7, 0.6]), 0.4).tolist() == [1, 2, 3]  # B drops A
    assert nms(boxes, torch.tensor([0.9, 0.8, 0.7, 0.6]), 0.3).tolist() == [0, 3]  # C goes too
    assert nms(boxes, torch.tensor([0.6, 0.8, 0.7, 0.9]), 0.7).tolist() == [3, 1, 2, 0]  # all kept
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.4).tolist() == []


def test_pixelate_averages_2x2_cells_of_a_10x10_region():
    # Shrinking 10 -> 5 bilinearly with half-pixel centres samples between pixels 2i and 2i + 1: each
    # block is the mean of its 2 x 2 cell (rounded half up).
    region = np.random.default_rng(0).integers(0, 256, (10, 10, 3), dtype=np.uint8)
    cells = region.reshape(5, 2, 5, 2, 3).astype(np.float64).mean(axis=(1, 3))
    expected = np.floor(cells + 0.5).astype(np.uint8).repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_array_equal(pixelate(region), expected)

    odd = np.random.default_rng(1).integers(0, 256, (23, 31, 3), dtype=np.uint8)
    assert pixelate(odd).shape == odd.shape
    assert_blocky(pixelate(odd))


# ----------------------------------------------------------------------------------------------------
# Detect + pixelate, and the guardrail
# ----------------------------------------------------------------------------------------------------


def check_pixelated(frames: np.ndarray, out: np.ndarray, faces: list[np.ndarray]) -> None:
    """Every face region blocky (and changed), every pixel outside them untouched."""
    assert out.shape == frames.shape and out.dtype == np.uint8
    for before, after, regions in zip(frames, out, faces, strict=True):
        outside = np.ones(before.shape[:2], dtype=bool)
        for x1, y1, x2, y2 in regions:
            assert_blocky(after[y1:y2, x1:x2])
            assert not np.array_equal(after[y1:y2, x1:x2], before[y1:y2, x1:x2])
            outside[y1:y2, x1:x2] = False
        assert outside.any()
        np.testing.assert_array_equal(after[outside], before[outside])


def test_detected_faces_are_pixelated_and_nothing_else(forced_root):
    pixelator = FacePixelator.load(face_blur.present(forced_root), torch.device("cpu"), offload=False)
    frames = np.random.default_rng(0).integers(0, 256, (2, *FRAME, 3), dtype=np.uint8)
    frames[1, 0, 0] = (200, 100, 50)  # RGB
    original = frames.copy()

    inputs = []
    hook = pixelator.network.register_forward_pre_hook(lambda module, args: inputs.append(args[0]))
    faces = pixelator.detect(frames)
    hook.remove()
    # the network sees BGR minus the BGR mean (104, 117, 123), unscaled
    [x] = inputs
    assert x.shape == (2, 3, *FRAME) and x.dtype == torch.float32
    assert x[1, :, 0, 0].tolist() == [50.0 - 104, 100 - 117, 200 - 123]

    assert len(faces) == 2
    for regions in faces:  # one per stride-32 cell; up to a pixel from float rounding of the decoded box
        found = regions[np.lexsort((regions[:, 0], regions[:, 1]))]
        assert np.abs(found - expected_faces()).max() <= 1

    out = pixelator.postprocess(frames)
    np.testing.assert_array_equal(frames, original)  # the input is not modified
    check_pixelated(frames, out, faces)


def test_the_guardrail_pixelates_faces_when_retinaface_is_present(forced_root, tmp_path, caplog):
    frames = np.random.default_rng(1).integers(0, 256, (3, *FRAME, 3), dtype=np.uint8)
    path = forced_root / face_blur.FACE_CHECKPOINT

    with caplog.at_level(logging.INFO, logger="cosmos_core"):
        rail = Guardrail.load(forced_root, "cpu", offload=True)
    assert f"face pixelation: RetinaFace ({path})" in rail.notes
    assert f"face pixelation: RetinaFace ({path})" in caplog.text
    assert "face-pixelation" in rail.parts()
    [pixelator] = rail.postprocessors
    assert pixelator.placement.offload and pixelator.placement.device == torch.device("cpu")
    check_pixelated(frames, rail.postprocess(frames), pixelator.detect(frames))

    assert Guardrail.load(forced_root, video=False).postprocessors == []  # Text2Image: no video parts

    without = Guardrail.load(tmp_path)
    assert f"face pixelation: no RetinaFace at {tmp_path / face_blur.FACE_CHECKPOINT}" in without.notes
    assert "face-pixelation" not in without.parts()
    assert without.postprocess(frames) is frames
