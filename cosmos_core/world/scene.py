"""Scenes of the procedural world: 1-3 balls or boxes on a gray floor, their motion and their caption.

A scene is drawn from a numpy Generator (`scene_from_seed(seed)` is the same scene on every machine).
Geometry is the embedded model's: 160x96 pixels (16:9), 17 frames at 16 fps (1 + 4k for the VAE).
Coordinates are pixels, x to the right, y down; `track` holds each object's center per frame.

Motion (one per scene, shared by its objects):
  falls  dropped from rest in the air; gravity, then bounces with restitution e in [0.4, 0.6];
  left / right  rolling (balls) or sliding (boxes) along the floor: constant friction deceleration;
  still  resting on the floor.
Objects never overlap horizontally and stay in frame for the whole clip. Captions list the colors
left to right (as the objects stand in the first frame), e.g.
  "A small blue box slides to the left on a gray floor in front of a beige wall."
  "Two balls, a yellow one and a purple one, stay still on a gray floor in front of a white wall."
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import numpy as np

from manifests.presets import EMBEDDED_FPS, EMBEDDED_FRAMES, SIZES

WIDTH, HEIGHT = SIZES["embedded"]["16:9"]
NUM_FRAMES, FPS = EMBEDDED_FRAMES, EMBEDDED_FPS

# Saturated object colors, hues 0, 29, 54, 130, 224, 279 degrees: the detector tells them apart by hue.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "orange": (240, 125, 20),
    "yellow": (235, 215, 30),
    "green": (40, 170, 60),
    "blue": (40, 90, 230),
    "purple": (150, 60, 200),
}
# Backgrounds are unsaturated (saturation < 0.25), so no object color can be mistaken for one.
WALLS: dict[str, tuple[int, int, int]] = {
    "white": (228, 228, 222),
    "beige": (214, 198, 166),
    "pink": (236, 202, 206),
    "dark": (58, 60, 68),
}
FLOOR = (128, 128, 128)
HORIZON = 58  # wall above, floor below
GROUND = (68, 90)  # where objects touch the floor (y), far to near

KINDS = ("ball", "box")
OBJECT_SIZES = {"small": 6.0, "medium": 9.0, "large": 12.0}  # ball radius / box half-side, pixels
MOTIONS = ("falls", "left", "right", "still")

# Training draws scenes from seeds below this one; evaluation from this one on (held out).
HELD_OUT_SEED = 1_000_000_000

GRAVITY = 600.0  # px/s^2
FRICTION = {"ball": 15.0, "box": 50.0}  # rolling / sliding deceleration, px/s^2
MARGIN = 3.0  # pixels kept between an object and the frame's edge
GAP = 6.0  # pixels kept between two objects

NUMBERS = {2: "Two", 3: "Three"}
PLURALS = {"ball": "balls", "box": "boxes"}
# (singular, plural) verb phrases by motion; left/right depend on the kind: balls roll, boxes slide.
VERBS = {
    "falls": ("falls and bounces", "fall and bounce"),
    "still": ("stays still", "stay still"),
    "left": ("{verb}s to the left", "{verb} to the left"),
    "right": ("{verb}s to the right", "{verb} to the right"),
}
MOVE_VERBS = {"ball": "roll", "box": "slide"}


@dataclass(frozen=True, eq=False)  # eq=False: `track` is an array
class WorldObject:
    color: str  # key of COLORS
    kind: str  # "ball" or "box"
    size: str  # key of OBJECT_SIZES
    motion: str  # one of MOTIONS (the scene's)
    ground: float  # y where it rests on the floor (its depth: larger is nearer)
    track: np.ndarray  # (NUM_FRAMES, 2) center x, y per frame, pixels

    @property
    def radius(self) -> float:
        return OBJECT_SIZES[self.size]


@dataclass(frozen=True)
class Scene:
    objects: tuple[WorldObject, ...]  # left to right in the first frame
    motion: str
    wall: str
    seed: int | None = None

    @property
    def kind(self) -> str:
        return self.objects[0].kind

    @property
    def colors(self) -> tuple[str, ...]:
        return tuple(o.color for o in self.objects)

    @property
    def count(self) -> int:
        return len(self.objects)

    @property
    def caption(self) -> str:
        return caption(self)


def caption(scene: Scene) -> str:
    """The scene in one short regular sentence naming count, colors, kind, motion and background."""
    objects, kind = scene.objects, scene.kind
    singular, plural = (v.format(verb=MOVE_VERBS[kind]) for v in VERBS[scene.motion])
    place = f"on a gray floor in front of a {scene.wall} wall."
    if len(objects) == 1:
        size = "" if objects[0].size == "medium" else f"{objects[0].size} "
        return (
            f"{_article(size + objects[0].color).title()} {size}{objects[0].color} {kind} {singular} {place}"
        )
    ones = [f"{_article(o.color)} {o.color} one" for o in objects]
    listing = ", ".join(ones[:-1]) + f" and {ones[-1]}"
    return f"{NUMBERS[len(objects)]} {PLURALS[kind]}, {listing}, {plural} {place}"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption_words() -> list[str]:
    """Every token a caption can contain (lower case, punctuation apart): the text encoder's vocabulary."""
    words = set(COLORS) | set(WALLS) | set(KINDS) | set(PLURALS.values()) | {"small", "large"}
    words |= {n.lower() for n in NUMBERS.values()}
    phrases = [v.format(verb=m) for pair in VERBS.values() for v in pair for m in MOVE_VERBS.values()]
    words |= {w for p in phrases for w in p.split()}
    words |= set("a an one and on gray floor in front of wall , .".split())
    return sorted(words)


