"""Which Hugging Face repositories and files a request needs, and fetching them.

    plan_downloads(["video2world"], ["2B"], ["720"], [16], Path("checkpoints"))  # -> [DownloadItem, ...]
    print(format_plan(items)); download(items)

The choices, defaults, pinned revisions and file patterns are those of the reference's
`scripts/download_checkpoints.py` (nvidia-cosmos/cosmos-predict2 at 661da4774b0c). Every repository lands in
`checkpoint_dir/<repo_id>/`, the layout `manifests.presets` (`repo_id` / `dit_file`) and
`cosmos_core.checkpoints` read: `checkpoints/nvidia/Cosmos-Predict2-2B-Video2World/model-720p-16fps.pt`.

Combinations with no checkpoint on the Hub are skipped with a `DownloadWarning`, so the defaults (every
type at 2B and 14B) still work; a request that leaves no model checkpoint at all is a `ValueError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from manifests.presets import (
    FRAMES_BY_FPS,
    NATTEN_RESOLUTION,
    T5_REPO,
    TEXT2IMAGE_SIZES,
    VIDEO2WORLD_SIZES,
    text2image_preset,
    video2world_preset,
)
from manifests.presets import RESOLUTIONS as PRESET_RESOLUTIONS

MODEL_TYPES = (
    "text2image",
    "video2world",
    "sample_action_conditioned",
    "sample_gr00t_dreams_gr1",
    "sample_gr00t_dreams_droid",
    "multiview",
)
# The sizes, resolutions and frame rates of the presets (manifests/presets.py), as the command's words.
MODEL_SIZES = tuple(dict.fromkeys(TEXT2IMAGE_SIZES + VIDEO2WORLD_SIZES))
RESOLUTIONS = PRESET_RESOLUTIONS
FPS = tuple(str(rate) for rate in sorted(FRAMES_BY_FPS))

# The reference's defaults; scripts/download_checkpoints.py takes its own from here.
DEFAULT_MODEL_TYPES = MODEL_TYPES
DEFAULT_MODEL_SIZES = ("2B", "14B")
DEFAULT_RESOLUTIONS = ("720",)
DEFAULT_FPS = ("16",)
DEFAULT_CHECKPOINT_DIR = "checkpoints"

# Commits pinned by the reference (REPO_ID_MAPPING), so a download is reproducible.
REVISIONS: dict[str, str] = {
    "google-t5/t5-11b": "90f37703b3334dfe9d2b009bfcbfbf1ac9d28ea3",
    "meta-llama/Llama-Guard-3-8B": "7327bd9f6efbbe6101dc6cc4736302b3cbb6e425",
    "nvidia/Cosmos-Guardrail1": "d6d4bfa899a71454a700907664f3e88f503950cf",
    "nvidia/Cosmos-Predict2-14B-Sample-GR00T-Dreams-DROID": "ebc29d30a3fab504bcc779a85bca073d14ad39f9",
    "nvidia/Cosmos-Predict2-14B-Sample-GR00T-Dreams-GR1": "926f34dd83860c5406ab4b400e156c3fd6fe6c0d",
    "nvidia/Cosmos-Predict2-14B-Text2Image": "015332720f70dd7b497c1cff9fd0c936a77f160b",
    "nvidia/Cosmos-Predict2-14B-Video2World": "03b03a377fede782647afac998f674d9f358e319",
    "nvidia/Cosmos-Predict2-2B-Multiview": "52f3731663eecdc998d9608f9b21ac4dcbdea6f1",
    "nvidia/Cosmos-Predict2-2B-Text2Image": "acdb5fde992a73ef0355f287977d002cbfd127e0",
    "nvidia/Cosmos-Predict2-2B-Video2World": "f50c09f5d8ab133a90cac3f4886a6471e9ba3f18",
    "nvidia/Cosmos-Predict2-0.6B-Text2Image": "80e9f1599778499e9b5435179861871b5a3561d4",
    "nvidia/Cosmos-Reason1-7B": "8fe96c1fa10db9e666b6fa6a87fea57dd9635649",
}

# Repositories that need an accepted license and a logged-in token.
GATED_REPOS = frozenset({"meta-llama/Llama-Guard-3-8B"})

GUARDRAIL_REPO = "nvidia/Cosmos-Guardrail1"
LLAMA_GUARD_REPO = "meta-llama/Llama-Guard-3-8B"
REASON1_REPO = "nvidia/Cosmos-Reason1-7B"
MULTIVIEW_REPO = "nvidia/Cosmos-Predict2-2B-Multiview"
ACTION_CONDITIONED_REPO = "nvidia/Cosmos-Predict2-2B-Sample-Action-Conditioned"
GR00T_REPOS = {
    "sample_gr00t_dreams_gr1": ("GR1", "nvidia/Cosmos-Predict2-14B-Sample-GR00T-Dreams-GR1"),
    "sample_gr00t_dreams_droid": ("DROID", "nvidia/Cosmos-Predict2-14B-Sample-GR00T-Dreams-DROID"),
}


class DownloadWarning(UserWarning):
    """A requested combination has no checkpoint on the Hub and is skipped."""


class DownloadError(RuntimeError):
    """Fetching one repository failed; the message names it and what to do."""


@dataclass(frozen=True)
class DownloadItem:
    """One `snapshot_download` call: a repository at a pinned revision, filtered, into local_dir."""

    repo_id: str
    revision: str | None  # None: the Hub's current main
    allow_patterns: tuple[str, ...] | None  # None: every file
    ignore_patterns: tuple[str, ...] | None
    local_dir: Path
    reason: str  # which request needs it, e.g. "Video2World 2B 720p 16fps DiT"


# ----------------------------------------------------------------------------------------------------
# Planning
# ----------------------------------------------------------------------------------------------------


def _checked(name: str, values: Iterable[str | int], choices: tuple[str, ...]) -> list[str]:
    """Values as strings, deduplicated in order; an unknown one is a ValueError listing the choices."""
    result: list[str] = []
    for value in values:
        text = str(value)
        if text not in choices:
            raise ValueError(f"unknown {name} value {value!r}; choose from {', '.join(choices)}")
        if text not in result:
            result.append(text)
    return result


def _skip(message: str) -> None:
    warnings.warn(message, DownloadWarning, stacklevel=3)


def _merge(items: list[DownloadItem]) -> list[DownloadItem]:
    """One item per repository, in first-seen order: what any request allows, what every request ignores."""
    groups: dict[str, list[DownloadItem]] = {}
    for item in items:
        groups.setdefault(item.repo_id, []).append(item)
    merged = []
    for repo_id, group in groups.items():
        allow: tuple[str, ...] | None = ()
        for item in group:
            if allow is None or item.allow_patterns is None:
                allow = None
            else:
                allow += tuple(p for p in item.allow_patterns if p not in allow)
        ignore = group[0].ignore_patterns
        for item in group[1:]:
            if ignore is None or item.ignore_patterns is None:
                ignore = None
            else:
                ignore = tuple(p for p in ignore if p in item.ignore_patterns) or None
        reasons = list(dict.fromkeys(item.reason for item in group))
        merged.append(
            DownloadItem(repo_id, group[0].revision, allow, ignore, group[0].local_dir, "; ".join(reasons))
        )
    return merged


def plan_downloads(
    model_types: list[str],
    model_sizes: list[str],
    resolutions: list[str],
    fps: list[str | int],
    checkpoint_dir: Path,
    natten: bool = False,
) -> list[DownloadItem]:
    """Every repository (and file patterns) the requested models need, each once, shared models last.

    Rules (the reference's): Text2Image fetches the whole repository per size; Video2World fetches
    `model-{res}p-{fps}fps.pt` (plus `-natten.pt` at 720p with `natten`) per size, resolution and fps, the
    size's `tokenizer/*`, and once Cosmos-Reason1-7B (the prompt refiner); Multiview (2B only) fetches
    `*.pt`; the GR00T Dreams models (14B only) whole; T5-11B (no `tf_model.h5`), Cosmos-Guardrail1 and
    Llama-Guard-3-8B (no `original/*`) always. Resolution and fps only select Video2World files.

    Skipped with a DownloadWarning: a type at a size it does not exist in (0.6B Video2World, Multiview
    without 2B, GR00T without 14B; the reference fetches those two whatever the sizes, and 0.6B Video2World
    fails there); `natten` at 480p (the dense file is still fetched) or without Video2World;
    Sample-Action-Conditioned always (it needs 4 fps, which is not a choice, as in the reference).
    A ValueError when nothing but the shared models would be left, or for an unknown value.
    """
    types = _checked("model_types", model_types, MODEL_TYPES)
    sizes = _checked("model_sizes", model_sizes, MODEL_SIZES)
    resolutions = _checked("resolutions", resolutions, RESOLUTIONS)
    rates = _checked("fps", fps, FPS)
    if not types or not sizes:
        raise ValueError("nothing to download: give at least one model type and one model size")
    if "video2world" in types and (not resolutions or not rates):
        raise ValueError("Video2World needs at least one resolution and one fps")
    checkpoint_dir = Path(checkpoint_dir)

    def item(
        repo_id: str, reason: str, allow: list[str] | None = None, ignore: list[str] | None = None
    ) -> DownloadItem:
        return DownloadItem(
            repo_id,
            REVISIONS.get(repo_id),
            None if allow is None else tuple(allow),
            None if ignore is None else tuple(ignore),
            checkpoint_dir / repo_id,
            reason,
        )

    items: list[DownloadItem] = []

    if "text2image" in types:
        for size in (s for s in sizes if s in TEXT2IMAGE_SIZES):
            items.append(item(text2image_preset(size).repo_id, f"Text2Image {size} DiT and VAE"))

    if "video2world" in types:
        for size in (s for s in sizes if s not in VIDEO2WORLD_SIZES):
            _skip(
                f"skipping {size} Video2World: Video2World exists only as {' and '.join(VIDEO2WORLD_SIZES)}"
            )
        for size in (s for s in sizes if s in VIDEO2WORLD_SIZES):
            for res in resolutions:
                for rate in rates:
                    preset = video2world_preset(size, res, int(rate))
                    items.append(
                        item(preset.repo_id, f"Video2World {size} {res}p {rate}fps DiT", [preset.dit_file])
                    )
                    if natten and res == NATTEN_RESOLUTION:
                        preset = video2world_preset(size, res, int(rate), natten=True)
                        reason = f"Video2World {size} {res}p {rate}fps NATTEN DiT"
                        items.append(item(preset.repo_id, reason, [preset.dit_file]))
            items.append(item(preset.repo_id, f"Video2World {size} VAE", ["tokenizer/*"]))
        if natten and any(res != NATTEN_RESOLUTION for res in resolutions):
            _skip(
                "no NATTEN DiT at 480p (NATTEN checkpoints exist only at 720p): 480p gets the dense-attention DiT only"
            )
        if any(i.repo_id.endswith("-Video2World") for i in items):
            items.append(item(REASON1_REPO, "Video2World prompt refiner"))
    if natten and "video2world" not in types:
        _skip("--natten ignored: it selects Video2World files and video2world is not among the model types")

    if "multiview" in types:
        if "2B" in sizes:
            items.append(item(MULTIVIEW_REPO, "Multiview 2B DiTs", ["*.pt"]))
        else:
            _skip(f"skipping Multiview: it exists only as 2B, and the model sizes are {' '.join(sizes)}")

    if "sample_action_conditioned" in types:
        _skip(
            f"skipping {ACTION_CONDITIONED_REPO}: it exists only at 2B, 480p and 4 fps, and 4 fps is not a "
            f"choice (as in the reference); fetch it by hand with `hf download {ACTION_CONDITIONED_REPO} --local-dir "
            f"{checkpoint_dir / ACTION_CONDITIONED_REPO}` if you need it"
        )

    for model_type, (robot, repo_id) in GR00T_REPOS.items():
        if model_type in types:
            if "14B" in sizes:
                items.append(item(repo_id, f"GR00T Dreams {robot} 14B DiT"))
            else:
                _skip(
                    f"skipping GR00T Dreams {robot}: it exists only as 14B, and the model sizes are {' '.join(sizes)}"
                )

    if not items:
        raise ValueError(
            f"nothing to download: no checkpoint exists for model types {' '.join(types)} at sizes "
            f"{' '.join(sizes)} (the warnings say why)"
        )

    # Shared by every model: text encoder and guardrail.
    items.append(item(T5_REPO, "T5-11B text encoder", ignore=["tf_model.h5"]))
    items.append(item(GUARDRAIL_REPO, "guardrail: blocklist, video safety filter, face blur"))
    items.append(item(LLAMA_GUARD_REPO, "guardrail: prompt safety (Llama Guard 3)", ignore=["original/*"]))
    return _merge(items)


def format_plan(items: list[DownloadItem]) -> str:
    """The plan as text for --dry-run: one block per repository."""
    lines = [f"{len(items)} repositories:"]
    for item in items:
        gated = (
            "  (gated: accept its license on huggingface.co and log in)"
            if item.repo_id in GATED_REPOS
            else ""
        )
        lines.append(f"- {item.repo_id}{gated}")
        lines.append(f"    revision: {item.revision or 'main (not pinned)'}")
        files = "all" if item.allow_patterns is None else " ".join(item.allow_patterns)
        if item.ignore_patterns:
            files += f" except {' '.join(item.ignore_patterns)}"
        lines.append(f"    files:    {files}")
        lines.append(f"    into:     {item.local_dir}")
        lines.append(f"    for:      {item.reason}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Fetching
# ----------------------------------------------------------------------------------------------------


def _needs_login(error: Exception) -> bool:
    from huggingface_hub import errors

    login_errors = tuple(
        getattr(errors, name)
        for name in ("GatedRepoError", "RepositoryNotFoundError", "LocalTokenNotFoundError")
        if hasattr(errors, name)
    )
    status = getattr(getattr(error, "response", None), "status_code", None)
    return isinstance(error, login_errors) or status in (401, 403)


def download(
    items: list[DownloadItem], token: str | None = None, progress: Callable[[str], None] | None = None
) -> None:
    """snapshot_download each item into its local_dir (files already there are kept, so a rerun resumes).

    token: a Hugging Face token; None uses HF_TOKEN or the one saved by `hf auth login`.
    progress: called with one line before each repository (the CLI passes print).
    """
    from huggingface_hub import snapshot_download

    for index, item in enumerate(items, 1):
        if progress is not None:
            progress(f"[{index}/{len(items)}] {item.repo_id} -> {item.local_dir}")
        try:
            snapshot_download(
                item.repo_id,
                revision=item.revision,
                allow_patterns=None if item.allow_patterns is None else list(item.allow_patterns),
                ignore_patterns=None if item.ignore_patterns is None else list(item.ignore_patterns),
                local_dir=item.local_dir,
                token=token,
            )
        except Exception as error:  # HTTP, offline, disk: all mean this repository did not arrive
            if item.repo_id in GATED_REPOS or _needs_login(error):
                hint = (
                    f"it may be gated or need a login: accept its license at https://huggingface.co/{item.repo_id}, "
                    "then run `hf auth login` (`huggingface-cli login` with older huggingface_hub) or pass "
                    "--hf_token, and retry"
                )
            else:
                hint = (
                    "check the network connection and free disk space, then retry (finished files are kept)"
                )
            raise DownloadError(
                f"downloading {item.repo_id} (revision {item.revision or 'main'}, needed for {item.reason}) "
                f"into {item.local_dir} failed: {type(error).__name__}: {error}; {hint}"
            ) from error
