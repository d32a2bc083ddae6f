"""How a parameter of the inner loop is declared: once, on its dataclass — its type, its default, what it does
and its bounds. The study file's sections are generated from these declarations (the orchestrator's
:mod:`~evolora.orchestrator.study.evolution`), so a setting has one name, one default and one description."""

from __future__ import annotations

from dataclasses import field
from typing import Any

__all__ = ["option", "BOUNDS"]

BOUNDS = ("gt", "ge", "lt", "le")  # numeric bounds a study file's value must meet


def option(default: Any, doc: str = "", **bounds: float) -> Any:
    """A dataclass field with its description and bounds (``gt``, ``ge``, ``lt``, ``le``) as metadata."""
    unknown = set(bounds) - set(BOUNDS)
    if unknown:
        raise TypeError(f"option bounds are {', '.join(BOUNDS)}, got {sorted(unknown)}")
    return field(default=default, metadata={"doc": doc, **bounds})
