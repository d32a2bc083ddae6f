"""The one place per trial where randomness is seeded, captured and restored.

DEAP's selection draws from the global :mod:`random` module; our vectorised operators draw from a
``numpy.random.Generator``. Both are seeded here from the trial seed, and both states go into checkpoints,
so a resumed run draws exactly what an uninterrupted one would have. (torch is seeded by ``fitness``.)
"""

from __future__ import annotations

import random

import numpy as np

__all__ = ["TrialRandom"]


class TrialRandom:
    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        random.seed(self.seed)
        self.np = np.random.Generator(np.random.PCG64(self.seed))

    def state(self) -> dict:
        return {"python": random.getstate(), "numpy": self.np.bit_generator.state}

    def restore(self, state: dict) -> None:
        random.setstate(state["python"])
        self.np.bit_generator.state = state["numpy"]
