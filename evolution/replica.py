"""A strategy's copy where a population is scored: it rebuilds each generation's genomes from what the
strategy decides with, so that what travels per generation does not grow with the genome.

For the strategies on the mean of a search distribution (``openai-es``, ``sep-cma-es``) a generation is a
function of the strategy's state and its generator's state before the draw. A replica that holds the state
of generation g − 1 takes the fitness values of g − 1's members (floats) and the generator's state (a few
integers), runs the same update and the same draw, and holds generation g's population — as Salimans et al.
(2017) exchange seeds and scalar fitnesses between 1,440 workers. A replica that holds nothing yet (a new
worker, a replaced one, a resumed run) is sent the strategy's state once. :func:`digest` of each genome it
built lets the sender check, bit for bit, that it built the same ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np

from evolora.evolution.strategies import Strategy

__all__ = ["Replica", "digest", "replayable"]


def digest(genome) -> str:
    """A 128-bit hash of a genome's float32 bytes."""
    return hashlib.blake2b(
        np.ascontiguousarray(genome, dtype=np.float32).tobytes(), digest_size=16
    ).hexdigest()


def replayable(strategy: Strategy) -> bool:
    """Whether ``strategy``'s populations can be rebuilt from its state and ``draw_state`` (its generator's
    state before the generation's draws)."""
    return getattr(strategy, "draw_state", None) is not None


class Replica:
    """A copy of a replayable strategy, built by the same factory as the loop's."""

    def __init__(self, factory: Callable[..., Strategy]) -> None:
        self._ids = 0
        self.strategy = factory(np.random.Generator(np.random.PCG64(0)), self._new_id)
        self.gen: int | None = None  # the generation whose population it holds
        self.population: list = []

    def _new_id(self) -> int:
        self._ids += 1
        return self._ids - 1

    def sync(self, state: dict, draw_state: dict, gen: int) -> list:
        """Generation ``gen``'s population from the strategy's state after that generation was drawn (its
        ``replica_state()``: the draws themselves are made again here)."""
        self.strategy.load_state_dict(state)
        self.strategy.rng.bit_generator.state = draw_state
        self.population, _ = self.strategy.generate(gen)
        self.gen = gen
        return self.population

    def advance(self, fitness: Sequence[float], draw_state: dict, gen: int) -> list:
        """Generation ``gen``'s population from generation ``gen − 1``'s (held here) and its fitness values."""
        if self.gen != gen - 1 or len(fitness) != len(self.population):
            raise ValueError(
                f"replica holds generation {self.gen} of {len(self.population)}; cannot advance "
                f"to {gen} with {len(fitness)} fitness values"
            )
        for ind, f in zip(self.population, fitness):
            ind.fitness.values = (float(f),)
        self.strategy.rng.bit_generator.state = draw_state
        self.population, _ = self.strategy.next_generation(self.population, gen)
        self.gen = gen
        return self.population
