"""The reference's commands: `python -m examples.text2image | video2world | text2world`.

Every flag of the reference's documentation works or is a clear error. The generation and model flags are
the fields of the request and model-choice models (manifests/requests.py), built by cosmos_core/flags.py;
the rest (paths, devices, guardrail, acceleration) are here. A --batch_input_json file is read as a
manifest of the command's task (manifests.read_manifest): the reference's keys (prompt, output_image,
input_video, output_video) and any request field per item, the flags as defaults; a bad item is reported
with its index and field, and the others are still generated.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from cosmos_core import media
from cosmos_core.acceleration import Acceleration
from cosmos_core.checkpoints import CheckpointError
from cosmos_core.device import configure_threads
from cosmos_core.flags import ArgumentParser, add_flags, values
from cosmos_core.guardrail import guard_from_args
from cosmos_core.parallel import ContextParallel, maybe_init_distributed
from cosmos_core.pipelines import (
    Text2ImagePipeline,
    Text2WorldPipeline,
    Video2WorldPipeline,
    save_generation,
)
from cosmos_core.pipelines.base import resolve_preset
from cosmos_core.pipelines.video2world import ConditioningError
from cosmos_core.text_encoder import TextEncoderOptions
from manifests import read_manifest
from manifests.requests import (
    Request,
    Text2ImageRequest,
    Text2WorldRequest,
    Video2WorldRequest,
)
from manifests.schemas import OUTPUTS_AS_GIVEN
from manifests.tasks import TEXT2IMAGE, TEXT2WORLD, VIDEO2WORLD, TaskSpec

log = logging.getLogger("cosmos_core")

TEXT2IMAGE_PROMPT = (
    "A well-worn broom sweeps across a dusty wooden floor, its bristles gathering crumbs and flecks of debris "
    "in swift, rhythmic strokes. Dust motes dance in the sunbeams filtering through the window, glowing "
    "momentarily before settling. The quiet swish of straw brushing wood is interrupted only by the occasional "
    "creak of old floorboards. With each pass, the floor grows cleaner, restoring a sense of quiet order to the "
    "humble room."
)
# --input_path's default: the reference's example for real checkpoints; for the embedded default model, a
# scene of its own world (assets/make_assets.py), which it can represent.
REFERENCE_INPUT = "assets/video2world/input0.jpg"
EMBEDDED_INPUT = "assets/embedded/video2world/input0.jpg"

TEXT2WORLD_PROMPT = (
    "An autonomous welding robot arm operating inside a modern automotive factory, sparks flying as it welds "
    "a car frame with precision under bright overhead lights."
)

# Errors a user can cause: one line, no traceback.
USER_ERRORS = (
    CheckpointError,
    media.MediaError,
    ConditioningError,
    ValidationError,
    ValueError,
    FileNotFoundError,
)


# ----------------------------------------------------------------------------------------------------
# Parsers: the request's and the model choice's flags come from their models (cosmos_core/flags.py)
# ----------------------------------------------------------------------------------------------------


def _add_generation_flags(
    p: argparse.ArgumentParser, request: type[Request], defaults: dict[str, str] | None = None
) -> None:
    add_flags(p.add_argument_group("generation"), request, defaults)
    p.add_argument("--batch_input_json", help="JSON list of items to generate (the reference's batch format)")


CHECKPOINT_DIR_HELP = "checkpoints root ($COSMOS_CHECKPOINT_DIR, checkpoints)"


def _add_model_flags(
    p: argparse.ArgumentParser,
    choice: type[BaseModel],
    checkpoint_dir_help: str = CHECKPOINT_DIR_HELP,
) -> None:
    m = p.add_argument_group("model")
    add_flags(m, choice)
    m.add_argument("--checkpoint_dir", type=Path, default=None, help=checkpoint_dir_help)
    m.add_argument("--load_ema", action="store_true", help="load the EMA weights (net_ema.)")
    m.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: the GPU if there is one)")
    m.add_argument(
        "--use_cuda_graphs",
        action="store_true",
        help="replay the DiT forward from CUDA graphs (GPU; pays off for Text2Image, which is launch-bound)",
    )
    m.add_argument(
        "--disable_compile",
        action="store_true",
        help="run the DiT without torch.compile (GPU; compiling costs tens of seconds once per process)",
    )
    m.add_argument(
        "--benchmark", action="store_true", help="generate 4 times and report the mean of runs 2-4"
    )


def _add_safety_flags(p: argparse.ArgumentParser, refiner: bool) -> None:
    s = p.add_argument_group("guardrail and prompt refiner")
    s.add_argument("--disable_guardrail", action="store_true", help="skip the guardrail checks")
    s.add_argument("--offload_guardrail", action="store_true", help="keep guardrail models on the CPU")
    if refiner:
        s.add_argument("--disable_prompt_refiner", action="store_true", help="do not refine the prompt")
        s.add_argument("--offload_prompt_refiner", action="store_true", help="keep the refiner on the CPU")
        s.add_argument(
            "--offload_text_encoder",
            action="store_true",
            help="keep T5's weights on the CPU, moved to the GPU only to encode new prompts",
        )
        s.add_argument(
            "--downcast_text_encoder",
            action="store_true",
            help="run T5 in the pipeline's dtype (bf16 on a GPU) instead of its checkpoint's float32",
        )


def _add_parallel_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num_gpus", type=int, default=1, help="GPUs for context parallelism (under torchrun)")


def text2image_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m examples.text2image", description="Text2Image generation")
    _add_generation_flags(p, Text2ImageRequest, {"prompt": TEXT2IMAGE_PROMPT})
    p.add_argument(
        "--save_path", default="output/generated_image.jpg", help="output image (local path or URL)"
    )
    p.add_argument("--dit_path", default="", help="DiT weights to use instead of the preset's (post-trained)")
    p.add_argument(
        "--use_fast_tokenizer",
        action="store_true",
        help="the 0.6B model's fast VAE tokenizer (not supported yet: an error)",
    )
    _add_model_flags(p, TEXT2IMAGE.row_model.model_choice_class())
    _add_safety_flags(p, refiner=False)
    return p


def video2world_parser(
    prog: str = "python -m examples.video2world",
    description: str = "Video2World generation",
    save_path: tuple[str, str] = ("output/generated_video.mp4", "output video (local path or URL)"),
    checkpoint_dir_help: str = CHECKPOINT_DIR_HELP,
    request: type[Request] = Video2WorldRequest,
) -> argparse.ArgumentParser:
    """The video2world command's flags; best-of-N (cosmos_core/bestofn_command.py) builds on them with its
    own program name, description, --save_path (default, help), --checkpoint_dir help and request."""
    p = ArgumentParser(prog=prog, description=description)
    _add_generation_flags(p, request, {"input_path": None})
    p.add_argument("--save_path", default=save_path[0], help=save_path[1])
    p.add_argument("--dit_path", default="", help="DiT weights to use instead of the preset's (post-trained)")
    _add_parallel_flags(p)
    _add_model_flags(p, VIDEO2WORLD.row_model.model_choice_class(), checkpoint_dir_help)
    _add_safety_flags(p, refiner=True)
    return p


def text2world_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m examples.text2world", description="Text2World generation")
    _add_generation_flags(p, Text2WorldRequest, {"prompt": TEXT2WORLD_PROMPT})
    p.add_argument(
        "--save_path", default="output/generated_video.mp4", help="output video (local path or URL)"
    )
    p.add_argument("--dit_path_text2image", default="", help="Text2Image DiT weights (post-trained)")
    p.add_argument("--dit_path_video2world", default="", help="Video2World DiT weights (post-trained)")
    _add_parallel_flags(p)
    _add_model_flags(p, TEXT2WORLD.row_model.model_choice_class())
    _add_safety_flags(p, refiner=True)
    return p


# ----------------------------------------------------------------------------------------------------
# Items: the one request of the flags, or the items of --batch_input_json (read as a manifest)
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    where: str  # the command, or "batch item <i> of <file>" (items count from 0, as in the JSON list)
    output: str
    request: Request | None = None
    error: str | None = None  # why this item cannot run


def default_input(args: argparse.Namespace) -> None:
    """Set --input_path when it was left out: the reference's example, or, when the run will use the
    embedded default model, a scene of that model's world."""
    if getattr(args, "input_path", "") is not None:
        return
    preset = resolve_preset(
        VIDEO2WORLD.name,
        args.model_size,
        args.checkpoint_dir,
        args.resolution,
        args.fps,
        args.dit_path or None,
        args.natten,
    )
    args.input_path = EMBEDDED_INPUT if preset.embedded else REFERENCE_INPUT
    log.info("no --input_path given: conditioning on %s", args.input_path)


