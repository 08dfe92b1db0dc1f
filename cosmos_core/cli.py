"""The reference's commands: `python -m examples.text2image | video2world | text2world`.

Every flag of the reference's documentation is accepted; defaults and choices come from the request
models (cosmos_core/requests.py). Batch JSON files use the reference's keys (text2image: prompt,
output_image; video2world: input_video, prompt, output_video; text2world: prompt, output_video) plus,
per item, seed, guidance, negative_prompt, aspect_ratio, steps (and num_conditional_frames for
video2world). A bad item is reported with its index and field, and the others are still generated.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from cosmos_core import media
from cosmos_core.acceleration import Acceleration
from cosmos_core.checkpoints import CheckpointError
from cosmos_core.guardrail import guard_from_args
from cosmos_core.parallel import ContextParallel, maybe_init_distributed
from cosmos_core.pipelines import (
    Text2ImagePipeline,
    Text2WorldPipeline,
    Video2WorldPipeline,
    save_generation,
)
from cosmos_core.pipelines.video2world import ConditioningError
from cosmos_core.presets import ASPECT_RATIOS
from cosmos_core.requests import Text2ImageRequest, Text2WorldRequest, Video2WorldRequest
from cosmos_core.text_encoder import TextEncoderOptions
from manifests.tasks import TEXT2WORLD

log = logging.getLogger("cosmos_core")

TEXT2IMAGE_PROMPT = (
    "A well-worn broom sweeps across a dusty wooden floor, its bristles gathering crumbs and flecks of debris "
    "in swift, rhythmic strokes. Dust motes dance in the sunbeams filtering through the window, glowing "
    "momentarily before settling. The quiet swish of straw brushing wood is interrupted only by the occasional "
    "creak of old floorboards. With each pass, the floor grows cleaner, restoring a sense of quiet order to the "
    "humble room."
)
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


def _default(model: type[BaseModel], name: str):
    return model.model_fields[name].default


def _help(model: type[BaseModel], name: str) -> str:
    return model.model_fields[name].description or ""


# ----------------------------------------------------------------------------------------------------
# Parsers
# ----------------------------------------------------------------------------------------------------


def _add_generation_flags(p: argparse.ArgumentParser, model: type[BaseModel], prompt_default: str) -> None:
    g = p.add_argument_group("generation")
    g.add_argument("--prompt", default=prompt_default, help="text prompt")
    g.add_argument("--negative_prompt", default=_default(model, "negative_prompt"), help="what to avoid")
    g.add_argument("--aspect_ratio", default="16:9", choices=ASPECT_RATIOS, help="output aspect ratio")
    g.add_argument("--seed", type=int, default=_default(model, "seed"), help=_help(model, "seed"))
    g.add_argument(
        "--guidance", type=float, default=_default(model, "guidance"), help=_help(model, "guidance")
    )
    g.add_argument("--steps", type=int, default=_default(model, "steps"), help=_help(model, "steps"))
    g.add_argument("--step_cache", type=float, default=0.0, help=_help(model, "step_cache"))
    g.add_argument("--batch_input_json", help="JSON list of items to generate (the reference's batch format)")


CHECKPOINT_DIR_HELP = "checkpoints root ($COSMOS_CHECKPOINT_DIR, checkpoints)"


def _add_model_flags(
    p: argparse.ArgumentParser, sizes: list[str], checkpoint_dir_help: str = CHECKPOINT_DIR_HELP
) -> None:
    m = p.add_argument_group("model")
    m.add_argument(
        "--model_size",
        choices=[*sizes, "embedded"],
        default=None,
        help="model size (default: 2B if its checkpoint is present, else the embedded small model)",
    )
    m.add_argument(
        "--checkpoint_dir",
        type=Path,
        default=None,
        help=checkpoint_dir_help,
    )
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


def _add_video_flags(p: argparse.ArgumentParser) -> None:
    v = p.add_argument_group("video")
    v.add_argument("--resolution", choices=["480", "720"], default="720", help="model resolution")
    v.add_argument(
        "--fps", type=int, choices=[10, 16], default=16, help="model frame rate (10: 61 frames, 16: 93)"
    )
    v.add_argument("--num_gpus", type=int, default=1, help="GPUs for context parallelism (under torchrun)")
    v.add_argument(
        "--natten",
        action="store_true",
        help="the sparse-attention (NATTEN) Video2World DiT, model-720p-{fps}fps-natten.pt (2B/14B, 720p; "
        "other aspect ratios scale its windows)",
    )


def text2image_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.text2image", description="Text2Image generation")
    _add_generation_flags(p, Text2ImageRequest, TEXT2IMAGE_PROMPT)
    p.add_argument(
        "--save_path", default="output/generated_image.jpg", help="output image (local path or URL)"
    )
    p.add_argument(
        "--distill_steps",
        type=int,
        choices=range(5),
        default=0,
        help=_help(Text2ImageRequest, "distill_steps"),
    )
    p.add_argument("--dit_path", default="", help="DiT weights to use instead of the preset's (post-trained)")
    p.add_argument(
        "--use_fast_tokenizer",
        action="store_true",
        help="the 0.6B model's fast VAE tokenizer (not supported yet: an error)",
    )
    _add_model_flags(p, ["0.6B", "2B", "14B"])
    _add_safety_flags(p, refiner=False)
    return p


def video2world_parser(
    prog: str = "python -m examples.video2world",
    description: str = "Video2World generation",
    save_path: tuple[str, str] = ("output/generated_video.mp4", "output video (local path or URL)"),
    checkpoint_dir_help: str = CHECKPOINT_DIR_HELP,
) -> argparse.ArgumentParser:
    """The video2world command's flags; best-of-N (cosmos_core/bestofn_command.py) builds on them with its
    own program name, description, --save_path (default, help) and --checkpoint_dir help."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    _add_generation_flags(p, Video2WorldRequest, "")
    p.add_argument(
        "--input_path", default="assets/video2world/input0.jpg", help="conditioning image or video"
    )
    p.add_argument("--num_conditional_frames", type=int, choices=[1, 5], default=1, help="last frames used")
    p.add_argument("--save_path", default=save_path[0], help=save_path[1])
    p.add_argument("--dit_path", default="", help="DiT weights to use instead of the preset's (post-trained)")
    _add_video_flags(p)
    _add_model_flags(p, ["2B", "14B"], checkpoint_dir_help)
    _add_safety_flags(p, refiner=True)
    return p


