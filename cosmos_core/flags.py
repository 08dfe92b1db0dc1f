"""Command-line flags built from pydantic models: one `--<field>` per field of a request or model choice
(manifests/requests.py), with the field's default, type, choices and description, so a command offers
exactly what a manifest row may say, under the same names (the reference's flag names).

    add_flags(parser.add_argument_group("generation"), Video2WorldRequest, defaults={"input_path": ...})
    request = Video2WorldRequest.model_validate(values(args, Video2WorldRequest))
"""

from __future__ import annotations

import argparse
import difflib
import re
import types
import typing
from typing import Any, Literal, NoReturn

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a suggestion for a mistyped flag: `--sed 3` -> "did you mean --seed?"."""

    def error(self, message: str) -> NoReturn:
        match = re.match(r"unrecognized arguments: (.*)", message)
        if match:
            known = [s for action in self._actions for s in action.option_strings if s.startswith("--")]
            hints = []
            for word in match[1].split():
                flag = word.split("=", 1)[0]
                if flag.startswith("--") and (close := difflib.get_close_matches(flag, known, n=1)):
                    hints.append(f"{flag}: did you mean {close[0]}?")
            if hints:
                message = f"{message} ({'; '.join(hints)})"
        super().error(message)


def add_flags(
    group: argparse._ActionsContainer,
    model: type[BaseModel],
    defaults: dict[str, Any] | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """A flag per field of `model` not in `skip`; `defaults` replace the fields' own (the reference's
    example prompt, for instance). A field with no default and none given becomes a required flag."""
    defaults = defaults or {}
    for name, info in model.model_fields.items():
        if name not in skip:
            group.add_argument(f"--{name}", **_flag(info, defaults.get(name, info.default)))


def values(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The parsed flags of `model`'s fields (for model.model_validate)."""
    return {name: getattr(args, name) for name in model.model_fields if hasattr(args, name)}


def _flag(info: FieldInfo, default: Any) -> dict[str, Any]:
    kind = _without_none(info.annotation)
    flag: dict[str, Any] = {"help": info.description or ""}
    if kind is bool:
        return {**flag, "action": "store_true"}  # None or False: off unless given
    if default is PydanticUndefined:
        flag["required"] = True
    else:
        flag["default"] = default
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        return {**flag, "type": type(choices[0]), "choices": choices}
    if kind in (int, float, str):
        return {**flag, "type": kind}
    raise TypeError(f"no command-line flag for a field of type {kind!r}")


def _without_none(annotation: Any) -> Any:
    """X | None -> X."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [k for k in typing.get_args(annotation) if k is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return annotation
