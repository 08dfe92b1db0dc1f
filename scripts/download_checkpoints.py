"""Download the Cosmos-Predict2 checkpoints (and T5, guardrail, prompt refiner) from Hugging Face.

    python -m scripts.download_checkpoints --model_types text2image --model_sizes 2B
    python -m scripts.download_checkpoints --model_types video2world --model_sizes 2B --resolution 480 --fps 10
    python -m scripts.download_checkpoints --dry-run      # everything (about 250 GB): print the plan only

Files land in CHECKPOINT_DIR/<repo_id>/ at the revisions the reference pins. meta-llama/Llama-Guard-3-8B is
gated: accept its license on huggingface.co, then `hf auth login` (or pass --hf_token / set HF_TOKEN).
Combinations with no checkpoint (0.6B Video2World, 480p NATTEN, ...) are skipped with a warning.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from cosmos_core.download import (
    DEFAULT_CHECKPOINT_DIR,
    DEFAULT_FPS,
    DEFAULT_MODEL_SIZES,
    DEFAULT_MODEL_TYPES,
    DEFAULT_RESOLUTIONS,
    FPS,
    MODEL_SIZES,
    MODEL_TYPES,
    RESOLUTIONS,
    DownloadError,
    DownloadWarning,
    download,
    format_plan,
    plan_downloads,
)


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def _default(values: tuple[str, ...]) -> str:
    return f"(default: {' '.join(values)})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.download_checkpoints",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model_types",
        nargs="+",
        default=list(DEFAULT_MODEL_TYPES),
        choices=MODEL_TYPES,
        metavar="TYPE",
        help=f"model types to download: {_choices(MODEL_TYPES)} {_default(DEFAULT_MODEL_TYPES)}",
    )
    parser.add_argument(
        "--model_sizes",
        nargs="+",
        default=list(DEFAULT_MODEL_SIZES),
        choices=MODEL_SIZES,
        metavar="SIZE",
        help=f"model sizes to download: {_choices(MODEL_SIZES)} {_default(DEFAULT_MODEL_SIZES)}",
    )
    parser.add_argument(
        "--fps",
        nargs="+",
        default=list(DEFAULT_FPS),
        choices=FPS,
        metavar="FPS",
        help=f"frame rates of the Video2World DiTs: {_choices(FPS)}; other types ignore it "
        f"{_default(DEFAULT_FPS)}",
    )
    parser.add_argument(
        "--resolution",
        nargs="+",
        default=list(DEFAULT_RESOLUTIONS),
        choices=RESOLUTIONS,
        metavar="RES",
        help=f"resolutions of the Video2World DiTs: {_choices(RESOLUTIONS)}; other types ignore it "
        f"{_default(DEFAULT_RESOLUTIONS)}",
    )
    parser.add_argument(
        "--checkpoint_dir",
        default=DEFAULT_CHECKPOINT_DIR,
        help=f"folder that receives <repo_id>/ for each repository (default: {DEFAULT_CHECKPOINT_DIR})",
    )
    parser.add_argument(
        "--natten",
        action="store_true",
        help="also download the 720p Video2World NATTEN (sparse attention) DiTs (default: off)",
    )
    parser.add_argument(
        "--dry-run",
        "--dry_run",
        dest="dry_run",
        action="store_true",
        help="print what would be downloaded and exit without touching the network (default: off)",
    )
    parser.add_argument(
        "--hf_token",
        default=None,
        help="Hugging Face token (default: none given: HF_TOKEN or the one saved by `hf auth login`)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DownloadWarning)
        try:
            items = plan_downloads(
                args.model_types,
                args.model_sizes,
                args.resolution,
                args.fps,
                args.checkpoint_dir,
                args.natten,
            )
        except ValueError as error:
            items, failure = None, error
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    if items is None:
        print(f"error: {failure}", file=sys.stderr)
        return 2

    print(format_plan(items))
    if args.dry_run:
        print("dry run: nothing downloaded")
        return 0
    try:
        download(items, token=args.hf_token, progress=print)
    except DownloadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"done: {len(items)} repositories under {args.checkpoint_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