def command_items(args: argparse.Namespace, task: TaskSpec) -> list[Item]:
    """The flags' request (errors raise), or one Item per batch item, in file order: the flags are the
    defaults of what an item leaves out, items are validated as manifest rows of `task` (every check and
    message of a manifest), and an item may not ask for another model than the command's."""
    row_model = task.row_model
    flags = values(args, row_model.REQUEST)
    choice = row_model.model_validate(
        {**flags, **values(args, row_model), "output": args.save_path}, context={OUTPUTS_AS_GIVEN: True}
    )
    if not args.batch_input_json:
        return [Item(task.name, args.save_path, choice.request())]
    path = args.batch_input_json
    manifest = read_manifest(
        path,
        task.name,
        output_root=".",
        defaults={**flags, **choice.model_choice.model_dump()},
        outputs_as_given=True,
    )

    def where(row: int) -> str:
        return f"batch item {row - 1} of {path}"

    errors: dict[int, list[str]] = {}
    for error in manifest.errors:
        errors.setdefault(error.row, []).append(error.detail)
    items = {row: Item(where(row), "", error="; ".join(details)) for row, details in errors.items()}
    for row in manifest.rows:
        differs = [
            name
            for name, value in row.row.model_choice.model_dump().items()
            if value != getattr(choice.model_choice, name)
        ]
        if differs:
            message = (
                f"field '{differs[0]}': a command runs one model (--{differs[0]} "
                f"{getattr(choice.model_choice, differs[0])}); run a manifest through a batch flow to mix models"
            )
            items[row.row_number] = Item(where(row.row_number), row.output, error=message)
        else:
            items[row.row_number] = Item(where(row.row_number), row.output, row.request)
    return [items[row] for row in sorted(items)]


