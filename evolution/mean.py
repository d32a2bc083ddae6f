"""What the strategies on the mean of a search distribution share (openai-es, sep-cma-es): the mean as a
genome with an id and its lineage events, the validation candidate, and small numeric helpers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from evolora.evolution._deap import make_individual
from evolora.evolution.strategies import Strategy

__all__ = ["MeanStrategy", "cosine", "centred_ranks", "state_hex", "ab_scale"]


def cosine(start: float, final_ratio: float, gen: int, horizon: int) -> float:
    """``start`` decayed along a half cosine to ``start * final_ratio`` at generation ``horizon - 1``."""
    if horizon <= 1:
        return start
    frac = min(max(gen, 0) / (horizon - 1), 1.0)
    return start * (final_ratio + (1 - final_ratio) * 0.5 * (1 + np.cos(np.pi * frac)))


def centred_ranks(f: np.ndarray) -> np.ndarray:
    """The ranks of ``f`` (ties in order) scaled to [-0.5, 0.5]."""
    ranks = np.empty(len(f))
    ranks[np.argsort(f, kind="stable")] = np.arange(len(f))
    return ranks / max(len(f) - 1, 1) - 0.5


def ab_scale(params, layout) -> np.ndarray | None:
    """Each gene's σ (and step) factor under ``perturb`` / ``a_scale``: 1 on the LoRA B genes, ``a_scale`` on A
    (0 with ``perturb: B``); None where every gene moves alike."""
    a_scale = 0.0 if params.perturb == "B" else params.a_scale
    if a_scale == 1.0:
        return None
    if layout is None:
        raise ValueError("perturb='B' and a_scale need the genome layout")
    return np.where(layout.mask("B"), 1.0, a_scale).astype(np.float32)


def state_hex(rng: np.random.Generator) -> str:
    return format(rng.bit_generator.state["state"]["state"], "x")


class MeanStrategy(Strategy):
    """Shared bookkeeping: the mean as a genome with an id, its lineage events, the validation candidate."""

    @classmethod
    def create(cls, params, rng, new_id, layout=None, speciation=None):
        """An instance with the genome layout (the A/B levers and per-layer options read it)."""
        return cls(params, rng, new_id, layout)

    def __init__(self, rng: np.random.Generator, new_id: Callable[[], int]) -> None:
        super().__init__(rng, new_id)
        self.mean: np.ndarray | None = None  # set by initial()
        self.mean_id: int | None = None
        # the generator's state before the current generation's draws
        self.draw_state: dict | None = None

    def _new_mean(self, mean: np.ndarray, gen: int, parents: list[int], op: str, **params) -> dict:
        self.mean = mean.astype(np.float32)
        self.mean_id = self.new_id()
        return {
            "event": "birth",
            "gen": gen,
            "id": self.mean_id,
            "parents": parents,
            "op": op,
            "params": params,
        }

    def candidate(self, population: list, best) -> tuple[np.ndarray, int]:
        return self.mean, self.mean_id

    drawn: tuple[
        str, ...
    ] = ()  # state entries a generation draws anew (a replica redraws them from draw_state)

    def replica_state(self) -> dict:
        """The state a replica needs to rebuild the current generation: everything but the draws."""
        return {k: (None if k in self.drawn else v) for k, v in self.state_dict().items()}

    def _sample(self, values: np.ndarray, gen: int, op: str, draw: str, **params):
        ind = make_individual(values, self.new_id())
        return ind, {
            "event": "birth",
            "gen": gen,
            "id": ind.gid,
            "parents": [self.mean_id],
            "op": op,
            "params": params,
            "rng": draw,
        }

    # DEAP's ask/tell protocol, used by the loop through initial()/next_generation()
    def initial(self, seed_genome: np.ndarray):
        first = self._new_mean(np.asarray(seed_genome), 0, [], "seed")
        pop, events = self.generate(0)
        return pop, [first, *events]

    def next_generation(self, population: list, gen: int):
        events = self.update(population, gen)
        pop, more = self.generate(gen)
        return pop, events + more
