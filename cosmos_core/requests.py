"""What one generation asks for: the single source of the parameters and their defaults.

The pipelines take these; the command-line interfaces (cosmos_core/cli.py) take their defaults and
choices from them; batch rows validate into them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

AspectRatio = Literal["1:1", "4:3", "3:4", "16:9", "9:16"]


def _not_empty(prompt: str) -> str:
    if not prompt.strip():
        raise ValueError("the prompt is empty")
    return prompt


NonEmptyPrompt = Annotated[str, AfterValidator(_not_empty)]

# The reference's default Video2World negative prompt (prompts/video2world/negative/default.txt).
DEFAULT_NEGATIVE_PROMPT = (
    "The video captures a series of frames showing ugly scenes, static with no motion, motion blur, "
    "over-saturation, shaky footage, low resolution, grainy texture, pixelated images, poorly lit areas, "
    "underexposed and overexposed scenes, poor color balance, washed out colors, choppy sequences, jerky "
    "movements, low frame rate, artifacting, color banding, unnatural transitions, outdated special effects, "
    "fake elements, unconvincing visuals, poorly edited content, jump cuts, visual noise, and flickering. "
    "Overall, the video is of poor quality."
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    seed: int = Field(
        0, ge=0, lt=2**32, description="random seed (noise is drawn with NumPy, device-independent)"
    )
    steps: int = Field(
        35, ge=1, le=1000, description="sampling steps (35 -> 72 DiT evaluations with guidance)"
    )
    aspect_ratio: AspectRatio = "16:9"
    step_cache: float = Field(
        0.0,
        ge=0,
        description="reuse the DiT's blocks 2..N between steps while the first block's output changes "
        "less than this (relative L1, e.g. 0.05); 0: off",
    )


class Text2ImageRequest(_Request):
    prompt: NonEmptyPrompt
    negative_prompt: str = ""
    guidance: float = Field(4.0, ge=0, description="classifier-free guidance: cond + g * (cond - uncond)")
    distill_steps: int = Field(0, ge=0, le=4, description="1-4: few-step sampling of the distilled model")


class Video2WorldRequest(_Request):
    prompt: str = ""
    input_path: str = Field(description="conditioning image (.jpg .jpeg .png .webp) or video (.mp4)")
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT
    num_conditional_frames: Literal[1, 5] = 1
    guidance: float = Field(7.0, ge=0, description="classifier-free guidance: cond + g * (cond - uncond)")


class Text2WorldRequest(_Request):
    prompt: NonEmptyPrompt
    negative_prompt: str = DEFAULT_NEGATIVE_PROMPT  # the reference gives the image stage this one too
    guidance: float = Field(7.0, ge=0, description="guidance of the Video2World stage")
    image_guidance: float = Field(4.0, ge=0, description="guidance of the Text2Image stage")
