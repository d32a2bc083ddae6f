"""How a parameter of the inner loop is declared: once, on its dataclass — its type, its default, what it does
and its bounds. The study file's sections are generated from these declarations (the orchestrator's
:mod:`~evolora.orchestrator.study.evolution`), so a setting has one name, one default and one description."""

from __future__ import annotations

from dataclasses import field
from typing import Any

__all__ = ["option", "BOUNDS", "CONSTRAINTS"]

BOUNDS = ("gt", "ge", "lt", "le")  # numeric bounds a study file's value must meet
# and the constraints of strings and lists: a pattern, a least and a most number of items or characters
CONSTRAINTS = (*BOUNDS, "pattern", "min_length", "max_length")


def option(default: Any, doc: str = "", **constraints: Any) -> Any:
    """A dataclass field with its description and constraints (bounds ``gt``, ``ge``, ``lt``, ``le``;
    ``pattern``, ``min_length``, ``max_length``) as metadata."""
    unknown = set(constraints) - set(CONSTRAINTS)
    if unknown:
        raise TypeError(f"option constraints are {', '.join(CONSTRAINTS)}, got {sorted(unknown)}")
    return field(default=default, metadata={"doc": doc, **constraints})
