"""The base of every study-file section: strict (an unknown key is an error), frozen, every float finite
(``.nan`` / ``.inf`` for a weight, σ or rate is refused where it is read), and a boolean is never a number
(``lora.rank: true`` is an error, not rank 1). And how a section is generated from the code's parameter
dataclasses (:func:`declared_fields`, :func:`section`): a setting is declared once, where the code reads it."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

from evolora.evolution.options import CONSTRAINTS

__all__ = ["Strict", "NAME", "BOOL_NOT_A_NUMBER", "declared_fields", "section"]

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


def _as_list(ann: Any) -> Any:
    """A study file holds sequences as lists: ``tuple[X, ...]`` / ``tuple[X, X]`` → ``list[X]`` (through ``| None``);
    the assembly turns them back into the tuples a frozen dataclass holds."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is tuple and args:
        return list[args[0]]
    if origin in (typing.Union, types.UnionType):
        return typing.Union[tuple(_as_list(a) for a in args)]  # noqa: UP007 (built from a tuple of types)
    return ann


def declared_fields(
    params: type, exclude: tuple[str, ...] = (), study: dict[str, tuple[Any, Any]] | None = None
) -> dict[str, tuple[Any, Any]]:
    """The study-file fields of a parameter dataclass, in its order: every field declared with
    :func:`~evolora.evolution.options.option` (its type, default, description and constraints), and in the place
    of a field named in ``study`` the study's own declaration (a key the study file writes otherwise: a
    sub-section, a list of terms, an ``auto`` the assembly resolves)."""
    hints = typing.get_type_hints(params)
    study = study or {}
    out = {}
    for f in dataclasses.fields(params):
        if f.name in exclude:
            continue
        if f.name in study:
            out[f.name] = study[f.name]
        elif "doc" in f.metadata:
            constraints = {k: f.metadata[k] for k in CONSTRAINTS if k in f.metadata}
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            out[f.name] = (
                _as_list(hints[f.name]),
                Field(default, description=f.metadata["doc"] or None, **constraints),
            )
    unknown = set(study) - set(out)
    if unknown:
        raise TypeError(f"{params.__name__} has no field {sorted(unknown)}")
    return out


def section(module: str, name: str, doc: str | None, fields: dict, **validators) -> type[Strict]:
    """A study-file section class named ``name`` (of ``module``) with these fields (name → (type, Field)) and
    validators."""
    return create_model(
        name,
        __base__=Strict,
        __doc__=doc,
        __module__=module,
        __validators__=validators,
        **fields,
    )
