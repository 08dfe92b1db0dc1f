"""Manifest rows: a row is its task's request and model choice (manifests/requests.py) plus its id and output.
Each task's row model is declared with the task, in the registry (manifests/tasks.py); RowBase is here.

Nothing here restates a generation parameter: a row has every field of its request, with the request's
defaults, limits and descriptions, so a new request field is a new manifest column. Rows forbid unknown
fields, so a typo ("sede", "colour") is reported by name instead of silently ignored. The model choice
(model_size; for video rows resolution, fps, natten) left unset is the run's.

The reference's batch JSON (--batch_input_json) names are aliases: output_image (text2image),
output_video and input_video (video tasks; input_video may be an image).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, Field, ValidationInfo, field_validator

from manifests.requests import VIDEO_EXTENSIONS, Request, Strict, Text2ImageModel, Video2WorldModel

# Ids name files (outputs, result records): letters, digits, '.', '_', '-'; no leading '.', which would make
# a hidden file (and collide with the atomic writer's `.<name>.tmp-*` siblings).
ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")

OUTPUT_ALIASES = AliasChoices("output", "output_image", "output_video")

# Validation context {OUTPUTS_AS_GIVEN: True}: the commands' batch JSON, whose outputs may be any path or URL
# (as --save_path); manifests' outputs are paths under the run's output root.
OUTPUTS_AS_GIVEN = "outputs_as_given"


class RowBase(Strict):
    """What a row adds to its request: its id and output. Subclasses name their request (REQUEST) and the
    output's extensions."""

    REQUEST: ClassVar[type[Request]]
    OUTPUT_EXTENSIONS: ClassVar[tuple[str, ...]] = VIDEO_EXTENSIONS

    id: str | None = Field(None, description="stable row id, filename-safe; derived from the row if absent")
    output: str | None = Field(
        None, validation_alias=OUTPUT_ALIASES, description="path relative to the output root"
    )

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

    @field_validator("output")
    @classmethod
    def _check_output(cls, output: str | None, info: ValidationInfo) -> str | None:
        if output is None:
            return None
        if info.context and info.context.get(OUTPUTS_AS_GIVEN):
            return check_extension(output, cls.OUTPUT_EXTENSIONS)
        return check_relative_output(output, cls.OUTPUT_EXTENSIONS)

    def request(self, **resolved: Any) -> Request:
        """The row's request; `resolved` replaces fields the reader resolved (input_path)."""
        fields = self.model_dump(include=set(self.REQUEST.model_fields))
        return self.REQUEST.model_validate({**fields, **resolved})

    @classmethod
    def model_choice_class(cls) -> type[BaseModel]:
        """Which model choice the row carries (Text2ImageModel or Video2WorldModel)."""
        return next(base for base in cls.__mro__ if base in (Text2ImageModel, Video2WorldModel))

    @property
    def model_choice(self) -> BaseModel:
        """The row's model choice (model_size and, for video rows, resolution, fps, natten)."""
        model = self.model_choice_class()
        return model.model_validate(self.model_dump(include=set(model.model_fields)))


def check_extension(output: str, extensions: tuple[str, ...]) -> str:
    name = output.split("?", 1)[0]
    if posixpath.splitext(name)[1].lower() not in extensions:
        raise ValueError(f"output {output!r} must end in {' or '.join(extensions)}")
    return output


# Characters fsspec or a shell gives a meaning ('::' chains file systems, '*?[]' are glob patterns that some
# fsspec operations expand, '~' at the start is a home folder), or that no portable file name has.
_SPECIAL = re.compile(r'[:*?\[\]"<>|]')


def check_relative_output(output: str, extensions: tuple[str, ...]) -> str:
    """A plain path under the output root: relative, no '..', no URL or other fsspec syntax, no stray
    whitespace around a folder or file name, right extension. Returns it normalized ('./a//b.mp4' ->
    'a/b.mp4') so two spellings of one file are caught as duplicates."""
    if not output.strip():
        raise ValueError("the output path is empty")
    if "://" in output:
        raise ValueError(f"output {output!r} is a URL: give a path relative to the output root")
    if special := _SPECIAL.search(output):
        raise ValueError(
            f"output {output!r} contains {special[0]!r}: use letters, digits, spaces and '._-/' "
            "(fsspec reads ':' '*' '?' '[' as URL or pattern syntax)"
        )
    if output.startswith("~"):
        raise ValueError(
            f"output {output!r} starts with '~' (a home folder): give a path under the output root"
        )
    if any(part != part.strip() for part in output.split("/")):
        raise ValueError(f"output {output!r} has a folder or file name starting or ending with whitespace")
    if "\\" in output:
        raise ValueError(f"output {output!r} contains '\\': separate folders with '/'")
    if output.startswith("/"):
        raise ValueError(f"output {output!r} is absolute: give a path relative to the output root")
    if ".." in output.split("/"):
        raise ValueError(f"output {output!r} leaves the output root ('..'): give a path inside it")
    return check_extension(posixpath.normpath(output), extensions)


def field_names(model: type[BaseModel]) -> dict[str, str]:
    """Every name a row may use -> the field it sets: {'output_video': 'output', 'seed': 'seed', ...}."""
    names = {}
    for name, info in model.model_fields.items():
        names[name] = name
        if isinstance(info.validation_alias, AliasChoices):
            names.update({alias: name for alias in info.validation_alias.choices if isinstance(alias, str)})
    return names
