"""What one generation asks for, defined once: each parameter's name, type, default, limits and description.

- the pipelines (cosmos_core/pipelines/) take these requests;
- the commands build their flags from them (cosmos_core/flags.py: `--<field>`, the reference's names);
- a manifest row is a request plus the row's id and output, and its model choice (manifests/schemas.py);
- the model choices (which size, resolution, frame rate, attention) are models here too, so that rows,
  commands and flows offer the same choices, taken from manifests/presets.py.

A new generation parameter is one field here, used by its pipeline (docs/ARCHITECTURE.md, "Add a manifest
column"). Values may come as text (CSV cells): the choices of numbers accept '16' for 16, and
resolutions 720 for '720'.
"""

from __future__ import annotations

import os
import posixpath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from manifests.presets import (
    ASPECT_RATIOS,
    EMBEDDED,
    FPS_CHOICES,
    NATTEN_RESOLUTION,
    RESOLUTIONS,
    TEXT2IMAGE_SIZES,
    VIDEO2WORLD_SIZES,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_EXTENSIONS = (".mp4",)
INPUT_EXTENSIONS = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS


def _int_from_text(value: Any) -> Any:
    """CSV cells are text: '16' -> 16 for the integer choices (pydantic's Literal check is strict)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _text_from_int(value: Any) -> Any:
    """JSON, Parquet and the commands give numbers: 720 -> '720' for the resolution choices."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


DEFAULT_MAX_PROMPT_CHARS = 10_000  # T5 reads 512 tokens, about 2,000 characters of English


def max_prompt_chars() -> int:
    """The longest prompt accepted, in characters: WORLDMILL_MAX_PROMPT_CHARS, else 10,000. A hard limit
    before the guardrail, so that no row's checks take long; a prompt past T5's 512 tokens but within it is
    generated from its first 512 tokens and says so (`prompt_truncated` in its sidecar and record)."""
    return int(os.environ.get("WORLDMILL_MAX_PROMPT_CHARS", DEFAULT_MAX_PROMPT_CHARS))


def _within_limit(text: str) -> str:
    limit = max_prompt_chars()
    if len(text) > limit:
        raise ValueError(
            f"{len(text):,} characters; prompts may have {limit:,} (WORLDMILL_MAX_PROMPT_CHARS; the text "
            "encoder reads the first 512 tokens, about 2,000 characters)"
        )
    return text


def _not_empty(prompt: str) -> str:
    if not prompt.strip():
        raise ValueError("the prompt is empty")
    return prompt


def _input_name(value: str) -> str:
    if not value.strip():
        raise ValueError("the input path is empty")
    name = value.split("?", 1)[0] if "://" in value else value  # a presigned URL's query is not the name
    if posixpath.splitext(name.rstrip("/"))[1].lower() not in INPUT_EXTENSIONS:
        raise ValueError(f"input {value!r} must end in one of {', '.join(INPUT_EXTENSIONS)}")
    return value


AspectRatio = Literal[ASPECT_RATIOS]
Resolution = Annotated[Literal[RESOLUTIONS], BeforeValidator(_text_from_int)]
Fps = Annotated[Literal[FPS_CHOICES], BeforeValidator(_int_from_text)]
ConditionalFrames = Annotated[Literal[1, 5], BeforeValidator(_int_from_text)]
ImageModelSize = Literal[(*TEXT2IMAGE_SIZES, EMBEDDED)]
VideoModelSize = Literal[(*VIDEO2WORLD_SIZES, EMBEDDED)]
Prompt = Annotated[str, AfterValidator(_within_limit)]
NonEmptyPrompt = Annotated[str, AfterValidator(_within_limit), AfterValidator(_not_empty)]
InputPath = Annotated[str, AfterValidator(_input_name)]

# The reference's default Video2World negative prompt (prompts/video2world/negative/default.txt).
DEFAULT_NEGATIVE_PROMPT = (
    "The video captures a series of frames showing ugly scenes, static with no motion, motion blur, "
    "over-saturation, shaky footage, low resolution, grainy texture, pixelated images, poorly lit areas, "
    "underexposed and overexposed scenes, poor color balance, washed out colors, choppy sequences, jerky "
    "movements, low frame rate, artifacting, color banding, unnatural transitions, outdated special effects, "
    "fake elements, unconvincing visuals, poorly edited content, jump cuts, visual noise, and flickering. "
    "Overall, the video is of poor quality."
)
GUIDANCE_HELP = "classifier-free guidance: cond + g * (cond - uncond)"
MAX_GUIDANCE = 50.0  # far beyond any useful value (the reference uses 4 and 7); bounds a typo like 70


class Strict(BaseModel):
    """Unknown names are errors (a typo is reported by name, never ignored); fields are set by name or by
    any of their aliases (the reference's batch keys)."""

    # protected_namespaces=(): `model_size` is a field name here, not pydantic's `model_` API.
    # allow_inf_nan=False: NaN and infinities, however spelled ('nan', 'Infinity', 1e999), are errors.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        protected_namespaces=(),
        validate_by_name=True,
        validate_by_alias=True,
        allow_inf_nan=False,
    )


