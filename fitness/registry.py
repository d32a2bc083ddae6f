"""Fitness plug-ins: a one-method base class and a checked registry.

A fitness term turns a task's outputs for one genome (e.g. predicted similarities and gold scores) into one
float, higher is better. Terms are registered by name; a study combines them with weights, and names one of
them as the validation metric. The registry of fitness terms, with the user's own, is :mod:`evolora.fitness.plugins`.
"""

from __future__ import annotations

import abc
import contextlib
import re
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from evolora.evolution.errors import RegistryError

__all__ = ["FitnessTerm", "Registry", "BUILT_IN"]

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
BUILT_IN = "built-in"


class FitnessTerm(abc.ABC):
    """Scores one genome's task outputs; higher is better."""

    task: str = ""  # the task whose outputs this term reads ("pairs", "causal", ...)
    correlation: bool = False  # a correlation with the labels: undefined where they do not vary

    @abc.abstractmethod
    def __call__(self, outputs) -> float: ...


class Registry(Generic[T]):
    """Names → plug-ins, each with where it came from. With ``group`` and ``adapt``, the entry points of that
    group are plug-ins too: listed by name without importing them, loaded (and passed through ``adapt``) on
    first use of their name."""

    def __init__(
        self, kind: str, group: str | None = None, adapt: Callable[[str, Any, str], T] | None = None
    ) -> None:
        self.kind, self.group, self.adapt = kind, group, adapt
        self._items: dict[str, T] = {}
        self._origin: dict[str, str] = {}
        self._scanned: dict[str, EntryPoint] | None = None

    @staticmethod
    def _check_name(kind: str, name: object) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistryError(f"{kind} name must match {_NAME.pattern}, got {name!r}")

    def register(self, name: str, origin: str = BUILT_IN) -> Callable[[T], T]:
        self._check_name(self.kind, name)

        def deco(obj: T) -> T:
            self.add(name, obj, origin)
            return obj

        return deco

    def add(self, name: str, obj: T, origin: str) -> None:
        self._check_name(self.kind, name)
        if name in self._items:
            raise RegistryError(
                f"{self.kind} {name!r} is already registered ({self._origin[name]})"
            )
        self._items[name] = obj
        self._origin[name] = origin

    def _entry_points(self) -> dict[str, EntryPoint]:
        """The group's entry points not loaded yet (the installed packages are read once per process)."""
        if self.group is None:
            return {}
        if self._scanned is None:
            self._scanned = {ep.name: ep for ep in entry_points(group=self.group)}
        return {name: ep for name, ep in self._scanned.items() if name not in self._items}

    def _load(self, ep: EntryPoint) -> T:
        origin = f"entry point {ep.value}" + (
            f" ({ep.dist.name} {ep.dist.version})" if ep.dist else ""
        )
        try:
            # what a package prints at import is not our output
            with contextlib.redirect_stdout(sys.stderr):
                obj = ep.load()
        except (
            Exception,
            SystemExit,
        ) as e:  # the user's package failed to import (or exited): say which, and why
            raise RegistryError(
                f"{self.kind} {ep.name!r} ({origin}) failed to load: {type(e).__name__}: {e}"
            ) from None
        self.add(ep.name, self.adapt(ep.name, obj, origin) if self.adapt else obj, origin)
        return self._items[ep.name]

    def get(self, name: str) -> T:
        if name in self._items:
            return self._items[name]
        ep = self._entry_points().get(name) if isinstance(name, str) else None
        if ep is not None:
            return self._load(ep)
        raise RegistryError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}")

    def origin(self, name: str) -> str:
        self.get(name)
        return self._origin[name]

    def names(self) -> list[str]:
        return sorted({*self._items, *self._entry_points()})

    def __contains__(self, name: object) -> bool:
        return name in self._items or (isinstance(name, str) and name in self._entry_points())

    def unregister(self, name: str) -> None:
        """Forget a plug-in registered in this process (tests, notebooks re-running a cell)."""
        self._items.pop(name, None)
        self._origin.pop(name, None)