def _validation_message(error: ValidationError) -> str:
    parts = []
    for e in error.errors():
        field = ".".join(str(x) for x in e["loc"]) or "item"
        parts.append(f"field '{field}': {e['msg']}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    log.setLevel(logging.INFO)


def context_parallel_from_args(args: argparse.Namespace) -> ContextParallel | None:
    """--num_gpus N > 1: join the torchrun job (N processes), one GPU each, frames split over them.

    Only rank 0 logs and writes; the others compute their part of each video.
    """
    num_gpus = getattr(args, "num_gpus", 1)
    if num_gpus <= 1:
        return None
    ctx = maybe_init_distributed()
    if ctx is None or ctx.world_size != num_gpus:
        found = ctx.world_size if ctx else 1
        raise ValueError(
            f"--num_gpus {num_gpus} needs {num_gpus} processes, found {found}: launch with "
            f"`torchrun --nproc_per_node={num_gpus} -m examples.<command> ... --num_gpus {num_gpus}`"
        )
    args.device = str(ctx.device)
    if ctx.rank != 0:
        log.setLevel(logging.WARNING)
    return ContextParallel()


def acceleration_from_args(args: argparse.Namespace) -> Acceleration:
    return Acceleration(compile=not args.disable_compile, cuda_graphs=args.use_cuda_graphs)


def text_encoder_options_from_args(args: argparse.Namespace) -> TextEncoderOptions:
    return TextEncoderOptions(offload=args.offload_text_encoder, downcast=args.downcast_text_encoder)


def run(
    task: TaskSpec,
    argv: list[str] | None,
    parser: argparse.ArgumentParser,
    load: Callable[[argparse.Namespace], object],
    generate_and_save: Callable[[object, Request, str], None],
) -> int:
    """A command from its flags to its outputs; the exit status (0 all written, 1 some failed, 130 Ctrl-C)."""
    try:
        return _run(task, argv, parser, load, generate_and_save)
    except KeyboardInterrupt:
        log.error("interrupted: stopped (the outputs written so far are complete; none is half-written)")
        return 130


def _run(task, argv, parser, load, generate_and_save) -> int:
    args = parser.parse_args(argv)
    setup_logging()
    configure_threads(int(os.environ.get("LOCAL_WORLD_SIZE", "1")))  # under torchrun: a share per rank
    try:
        args.cp = context_parallel_from_args(args)
        default_input(args)
        items = command_items(args, task)
        # The guardrail and (video commands) the prompt refiner around the pipeline; a refused item raises
        # GuardrailBlocked (a ValueError): reported like a bad item, nothing written for it.
        pipeline = guard_from_args(load(args), args)
    except USER_ERRORS as error:
        log.error(
            "error: %s", error if not isinstance(error, ValidationError) else _validation_message(error)
        )
        return 1

    failures = run_items(args, items, pipeline, generate_and_save)
    if args.batch_input_json:
        log.info("%d of %d item(s) generated", len(items) - len(failures), len(items))
    return 1 if failures else 0


def run_items(args: argparse.Namespace, items: list[Item], pipeline, generate_and_save) -> list[str]:
    """Generate each item; returns where the ones that failed are (each already logged in one line)."""
    failures = []
    for item in items:
        try:
            if item.error is not None:
                raise ValueError(item.error)
            runs = 4 if args.benchmark else 1
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                generate_and_save(pipeline, item.request, item.output)
                times.append(time.perf_counter() - start)
            if args.benchmark:
                log.info("benchmark: %.3f s per generation (mean of runs 2-4)", statistics.mean(times[1:]))
            log.info("%s: wrote %s", item.where, item.output)
        except USER_ERRORS as error:
            failures.append(item.where)
            message = _validation_message(error) if isinstance(error, ValidationError) else error
            log.error("%s: %s", item.where, message)
    return failures


def _save(pipeline, request, output: str) -> None:
    generation = pipeline.generate(request)
    if pipeline.cp is None or pipeline.cp.rank == 0:
        save_generation(generation, output)


def text2image_main(argv: list[str] | None = None) -> int:
    def load(args):
        if args.use_fast_tokenizer:
            raise ValueError(
                "--use_fast_tokenizer: the 0.6B fast-tokenizer checkpoints (model_fast_tokenizer.pt, "
                "tokenizer_fast/tokenizer.pth) are not supported yet; leave the flag out"
            )
        return Text2ImagePipeline.load(
            args.model_size,
            args.checkpoint_dir,
            args.dit_path or None,
            args.distill_steps > 0,  # the distilled model's weights
            args.device,
            ema=args.load_ema,
            acceleration=acceleration_from_args(args),
        )

    return run(TEXT2IMAGE, argv, text2image_parser(), load, _save)


def video2world_main(argv: list[str] | None = None) -> int:
    def load(args):
        return Video2WorldPipeline.load(
            args.model_size,
            args.resolution,
            args.fps,
            args.checkpoint_dir,
            args.dit_path or None,
            args.device,
            ema=args.load_ema,
            acceleration=acceleration_from_args(args),
            cp=args.cp,
            natten=args.natten,
            text_encoder_options=text_encoder_options_from_args(args),
        )

    return run(VIDEO2WORLD, argv, video2world_parser(), load, _save)


def text2world_main(argv: list[str] | None = None) -> int:
    def load(args):
        return Text2WorldPipeline.load(
            args.model_size,
            args.resolution,
            args.fps,
            args.checkpoint_dir,
            args.dit_path_text2image or None,
            args.dit_path_video2world or None,
            args.device,
            ema=args.load_ema,
            acceleration=acceleration_from_args(args),
            cp=args.cp,
            natten=args.natten,
            text_encoder_options=text_encoder_options_from_args(args),
        )

    def save(pipeline, request, output):
        pipeline.generate_and_save(request, output)

    return run(TEXT2WORLD, argv, text2world_parser(), load, save)
