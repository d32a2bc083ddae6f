"""evolora's base exception and the errors every layer raises: bad input (``ConfigError``) and plug-in
names (``RegistryError``). Errors of a trial's life — pruning, fencing, an unreachable tracking server — are
the orchestrator's (:mod:`evolora.orchestrator.errors`), under the same base class."""

from __future__ import annotations

__all__ = ["EvoloraError", "ConfigError", "RegistryError", "EvoloraWarning"]


class EvoloraError(Exception):
    """Base class of every error raised by evolora."""


class ConfigError(EvoloraError):
    """A study file or command-line value is invalid. ``path`` is the dotted config path."""

    def __init__(self, path: str, message: str, value: object = ...) -> None:
        self.path, self.message, self.value = path, message, value
        shown = "" if value is ... else f", got {_shown(value)}"
        super().__init__(f"{path}: {message}{shown}")

    def under(self, prefix: str) -> ConfigError:
        """The same error for an option read under ``prefix`` (``batches`` → ``evolution.es.batches``)."""
        return ConfigError(f"{prefix}.{self.path}", self.message, self.value)


def _shown(value: object, limit: int = 200) -> str:
    """The bad value as the message shows it: its repr, cut at ``limit`` characters (a 5 KB string or a
    whole data row stays one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class RegistryError(EvoloraError, KeyError):
    """A plug-in name is unknown, duplicated or malformed."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class EvoloraWarning(UserWarning):
    """What evolora warns its user of (a base that builds differently here, a record that could not be
    logged): always shown on the terminal, where third-party libraries' warnings are kept off it."""
