"""Evolution strategies on the mean of a search distribution, plugged into the same loop through DEAP's
generate/update protocol (``generate()`` → population, ``update(population)`` after evaluation).

* ``openai-es``: antithetic Gaussian perturbations of a mean, centred-rank fitness shaping, Adam (or SGD) on
  the mean (Salimans et al. 2017). With an odd population the mean itself is member 0.
* ``sep-cma-es``: diagonal CMA-ES from the ``cma`` package (what the SLIM-EVO seed used), its Gaussian draws
  routed through the trial's numpy generator.

For both, the genome validated each generation is the distribution mean (averaging generalises better than
the best sample on a fixed fitness set).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ._deap import make_individual
from .strategies import Strategy

__all__ = ["ESParams", "OpenAIES", "SepCMAES"]


@dataclass(frozen=True)
class ESParams:
    population: int = 16
    sigma: float = 0.02  # perturbation std (openai-es) / initial step size (sep-cma-es)
    learning_rate: float = 0.01  # openai-es
    optimizer: str = "adam"  # adam | sgd
    weight_decay: float = 0.0


def _state_hex(rng: np.random.Generator) -> str:
    return format(rng.bit_generator.state["state"]["state"], "x")


class _MeanStrategy(Strategy):
    """Shared bookkeeping: the mean as a genome with an id, its lineage events, the validation candidate."""

    def __init__(self, rng: np.random.Generator, new_id: Callable[[], int]) -> None:
        super().__init__(rng, new_id)
        self.mean: np.ndarray | None = None  # set by initial()
        self.mean_id: int | None = None

    def _new_mean(self, mean: np.ndarray, gen: int, parents: list[int], op: str, **params) -> dict:
        self.mean = mean.astype(np.float32)
        self.mean_id = self.new_id()
        return {"event": "birth", "gen": gen, "id": self.mean_id, "parents": parents, "op": op, "params": params}

    def candidate(self, population: list, best) -> tuple[np.ndarray, int]:
        return self.mean, self.mean_id

    def _sample(self, values: np.ndarray, gen: int, op: str, draw: str, **params):
        ind = make_individual(values, self.new_id())
        return ind, {"event": "birth", "gen": gen, "id": ind.gid, "parents": [self.mean_id], "op": op,
                     "params": params, "rng": draw}

    # DEAP's ask/tell protocol, used by the loop through initial()/next_generation()
    def initial(self, seed_genome: np.ndarray):
        first = self._new_mean(np.asarray(seed_genome), 0, [], "seed")
        pop, events = self.generate(0)
        return pop, [first, *events]

    def next_generation(self, population: list, gen: int):
        events = self.update(population, gen)
        pop, more = self.generate(gen)
        return pop, events + more


class OpenAIES(_MeanStrategy):
    def __init__(self, params: ESParams, rng: np.random.Generator, new_id: Callable[[], int]) -> None:
        super().__init__(rng, new_id)
        if params.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be adam or sgd, got {params.optimizer!r}")
        self.p = params
        self.pairs = params.population // 2
        self.with_mean = params.population % 2 == 1
        self.eps: np.ndarray | None = None  # (pairs, genes) of the current generation
        self.m = self.v = None
        self.t = 0

    def generate(self, gen: int):
        draw = _state_hex(self.rng)
        self.eps = self.rng.standard_normal((self.pairs, self.mean.size), dtype=np.float32)
        pop, events = [], []
        if self.with_mean:
            ind = make_individual(self.mean, self.mean_id)  # the mean itself, scored like any member
            pop.append(ind)
        for k in range(self.pairs):
            for sign in (1, -1):
                ind, ev = self._sample(self.mean + sign * self.p.sigma * self.eps[k], gen, "es-sample", draw,
                                       sigma=self.p.sigma, pair=k, sign=sign)
                pop.append(ind)
                events.append(ev)
        return pop, events

    def update(self, population: list, gen: int) -> list[dict]:
        samples = population[1:] if self.with_mean else population
        f = np.array([ind.fitness.values[0] for ind in samples])
        ranks = np.empty(len(f))
        ranks[np.argsort(f, kind="stable")] = np.arange(len(f))
        u = ranks / max(len(f) - 1, 1) - 0.5  # centred ranks in [-0.5, 0.5]
        w = (u[0::2] - u[1::2]).astype(np.float32)  # antithetic pairs: (+ε, −ε)
        grad = (w @ self.eps) / (len(f) * self.p.sigma)  # ascent direction, (genes,)
        if self.p.weight_decay:
            grad = grad - self.p.weight_decay * self.mean
        if self.p.optimizer == "adam":
            if self.m is None:
                self.m, self.v = np.zeros_like(self.mean), np.zeros_like(self.mean)
            self.t += 1
            b1, b2 = 0.9, 0.999
            self.m = b1 * self.m + (1 - b1) * grad
            self.v = b2 * self.v + (1 - b2) * grad * grad
            step = self.p.learning_rate * (self.m / (1 - b1**self.t)) / (np.sqrt(self.v / (1 - b2**self.t)) + 1e-8)
        else:
            step = self.p.learning_rate * grad
        return [self._new_mean(self.mean + step, gen, [self.mean_id], "es-update",
                               lr=self.p.learning_rate, optimizer=self.p.optimizer)]

    def state_dict(self) -> dict:
        return {"mean": self.mean, "mean_id": self.mean_id, "eps": self.eps, "m": self.m, "v": self.v, "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.mean_id, self.eps = state["mean"], state["mean_id"], state["eps"]
        self.m, self.v, self.t = state["m"], state["v"], state["t"]


class _Randn:
    """cma's ``randn`` option, drawing from the trial's generator (picklable, rebindable on resume)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def __call__(self, *shape):
        return self.rng.standard_normal(shape)

    def __getstate__(self):
        return {}

    def __setstate__(self, state):
        self.rng = None  # rebound to the loop's (restored) generator by load_state_dict


