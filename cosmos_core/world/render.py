"""Drawing a scene: (NUM_FRAMES, HEIGHT, WIDTH, 3) uint8 RGB frames, numpy only.

Flat shading (balls lit from the top left, boxes with a darker right side), a soft shadow under each
object and gently graded wall and floor. Drawn at 2x resolution and averaged down, so edges are
anti-aliased. Shading only scales an object's color, which keeps its hue for the detector.
"""

from __future__ import annotations

import numpy as np

from cosmos_core.world.scene import COLORS, FLOOR, HEIGHT, HORIZON, NUM_FRAMES, WALLS, WIDTH, Scene

SUPERSAMPLE = 2


def render(scene: Scene, num_frames: int = NUM_FRAMES) -> np.ndarray:
    """The scene's clip, or its first `num_frames` frames: (num_frames, HEIGHT, WIDTH, 3) uint8."""
    s = SUPERSAMPLE
    background = _background(scene.wall)
    nearest_last = sorted(scene.objects, key=lambda o: o.ground)
    frames = np.empty((num_frames, HEIGHT * s, WIDTH * s, 3), np.float32)
    for i in range(num_frames):
        canvas = frames[i]
        canvas[:] = background
        for obj in scene.objects:
            x, y = obj.track[i]
            height = obj.ground - obj.radius - y
            _shadow(canvas, x, obj.ground, obj.radius / (1.0 + height / 40.0))
        for obj in nearest_last:
            x, y = obj.track[i]
            draw = _ball if obj.kind == "ball" else _box
            draw(canvas, x, y, obj.radius, np.array(COLORS[obj.color], np.float32))
    video = sum(frames[:, i::s, j::s] for i in range(s) for j in range(s)) / s**2  # box filter, (T, H, W, 3)
    return np.clip(np.rint(video), 0, 255).astype(np.uint8)


def _background(wall: str) -> np.ndarray:
    """(HEIGHT*s, WIDTH*s, 3) float32: the wall darkening towards the top, the floor lightening towards us."""
    y = (np.arange(HEIGHT * SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    wall_shade = 0.9 + 0.1 * y / HORIZON
    floor_shade = 0.92 + 0.12 * (y - HORIZON) / (HEIGHT - HORIZON)
    rows = np.where(
        (y < HORIZON)[:, None],
        np.array(WALLS[wall], np.float32) * wall_shade[:, None],
        np.array(FLOOR, np.float32) * floor_shade[:, None],
    )
    return np.broadcast_to(rows[:, None], (len(y), WIDTH * SUPERSAMPLE, 3)).astype(np.float32)


def _window(canvas: np.ndarray, x: float, y: float, rx: float, ry: float):
    """The canvas rows/columns around (x, y) +- (rx, ry), and their pixel-center coordinates (pixels)."""
    s = SUPERSAMPLE
    h, w = canvas.shape[:2]
    r0, r1 = max(0, int((y - ry - 1) * s)), min(h, int((y + ry + 1) * s) + 1)
    c0, c1 = max(0, int((x - rx - 1) * s)), min(w, int((x + rx + 1) * s) + 1)
    ys = (np.arange(r0, r1) + 0.5)[:, None] / s - y
    xs = (np.arange(c0, c1) + 0.5)[None, :] / s - x
    return canvas[r0:r1, c0:c1], xs, ys


def _ball(canvas: np.ndarray, x: float, y: float, r: float, color: np.ndarray) -> None:
    patch, dx, dy = _window(canvas, x, y, r, r)
    inside = dx**2 + dy**2 <= r**2
    light = np.minimum(np.hypot(dx + 0.4 * r, dy + 0.4 * r) / (1.4 * r), 1.0)
    shade = 1.0 - 0.3 * light**2
    patch[inside] = (color * shade[..., None])[inside]


def _box(canvas: np.ndarray, x: float, y: float, half: float, color: np.ndarray) -> None:
    patch, dx, dy = _window(canvas, x, y, half, half)
    inside = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    shade = np.where(dx > 0.5 * half, 0.8, 1.0) + 0.0 * dy
    patch[inside] = (color * shade[..., None])[inside]


def _shadow(canvas: np.ndarray, x: float, ground: float, r: float) -> None:
    rx, ry = 1.1 * r, 0.3 * r
    patch, dx, dy = _window(canvas, x, ground, rx, ry)
    inside = (dx / rx) ** 2 + (dy / ry) ** 2 <= 1.0
    patch[inside] *= 0.72