class Request(Strict):
    prompt: Prompt = Field(description="text prompt")
    negative_prompt: Prompt = Field("", description="what to avoid")
    seed: int = Field(
        0, ge=0, lt=2**32, description="random seed (noise is drawn with NumPy, device-independent)"
    )
    steps: int = Field(
        35, ge=1, le=1000, description="sampling steps (35 -> 72 DiT evaluations with guidance)"
    )
    aspect_ratio: AspectRatio = Field("16:9", description="output aspect ratio")
    guidance: float = Field(7.0, ge=0, le=MAX_GUIDANCE, description=GUIDANCE_HELP)
    step_cache: float = Field(
        0.0,
        ge=0,
        le=1,
        description="reuse the DiT's blocks 2..N between steps while the first block's output changes "
        "less than this (relative L1, e.g. 0.05); 0: off",
    )


class Text2ImageRequest(Request):
    prompt: NonEmptyPrompt = Field(description="text prompt")
    guidance: float = Field(4.0, ge=0, le=MAX_GUIDANCE, description=GUIDANCE_HELP)
    distill_steps: int = Field(0, ge=0, le=4, description="1-4: few-step sampling of the distilled model")


class Video2WorldRequest(Request):
    # The conditioning frames carry the content, so the prompt may be empty (the refiner may write it).
    prompt: Prompt = Field("", description="text prompt")
    input_path: InputPath = Field(
        validation_alias=AliasChoices("input", "input_video", "input_path"),
        description="conditioning image (.jpg .jpeg .png .webp) or video (.mp4): path or URL",
    )
    negative_prompt: Prompt = Field(DEFAULT_NEGATIVE_PROMPT, description="what to avoid")
    num_conditional_frames: ConditionalFrames = Field(
        1, description="conditioning frames taken from the end of the input"
    )


class Text2WorldRequest(Request):
    """Text2Image draws the first frame, Video2World animates it (reference: examples/text2world.py)."""

    prompt: NonEmptyPrompt = Field(description="text prompt")
    # the reference gives the image stage the video's negative prompt too
    negative_prompt: Prompt = Field(DEFAULT_NEGATIVE_PROMPT, description="what to avoid")
    guidance: float = Field(7.0, ge=0, le=MAX_GUIDANCE, description="guidance of the Video2World stage")
    image_guidance: float = Field(4.0, ge=0, le=MAX_GUIDANCE, description="guidance of the Text2Image stage")

    def image_stage(self) -> Text2ImageRequest:
        """Stage 1: the first frame."""
        shared = self.model_dump(include=set(Request.model_fields) - {"guidance"})
        return Text2ImageRequest(**shared, guidance=self.image_guidance)

    def video_stage(self, image_url: str) -> Video2WorldRequest:
        """Stage 2: Video2World from the stage-1 image, one conditioning frame."""
        shared = self.model_dump(include=set(Request.model_fields))
        return Video2WorldRequest(**shared, input_path=image_url, num_conditional_frames=1)


class BestOfNRequest(Video2WorldRequest):
    """Video2World for seeds seed..seed+num_generations-1, each video scored by a critic, the best kept."""

    num_generations: int = Field(2, ge=1, le=64, description="videos to generate, one per seed")
    num_critic_trials: int = Field(5, ge=1, le=32, description="critic answers sampled per video")

    def candidate(self, seed: int) -> Video2WorldRequest:
        fields = self.model_dump(include=set(Video2WorldRequest.model_fields))
        return Video2WorldRequest(**{**fields, "seed": seed})

    def seeds(self) -> range:
        return range(self.seed, self.seed + self.num_generations)


# ---------------------------------------------------------------------------------------------------------
# Model choices: which weights generate (rows choose per row, commands per run, flows as run defaults)
# ---------------------------------------------------------------------------------------------------------

MODEL_SIZE_HELP = "unset: 2B if its checkpoint is present, else the embedded small model"


class Text2ImageModel(Strict):
    model_size: ImageModelSize | None = Field(None, description=MODEL_SIZE_HELP)


class Video2WorldModel(Strict):
    model_size: VideoModelSize | None = Field(None, description=MODEL_SIZE_HELP)
    resolution: Resolution = Field("720", description="model resolution")
    fps: Fps = Field(16, description="model frame rate (10: 61 frames, 16: 93)")
    natten: bool | None = Field(
        None,
        description=f"the sparse-attention (NATTEN) Video2World DiT, model-{NATTEN_RESOLUTION}p-{{fps}}fps-"
        "natten.pt (2B/14B, 720p only; other aspect ratios scale its windows)",
    )

    @field_validator("natten")
    @classmethod
    def _natten_at_its_resolution(cls, natten: bool | None, info: ValidationInfo) -> bool | None:
        check_natten_resolution(natten, info.data.get("resolution", NATTEN_RESOLUTION))
        return natten


def check_natten_resolution(natten: bool | None, resolution: str) -> None:
    if natten and resolution != NATTEN_RESOLUTION:
        raise ValueError(
            f"natten: the sparse-attention DiTs exist at {NATTEN_RESOLUTION}p only, not at {resolution}p"
        )