class SepCMAES(_MeanStrategy):
    def __init__(self, params: ESParams, rng: np.random.Generator, new_id: Callable[[], int]) -> None:
        super().__init__(rng, new_id)
        self.p = params
        self.es = None
        self._randn = _Randn(rng)
        self._asked: list[np.ndarray] = []

    def _ensure(self) -> None:
        if self.es is None:
            import cma

            self.es = cma.CMAEvolutionStrategy(self.mean.astype(np.float64), self.p.sigma, {
                "CMA_diagonal": True, "popsize": self.p.population, "randn": self._randn, "seed": np.nan,
                "verbose": -9, "verb_log": 0, "verb_disp": 0, "tolx": 0, "tolfun": 0, "tolstagnation": 10**9,
                "tolflatfitness": 10**9, "tolfunhist": 0})

    def generate(self, gen: int):
        self._ensure()
        draw = _state_hex(self.rng)
        self._asked = self.es.ask()
        pop, events = [], []
        for x in self._asked:
            ind, ev = self._sample(np.asarray(x, np.float32), gen, "cma-sample", draw, sigma=float(self.es.sigma))
            pop.append(ind)
            events.append(ev)
        return pop, events

    def update(self, population: list, gen: int) -> list[dict]:
        self.es.tell(self._asked, [-ind.fitness.values[0] for ind in population])  # cma minimises
        return [self._new_mean(np.asarray(self.es.mean), gen, [self.mean_id], "cma-update",
                               sigma=float(self.es.sigma))]

    def state_dict(self) -> dict:
        return {"mean": self.mean, "mean_id": self.mean_id,
                "es": pickle.dumps((self.es, self._randn, self._asked)) if self.es is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.mean_id = state["mean"], state["mean_id"]
        if state["es"] is not None:
            self.es, self._randn, self._asked = pickle.loads(state["es"])
            self._randn.rng = self.rng
