"""Evaluate the embedded model through the real pipelines on held-out scenes of the procedural world.

    python scripts/evaluate_embedded.py                     # 100 held-out scenes, the three tasks
    python scripts/evaluate_embedded.py --limit 10 --steps 35 --weights runs/export

For each held-out scene (seeds from HELD_OUT_SEED on, never trained on), with its caption as prompt and
the commands' defaults otherwise (35 steps, guidance 4 / 7, default negative prompts, 16:9):
  text2image   the image:                                   colors, count
  video2world  from the scene's first rendered frame:       motion, first-frame PSNR against that frame
               (every 4th scene from its first 5 frames, an .mp4; no PSNR for those)
  text2world   the video:                                   colors, count, motion
The detector (cosmos_core/world/detect.py) reads colors, count and motion. Color and count accuracy are
over the text-conditioned outputs (text2image, text2world), motion accuracy over the videos. The last
line printed is `color_accuracy=0.xx count_accuracy=0.xx motion_accuracy=0.xx first_frame_psnr=xx.x`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from cosmos_core import media
from cosmos_core.pipelines import Text2ImagePipeline, Text2WorldPipeline, Video2WorldPipeline
from cosmos_core.world import render, scene_from_seed
from cosmos_core.world.metrics import Score, accuracy, measure_image, measure_video, psnr, score, summary_line
from cosmos_core.world.scene import HELD_OUT_SEED
from manifests.requests import Text2ImageRequest, Text2WorldRequest, Video2WorldRequest

DEFAULT_STEPS = Text2ImageRequest.model_fields["steps"].default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=100, help="number of held-out scenes")
    p.add_argument("--first", type=int, default=0, help="first held-out scene (offset from HELD_OUT_SEED)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="sampling steps of every generation")
    p.add_argument("--tasks", default="text2image,video2world,text2world", help="comma-separated subset")
    p.add_argument("--image_guidance", type=float, help="guidance of text2image and text2world's image stage")
    p.add_argument(
        "--video_guidance", type=float, help="guidance of video2world and text2world's video stage"
    )
    p.add_argument(
        "--weights", type=Path, help="shipped-layout folder to evaluate instead of cosmos_core/embedded"
    )
    p.add_argument("--device", help="cuda, cpu, ... (default: the GPU if there is one)")
    p.add_argument("--json", type=Path, help="write every scene's measurements here")
    p.add_argument("--keep", type=Path, help="keep the generated files in this folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tasks = set(args.tasks.split(","))
    if args.weights:
        os.environ["COSMOS_EMBEDDED_DIR"] = str(args.weights)  # read by cosmos_core.models
    video2world = Video2WorldPipeline.load(model_size="embedded", device=args.device)
    text2image = Text2ImagePipeline.load(
        model_size="embedded", device=args.device, text_encoder=video2world.bundle.text_encoder
    )
    text2world = Text2WorldPipeline(text2image, video2world)
    if not video2world.bundle.identity.get("trained"):
        print("warning: no trained embedded weights found; evaluating the random-initialised model")

    # Guidance: the commands' defaults unless given.
    image_guidance = {} if args.image_guidance is None else {"guidance": args.image_guidance}
    world_image_guidance = {} if args.image_guidance is None else {"image_guidance": args.image_guidance}
    video_guidance = {} if args.video_guidance is None else {"guidance": args.video_guidance}
    scores: dict[str, list[Score]] = {task: [] for task in ("text2image", "video2world", "text2world")}
    psnrs: list[float] = []
    records = []
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(args.first, args.first + args.limit):
            scene = scene_from_seed(HELD_OUT_SEED + i)
            record = {"seed": HELD_OUT_SEED + i, "prompt": scene.caption}
            if "text2image" in tasks:
                request = Text2ImageRequest(prompt=scene.caption, seed=i, steps=args.steps, **image_guidance)
                image = text2image.generate(request)
                scores["text2image"].append(score(scene, measure_image(image.frames[0])))
                record["text2image"] = scores["text2image"][-1].__dict__
                if args.keep:
                    media.write_image(str(folder / f"{i:04d}_text2image.jpg"), image.frames[0])
            if "video2world" in tasks:
                clip = render(scene)
                five = i % 4 == 3
                condition = folder / (f"{i:04d}_condition.mp4" if five else f"{i:04d}_condition.png")
                if five:
                    media.write_video(str(condition), clip[:5], 16)
                else:
                    media.write_image(str(condition), clip[0])
                request = Video2WorldRequest(
                    prompt=scene.caption,
                    input_path=str(condition),
                    num_conditional_frames=5 if five else 1,
                    seed=i,
                    steps=args.steps,
                    **video_guidance,
                )
                video = video2world.generate(request)
                scores["video2world"].append(score(scene, measure_video(video.frames)))
                record["video2world"] = scores["video2world"][-1].__dict__
                if not five:
                    psnrs.append(psnr(video.frames[0], clip[0]))
                    record["first_frame_psnr"] = round(psnrs[-1], 2)
                if args.keep:
                    media.write_video(str(folder / f"{i:04d}_video2world.mp4"), video.frames, video.fps)
            if "text2world" in tasks:
                request = Text2WorldRequest(
                    prompt=scene.caption, seed=i, steps=args.steps, **video_guidance, **world_image_guidance
                )
                video = text2world.generate_and_save(request, str(folder / f"{i:04d}_text2world.mp4"))
                scores["text2world"].append(score(scene, measure_video(video.frames)))
                record["text2world"] = scores["text2world"][-1].__dict__
            records.append(record)
            print(json.dumps(record), flush=True)

    for task, task_scores in scores.items():
        if task_scores:
            accuracies = {f: accuracy(task_scores, f) for f in ("color", "count", "motion")}
            print(
                f"{task}: {len(task_scores)} scenes, "
                + ", ".join(f"{k} {v:.2f}" for k, v in accuracies.items())
            )
    print(f"{len(records)} scenes in {time.monotonic() - start:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1) + "\n")
    text_conditioned = scores["text2image"] + scores["text2world"]
    videos = scores["video2world"] + scores["text2world"]
    # color/count from the text-conditioned outputs, motion from the videos (Score.motion is None on images)
    summary = [Score(s.color, s.count, None) for s in text_conditioned]
    summary += [Score(None, None, s.motion) for s in videos]
    print(summary_line(summary, psnrs))


if __name__ == "__main__":
    main()
