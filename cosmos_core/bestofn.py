"""Best-of-N Video2World: N seeds, a critic scores every video, the best one wins.

Reference: examples/video2world_bestofn.py. Two ways in:

`python -m examples.video2world_bestofn` (the reference's command; `bestofn_main`):
  every video2world flag, plus --num_generations (2), --num_critic_trials (5), --skip_generation,
  --save_path (a folder, output/best-of-n) and --checkpoint_dir (Cosmos-Reason1's folder, as in the
  reference, or the checkpoints root). Video2WorldPipeline is loaded once and generates seeds
  seed, seed+1, ... as `{input}_seed{seed}.mp4`; then the pipeline is freed and the critic (Reason1 if its
  checkpoint is present, else the built-in one; cosmos_core/critic.py) scores each video. Scores go
  into the file names: the video becomes `{input}_seed{seed}_score{pct:03d}.mp4` (its sidecar follows,
  with the critic's verdict added), beside `..._score{pct:03d}.html` (the report: the video embedded,
  every trial's analysis) and `..._score{pct:03d}.json` (the raw responses, as the reference writes them);
  `ranking.json` and the log rank the videos. --skip_generation rescores every .mp4 in the folder
  (an earlier `_scoreNNN` suffix is replaced; the reference's version of this crashes).

The batch worker's shard tasks (the Prefect deployment video2world/best-of-n; `run_bestofn_shard`):
  "best-of-n-generate": each row's candidates, seeds seed..seed+num_generations-1, under
  `<output_root>/.worldmill/candidates/<row id>/<row id>_seed{seed}.mp4`;
  "best-of-n-score": each candidate scored with the row's num_critic_trials, reports beside them
  (`<row id>_seed{seed}_score{pct:03d}.html/.json`), the best candidate copied to the row's output with a
  sidecar naming every candidate's score. Candidates keep their names in batch (a retry finds them).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import posixpath
import re
import time
from pathlib import Path

from fsspec.core import url_to_fs

from cosmos_core import media
from cosmos_core.critic import CriticResult, html_report, load_critic
from cosmos_core.guardrail import GuardrailBlocked, guard_pipeline, load_safety
from cosmos_core.jobs import build_request, load_guarded_pipeline, run_row
from cosmos_core.models import default_checkpoint_dir
from cosmos_core.pipelines import Video2WorldPipeline, save_generation
from cosmos_core.reason1 import CRITIC_MAX_NEW_TOKENS, is_reason1_checkpoint, reason1_dir
from cosmos_core.requests import Video2WorldRequest
from manifests import stage_of
from manifests.storage import write_bytes_atomic

log = logging.getLogger("cosmos_core")

DEFAULT_SAVE_DIR = "output/best-of-n"
RANKING_FILE = "ranking.json"
SCORE_SUFFIX = re.compile(r"_score\d{3}$")


# ----------------------------------------------------------------------------------------------------
# Naming and scoring (shared by the command and the batch worker)
# ----------------------------------------------------------------------------------------------------


def _split(url: str) -> tuple[str, str]:
    """(folder, stem) of an .mp4 URL or path."""
    folder, name = posixpath.split(url)
    return folder, name.removesuffix(".mp4")


def base_stem(url: str) -> str:
    """'x/in_seed3_score067.mp4' -> 'in_seed3' (the name without an earlier score)."""
    return SCORE_SUFFIX.sub("", _split(url)[1])


def read_sidecar(video_url: str) -> dict | None:
    try:
        return json.loads(media.read_text(f"{video_url}.json"))
    except (media.MediaError, json.JSONDecodeError, OSError):
        return None


def conditioning_of(video_url: str, default: tuple[str | None, int] = (None, 1)) -> tuple[str | None, int]:
    """The conditioning input and frame count a video was generated from (its sidecar), for the critic."""
    parameters = (read_sidecar(video_url) or {}).get("parameters", {})
    if parameters.get("input_path"):
        return parameters["input_path"], int(parameters.get("num_conditional_frames", 1))
    return default


def score_video(
    critic, video_url: str, num_trials: int, seed: int, conditioning: tuple[str | None, int], report_stem: str
) -> tuple[CriticResult, dict]:
    """Score one video; write `<report_stem>_score{pct}.json` (raw responses) and `.html` beside it (older
    reports of the same stem are removed). Returns the result and its files."""
    start = time.perf_counter()
    result = critic.analyze(video_url, num_trials, seed, *conditioning)
    folder = posixpath.dirname(video_url)
    stem = f"{report_stem}_score{result.pct:03d}"
    _remove_reports(folder, report_stem, keep=stem)
    files = {
        "responses": posixpath.join(folder, f"{stem}.json"),
        "report": posixpath.join(folder, f"{stem}.html"),
    }
    media.write_text(files["responses"], json.dumps(result.responses, indent=2) + "\n")
    video_bytes = _read_bytes(video_url)
    media.write_text(files["report"], html_report(posixpath.basename(video_url), video_bytes, result))
    log.info(
        "critic: %s: %d 'No anomaly' of %d parsed answers, score %.2f%% (%.1f s)",
        posixpath.basename(video_url),
        result.no,
        result.parsed,
        100 * result.score,
        time.perf_counter() - start,
    )
    return result, files


def _remove_reports(folder: str, report_stem: str, keep: str) -> None:
    """Remove `<report_stem>_scoreNNN.json/.html` other than `keep`'s (not videos, not their sidecars)."""
    fs, path = url_to_fs(folder)
    report = re.compile(rf"{re.escape(report_stem)}_score\d{{3}}\.(json|html)")
    for old in fs.glob(posixpath.join(path, f"{report_stem}_score*")):
        name = posixpath.basename(old)
        if report.fullmatch(name) and name.rsplit(".", 1)[0] != keep:
            fs.rm_file(old)


