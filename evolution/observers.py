"""What the generation loop tells the outside world. Observers never change the run, except by raising
an exception (an orchestrator's pruning signal, ``KeyboardInterrupt``) to stop it."""

from __future__ import annotations

__all__ = ["Observer"]


class Observer:
    """Base class with no-op hooks; override the ones you need."""

    def bind(self, loop) -> None:
        """Once, when the loop that will call this observer is made: an observer that reads the loop's own
        state (its logbook, the validated candidate, the champion) keeps it here."""

    def on_start(self, info: dict) -> None:
        """Once, before generation 0 (or on resume, before the first new generation)."""

    def on_generation(self, row: dict) -> None:
        """After each generation, with a plain row of numbers (``gen``, ``fit_best``, ``val`` when computed…)."""

    def on_events(self, events: list[dict]) -> None:
        """Lineage events of one generation: births (with parents and operator) and evaluations."""

    def on_population(self, gen: int, population: list) -> None:
        """The evaluated population of a generation (individuals with ``gid``, fitness and, when speciated,
        ``species``). Do not modify it."""

    def on_checkpoint(self, state: dict) -> None:
        """The full loop state after a generation, when a checkpoint is due."""

    def on_end(self, result: object) -> None:
        """Once, when the run finished normally."""
