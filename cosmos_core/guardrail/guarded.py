"""A pipeline with the guardrail and the prompt refiner around it, as the reference runs them.

For each request (reference: cosmos_predict2/pipelines/video2world.py, `__call__`):
1. the prompt passes the text checks (Text2Image, Video2World, Text2World's image stage);
2. Video2World only (and Text2World's video stage): the refiner rewrites the prompt from the conditioning
   image or video, and the refined prompt passes the text checks again; it replaces the prompt for T5,
   and the sidecar keeps both (`prompt`, `refined_prompt`);
3. the pipeline generates;
4. a video passes the video checks, then the post-processors (face pixelation, when present).
A refusal raises GuardrailBlocked: nothing is written for that request.

Ours, not the reference's: an empty Video2World prompt is not refused by the text checks (the conditioning
input carries the content; Video2World manifests allow it) -- the refined prompt, if any, is checked;
the refined prompt of an (input, prompt) pair is computed once and reused (best-of-N seeds).
"""

from __future__ import annotations

import logging
from pathlib import Path

from cosmos_core.guardrail.runner import Guardrail
from cosmos_core.models import default_checkpoint_dir
from cosmos_core.pipelines import Text2WorldPipeline
from cosmos_core.reason1 import PromptRefiner, load_reason1, reason1_dir

log = logging.getLogger("cosmos_core")


class GuardedPipeline:
    """Wraps Text2ImagePipeline or Video2WorldPipeline: `generate(request) -> Generation` as theirs, and
    the attributes the callers read (task, makes_video, bundle, cp)."""

    def __init__(
        self, pipeline, guardrail: Guardrail | None, refiner=None, check_prompt: bool = True
    ) -> None:
        self.pipeline = pipeline
        self.task = pipeline.task
        self.makes_video = pipeline.makes_video
        self.bundle = pipeline.bundle
        self.cp = getattr(pipeline, "cp", None)
        self.guardrail = guardrail
        self.refiner = refiner if pipeline.makes_video else None
        self.check_prompt = check_prompt
        self._refined: dict[tuple[str, str], str] = {}

    def generate(self, request):
        prompt = request.prompt
        if self.guardrail is not None and self.check_prompt:
            if prompt.strip() or not self.makes_video:  # an empty Video2World prompt: the input speaks
                self.guardrail.check_prompt(prompt)
        refined = None
        if self.refiner is not None:
            refined = self.refine(request.input_path, prompt)
            if self.guardrail is not None:
                self.guardrail.check_prompt(refined, stage="refined prompt")
            request = request.model_copy(update={"prompt": refined})

        generation = self.pipeline.generate(request)

        if refined is not None:
            generation.sidecar["prompt"] = prompt
            generation.sidecar["refined_prompt"] = refined
            generation.sidecar.setdefault("parameters", {})["prompt"] = prompt
        if self.guardrail is not None and not generation.is_image:
            self.guardrail.check_video(generation.frames)
            generation.frames = self.guardrail.postprocess(generation.frames)
        generation.sidecar["guardrail"] = self.guardrail.parts() if self.guardrail is not None else "disabled"
        return generation

    def refine(self, input_path: str, prompt: str) -> str:
        key = (input_path, prompt)
        if key not in self._refined:
            cp = getattr(self.pipeline, "cp", None)
            if cp is None:
                self._refined[key] = self.refiner.refine(input_path, prompt)
            else:  # context parallelism: rank 0 refines, every rank uses its text
                import torch.distributed as dist

                box = [self.refiner.refine(input_path, prompt) if cp.rank == 0 else None]
                dist.broadcast_object_list(box, src=0, group=cp.group)
                self._refined[key] = box[0]
        return self._refined[key]


def guard_pipeline(pipeline, guardrail: Guardrail | None, refiner=None):
    """The pipeline with its guardrail and refiner around it. Text2World: a new Text2World of its two stages
    guarded (the prompt checked before the image stage, once; refinement and video checks in the video
    stage), so that either stage run alone (a batch shard) is checked as in the command."""
    if isinstance(pipeline, Text2WorldPipeline):
        image, video = pipeline.text2image, pipeline.video2world
        return Text2WorldPipeline(
            GuardedPipeline(image, guardrail, None) if image is not None else None,
            GuardedPipeline(video, guardrail, refiner, check_prompt=False) if video is not None else None,
        )
    return GuardedPipeline(pipeline, guardrail, refiner)


def load_safety(
    checkpoint_dir: Path | None,
    device,
    video: bool,
    guardrail: bool = True,
    offload_guardrail: bool = False,
    refiner: bool = False,
    offload_refiner: bool = False,
    reason1_folder: Path | None = None,
):
    """(Guardrail or None, PromptRefiner or None), each announced in one log line. `video`: the pipeline
    makes videos (the video checks load, and the refiner applies).

    checkpoint_dir: the checkpoints root (nvidia/Cosmos-Guardrail1, meta-llama/Llama-Guard-3-8B,
    nvidia/Cosmos-Reason1-7B under it); reason1_folder overrides where Reason1 is."""

    root = checkpoint_dir or default_checkpoint_dir()
    rail = None
    if guardrail:
        rail = Guardrail.load(root, device, offload_guardrail, video=video)
    else:
        log.warning("guardrail: disabled; prompts and videos are not checked")
    prompt_refiner = None
    if video:  # the refiner rewrites a video's prompt
        if refiner:
            folder = reason1_folder or reason1_dir(root)
            skipped = "skipped, prompts are used as given"
            reason1 = load_reason1(folder, device, offload_refiner, "prompt refiner", skipped)
            if reason1 is not None:
                prompt_refiner = PromptRefiner(reason1)
                log.info("prompt refiner: Cosmos-Reason1 (%s)", reason1.folder)
        else:
            log.info("prompt refiner: disabled")
    return rail, prompt_refiner


def guard_from_args(pipeline, args):
    """The commands' wiring: --disable_guardrail, --offload_guardrail, --disable_prompt_refiner,
    --offload_prompt_refiner, --checkpoint_dir (the checkpoints root)."""
    rail, refiner = load_safety(
        args.checkpoint_dir,
        pipeline.bundle.device,
        pipeline.makes_video,
        guardrail=not args.disable_guardrail,
        offload_guardrail=args.offload_guardrail,
        refiner=not getattr(args, "disable_prompt_refiner", True),
        offload_refiner=getattr(args, "offload_prompt_refiner", False),
    )
    return guard_pipeline(pipeline, rail, refiner)
