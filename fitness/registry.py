"""Fitness plug-ins: a one-method base class and a checked registry.

A fitness term turns a task's outputs for one genome (e.g. predicted similarities and gold scores) into one
float, higher is better. Terms are registered by name; a study combines them with weights, and names one of
them as the validation metric.
"""

from __future__ import annotations

import abc
import re
from typing import Callable, Generic, TypeVar

from evolution.errors import RegistryError

__all__ = ["FitnessTerm", "Registry", "FITNESS_TERMS", "register_fitness"]

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class FitnessTerm(abc.ABC):
    """Scores one genome's task outputs; higher is better."""

    task: str = ""  # the task whose outputs this term reads ("pairs", "causal", ...)

    @abc.abstractmethod
    def __call__(self, outputs) -> float:
        ...


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistryError(f"{self.kind} name must match {_NAME.pattern}, got {name!r}")

        def deco(obj: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


FITNESS_TERMS: Registry[type[FitnessTerm]] = Registry("fitness term")


def register_fitness(name: str):
    """Class decorator: ``@register_fitness("stsb_spearman")``."""
    return FITNESS_TERMS.register(name)
