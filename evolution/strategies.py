"""Search strategies: how one generation's population becomes the next. The loop owns everything else
(evaluation, validation, bookkeeping, checkpoints); a strategy owns only ``_vary``-like logic."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable

import numpy as np
from deap import base, tools

from ._deap import copy_individual, make_individual
from .operators import cx_blend, mut_gaussian

__all__ = ["GAParams", "Strategy", "GeneticAlgorithm"]


@dataclass(frozen=True)
class GAParams:
    population: int = 16
    tournament_size: int = 3
    elitism: int = 1
    crossover_prob: float = 0.5
    mutation_prob: float = 0.9
    mutation_sigma: float = 0.02
    gene_prob: float = 1.0
    blend_alpha: float = 0.5


class Strategy(abc.ABC):
    """One method to implement: produce the next population (unevaluated genomes marked invalid)."""

    def __init__(self, rng: np.random.Generator, new_id: Callable[[], int]) -> None:
        self.rng = rng
        self.new_id = new_id

    @abc.abstractmethod
    def initial(self, seed_genome: np.ndarray) -> tuple[list, list[dict]]:
        """The generation-0 population and its birth events."""

    @abc.abstractmethod
    def next_generation(self, population: list, gen: int) -> tuple[list, list[dict]]:
        """The offspring of ``population`` and their birth events."""


class GeneticAlgorithm(Strategy):
    """DEAP GA: elitism, tournament selection, BLX crossover and Gaussian mutation (vectorised)."""

    def __init__(self, params: GAParams, rng: np.random.Generator, new_id: Callable[[], int]) -> None:
        super().__init__(rng, new_id)
        self.p = params
        tb = base.Toolbox()
        tb.register("mate", cx_blend, alpha=params.blend_alpha, rng=rng)
        tb.register("mutate", mut_gaussian, sigma=params.mutation_sigma, indpb=params.gene_prob, rng=rng)
        tb.register("select", tools.selTournament, tournsize=params.tournament_size)
        tb.register("elite", tools.selBest)
        self.toolbox = tb

    def _birth(self, ind, gen: int, parents: list[int], op: str, **params) -> dict:
        ind.gid = self.new_id()
        del ind.fitness.values
        ind.terms = {}
        return {"event": "birth", "gen": gen, "id": ind.gid, "parents": parents, "op": op, "params": params}

    def initial(self, seed_genome: np.ndarray) -> tuple[list, list[dict]]:
        # Individual 0 is the seed genome itself (LoRA B = 0: exactly the base model); the rest are its mutants.
        first = make_individual(seed_genome, self.new_id())
        events = [{"event": "birth", "gen": 0, "id": first.gid, "parents": [], "op": "seed", "params": {}}]
        pop = [first]
        for _ in range(self.p.population - 1):
            child = make_individual(seed_genome, first.gid)
            self.toolbox.mutate(child)
            events.append(self._birth(child, 0, [first.gid], "mutation", sigma=self.p.mutation_sigma))
            pop.append(child)
        return pop, events

    def next_generation(self, population: list, gen: int) -> tuple[list, list[dict]]:
        tb, p = self.toolbox, self.p
        elites = [copy_individual(i) for i in tb.elite(population, p.elitism)]
        offspring = [copy_individual(i) for i in tb.select(population, len(population) - p.elitism)]
        events: list[dict] = []
        parents = {id(o): [o.gid] for o in offspring}
        varied = set()
        for a, b in zip(offspring[::2], offspring[1::2]):
            if self.rng.random() < p.crossover_prob:
                pa, pb = [a.gid, b.gid], [a.gid, b.gid]
                tb.mate(a, b)
                parents[id(a)], parents[id(b)] = pa, pb
                varied.update((id(a), id(b)))
                ops = {id(a): "crossover", id(b): "crossover"}
            else:
                ops = {}
            for c in (a, b):
                c.op = ops.get(id(c))
        for c in offspring:
            op = getattr(c, "op", None)
            if self.rng.random() < p.mutation_prob:
                tb.mutate(c)
                op = "crossover+mutation" if op else "mutation"
                varied.add(id(c))
            if id(c) in varied:
                params = {"sigma": p.mutation_sigma} if "mutation" in op else {}
                if "crossover" in op:
                    params["alpha"] = p.blend_alpha
                events.append(self._birth(c, gen, parents[id(c)], op, **params))
            c.op = None
        return elites + offspring, events
