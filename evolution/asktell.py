"""A strategy from the user's own code in two methods, ``ask`` and ``tell``: the user's algorithm, or a thin
adapter over another library's optimiser, run inside evolora's loop with its validation, champion, lineage,
checkpoints, tracking, sweeps and Ray actors.

Subclass :class:`AskTell`, give it a ``name``, and either register it (:func:`register_strategy`) or publish it
under the entry-point group ``evolora.strategies``; a study names it in ``evolution.strategy`` and sets its
``Params`` in ``evolution.params``::

    @dataclass(frozen=True)
    class CEMParams:
        sigma: float = option(0.02, "initial standard deviation of every gene", gt=0)
        elite: float = option(0.25, "share of the population refitted to", gt=0, le=1)

    class CEM(AskTell):
        name, Params, state = "cem", CEMParams, ("std",)

        def start(self, x0):
            self.std = np.full(x0.size, self.p.sigma)

        def ask(self):
            return self.mean + self.std * self.rng.standard_normal((self.population, self.mean.size))

        def tell(self, genomes, fitness):
            elite = genomes[np.argsort(-fitness)[: max(1, int(self.p.elite * len(fitness)))]]
            self.std = elite.std(axis=0) + 1e-8
            return elite.mean(axis=0)
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from evolora.evolution.errors import ConfigError
from evolora.evolution.genome import GenomeLayout
from evolora.evolution.mean import MeanStrategy, state_hex

__all__ = ["AskTell", "AskTellSettings", "NoParams"]


@dataclasses.dataclass(frozen=True)
class NoParams:
    """A strategy without settings of its own."""


@dataclasses.dataclass(frozen=True)
class AskTellSettings:
    """What an :class:`AskTell` strategy is built from: the population, the run's generations and its own
    ``Params`` (from the study's ``evolution.params``)."""

    population: int
    generations: int
    params: Any


_BOUNDS = {
    "gt": (lambda v, b: v > b, ">"),
    "ge": (lambda v, b: v >= b, "≥"),
    "lt": (lambda v, b: v < b, "<"),
    "le": (lambda v, b: v <= b, "≤"),
}


class AskTell(MeanStrategy):
    """The base of a strategy in two methods. ``ask()`` returns the generation's genomes, an array
    (population, genes), drawn from ``self.rng`` only (the trial's seeded generator: same seed, same run, and
    a Ray replica rebuilds a generation from the generator's state); ``tell(genomes, fitness)`` takes them
    with their fitness values (maximised) and returns the new centre, the genome validated each
    ``validation.every`` generations (as for evolora's own ES). ``start(x0)``, optional, sets up the state
    from the seed genome.

    ``self.mean`` is the current centre, ``self.p`` the ``Params``, ``self.population`` and
    ``self.generations`` the run's, ``self.layout`` the genome's LoRA matrices by name (which genes are A or
    B, which layer: :class:`~evolora.evolution.genome.GenomeLayout`). The attributes named in ``state``
    (arrays, numbers, strings, lists and dicts of them) are the strategy's state: checkpointed as data and
    restored exactly on resume."""

    Params: ClassVar[type] = NoParams
    options = "params"
    state: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def make_params(
        cls, population: int, generations: int, options: Mapping[str, Any]
    ) -> AskTellSettings:
        """Its settings from ``evolution.params``: a key ``Params`` does not declare, or a value outside an
        ``option()``'s bounds, is a ConfigError naming ``evolution.params.<key>``."""
        fields = {f.name: f for f in dataclasses.fields(cls.Params)}
        for key, value in options.items():
            if key not in fields:
                raise ConfigError(
                    f"evolution.params.{key}",
                    f"{cls.name} takes {', '.join(fields) or 'no params'}",
                    value,
                )
            for bound, (ok, sign) in _BOUNDS.items():
                limit = fields[key].metadata.get(bound)
                if limit is not None and not ok(value, limit):
                    raise ConfigError(f"evolution.params.{key}", f"must be {sign} {limit}", value)
        try:
            params = cls.Params(**options)
        except (TypeError, ValueError) as e:
            raise ConfigError("evolution.params", str(e), dict(options)) from None
        return AskTellSettings(population, generations, params)

    def __init__(
        self,
        settings: AskTellSettings,
        rng: np.random.Generator,
        new_id: Callable[[], int],
        layout: GenomeLayout | None = None,
    ) -> None:
        super().__init__(rng, new_id)
        self.layout = layout  # the genome's LoRA matrices by name (None on a bare vector)
        self.p = settings.params
        self.population, self.generations = settings.population, settings.generations

    def start(self, x0: np.ndarray) -> None:
        """Set up the state from the seed genome (``self.mean`` is already it)."""

    @abc.abstractmethod
    def ask(self) -> np.ndarray:
        """The generation's genomes, (population, genes), drawn from ``self.rng``."""

    @abc.abstractmethod
    def tell(self, genomes: np.ndarray, fitness: np.ndarray) -> np.ndarray:
        """The new centre from the asked genomes and their fitness values (higher is better)."""

    def initial(self, seed_genome: np.ndarray):
        first = self._new_mean(np.asarray(seed_genome), 0, [], "seed")
        self.start(self.mean.copy())
        pop, events = self.generate(0)
        return pop, [first, *events]

    def generate(self, gen: int):
        self.draw_state = self.rng.bit_generator.state  # a replica rebuilds this generation from it
        draw = state_hex(self.rng)
        xs = np.asarray(self.ask(), np.float32)
        if xs.ndim != 2 or xs.shape[1] != self.mean.size or len(xs) < 1:
            raise ValueError(
                f"{type(self).__name__}.ask() must return (genomes, {self.mean.size}), got {xs.shape}"
            )
        pop, events = [], []
        for x in xs:
            ind, ev = self._sample(x, gen, f"{self.name}-sample", draw)
            pop.append(ind)
            events.append(ev)
        return pop, events

    def update(self, population: list, gen: int) -> list[dict]:
        genomes = np.stack([np.asarray(ind, np.float32) for ind in population])
        fitness = np.array([ind.fitness.values[0] for ind in population], np.float64)
        centre = np.asarray(self.tell(genomes, fitness), np.float64)
        if centre.shape != self.mean.shape:
            raise ValueError(
                f"{type(self).__name__}.tell() must return the centre, ({self.mean.size},), got {centre.shape}"
            )
        return [self._new_mean(centre, gen, [self.mean_id], f"{self.name}-update")]

    def state_dict(self) -> dict:
        return {
            "mean": self.mean,
            "mean_id": self.mean_id,
            "own": {k: getattr(self, k, None) for k in self.state},
        }

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.mean_id = state["mean"], state["mean_id"]
        for k, v in state["own"].items():
            setattr(self, k, v)
