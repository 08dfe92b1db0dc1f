"""What the embedded default model does, as pictures for the README: a contact sheet and a few GIFs.

    python scripts/embedded_showcase.py [--out docs/embedded] [--scenes 8] [--gifs 4]

Text2World with default settings on the first `--scenes` held-out prompts (scenes the model never trained
on; no picking): contact-sheet.png has one row per prompt, frames 0, 4, 8, 12 and 16 of its video, and
beside them the world's own rendering of that prompt's scene (frames 0 and 16) for comparison.
text2world-<i>.gif are the first `--gifs` videos. prompts.md lists the prompts row by row.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from cosmos_core import media
from cosmos_core.pipelines import Text2WorldPipeline
from cosmos_core.world import render, scene_from_seed
from cosmos_core.world.scene import HELD_OUT_SEED
from manifests.requests import Text2WorldRequest

SHEET_FRAMES = (0, 4, 8, 12, 16)
GAP = 4  # pixels of white between tiles


def ffmpeg(args: list[str], stdin: bytes | None = None) -> None:
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args]
    subprocess.run(command, input=stdin, check=True)


def write_gif(path: Path, frames: np.ndarray, fps: int, scale: int = 2) -> None:
    """An animated GIF with a palette made for the clip, pixels enlarged `scale` times."""
    _, h, w, _ = frames.shape
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
    graph = f"scale=iw*{scale}:ih*{scale}:flags=neighbor,split[a][b];[a]palettegen[p];[b][p]paletteuse"
    ffmpeg([*raw, "-filter_complex", graph, "-loop", "0", str(path)], frames.tobytes())


def tile_row(tiles: list[np.ndarray]) -> np.ndarray:
    h = tiles[0].shape[0]
    gap = np.full((h, GAP, 3), 255, np.uint8)
    parts = [part for tile in tiles for part in (tile, gap)][:-1]
    return np.concatenate(parts, axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("docs/embedded"))
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--gifs", type=int, default=4)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pipeline = Text2WorldPipeline.load(model_size="embedded")
    rows, prompts = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.scenes):
            scene = scene_from_seed(HELD_OUT_SEED + i)
            request = Text2WorldRequest(prompt=scene.caption, seed=i)
            video = pipeline.generate_and_save(request, f"{tmp}/{i}.mp4").frames  # (T, H, W, 3)
            truth = render(scene)
            white = np.full((video.shape[1], 3 * GAP, 3), 255, np.uint8)
            generated = tile_row([video[t] for t in SHEET_FRAMES])
            rows.append(np.concatenate([generated, white, tile_row([truth[0], truth[-1]])], axis=1))
            prompts.append(scene.caption)
            if i < args.gifs:
                write_gif(args.out / f"text2world-{i}.gif", video, fps=16)
            print(f"{i}: {scene.caption}", flush=True)
    gap = np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)
    sheet = np.concatenate([part for row in rows for part in (row, gap)][:-1], axis=0)
    media.write_image(str(args.out / "contact-sheet.png"), sheet)
    lines = [f"{i + 1}. {prompt}" for i, prompt in enumerate(prompts)]
    (args.out / "prompts.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}/contact-sheet.png, {args.gifs} GIFs and prompts.md")


if __name__ == "__main__":
    main()