def text2world_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.text2world", description="Text2World generation")
    _add_generation_flags(p, Text2WorldRequest, TEXT2WORLD_PROMPT)
    p.add_argument(
        "--save_path", default="output/generated_video.mp4", help="output video (local path or URL)"
    )
    p.add_argument("--dit_path_text2image", default="", help="Text2Image DiT weights (post-trained)")
    p.add_argument("--dit_path_video2world", default="", help="Video2World DiT weights (post-trained)")
    _add_video_flags(p)
    _add_model_flags(p, ["2B", "14B"])
    _add_safety_flags(p, refiner=True)
    return p


# ----------------------------------------------------------------------------------------------------
# Requests from arguments and batch items
# ----------------------------------------------------------------------------------------------------

# batch key -> request field, per command; "output" is the item's output path.
BATCH_KEYS = {
    "text2image": {"prompt": "prompt", "output_image": "output"},
    "video2world": {"prompt": "prompt", "input_video": "input_path", "output_video": "output"},
    TEXT2WORLD.name: {"prompt": "prompt", "output_video": "output"},
}
PER_ITEM_FIELDS = ("seed", "guidance", "negative_prompt", "aspect_ratio", "steps")


def request_fields(args: argparse.Namespace, command: str) -> dict:
    fields = {
        k: getattr(args, k)
        for k in ("prompt", "negative_prompt", "aspect_ratio", "seed", "guidance", "steps", "step_cache")
    }
    if command == "text2image":
        fields["distill_steps"] = args.distill_steps
    if command == "video2world":
        fields.update(input_path=args.input_path, num_conditional_frames=args.num_conditional_frames)
    return fields


