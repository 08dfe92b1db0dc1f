"""Text2World: Text2Image makes the first frame, Video2World animates it (1 conditioning frame).

Reference: examples/text2world.py. The image goes through storage as `<output base>_temp.png` (so a
batch can run the two stages apart, and a failure leaves the intermediate to inspect): it is removed
when the video is written, and kept, with a log line, when the video stage fails. The reference writes
a JPEG (`_temp.jpg`, quality 85, 4:2:0 chroma): the video stage then starts from a lossy first frame,
which costs small saturated objects their color; a lossless PNG gives it the image stage's pixels.
The Video2World input path center-crops it to the video size. Both stages share one T5 encoder.
"""

from __future__ import annotations

import logging
import posixpath
from pathlib import Path

import torch

from cosmos_core import media
from cosmos_core.acceleration import Acceleration
from cosmos_core.parallel import ContextParallel
from cosmos_core.pipelines.base import Generation, save_generation
from cosmos_core.pipelines.text2image import Text2ImagePipeline
from cosmos_core.pipelines.video2world import Video2WorldPipeline
from cosmos_core.requests import Text2ImageRequest, Text2WorldRequest, Video2WorldRequest
from cosmos_core.text_encoder import TextEncoderOptions
from manifests.tasks import TEXT2WORLD

log = logging.getLogger("cosmos_core")


def temp_image_url(output_url: str) -> str:
    base, _ext = posixpath.splitext(output_url)
    return f"{base}_temp.png"


def image_request(request: Text2WorldRequest) -> Text2ImageRequest:
    """Stage 1's request: the reference gives the image stage the video's negative prompt, guidance 4."""
    return Text2ImageRequest(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        aspect_ratio=request.aspect_ratio,
        guidance=request.image_guidance,
        seed=request.seed,
        steps=request.steps,
        step_cache=request.step_cache,
    )


def video_request(request: Text2WorldRequest, image_url: str) -> Video2WorldRequest:
    """Stage 2's request: Video2World from the stage-1 image, one conditioning frame."""
    return Video2WorldRequest(
        prompt=request.prompt,
        input_path=image_url,
        negative_prompt=request.negative_prompt,
        aspect_ratio=request.aspect_ratio,
        num_conditional_frames=1,
        guidance=request.guidance,
        seed=request.seed,
        steps=request.steps,
        step_cache=request.step_cache,
    )


class Text2WorldPipeline:
    task = TEXT2WORLD.name

    def __init__(self, text2image: Text2ImagePipeline, video2world: Video2WorldPipeline) -> None:
        self.text2image = text2image
        self.video2world = video2world
        # Under context parallelism every rank runs both stages (Text2Image replicated, Video2World
        # split); rank 0 alone writes, and the others wait for its image before reading it.
        self.cp = video2world.cp
        self.writes = self.cp is None or self.cp.rank == 0

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
    ) -> Text2WorldPipeline:
        """`natten`: the video stage runs the sparse-attention DiT (the image stage is dense, as the
        reference's)."""
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
        image_size = "embedded" if video2world.bundle.preset.embedded else model_size
        text2image = Text2ImagePipeline.load(
            image_size,
            checkpoint_dir,
            dit_path_text2image,
            device=device,
            text_encoder=video2world.bundle.text_encoder,
            ema=ema,
            acceleration=acceleration,
        )
        return cls(text2image, video2world)

    def generate_image(self, request: Text2WorldRequest, image_url: str) -> Generation:
        """Stage 1: the first frame, written to `image_url` (with its sidecar)."""
        image = self.text2image.generate(image_request(request))
        if self.writes:
            save_generation(image, image_url)
        if self.cp is not None:
            torch.distributed.barrier(self.cp.group)
        return image

    def generate_video(self, request: Text2WorldRequest, image_url: str) -> Generation:
        """Stage 2: the video from the stage-1 image."""
        video = self.video2world.generate(video_request(request, image_url))
        video.sidecar["task"] = self.task
        video.sidecar["parameters"] = request.model_dump()
        return video

    def generate_and_save(self, request: Text2WorldRequest, output_url: str) -> Generation:
        image_url = temp_image_url(output_url)
        image = self.generate_image(request, image_url)
        try:
            video = self.generate_video(request, image_url)
            video.sidecar["image_stage"] = {k: image.sidecar[k] for k in ("model", "timings", "parameters")}
            if self.writes:
                save_generation(video, output_url)
        except BaseException:
            log.error("text2world: the video stage failed; the intermediate image is kept at %s", image_url)
            raise
        if self.writes:
            media.remove(image_url)
            media.remove(f"{image_url}.json")
        return video
