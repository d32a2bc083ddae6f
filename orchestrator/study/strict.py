"""The base of every study-file section: strict (an unknown key is an error), frozen, every float finite
(``.nan`` / ``.inf`` for a weight, σ or rate is refused where it is read), and a boolean is never a number
(``lora.rank: true`` is an error, not rank 1)."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

__all__ = ["Strict", "NAME", "BOOL_NOT_A_NUMBER"]

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"  # names that become paths: no separators, no "..", bounded
BOOL_NOT_A_NUMBER = "a boolean is not a number (write a number)"


def _admits_bool(ann: Any) -> bool:
    """Whether a field of type ``ann`` may hold ``True`` / ``False`` as themselves."""
    if ann is bool or ann is Any or ann is object:
        return True
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Literal:
        return any(isinstance(a, bool) for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(_admits_bool(a) for a in args)
    return False


def _numeric(ann: Any) -> bool:
    """Whether a field of type ``ann`` holds a number (where pydantic would read a boolean as 0 or 1)."""
    if ann in (int, float):
        return True
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        return any(_numeric(a) for a in typing.get_args(ann))
    return False


def _item_type(ann: Any) -> Any:
    """The item type of a ``list[...]`` / ``tuple[...]`` field (through ``| None``), else None."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin in (list, tuple) and args:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        for a in args:
            item = _item_type(a)
            if item is not None:
                return item
    return None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic's lax mode reads ``True`` as 1; a study file's ``true`` where a number belongs is a mistake."""
        ann = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and _numeric(ann) and not _admits_bool(ann):
            raise ValueError(BOOL_NOT_A_NUMBER)
        item = _item_type(ann)
        if (
            isinstance(value, list)
            and item is not None
            and _numeric(item)
            and not _admits_bool(item)
        ):
            if any(isinstance(v, bool) for v in value):
                raise ValueError(f"{BOOL_NOT_A_NUMBER}: every item must be a number")
        return value
