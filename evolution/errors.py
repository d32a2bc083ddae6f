"""All evolora exceptions, under one base class.

Failures (``EvoloraError`` subclasses other than signals) are distinct from control-flow signals
(``TrialPruned``, ``TrialFenced``): the orchestrator marks a trial failed for the first and prunes it, or
stops writing to it, for the second. Ctrl-C is Python's own ``KeyboardInterrupt``.
"""

from __future__ import annotations

__all__ = ["EvoloraError", "ConfigError", "RegistryError", "TrackingUnavailable", "TrialPruned", "TrialFenced"]


class EvoloraError(Exception):
    """Base class of every error raised by evolora."""


class ConfigError(EvoloraError):
    """A study file or command-line value is invalid. ``path`` is the dotted config path."""

    def __init__(self, path: str, message: str, value: object = ...) -> None:
        self.path = path
        self.value = value
        shown = "" if value is ... else f", got {_shown(value)}"
        super().__init__(f"{path}: {message}{shown}")


def _shown(value: object, limit: int = 200) -> str:
    """The bad value as the message shows it: its repr, cut at ``limit`` characters (a 5 KB string or a
    whole data row stays one readable line)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class RegistryError(EvoloraError, KeyError):
    """A plug-in name is unknown, duplicated or malformed."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class TrackingUnavailable(EvoloraError):
    """The MLflow tracking server stayed unreachable (connections refused, dropped or cut mid-answer) for
    longer than the retry window. A sweep fails the trial as retriable: its retry resumes from the last
    checkpoint and the same MLflow run, so nothing logged is lost or logged twice."""


class TrialPruned(EvoloraError):
    """Signal: an observer decided the run is hopeless (not a failure)."""


class TrialFenced(EvoloraError):
    """Signal: this run's trial was declared dead by another worker (and will be retried from its
    checkpoint); this process must stop writing to the trial's checkpoint and MLflow run at once."""

