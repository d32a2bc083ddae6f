"""What the generation loop tells the outside world. Observers never change the run, except by raising
an exception (an orchestrator's pruning signal, ``KeyboardInterrupt``) to stop it."""

from __future__ import annotations

from evolora.evolution.records import GenerationRow, LineageEvent

__all__ = ["Observer"]


class Observer:
    """Base class with no-op hooks; override the ones you need."""

    def bind(self, loop) -> None:
        """Once, when the loop that will call this observer is made: an observer that reads the loop's own
        state (its logbook, the validated candidate, the champion) keeps it here."""

    def on_start(self, info: dict) -> None:
        """Once, before generation 0 (or on resume, before the first new generation)."""

    def on_generation(self, row: GenerationRow) -> None:
        """After each generation, with its row (:class:`~evolora.evolution.records.GenerationRow`: ``gen``,
        ``fit_best``, ``val`` when computed, …)."""

    def on_events(self, events: list[LineageEvent]) -> None:
        """Lineage events of one generation (:mod:`evolora.evolution.records`): births (with parents and
        operator), evaluations and validations."""

    def on_population(self, gen: int, population: list) -> None:
        """The evaluated population of a generation (individuals with ``gid``, fitness and, when speciated,
        ``species``). Do not modify it."""

    def on_checkpoint(self, state: dict) -> None:
        """The full loop state after a generation, when a checkpoint is due."""

    def on_end(self, result: object) -> None:
        """Once, when the run finished normally."""
