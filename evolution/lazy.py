"""Packages whose public names load on first use: importing the package costs nothing until a name is read
(``from evolora.fitness import build_task`` loads torch then, not before)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

__all__ = ["lazy_names"]


def lazy_names(
    package: str, table: dict[str, str], namespace: dict
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package``: a name of ``table`` (name → module of the
    package) is imported from its module when first read and kept in ``namespace`` (the package's globals)."""

    def __getattr__(name: str):
        if name in table:
            value = getattr(import_module(f"{package}.{table[name]}"), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(namespace.get("__all__", table))

    return __getattr__, __dir__
