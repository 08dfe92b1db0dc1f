"""Row schemas: what one manifest row may say, per task, with the defaults and limits of a generation.

These mirror cosmos_core/requests.py (the single source of the generation parameters) without importing it:
manifests is the bottom layer and must load without torch. A test keeps the two in step.

Rows forbid unknown fields, so a typo ("sede", "colour") is reported by name instead of silently ignored.
Parameters left out (None) are decided by the worker from the task's defaults: the negative prompt, the
guidance (4 for text2image, 7 for the video tasks), the model size.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

AspectRatio = Literal["1:1", "4:3", "3:4", "16:9", "9:16"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
VIDEO_EXTENSIONS = (".mp4",)
INPUT_EXTENSIONS = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS

# Ids name files (outputs, result records): letters, digits, '.', '_', '-'; no leading '.', which would make
# a hidden file (and collide with the atomic writers' `.<name>.tmp-*` siblings).
ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def _int_from_text(value: Any) -> Any:
    """CSV cells are text: '16' -> 16 for the integer choices (pydantic's Literal check is strict)."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _text_from_int(value: Any) -> Any:
    """JSON and Parquet give numbers: 720 -> '720' for the resolution choices."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


Resolution = Annotated[Literal["480", "720"], BeforeValidator(_text_from_int)]
Fps = Annotated[Literal[10, 16], BeforeValidator(_int_from_text)]
ConditionalFrames = Annotated[Literal[1, 5], BeforeValidator(_int_from_text)]
VideoModelSize = Literal["2B", "14B", "embedded"]
ImageModelSize = Literal["0.6B", "2B", "14B", "embedded"]

# The reference's batch JSON (--batch_input_json) names: output_image (text2image), output_video and
# input_video (video tasks; input_video may be an image).
OUTPUT_ALIASES = AliasChoices("output", "output_image", "output_video")
INPUT_ALIASES = AliasChoices("input", "input_video")


NATTEN_RESOLUTION = "720"  # the reference's sparse-attention DiTs exist at 720p only
NATTEN_DESCRIPTION = (
    "the sparse-attention (NATTEN) Video2World DiT, 720p only; None: the run's natten parameter"
)


def check_natten_resolution(natten: bool | None, resolution: str) -> None:
    if natten and resolution != NATTEN_RESOLUTION:
        raise ValueError(
            f"natten: the sparse-attention DiTs exist at {NATTEN_RESOLUTION}p only, not at {resolution}p"
        )


def check_natten(cls, natten: bool | None, info: ValidationInfo) -> bool | None:
    """A video row's own natten against its resolution (validated before it; the run's natten is checked
    by the flow)."""
    check_natten_resolution(natten, info.data.get("resolution", NATTEN_RESOLUTION))
    return natten


class RowBase(BaseModel):
    """Fields every task shares. Subclasses set OUTPUT_EXTENSIONS and whether an empty prompt is allowed."""

    # protected_namespaces=(): `model_size` is a field name here, not pydantic's `model_` API.
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    OUTPUT_EXTENSIONS: ClassVar[tuple[str, ...]] = VIDEO_EXTENSIONS
    EMPTY_PROMPT_OK: ClassVar[bool] = False

    id: str | None = Field(None, description="stable row id, filename-safe; derived from the row if absent")
    prompt: str
    negative_prompt: str | None = Field(None, description="None: the task's default negative prompt")
    output: str | None = Field(
        None, validation_alias=OUTPUT_ALIASES, description="path relative to the output root"
    )
    seed: int = Field(0, ge=0, lt=2**32)
    guidance: float | None = Field(None, ge=0, description="None: 4 for text2image, 7 for video tasks")
    steps: int = Field(35, ge=1, le=1000)
    model_size: VideoModelSize | None = None
    aspect_ratio: AspectRatio = "16:9"

    @field_validator("id", mode="before")
    @classmethod
    def _check_id(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # a spreadsheet or Parquet column of numbers
        if isinstance(value, str) and not ID_PATTERN.fullmatch(value):
            raise ValueError(
                f"id {value!r} is not filename-safe: use 1-128 letters, digits, '.', '_' or '-', "
                "not starting with '.'"
            )
        return value

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, prompt: str) -> str:
        if not cls.EMPTY_PROMPT_OK and not prompt.strip():
            raise ValueError("the prompt is empty")
        return prompt

    @field_validator("output")
    @classmethod
    def _check_output(cls, output: str | None) -> str | None:
        if output is None:
            return None
        return check_relative_output(output, cls.OUTPUT_EXTENSIONS)


def check_relative_output(output: str, extensions: tuple[str, ...]) -> str:
    """A clean path under the output root: relative, no '..', no URL, right extension. Returns it normalized
    ('./a//b.mp4' -> 'a/b.mp4') so two spellings of one file are caught as duplicates."""
    if not output.strip():
        raise ValueError("the output path is empty")
    if "://" in output:
        raise ValueError(f"output {output!r} is a URL: give a path relative to the output root")
    if "\\" in output:
        raise ValueError(f"output {output!r} contains '\\': separate folders with '/'")
    if output.startswith("/"):
        raise ValueError(f"output {output!r} is absolute: give a path relative to the output root")
    if ".." in output.split("/"):
        raise ValueError(f"output {output!r} leaves the output root ('..'): give a path inside it")
    normalized = posixpath.normpath(output)
    if posixpath.splitext(normalized)[1].lower() not in extensions:
        raise ValueError(f"output {output!r} must end in {' or '.join(extensions)}")
    return normalized


class Text2ImageRow(RowBase):
    OUTPUT_EXTENSIONS: ClassVar[tuple[str, ...]] = (".jpg", ".jpeg")  # the worker writes JPEG only

    model_size: ImageModelSize | None = None
    distill_steps: int = Field(0, ge=0, le=4, description="1-4: few-step sampling of the distilled model")


class Video2WorldRow(RowBase):
    # The conditioning frame carries the content; the prompt refiner may write the text.
    EMPTY_PROMPT_OK: ClassVar[bool] = True

    input: str = Field(
        validation_alias=INPUT_ALIASES,
        description="conditioning image (.jpg .jpeg .png .webp) or video (.mp4): path or URL",
    )
    num_conditional_frames: ConditionalFrames = 1
    resolution: Resolution = "720"
    fps: Fps = 16
    natten: bool | None = Field(None, description=NATTEN_DESCRIPTION)

    _check_natten = field_validator("natten")(check_natten)

    @field_validator("input")
    @classmethod
    def _check_input(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the input path is empty")
        name = value.split("?", 1)[0] if "://" in value else value  # a presigned URL's query is not the name
        if posixpath.splitext(name.rstrip("/"))[1].lower() not in INPUT_EXTENSIONS:
            raise ValueError(f"input {value!r} must end in one of {', '.join(INPUT_EXTENSIONS)}")
        return value


class Text2WorldRow(RowBase):
    resolution: Resolution = "720"
    fps: Fps = 16
    natten: bool | None = Field(None, description=NATTEN_DESCRIPTION)

    _check_natten = field_validator("natten")(check_natten)
    image_guidance: float | None = Field(None, ge=0, description="guidance of the image stage; None: 4")


class BestOfNRow(Video2WorldRow):
    num_generations: int = Field(2, ge=1, le=64, description="videos generated per row, one per seed")
    num_critic_trials: int = Field(5, ge=1, le=32, description="critic answers sampled per video")


def field_names(model: type[RowBase]) -> dict[str, str]:
    """Every name a row may use -> the field it sets: {'output_video': 'output', 'seed': 'seed', ...}."""
    names = {}
    for name, info in model.model_fields.items():
        names[name] = name
        if isinstance(info.validation_alias, AliasChoices):
            names.update({alias: name for alias in info.validation_alias.choices if isinstance(alias, str)})
    return names
