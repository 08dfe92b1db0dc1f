"""What a guardrail check says, and the error a blocked generation raises."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    safe: bool
    check: str = ""  # which check blocked: "empty prompt", "blocklist", "llama-guard-3", ...
    reason: str = ""  # one line, e.g. "matched 'nerve agent'"


class GuardrailBlocked(ValueError):
    """The guardrail refused a prompt, a refined prompt or a video: nothing is written for it.

    str(error) is the result record's error: "blocked by guardrail: <check> (<reason>)".
    """

    def __init__(self, verdict: Verdict, stage: str = "prompt") -> None:
        self.verdict = verdict
        self.stage = stage  # "prompt", "refined prompt" or "video"
        reason = f" ({verdict.reason})" if verdict.reason else ""
        super().__init__(f"blocked by guardrail: {verdict.check}{reason}")
