"""Text2World: Text2Image makes the first frame, Video2World animates it (1 conditioning frame).

Reference: examples/text2world.py. The command and the batch run the same two stage methods; between them
the image goes through storage (so a batch can run the two stages in different shards, and a failure leaves
the intermediate to inspect). The command's intermediate is `<output base>_temp.png`, removed when the video
is written and kept, with a log line, when the video stage fails; the batch's are under the output root
(manifests.tasks.intermediate_url), removed when the task ends. The reference writes a JPEG
(`_temp.jpg`, quality 85, 4:2:0 chroma): the video stage then starts from a lossy first frame, which costs
small saturated objects their color; a lossless PNG gives it the image stage's pixels. The Video2World
input path center-crops it to the video size. Both stages share one T5 encoder.
"""

from __future__ import annotations

import json
import logging
import posixpath
from pathlib import Path

import torch

from cosmos_core import media
from cosmos_core.acceleration import Acceleration
from cosmos_core.parallel import ContextParallel
from cosmos_core.pipelines.base import Generation, resolve_preset, save_generation, sidecar_url
from cosmos_core.pipelines.text2image import Text2ImagePipeline
from cosmos_core.pipelines.video2world import Video2WorldPipeline
from cosmos_core.text_encoder import TextEncoderOptions
from manifests.presets import EMBEDDED
from manifests.requests import Text2WorldRequest
from manifests.tasks import TEXT2WORLD

log = logging.getLogger("cosmos_core")
STAGES = ("image", "video")


def temp_image_url(output_url: str) -> str:
    base, _ext = posixpath.splitext(output_url)
    return f"{base}_temp.png"


class Text2WorldPipeline:
    task = TEXT2WORLD.name

    def __init__(self, text2image, video2world) -> None:
        """Either stage may be None: a batch shard runs one stage and loads its model only."""
        self.text2image = text2image
        self.video2world = video2world
        # Under context parallelism every rank runs both stages (Text2Image replicated, Video2World
        # split); rank 0 alone writes, and the others wait for its image before reading it.
        self.cp = video2world.cp if video2world is not None else None
        self.writes = self.cp is None or self.cp.rank == 0

    @property
    def makes_video(self) -> bool:
        return self.video2world is not None

    @property
    def bundle(self):
        """The models of the video stage when loaded, else of the image stage (device, preset)."""
        return (self.video2world or self.text2image).bundle

    @classmethod
    def load(
        cls,
        model_size: str | None = None,
        resolution: str | int = "720",
        fps: int = 16,
        checkpoint_dir: Path | None = None,
        dit_path_text2image: str | None = None,
        dit_path_video2world: str | None = None,
        device: str | None = None,
        ema: bool = False,
        cp: ContextParallel | None = None,
        acceleration: Acceleration | None = None,
        natten: bool = False,
        text_encoder_options: TextEncoderOptions | None = None,
        stages: tuple[str, ...] = STAGES,
    ) -> Text2WorldPipeline:
        """`natten`: the video stage runs the sparse-attention DiT (the image stage is dense, as the
        reference's). `stages`: which of "image" and "video" to load (a batch shard runs one). The image
        model pairs with the video model: embedded with embedded."""
        video2world = None
        if "video" in stages:
            video2world = Video2WorldPipeline.load(
                model_size,
                resolution,
                fps,
                checkpoint_dir,
                dit_path_video2world,
                device,
                ema=ema,
                cp=cp,
                acceleration=acceleration,
                natten=natten,
                text_encoder_options=text_encoder_options,
            )
        if "image" not in stages:
            return cls(None, video2world)
        if video2world is not None:
            video_preset = video2world.bundle.preset
        else:
            video_preset = resolve_preset(
                "video2world", model_size, checkpoint_dir, resolution, fps, dit_path_video2world, natten
            )
        text2image = Text2ImagePipeline.load(
            EMBEDDED if video_preset.embedded else model_size,
            checkpoint_dir,
            dit_path_text2image,
            device=device,
            text_encoder=video2world.bundle.text_encoder if video2world is not None else None,
            ema=ema,
            acceleration=acceleration,
        )
        return cls(text2image, video2world)

    def generate_image(self, request: Text2WorldRequest, image_url: str) -> Generation:
        """Stage 1: the first frame, written to `image_url` (with its sidecar)."""
        image = self.text2image.generate(request.image_stage())
        if self.writes:
            save_generation(image, image_url)
        if self.cp is not None:
            torch.distributed.barrier(self.cp.group)
        return image

    def generate_video(self, request: Text2WorldRequest, image_url: str) -> Generation:
        """Stage 2: the video from the stage-1 image; its sidecar says how the image was made."""
        video = self.video2world.generate(request.video_stage(image_url))
        video.sidecar["task"] = self.task
        video.sidecar["parameters"] = request.model_dump()
        image = json.loads(media.read_text(sidecar_url(image_url)))
        video.sidecar["image_stage"] = {k: image.get(k) for k in ("model", "timings", "parameters")}
        return video

    def generate_and_save(
        self, request: Text2WorldRequest, output_url: str, image_url: str | None = None
    ) -> Generation:
        """Both stages; the image at `image_url` (default `<output base>_temp.png`), removed at the end."""
        image_url = image_url or temp_image_url(output_url)
        self.generate_image(request, image_url)
        try:
            video = self.generate_video(request, image_url)
            if self.writes:
                save_generation(video, output_url)
        except BaseException:
            log.error("text2world: the video stage failed; the intermediate image is kept at %s", image_url)
            raise
        if self.writes:
            media.remove(image_url)
            media.remove(sidecar_url(image_url))
        return video
