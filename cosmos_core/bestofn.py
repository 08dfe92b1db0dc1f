"""Best-of-N Video2World: naming and scoring, shared by the command (cosmos_core/bestofn_command.py) and
the batch worker's jobs (cosmos_core/jobs.py).

Reference: examples/video2world_bestofn.py. Candidates are `{input}_seed{seed}.mp4`; the critic
(cosmos_core/critic.py) scores each one, and the score goes into the file names: the video becomes
`{input}_seed{seed}_score{pct:03d}.mp4` (its sidecar follows, with the critic's verdict added), beside
`..._score{pct:03d}.html` (the report: the video embedded, every trial's analysis) and
`..._score{pct:03d}.json` (the raw responses, as the reference writes them).
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import time

from fsspec.core import url_to_fs

from cosmos_core import media
from cosmos_core.critic import CriticResult, html_report
from manifests.storage import write_bytes_atomic

log = logging.getLogger("cosmos_core")

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


def move_file(source: str, target: str) -> None:
    if source != target:
        fs, path = url_to_fs(source)
        fs.mv(path, url_to_fs(target)[1])


def copy_file(source: str, target: str) -> None:
    """Copy bytes atomically (manifests.storage's writer)."""
    write_bytes_atomic(target, _read_bytes(source))
