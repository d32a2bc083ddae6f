"""Search strategies: how one generation's population becomes the next. The loop owns everything else
(evaluation, validation, bookkeeping, checkpoints); a strategy owns the variation and selection."""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from deap import base, tools

from evolora.evolution._deap import copy_individual, make_individual
from evolora.evolution.genome import GenomeLayout
from evolora.evolution.operators import cx_blend, mut_gaussian
from evolora.evolution.options import option
from evolora.evolution.speciation import Speciation, SpeciationParams, allocate

__all__ = [
    "GAParams",
    "Strategy",
    "GeneticAlgorithm",
    "STRATEGIES",
    "STRATEGY_GROUP",
    "register_strategy",
    "strategy_class",
    "strategy_names",
]

STRATEGY_GROUP = "evolora.strategies"  # the entry-point group of strategies from installed packages


@dataclass(frozen=True)
class GAParams:
    """The GA's parameters: each field is the study file's ``evolution`` key of its name, declared here once."""

    population: int = option(16, "genomes per generation", ge=2, le=100_000)
    tournament_size: int = option(3, ge=1)
    elitism: int = option(1, "best individuals copied unchanged into the next generation", ge=0)
    crossover_prob: float = option(0.5, ge=0, le=1)
    mutation_prob: float = option(0.9, ge=0, le=1)
    mutation_sigma: float = option(0.02, "std of the Gaussian mutation", gt=0)
    gene_prob: float = option(1.0, "probability that a gene is mutated", gt=0, le=1)
    blend_alpha: float = option(0.5, "BLX-alpha crossover extent", ge=0)


class Strategy(abc.ABC):
    """Two methods to implement: the generation-0 population, and the next population from an evaluated
    one (unevaluated genomes have invalid fitness). Each returns (population, lineage birth events).

    A strategy a study can name is registered under its ``name`` (:func:`register_strategy`) and says what it
    is built from: ``Params``, its parameter dataclass, whose fields it reads from the study's ``evolution``
    section (``options = ""``) or one of its sub-sections (``options = "es"``); ``reads``, the names of those
    fields it actually uses (None: all of them; what a run logs as its parameters)."""

    name: ClassVar[str] = ""
    Params: ClassVar[type] = type(None)
    options: ClassVar[str] = ""
    reads: ClassVar[tuple[str, ...] | None] = None
    speciates: ClassVar[bool] = False  # takes the evolution section's NEAT-style speciation
    min_population: ClassVar[int] = 1

    @classmethod
    def make_params(cls, population: int, generations: int, options: Mapping[str, Any]) -> Any:
        """Its parameters from the study's values: the fields of ``Params`` named in ``options``, the population
        and, where ``Params`` has one, the run's length as ``horizon``."""
        names = {f.name for f in dataclasses.fields(cls.Params)}
        given = {"population": population, "horizon": generations}
        return cls.Params(
            **{k: v for k, v in options.items() if k in names and k not in given},
            **{k: v for k, v in given.items() if k in names},
        )

    @classmethod
    def create(
        cls,
        params: Any,
        rng: np.random.Generator,
        new_id: Callable[[], int],
        layout: GenomeLayout | None = None,
        speciation: SpeciationParams | None = None,
    ) -> Strategy:
        """An instance for one trial (the loop's generator and id counter); the layout names the genome's
        LoRA factors and layers for strategies that treat them apart."""
        return cls(params, rng, new_id)

    def __init__(self, rng: np.random.Generator, new_id: Callable[[], int]) -> None:
        self.rng = rng
        self.new_id = new_id

    @abc.abstractmethod
    def initial(self, seed_genome: np.ndarray) -> tuple[list, list[dict]]: ...

    @abc.abstractmethod
    def next_generation(self, population: list, gen: int) -> tuple[list, list[dict]]: ...

    def describe(self, population: list, gen: int) -> dict:
        """Extra per-generation numbers for the row (after evaluation), e.g. species statistics."""
        return {}

    def candidate(self, population: list, best) -> tuple[np.ndarray, int]:
        """The genome to validate this generation (default: the best by fitness) and its id."""
        return np.asarray(best), best.gid

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027 (a default: a strategy that holds no state)
        pass


