"""`python -m examples.video2world_bestofn`: the reference's best-of-N command.

Every video2world flag, plus --num_generations (2), --num_critic_trials (5), --skip_generation,
--save_path (a folder, output/best-of-n) and --checkpoint_dir (Cosmos-Reason1's folder, as in the
reference, or the checkpoints root). Video2WorldPipeline is loaded once and generates seeds seed, seed+1,
... as `{input}_seed{seed}.mp4`; then the pipeline is freed and the critic (Reason1 if its checkpoint is
present, else the built-in one) scores each video (names and reports: cosmos_core/bestofn.py);
`ranking.json` and the log rank the videos. --skip_generation rescores every .mp4 in the folder (an
earlier `_scoreNNN` suffix is replaced; the reference's version of this crashes).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import posixpath
import re
from pathlib import Path

from fsspec.core import url_to_fs

from cosmos_core import cli, media
from cosmos_core.bestofn import (
    base_stem,
    conditioning_of,
    move_file,
    read_sidecar,
    score_video,
)
from cosmos_core.critic import load_critic
from cosmos_core.device import pick_device
from cosmos_core.flags import values
from cosmos_core.guardrail import GuardrailBlocked, guard_pipeline, load_safety
from cosmos_core.models import default_checkpoint_dir
from cosmos_core.pipelines import Video2WorldPipeline, save_generation
from cosmos_core.reason1 import CRITIC_MAX_NEW_TOKENS, is_reason1_checkpoint, reason1_dir
from manifests.requests import BestOfNRequest

log = logging.getLogger("cosmos_core")

DEFAULT_SAVE_DIR = "output/best-of-n"
RANKING_FILE = "ranking.json"


def bestofn_parser() -> argparse.ArgumentParser:
    p = cli.video2world_parser(
        prog="python -m examples.video2world_bestofn",
        description="Best-of-N Video2World: generate N videos (seeds seed..seed+N-1), score each with a critic",
        save_path=(
            DEFAULT_SAVE_DIR,
            "folder for the videos, their reports and ranking.json (local path or URL)",
        ),
        checkpoint_dir_help=(
            "Cosmos-Reason1 checkpoint folder (the reference's meaning, e.g. checkpoints/nvidia/"
            "Cosmos-Reason1-7B) or the checkpoints root ($COSMOS_CHECKPOINT_DIR, checkpoints)"
        ),
        request=BestOfNRequest,  # --num_generations, --num_critic_trials
    )
    b = p.add_argument_group("best-of-N")
    b.add_argument(
        "--skip_generation", action="store_true", help="only score the .mp4 videos already in --save_path"
    )
    b.add_argument(
        "--critic_max_new_tokens",
        type=int,
        default=CRITIC_MAX_NEW_TOKENS,
        help="longest critic answer in tokens (Reason1)",
    )
    b.add_argument(
        "--gr00t_variant", default="", choices=["", "gr1", "droid"], help="GR00T Dreams (not supported)"
    )
    b.add_argument(
        "--prompt_prefix",
        default=None,
        help="GR00T only: prefix to prompts (the reference's default: 'The robot arm is performing a task. ')",
    )
    return p


def checkpoint_dirs(checkpoint_dir: Path | None) -> tuple[Path, Path]:
    """(checkpoints root, Reason1 folder) from --checkpoint_dir: a Reason1 checkpoint folder (the
    reference's meaning; its root is two levels up when it sits at <root>/nvidia/<name>, else
    $COSMOS_CHECKPOINT_DIR), or a checkpoints root (Reason1 under it)."""
    if checkpoint_dir is None:
        root = default_checkpoint_dir()
        return root, reason1_dir(root)
    if is_reason1_checkpoint(checkpoint_dir):
        nested = checkpoint_dir.parent.name == "nvidia"
        return (checkpoint_dir.parent.parent if nested else default_checkpoint_dir()), checkpoint_dir
    return checkpoint_dir, reason1_dir(checkpoint_dir)


def bestofn_main(argv: list[str] | None = None) -> int:
    args = bestofn_parser().parse_args(argv)
    cli.setup_logging()
    try:
        return run_command(args)
    except cli.USER_ERRORS as error:
        log.error("error: %s", error)
        return 1


def run_command(args: argparse.Namespace) -> int:
    if args.batch_input_json:
        raise ValueError(
            "--batch_input_json is not supported by best-of-N: run a manifest through the Prefect "
            "deployment video2world/best-of-n"
        )
    if args.gr00t_variant:
        raise ValueError("--gr00t_variant: GR00T Dreams checkpoints are not supported in this version")
    if args.prompt_prefix is not None:
        raise ValueError(
            "--prompt_prefix applies to GR00T Dreams (--gr00t_variant) only, which is not supported"
        )
    cli.default_input(args)
    request = BestOfNRequest.model_validate(values(args, BestOfNRequest))  # limits: one error per flag
    if args.benchmark:
        log.info("--benchmark: not used by best-of-N (each generation is timed in its sidecar)")
    root, reason1_folder = checkpoint_dirs(args.checkpoint_dir)
    save_dir = args.save_path.rstrip("/")
    reason1 = None
    if args.skip_generation:
        log.info("skipping generation: scoring the videos in %s", save_dir)
        videos = existing_videos(save_dir)
        default_conditioning = (None, 1)
    else:
        cp = cli.context_parallel_from_args(args)
        pipeline = Video2WorldPipeline.load(
            args.model_size,
            args.resolution,
            args.fps,
            root,
            args.dit_path or None,
            args.device,
            ema=args.load_ema,
            cp=cp,
            natten=args.natten,
            text_encoder_options=cli.text_encoder_options_from_args(args),
        )
        rail, refiner = load_safety(
            root,
            pipeline.bundle.device,
            video=True,
            guardrail=not args.disable_guardrail,
            offload_guardrail=args.offload_guardrail,
            refiner=not args.disable_prompt_refiner,
            offload_refiner=args.offload_prompt_refiner,
            reason1_folder=reason1_folder,
        )
        guarded = guard_pipeline(pipeline, rail, refiner)
        videos = generate_videos(guarded, request, save_dir, writes=cp is None or cp.rank == 0)
        reason1 = refiner.reason1 if refiner is not None else None  # the critic reuses a loaded Reason1
        del pipeline, guarded, rail
        gc.collect()
        if cp is not None and cp.rank != 0:
            return 0  # rank 0 scores
        default_conditioning = (args.input_path, args.num_conditional_frames)
    if not videos:
        log.error("no videos to score in %s", save_dir)
        return 1
    _free_device_memory()
    device = pick_device(args.device)
    critic = load_critic(
        reason1_folder, device, args.offload_prompt_refiner, reason1, args.critic_max_new_tokens
    )
    ranking = score_folder(critic, videos, args.num_critic_trials, args.seed, default_conditioning)
    summary = {
        "critic": critic.name,
        "num_critic_trials": args.num_critic_trials,
        "seed": args.seed,
        "ranking": ranking,
        "best": ranking[0],
    }
    media.write_text(posixpath.join(save_dir, RANKING_FILE), json.dumps(summary, indent=2) + "\n")
    log.info("Final results (highest score first):")
    log.info("-" * 80)
    for entry in ranking:
        log.info(
            "#%d: Score: %.2f%% - %s", entry["rank"], 100 * entry["score"], posixpath.basename(entry["video"])
        )
    log.info("-" * 80)
    log.info("Best video: %s with score %.2f%%", ranking[0]["video"], 100 * ranking[0]["score"])
    log.info("ranking: %s", posixpath.join(save_dir, RANKING_FILE))
    return 0


def generate_videos(pipeline, request: BestOfNRequest, save_dir: str, writes: bool = True) -> list[str]:
    """One video per seed, seed + i; a refused prompt stops (no seed can pass), a refused video skips."""
    input_stem = posixpath.splitext(posixpath.basename(request.input_path))[0]
    count = request.num_generations
    log.info("best-of-N: %d generation(s) from %s, prompt: %r", count, request.input_path, request.prompt)
    videos = []
    for i, seed in enumerate(request.seeds()):
        url = posixpath.join(save_dir, f"{input_stem}_seed{seed}.mp4")
        log.info("generating video %d/%d with seed %d", i + 1, count, seed)
        try:
            generation = pipeline.generate(request.candidate(seed))
        except GuardrailBlocked as blocked:
            if blocked.stage != "video":
                log.error("%s: nothing is generated", blocked)
                return []
            log.warning("seed %d: %s; skipped", seed, blocked)
            continue
        if writes:
            save_generation(generation, url)
        videos.append(url)
    log.info("generated %d/%d video(s)", len(videos), count)
    return videos


def existing_videos(save_dir: str) -> list[str]:
    fs, path = url_to_fs(save_dir)
    found = sorted(posixpath.basename(p) for p in fs.glob(posixpath.join(path, "*.mp4")))
    return [posixpath.join(save_dir, name) for name in found]


def score_folder(critic, videos: list[str], num_trials: int, seed: int, default_conditioning) -> list[dict]:
    """Score every video, rename it (and its sidecar) to carry the score, and rank them."""
    entries = []
    for url in videos:
        stem = base_stem(url)
        sidecar = read_sidecar(url)
        result, files = score_video(
            critic, url, num_trials, seed, conditioning_of(url, default_conditioning), stem
        )
        scored = posixpath.join(posixpath.dirname(url), f"{stem}_score{result.pct:03d}.mp4")
        move_file(url, scored)
        if sidecar is not None:
            sidecar["critic"] = {**result.summary(), **files}
            sidecar["output"] = scored
            media.write_text(f"{scored}.json", json.dumps(sidecar, indent=2, default=str) + "\n")
            if scored != url:
                media.remove(f"{url}.json")
        match = re.search(r"_seed(\d+)$", stem)
        entries.append(
            {
                "video": scored,
                "seed": int(match[1]) if match else None,
                **{k: v for k, v in result.summary().items() if k != "metrics"},
                **files,
            }
        )
    entries.sort(key=lambda e: (-e["score"], e["video"]))
    return [{"rank": rank, **entry} for rank, entry in enumerate(entries, start=1)]


def _free_device_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