# ----------------------------------------------------------------------------------------------------
# Sampling and physics
# ----------------------------------------------------------------------------------------------------


def scene_from_seed(seed: int) -> Scene:
    return dataclasses.replace(sample_scene(np.random.default_rng(seed)), seed=seed)


def sample_scene(rng: np.random.Generator) -> Scene:
    count = int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))
    kind = str(rng.choice(KINDS))
    motion = str(rng.choice(MOTIONS))
    wall = str(rng.choice(list(WALLS)))
    colors = [str(c) for c in rng.choice(list(COLORS), size=count, replace=False)]
    # Several objects are small or medium so that three of them and their motion fit in the frame.
    sizes = [str(rng.choice(list(OBJECT_SIZES) if count == 1 else ["small", "medium"])) for _ in colors]
    radii = np.array([OBJECT_SIZES[s] for s in sizes])
    speed = rng.uniform(50.0, 90.0)
    for attempt in itertools.count():  # rejection sampling of the layout; slower if it does not fit
        slower = speed * 0.8 ** (attempt // 50)
        xs = _sample_layout(rng, radii, _horizontal_track(0.0, kind, motion, slower)[-1])
        if xs is not None:
            speed = slower
            break
    order = np.argsort(xs)
    objects = []
    for i in order:
        r = radii[i]
        ground = rng.uniform(*GROUND)
        x = _horizontal_track(xs[i], kind, motion, speed)
        if motion == "falls":
            drop = rng.uniform(18.0, min(45.0, ground - 2 * r - 2.0))
            height = _fall_track(drop, rng.uniform(0.4, 0.6))
        else:
            height = np.zeros(NUM_FRAMES)
        track = np.stack([x, ground - r - height], axis=1)
        objects.append(WorldObject(colors[i], kind, sizes[i], motion, ground, track))
    return Scene(tuple(objects), motion, wall)


def _sample_layout(rng: np.random.Generator, radii: np.ndarray, shift: float) -> np.ndarray | None:
    """First-frame x of each object, in frame at the start and after `shift`, not overlapping; or None."""
    lo = MARGIN + radii - min(shift, 0.0)
    hi = WIDTH - MARGIN - radii - max(shift, 0.0)
    if np.any(hi < lo):
        return None
    xs = rng.uniform(lo, hi)
    for i in range(len(xs)):
        for j in range(i):
            if abs(xs[i] - xs[j]) < radii[i] + radii[j] + GAP:
                return None
    return xs


def _horizontal_track(x0: float, kind: str, motion: str, speed: float) -> np.ndarray:
    """x per frame: constant deceleration by friction until the object stops."""
    if motion not in ("left", "right"):
        return np.full(NUM_FRAMES, x0)
    t = np.arange(NUM_FRAMES) / FPS
    decel = FRICTION[kind]
    t_stop = speed / decel
    tc = np.minimum(t, t_stop)
    distance = speed * tc - 0.5 * decel * tc**2
    return x0 + (distance if motion == "right" else -distance)


def _fall_track(drop: float, restitution: float, substeps: int = 40) -> np.ndarray:
    """Height above the resting position per frame: dropped from `drop` pixels, bouncing on the floor."""
    dt = 1.0 / (FPS * substeps)
    h, v = drop, 0.0  # v positive upwards
    heights = [h]
    for _ in range(NUM_FRAMES - 1):
        for _ in range(substeps):
            v -= GRAVITY * dt
            h += v * dt
            if h < 0.0:
                h, v = -h * restitution, -v * restitution
                if v < 20.0:  # too slow to bounce visibly: at rest
                    h, v = 0.0, 0.0
        heights.append(h)
    return np.array(heights)