STRATEGIES: dict[
    str, type[Strategy]
] = {}  # name → class: what a study's `evolution.strategy` may name


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a :class:`Strategy` subclass nameable by ``cls.name`` (a second class under a
    taken name is an error, not a silent replacement)."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)) or not cls.name:
        raise TypeError(f"register_strategy takes a Strategy subclass with a name, got {cls!r}")
    if STRATEGIES.get(cls.name, cls) is not cls:
        raise ValueError(
            f"strategy {cls.name!r} is already registered ({STRATEGIES[cls.name].__qualname__})"
        )
    STRATEGIES[cls.name] = cls
    return cls


def _installed() -> dict:
    """Entry points of the group :data:`STRATEGY_GROUP`, by name (read from package metadata: nothing is
    imported until a study names one)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=STRATEGY_GROUP)}


def strategy_names() -> list[str]:
    """Every name a study's ``evolution.strategy`` may take: the registered strategies, then the installed
    packages' (entry points of :data:`STRATEGY_GROUP`), none of them imported."""
    return [*STRATEGIES, *sorted(set(_installed()) - set(STRATEGIES))]


def strategy_class(name: str) -> type[Strategy]:
    """The strategy registered under ``name``, or the installed package's of that name (imported and
    registered on first use); RegistryError names what is wrong."""
    from evolora.evolution.errors import RegistryError

    if name in STRATEGIES:
        return STRATEGIES[name]
    ep = _installed().get(name)
    if ep is None:
        raise RegistryError(
            f"no strategy {name!r}: registered {', '.join(STRATEGIES)}; installed packages add theirs "
            f"under the entry-point group {STRATEGY_GROUP!r}"
        )
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Strategy)) or cls.name != name:
        raise RegistryError(
            f"entry point {name!r} = {ep.value!r} (group {STRATEGY_GROUP!r}) must name a Strategy "
            f"subclass whose name is {name!r}, got {cls!r}"
        )
    return register_strategy(cls)


def _draw(rng: np.random.Generator) -> str:
    """The generator state before a draw, as hex: with it, the draw can be replayed exactly."""
    return format(rng.bit_generator.state["state"]["state"], "x")