def _read_bytes(url: str) -> bytes:
    fs, path = url_to_fs(url)
    return fs.cat_file(path)


def _move(source: str, target: str) -> None:
    if source != target:
        fs, path = url_to_fs(source)
        fs.mv(path, url_to_fs(target)[1])


def copy_file(source: str, target: str) -> None:
    """Copy bytes atomically (manifests.storage's writer)."""
    write_bytes_atomic(target, _read_bytes(source))


# ----------------------------------------------------------------------------------------------------
# The command
# ----------------------------------------------------------------------------------------------------


def bestofn_parser() -> argparse.ArgumentParser:
    from cosmos_core.cli import video2world_parser

    p = video2world_parser()
    p.prog = "python -m examples.video2world_bestofn"
    p.description = (
        "Best-of-N Video2World: generate N videos (seeds seed..seed+N-1), score each with a critic"
    )
    p.set_defaults(save_path=DEFAULT_SAVE_DIR)
    for action in p._actions:
        if "--save_path" in action.option_strings:
            action.help = "folder for the videos, their reports and ranking.json (local path or URL)"
        if "--checkpoint_dir" in action.option_strings:
            action.help = (
                "Cosmos-Reason1 checkpoint folder (the reference's meaning, e.g. checkpoints/nvidia/"
                "Cosmos-Reason1-7B) or the checkpoints root ($COSMOS_CHECKPOINT_DIR, checkpoints)"
            )
    b = p.add_argument_group("best-of-N")
    b.add_argument("--num_generations", type=int, default=2, help="videos to generate, one per seed")
    b.add_argument("--num_critic_trials", type=int, default=5, help="critic answers sampled per video")
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
    from cosmos_core import cli

    args = bestofn_parser().parse_args(argv)
    cli._setup_logging()
    try:
        return run_command(args)
    except cli.USER_ERRORS as error:
        log.error("error: %s", error)
        return 1


def run_command(args: argparse.Namespace) -> int:
    from cosmos_core import cli
    from cosmos_core.device import pick_device

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
    if args.num_generations < 1 or args.num_critic_trials < 1:
        raise ValueError("--num_generations and --num_critic_trials must be at least 1")
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
        cp = cli._context_parallel(args)
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
            "video2world",
            guardrail=not args.disable_guardrail,
            offload_guardrail=args.offload_guardrail,
            refiner=not args.disable_prompt_refiner,
            offload_refiner=args.offload_prompt_refiner,
            reason1_folder=reason1_folder,
        )
        guarded = guard_pipeline(pipeline, rail, refiner)
        videos = generate_videos(guarded, args, save_dir, writes=cp is None or cp.rank == 0)
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


def generate_videos(pipeline, args: argparse.Namespace, save_dir: str, writes: bool = True) -> list[str]:
    """One video per seed, args.seed + i; a refused prompt stops (no seed can pass), a refused video skips."""
    from cosmos_core.cli import request_fields

    fields = request_fields(args, "video2world")
    input_stem = posixpath.splitext(posixpath.basename(args.input_path))[0]
    log.info(
        "best-of-N: %d generation(s) from %s, prompt: %r", args.num_generations, args.input_path, args.prompt
    )
    videos = []
    for i in range(args.num_generations):
        seed = args.seed + i
        url = posixpath.join(save_dir, f"{input_stem}_seed{seed}.mp4")
        log.info("generating video %d/%d with seed %d", i + 1, args.num_generations, seed)
        try:
            generation = pipeline.generate(Video2WorldRequest(**{**fields, "seed": seed}))
        except GuardrailBlocked as blocked:
            if blocked.stage != "video":
                log.error("%s: nothing is generated", blocked)
                return []
            log.warning("seed %d: %s; skipped", seed, blocked)
            continue
        if writes:
            save_generation(generation, url)
        videos.append(url)
    log.info("generated %d/%d video(s)", len(videos), args.num_generations)
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
        _move(url, scored)
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


