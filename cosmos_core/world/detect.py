"""Finding the world's objects in frames by color: what the metrics use to check generated outputs.

Object pixels are the saturated ones (backgrounds, floor and shadows are gray or pastel); each gets the
palette color of nearest hue, so shading and slight color shifts do not matter. Connected pixels of
one color (4-neighbours) with at least MIN_AREA pixels make one detection. Tracks follow each color's
largest detection through a video; its motion is read from how the tracks move.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosmos_core.world.scene import COLORS

PALETTE = tuple(COLORS)
MIN_SATURATION = 0.45  # objects ~0.7-0.9, backgrounds < 0.25, object/background edges in between
MIN_VALUE = 0.25
MAX_HUE_DISTANCE = 25.0  # degrees from the nearest palette hue (neighbours are >= 25 apart)
MIN_AREA = 20  # pixels; the smallest object covers ~100
MIN_MOVE = 8.0  # pixels of displacement that count as motion


@dataclass(frozen=True)
class Detection:
    color: str
    area: int  # pixels
    x: float  # centroid, pixels
    y: float


def hue_saturation_value(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB -> hue in degrees [0, 360), saturation and value in [0, 1], each (H, W)."""
    rgb = frame.astype(np.float32) / 255.0
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    high, low = rgb.max(-1), rgb.min(-1)
    delta = np.maximum(high - low, 1e-6)
    hue = np.where(
        high == r, ((g - b) / delta) % 6.0, np.where(high == g, (b - r) / delta + 2.0, (r - g) / delta + 4.0)
    )
    return hue * 60.0, (high - low) / np.maximum(high, 1e-6), high


def _palette_hues() -> np.ndarray:
    colors = np.array([COLORS[c] for c in PALETTE], np.uint8)[None]
    return hue_saturation_value(colors)[0][0]


def color_classes(frame: np.ndarray) -> np.ndarray:
    """(H, W) index into PALETTE of each object pixel, -1 elsewhere."""
    hue, saturation, value = hue_saturation_value(frame)
    distance = np.abs(hue[..., None] - _palette_hues())
    distance = np.minimum(distance, 360.0 - distance)  # (H, W, colors), around the hue circle
    nearest = distance.argmin(-1)
    is_object = (saturation >= MIN_SATURATION) & (value >= MIN_VALUE)
    is_object &= distance.min(-1) <= MAX_HUE_DISTANCE
    return np.where(is_object, nearest, -1)


def connected_components(classes: np.ndarray) -> np.ndarray:
    """(H, W) component label per pixel (the flat index of its first pixel), -1 where classes < 0.

    Neighbouring pixels (4-connectivity) of the same class share a label. Labels spread by taking the
    neighbours' minimum, with pointer jumping (a label is a pixel: take that pixel's label) so that it
    converges in a few dozen numpy passes.
    """
    h, w = classes.shape
    none = h * w
    fg = classes >= 0
    labels = np.where(fg, np.arange(h * w).reshape(h, w), none)
    down = fg[:-1] & (classes[:-1] == classes[1:])  # pixel (i, j) joins (i + 1, j)
    right = fg[:, :-1] & (classes[:, :-1] == classes[:, 1:])  # pixel (i, j) joins (i, j + 1)
    while True:
        new = labels.copy()
        new[:-1] = np.minimum(new[:-1], np.where(down, labels[1:], none))
        new[1:] = np.minimum(new[1:], np.where(down, labels[:-1], none))
        new[:, :-1] = np.minimum(new[:, :-1], np.where(right, labels[:, 1:], none))
        new[:, 1:] = np.minimum(new[:, 1:], np.where(right, labels[:, :-1], none))
        new = np.append(new.ravel(), none)[new]  # pointer jumping
        if np.array_equal(new, labels):
            return np.where(fg, labels, -1)
        labels = new


def detect(frame: np.ndarray, min_area: int = MIN_AREA) -> list[Detection]:
    """The objects in one (H, W, 3) uint8 frame, left to right."""
    classes = color_classes(frame)
    labels = connected_components(classes)
    ids, first, inverse, areas = np.unique(
        labels.ravel(), return_index=True, return_inverse=True, return_counts=True
    )
    ys, xs = np.divmod(np.arange(labels.size), labels.shape[1])
    sum_x = np.bincount(inverse, weights=xs + 0.5)
    sum_y = np.bincount(inverse, weights=ys + 0.5)
    found = [
        Detection(PALETTE[classes.flat[first[k]]], int(areas[k]), sum_x[k] / areas[k], sum_y[k] / areas[k])
        for k in range(len(ids))
        if ids[k] >= 0 and areas[k] >= min_area
    ]
    return sorted(found, key=lambda d: d.x)


def tracks(video: np.ndarray, min_area: int = MIN_AREA) -> dict[str, np.ndarray]:
    """Per color seen, (T, 2) centroid x, y of its largest detection in each frame (NaN where absent)."""
    out: dict[str, np.ndarray] = {}
    for t, frame in enumerate(video):
        largest: dict[str, Detection] = {}
        for d in detect(frame, min_area):
            if d.color not in largest or d.area > largest[d.color].area:
                largest[d.color] = d
        for color, d in largest.items():
            out.setdefault(color, np.full((len(video), 2), np.nan))[t] = (d.x, d.y)
    return out


def classify_motion(video: np.ndarray) -> str:
    """'falls', 'left', 'right' or 'still' from the tracks seen in at least half the frames; 'none' if none.

    Horizontal displacement (first two to last two positions) beats the largest drop below the start
    when it is larger; under MIN_MOVE pixels either way is 'still'.
    """
    dxs, drops = [], []
    for track in tracks(video).values():
        seen = track[~np.isnan(track[:, 0])]
        if len(seen) < len(video) / 2:
            continue
        start, end = seen[:2].mean(0), seen[-2:].mean(0)
        dxs.append(end[0] - start[0])
        drops.append(seen[:, 1].max() - start[1])
    if not dxs:
        return "none"
    dx, drop = float(np.mean(dxs)), float(np.mean(drops))
    if abs(dx) >= MIN_MOVE and abs(dx) >= drop:
        return "right" if dx > 0 else "left"
    return "falls" if drop >= MIN_MOVE else "still"
