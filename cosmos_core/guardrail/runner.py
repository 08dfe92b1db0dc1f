"""The guardrail: text checks on prompts, video checks on generated frames, and what runs of it.

Text checks, in order (the first that blocks decides): an empty prompt, the blocklist (bundled list,
plus Cosmos-Guardrail1's lists when present), Llama Guard 3 (when its checkpoint is present). Video
checks: the SigLIP safety filter (when present). Post-processing of a video that passed: RetinaFace face
pixelation (when present; face_blur.py). Reference: cosmos_predict2/auxiliary/guardrail/common/presets.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from cosmos_core.guardrail import face_blur, llama_guard, video_filter
from cosmos_core.guardrail.blocklist import Blocklist
from cosmos_core.guardrail.verdict import GuardrailBlocked, Verdict

log = logging.getLogger("cosmos_core")


class Guardrail:
    def __init__(
        self,
        text_checks: list,
        video_checks: list,
        notes: list[str] | None = None,
        postprocessors: list | None = None,
    ) -> None:
        self.text_checks = text_checks  # objects with .name, .describe(), .check(str) -> Verdict
        self.video_checks = video_checks  # objects with .name, .describe(), .check(frames) -> Verdict
        self.postprocessors = postprocessors or []  # .name, .describe(), .postprocess(frames) -> frames
        self.notes = notes or []  # what does not run and why; what runs beyond the checks

    @classmethod
    def load(
        cls,
        checkpoint_dir: Path | None,
        device: torch.device | str = "cpu",
        offload: bool = False,
        video: bool = True,
    ) -> Guardrail:
        """Everything present under the checkpoints root; logs one line saying which parts run.

        video=False: text checks only (Text2Image, as in the reference)."""
        device = torch.device(device)
        text_checks: list = [Blocklist.load(checkpoint_dir)]
        video_checks: list = []
        postprocessors: list = []
        notes = []
        if (folder := llama_guard.present(checkpoint_dir)) is not None:
            text_checks.append(llama_guard.LlamaGuard3.load(folder, device, offload))
        else:
            notes.append(f"no Llama Guard 3 at {_where(checkpoint_dir, llama_guard.LLAMA_GUARD_REPO)}")
        if video:
            if (files := video_filter.present(checkpoint_dir)) is not None:
                video_checks.append(video_filter.VideoSafetyFilter.load(*files, device, offload))
            else:
                notes.append(f"no video safety filter at {_where(checkpoint_dir, video_filter.FILTER_DIR)}")
            if (face := face_blur.present(checkpoint_dir)) is not None:
                postprocessors.append(face_blur.FacePixelator.load(face, device, offload))
                notes.append(f"face pixelation: RetinaFace ({face})")
            else:
                notes.append(
                    f"face pixelation: no RetinaFace at {_where(checkpoint_dir, face_blur.FACE_CHECKPOINT)}"
                )
        guardrail = cls(text_checks, video_checks, notes, postprocessors)
        log.info("guardrail: %s", guardrail.describe())
        return guardrail

    def describe(self) -> str:
        text = " + ".join(c.describe() for c in self.text_checks)
        video = " + ".join(c.describe() for c in self.video_checks) or "none"
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"text checks: {text}; video checks: {video}{notes}"

    def parts(self) -> list[str]:
        """Names of the checks and post-processors that run, for sidecars and records."""
        return [c.name for c in self.text_checks + self.video_checks + self.postprocessors]

    def check_prompt(self, prompt: str, stage: str = "prompt") -> None:
        """Raise GuardrailBlocked if any text check refuses the prompt."""
        verdict = self.prompt_verdict(prompt)
        if not verdict.safe:
            log.warning("guardrail blocked the %s: %s (%s)", stage, verdict.check, verdict.reason)
            raise GuardrailBlocked(verdict, stage)

    def prompt_verdict(self, prompt: str) -> Verdict:
        for check in self.text_checks:
            verdict = check.check(prompt)
            if not verdict.safe:
                return verdict
        return Verdict(True)

    def check_video(self, frames: np.ndarray) -> None:
        """Raise GuardrailBlocked if any video check refuses the frames ((T, H, W, 3) uint8)."""
        for check in self.video_checks:
            verdict = check.check(frames)
            if not verdict.safe:
                log.warning("guardrail blocked the video: %s (%s)", verdict.check, verdict.reason)
                raise GuardrailBlocked(verdict, "video")

    def postprocess(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 after the post-processors (face pixelation); as is when none runs."""
        for postprocessor in self.postprocessors:
            frames = postprocessor.postprocess(frames)
        return frames


def _where(checkpoint_dir: Path | None, relative: Path) -> str:
    return str(checkpoint_dir / relative) if checkpoint_dir is not None else str(relative)