# ----------------------------------------------------------------------------------------------------
# The batch worker's shard tasks
# ----------------------------------------------------------------------------------------------------


def candidates_dir(output_root: str, row_id: str) -> str:
    return f"{output_root.rstrip('/')}/.worldmill/candidates/{row_id}"


def candidates(output_root: str, row) -> list[tuple[int, str]]:
    """(seed, video URL) of each of a row's candidates."""
    folder = candidates_dir(output_root, row.id)
    first = int(row.params.get("seed", 0))
    count = int(row.params.get("num_generations", 2))
    return [(seed, f"{folder}/{row.id}_seed{seed}.mp4") for seed in range(first, first + count)]


def run_bestofn_shard(shard, rank: int = 0, world_size: int = 1, device: str | None = None) -> dict[str, int]:
    """A best-of-n-generate or best-of-n-score shard: this rank's stripe of rows, one record per row."""
    from manifests import read_record, write_record

    scoring = stage_of(shard.task).best_of_n == "score"
    mine = shard.rows[rank::world_size]

    def done(row) -> bool:
        record = read_record(shard.records_dir, row.id)
        if record is None or record.status != "ok":
            return False
        if scoring:
            return media.exists(row.output)
        return all(media.exists(url) for url in record.extra.get("candidates", [])) and bool(
            record.extra.get("candidates")
        )

    todo = [row for row in mine if not done(row)]
    counts = {"ok": 0, "failed": 0, "blocked": 0, "skipped": len(mine) - len(todo)}
    if rank == 0:
        log.info("shard %s: %d row(s), %d already done", shard.shard_id, len(shard.rows), counts["skipped"])
    if not todo:
        return counts
    if scoring:
        critic = load_critic(
            reason1_dir(Path(shard.model.checkpoint_dir or default_checkpoint_dir())), device
        )
    else:
        pipeline = load_guarded_pipeline(shard, device)
    attempt = int(os.environ.get("WORLDMILL_ATTEMPT", "1"))
    for row in todo:
        output = row.output if scoring else candidates_dir(shard.output_root, row.id)

        def work(row=row) -> dict:
            return (
                score_row(critic, row, shard.output_root) if scoring else generate_row(pipeline, row, shard)
            )

        record = run_row(shard, row, rank, attempt, output, work)
        write_record(shard.records_dir, record)
        counts[record.status] += 1
    return counts


def generate_row(pipeline, row, shard) -> dict:
    """Every candidate of a row that is not there yet. A refused prompt blocks the row; a refused video
    only drops that seed (the row is blocked when every seed is)."""

    request = build_request(stage_of(shard.task), row, shard.output_root)
    made, blocked, last_block = [], [], None
    for seed, url in candidates(shard.output_root, row):
        if media.exists(url) and media.exists(f"{url}.json"):
            made.append(url)
            continue
        try:
            generation = pipeline.generate(request.model_copy(update={"seed": seed}))
        except GuardrailBlocked as error:
            if error.stage != "video":
                raise
            blocked.append(seed)
            last_block = error
            continue
        save_generation(generation, url)
        made.append(url)
    if not made and last_block is not None:
        raise last_block
    return {"candidates": made, "blocked_seeds": blocked}


def score_row(critic, row, output_root: str) -> dict:
    """Score a row's candidates, copy the best (highest score, then lowest seed) to the row's output."""
    trials = int(row.params.get("num_critic_trials", 5))
    seed = int(row.params.get("seed", 0))
    conditioning = (row.input, int(row.params.get("num_conditional_frames") or 1))
    scored = []
    for candidate_seed, url in candidates(output_root, row):
        if not media.exists(url):
            continue
        result, files = score_video(critic, url, trials, seed, conditioning, base_stem(url))
        scored.append(
            {
                "seed": candidate_seed,
                "video": url,
                **{k: v for k, v in result.summary().items() if k != "metrics"},
                **files,
            }
        )
    if not scored:
        raise ValueError(f"row {row.id}: no candidate video under {candidates_dir(output_root, row.id)}")
    best = max(scored, key=lambda c: (c["score"], -c["seed"]))
    copy_file(best["video"], row.output)
    sidecar = read_sidecar(best["video"]) or {}
    sidecar.update(output=row.output, best_of_n={"critic": critic.name, "best": best, "candidates": scored})
    media.write_text(f"{row.output}.json", json.dumps(sidecar, indent=2, default=str) + "\n")
    log.info("row %s: best candidate seed %d, score %.2f%%", row.id, best["seed"], 100 * best["score"])
    return {"critic": critic.name, "best": best, "candidates": scored}
