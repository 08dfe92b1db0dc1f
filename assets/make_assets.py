"""Write the small conditioning assets and the reference's three batch examples under assets/.

    python assets/make_assets.py

The images and the clip are procedural stand-ins for the reference's photographs (same file names,
so its documented commands run as written): a sky-to-floor gradient with colored boxes and a ball;
input3.mp4 is 9 frames of the ball rolling right, for 5-frame conditioning. Under assets/embedded/: the same
kinds of file from the embedded default model's own world (see `embedded`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cosmos_core import media

ROOT = Path(__file__).parent
W, H = 320, 180

PROMPTS = {
    "text2image": [
        (
            "A well-worn broom sweeps across a dusty wooden floor, its bristles gathering crumbs and flecks of debris in swift, rhythmic strokes. Dust motes dance in the sunbeams filtering through the window, glowing momentarily before settling. The quiet swish of straw brushing wood is interrupted only by the occasional creak of old floorboards. With each pass, the floor grows cleaner, restoring a sense of quiet order to the humble room.",
            "output/sweeping-broom-sunlit-floor.jpg",
        ),
        (
            "A laundry machine whirs to life, tumbling colorful clothes behind the foggy glass door. Suds begin to form in a frothy dance, clinging to fabric as the drum spins. The gentle thud of shifting clothes creates a steady rhythm, like a heartbeat of the home. Outside the machine, a quiet calm fills the room, anticipation building for the softness and warmth of freshly laundered garments.",
            "output/laundry-machine-spinning-clothes.jpg",
        ),
        (
            "A robotic arm tightens a bolt beneath the hood of a car, its tool head rotating with practiced torque. The metal-on-metal sound clicks into place, and the arm pauses briefly before retracting with a soft hydraulic hiss. Overhead lights reflect off the glossy vehicle surface, while scattered tools and screens blink in the background—a garage scene reimagined through the lens of precision engineering.",
            "output/robotic-arm-car-assembly.jpg",
        ),
    ],
    "video2world": [
        (
            "A nighttime city bus terminal gradually shifts from stillness to subtle movement. At first, multiple double-decker buses are parked under the glow of overhead lights, with a central bus labeled '87D' facing forward and stationary. As the video progresses, the bus in the middle moves ahead slowly, its headlights brightening the surrounding area and casting reflections onto adjacent vehicles. The motion creates space in the lineup, signaling activity within the otherwise quiet station. It then comes to a smooth stop, resuming its position in line. Overhead signage in Chinese characters remains illuminated, enhancing the vibrant, urban night scene.",
            "output/bus-terminal-night-movement.mp4",
        ),
        (
            "As the red light shifts to green, the red bus at the intersection begins to move forward, its headlights cutting through the falling snow. The snowy tire tracks deepen as the vehicle inches ahead, casting fresh lines onto the slushy road. Around it, streetlights glow warmer, illuminating the drifting flakes and wet reflections on the asphalt. Other cars behind start to edge forward, their beams joining the scene. The stillness of the urban street transitions into motion as the quiet snowfall is punctuated by the slow advance of traffic through the frosty city corridor.",
            "output/snowy-intersection-traffic.mp4",
        ),
        (
            "In the later moments of the video, the female worker in the front, dressed in a white coat and hairnet, performs a repetitive yet precise task. She scoops golden granular material from a wide jar and steadily pours it into the next empty glass bottle on the conveyor belt. Her hand moves with practiced control as she aligns the scoop over each container, ensuring an even fill. The sequence highlights her focused attention and consistent motion, capturing the shift from preparation to active material handling as the production line advances bottle by bottle.",
            "output/factory-worker-bottle-filling.mp4",
        ),
    ],
    "text2world": [
        (
            "An autonomous welding robot arm operating inside a modern automotive factory, sparks flying as it welds a car frame with precision under bright overhead lights.",
            "output/welding-robot-factory.mp4",
        ),
        (
            "A wooden sailboat gently moves across a tranquil lake, its sail billowing slightly with the breeze. The water ripples around the hull as the boat glides forward. Mountains are visible in the background under a clear blue sky with scattered clouds.",
            "output/sailboat-mountain-lake.mp4",
        ),
        (
            "A modern kitchen scene where a stand mixer is actively blending cake batter in a glass bowl. The beater rotates steadily, incorporating ingredients as the mixture swirls. A light dusting of flour is visible on the countertop, and sunshine streams in through a nearby window.",
            "output/kitchen-mixer-baking.mp4",
        ),
    ],
}


def scene(seed: int, ball_x: float) -> np.ndarray:
    """(H, W, 3) uint8: gradient backdrop, a floor, two boxes and a ball at horizontal position ball_x."""
    rng = np.random.default_rng(seed)
    top, bottom = rng.integers(20, 230, 3), rng.integers(20, 230, 3)
    ramp = np.linspace(0, 1, H)[:, None, None]
    img = (top * (1 - ramp) + bottom * ramp).repeat(W, axis=1)
    img[int(H * 0.75) :] = (90, 90, 95)  # floor
    for _ in range(2):
        x, y = rng.integers(10, W - 60), rng.integers(40, int(H * 0.75) - 40)
        img[y : y + 40, x : x + 50] = rng.integers(0, 255, 3)
    yy, xx = np.mgrid[:H, :W]
    cx, cy, r = ball_x * W, H * 0.75 - 16, 15
    img[(xx - cx) ** 2 + (yy - cy) ** 2 < r**2] = (220, 40, 40)
    return img.clip(0, 255).astype(np.uint8)


def main() -> None:
    for i in range(3):
        media.write_image(str(ROOT / "video2world" / f"input{i}.jpg"), scene(i, 0.3 + 0.2 * i), quality=90)
    clip = np.stack([scene(3, 0.2 + 0.05 * t) for t in range(9)])
    media.write_video(str(ROOT / "video2world" / "input3.mp4"), clip, fps=16)
    for command, items in PROMPTS.items():
        key = "output_image" if command == "text2image" else "output_video"
        batch = [{"prompt": p, key: out} for p, out in items]
        if command == "video2world":
            batch = [{"input_video": f"assets/video2world/input{i}.jpg", **b} for i, b in enumerate(batch)]
        (ROOT / command / "batch_example.json").write_text(
            json.dumps(batch, indent=4, ensure_ascii=False) + "\n"
        )


# The embedded default model's own world (cosmos_core/world), for running the examples without checkpoints:
# held-out scenes (never trained on), their captions as prompts. The reference's files above stay for real
# checkpoints: the embedded model cannot represent them (its VAE round trip of input0.jpg is about 15 dB).
EMBEDDED = ROOT / "embedded"


def embedded() -> None:
    from cosmos_core.world import render, scene_from_seed
    from cosmos_core.world.scene import HELD_OUT_SEED, caption

    scenes = [scene_from_seed(HELD_OUT_SEED + k) for k in range(7)]
    for i in range(3):
        media.write_image(str(EMBEDDED / "video2world" / f"input{i}.jpg"), render(scenes[i])[0], quality=95)
    media.write_video(str(EMBEDDED / "video2world" / "input3.mp4"), render(scenes[3])[:9], fps=16)
    video = [
        {
            "input_video": f"assets/embedded/video2world/input{i}.jpg",
            "prompt": caption(scenes[i]),
            "output_video": f"output/embedded-video2world-{i}.mp4",
        }
        for i in range(3)
    ]
    world = [
        {"prompt": caption(scenes[4 + i]), "output_video": f"output/embedded-text2world-{i}.mp4"}
        for i in range(3)
    ]
    for command, batch in (("video2world", video), ("text2world", world)):
        (EMBEDDED / command / "batch_example.json").write_text(json.dumps(batch, indent=4) + "\n")


if __name__ == "__main__":
    main()
    embedded()