@register_strategy
class GeneticAlgorithm(Strategy):
    """DEAP GA: elitism, tournament selection, BLX crossover and Gaussian mutation (vectorised), optionally
    NEAT-style speciated (selection, crossover and elitism within species; offspring by shared fitness)."""

    name = "ga"
    Params = GAParams
    speciates = True

    @classmethod
    def create(cls, params, rng, new_id, layout=None, speciation=None) -> GeneticAlgorithm:
        return cls(params, rng, new_id, speciation, layout)

    def __init__(
        self,
        params: GAParams,
        rng: np.random.Generator,
        new_id: Callable[[], int],
        speciation: SpeciationParams | None = None,
        layout: GenomeLayout | None = None,
    ) -> None:
        super().__init__(rng, new_id)
        self.p = params
        tb = base.Toolbox()
        tb.register("mate", cx_blend, alpha=params.blend_alpha, rng=rng)
        tb.register(
            "mutate", mut_gaussian, sigma=params.mutation_sigma, indpb=params.gene_prob, rng=rng
        )
        tb.register("select", tools.selTournament)
        tb.register("elite", tools.selBest)
        self.toolbox = tb
        self.speciation = Speciation(speciation, layout) if speciation else None
        self._labels: np.ndarray | None = None
        self._removed: list[int] = []

    def _birth(self, ind, gen: int, parents: list[int], op: str, draw: str, **params) -> dict:
        ind.gid = self.new_id()
        del ind.fitness.values
        ind.terms = {}
        return {
            "event": "birth",
            "gen": gen,
            "id": ind.gid,
            "parents": parents,
            "op": op,
            "params": params,
            "rng": draw,
        }

    def initial(self, seed_genome: np.ndarray) -> tuple[list, list[dict]]:
        # Individual 0 is the seed genome itself (LoRA B = 0: exactly the base model); the rest are its mutants.
        first = make_individual(seed_genome, self.new_id())
        events = [
            {"event": "birth", "gen": 0, "id": first.gid, "parents": [], "op": "seed", "params": {}}
        ]
        pop = [first]
        for _ in range(self.p.population - 1):
            child = make_individual(seed_genome, first.gid)
            draw = _draw(self.rng)
            self.toolbox.mutate(child)
            events.append(
                self._birth(child, 0, [first.gid], "mutation", draw, sigma=self.p.mutation_sigma)
            )
            pop.append(child)
        return pop, events

    def _breed(self, pool: list, n: int, elites: int, gen: int) -> tuple[list, list[dict]]:
        """``n`` offspring of ``pool``: its ``elites`` best unchanged, the rest by tournament, crossover and
        mutation."""
        tb, p = self.toolbox, self.p
        elites = min(elites, n, len(pool))
        out = [copy_individual(i) for i in tb.elite(pool, elites)]
        offspring = [
            copy_individual(i)
            for i in tb.select(pool, n - elites, tournsize=min(p.tournament_size, len(pool)))
        ]
        events: list[dict] = []
        info = {
            id(o): {"parents": [o.gid], "ops": [], "params": {}, "rng": None} for o in offspring
        }
        for a, b in zip(offspring[::2], offspring[1::2]):
            if self.rng.random() < p.crossover_prob:
                draw = _draw(self.rng)
                parents = [a.gid, b.gid]
                tb.mate(a, b)
                for c in (a, b):
                    info[id(c)].update(parents=parents, rng=draw)
                    info[id(c)]["ops"].append("crossover")
                    info[id(c)]["params"]["alpha"] = p.blend_alpha
        for c in offspring:
            i = info[id(c)]
            if self.rng.random() < p.mutation_prob:
                draw = _draw(self.rng)
                tb.mutate(c)
                i["ops"].append("mutation")
                i["params"]["sigma"] = p.mutation_sigma
                i["rng"] = i["rng"] or draw
            if i["ops"]:
                events.append(
                    self._birth(c, gen, i["parents"], "+".join(i["ops"]), i["rng"], **i["params"])
                )
        return out + offspring, events

    def next_generation(self, population: list, gen: int) -> tuple[list, list[dict]]:
        if self.speciation is None or self._labels is None:
            return self._breed(population, len(population), self.p.elitism, gen)
        labels = self._labels
        fitness = np.array([i.fitness.values[0] for i in population])
        keep = np.array([lab not in self._removed for lab in labels])
        adjusted = self.speciation.adjusted(fitness[keep], labels[keep])
        sids = sorted(set(labels[keep].tolist()))
        shares = [adjusted[labels[keep] == s].sum() for s in sids]
        counts = allocate(np.array(shares), len(population))
        pop, events = [], []
        kept = [ind for ind, k in zip(population, keep) if k]
        for sid, n in zip(sids, counts):
            if n == 0:
                continue
            pool = [ind for ind, lab in zip(kept, labels[keep]) if lab == sid]
            kids, evs = self._breed(pool, int(n), self.speciation.p.elitism, gen)
            pop += kids
            events += evs
        return pop, events

    def describe(self, population: list, gen: int) -> dict:
        if self.speciation is None:
            return {}
        genomes = [np.asarray(i) for i in population]
        fitness = np.array([i.fitness.values[0] for i in population])
        res = self.speciation.assign(genomes, fitness, gen)
        self._labels, self._removed = res["labels"], res["removed"]
        for ind, lab in zip(population, self._labels):
            ind.species = int(lab)
        return res["stats"]

    def state_dict(self) -> dict:
        if self.speciation is None:
            return {}
        return {
            "speciation": self.speciation.state_dict(),
            "labels": self._labels,
            "removed": self._removed,
        }

    def load_state_dict(self, state: dict) -> None:
        if self.speciation is not None and state:
            self.speciation.load_state_dict(state["speciation"])
            self._labels, self._removed = state["labels"], state["removed"]