def batch_items(path: str, command: str, globals_: dict) -> list[tuple[int, dict | str, str]]:
    """(index, request fields or an error message, output path) per item of a batch JSON file."""
    try:
        items = json.loads(media.read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(items, list):
        raise ValueError(f"{path} must hold a JSON list of items, got {type(items).__name__}")
    keys = BATCH_KEYS[command]
    allowed = (
        set(keys) | set(PER_ITEM_FIELDS) | ({"num_conditional_frames"} if command == "video2world" else set())
    )
    ext = "jpg" if command == "text2image" else "mp4"
    out = []
    for index, item in enumerate(items):
        output = f"output_{index}.{ext}"
        if not isinstance(item, dict):
            out.append((index, f"item is a {type(item).__name__}, not an object", output))
            continue
        output = item.get(next(k for k, v in keys.items() if v == "output"), output)
        unknown = sorted(set(item) - allowed)
        if unknown:
            out.append(
                (
                    index,
                    f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
                    output,
                )
            )
            continue
        fields = dict(globals_)
        for key, value in item.items():
            fields[keys.get(key, key)] = value
        fields.pop("output", None)
        out.append((index, fields, output))
    return out


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
    command: str,
    argv: list[str] | None,
    parser: argparse.ArgumentParser,
    request_model: type[BaseModel],
    load: Callable[[argparse.Namespace], object],
    generate_and_save: Callable[[object, BaseModel, str], None],
) -> int:
    args = parser.parse_args(argv)
    setup_logging()
    try:
        args.cp = context_parallel_from_args(args)
        globals_ = request_fields(args, command)
        if args.batch_input_json:
            jobs = batch_items(args.batch_input_json, command, globals_)
        else:
            jobs = [(None, globals_, args.save_path)]
        # The guardrail and (video commands) the prompt refiner around the pipeline; a refused item raises
        # GuardrailBlocked (a ValueError): reported like a bad item, nothing written for it.
        pipeline = guard_from_args(load(args), args, command)
    except USER_ERRORS as error:
        log.error(
            "error: %s", error if not isinstance(error, ValidationError) else _validation_message(error)
        )
        return 1

    failures = []
    for index, fields, output in jobs:
        where = f"batch item {index} of {args.batch_input_json}" if index is not None else command
        try:
            if isinstance(fields, str):
                raise ValueError(fields)
            request = request_model(**fields)
            runs = 4 if args.benchmark else 1
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                generate_and_save(pipeline, request, output)
                times.append(time.perf_counter() - start)
            if args.benchmark:
                log.info("benchmark: %.3f s per generation (mean of runs 2-4)", statistics.mean(times[1:]))
            log.info("%s: wrote %s", where, output)
        except ValidationError as error:
            failures.append(where)
            log.error("%s: %s", where, _validation_message(error))
        except USER_ERRORS as error:
            failures.append(where)
            log.error("%s: %s", where, error)
    if args.batch_input_json:
        log.info("%d of %d item(s) generated", len(jobs) - len(failures), len(jobs))
    return 1 if failures else 0


def _save(pipeline, request, output: str) -> None:
    generation = pipeline.generate(request)
    cp = getattr(pipeline, "cp", None)
    if cp is None or cp.rank == 0:
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
            args.distill_steps > 0,
            args.device,
            ema=args.load_ema,
            acceleration=acceleration_from_args(args),
        )

    return run("text2image", argv, text2image_parser(), Text2ImageRequest, load, _save)


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

    return run("video2world", argv, video2world_parser(), Video2WorldRequest, load, _save)


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

    return run(TEXT2WORLD.name, argv, text2world_parser(), Text2WorldRequest, load, save)
