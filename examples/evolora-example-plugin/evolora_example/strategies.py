"""A search strategy from the user's own code: the cross-entropy method (Rubinstein 1999; a diagonal
Gaussian refitted to the elite of each generation), in evolora's two methods, ``ask`` and ``tell``. A study
names it ``evolution.strategy: cem`` and sets ``evolution.params: {sigma: …, elite: …, smoothing: …}``."""

from dataclasses import dataclass

import numpy as np

from evolora.evolution import AskTell
from evolora.evolution.options import option


@dataclass(frozen=True)
class CEMParams:
    sigma: float = option(0.02, "initial standard deviation of every gene", gt=0)
    elite: float = option(
        0.25, "share of the population the distribution is refitted to", gt=0, le=1
    )
    smoothing: float = option(
        0.7, "weight of the refit against the previous distribution", gt=0, le=1
    )


class CrossEntropy(AskTell):
    """Sample N(mean, std²), keep the best ``elite`` share, move mean and std towards theirs."""

    name, Params, state = "cem", CEMParams, ("std",)

    def start(self, x0: np.ndarray) -> None:
        self.std = np.full(x0.size, self.p.sigma)

    def ask(self) -> np.ndarray:
        z = self.rng.standard_normal((self.population, self.mean.size))
        return self.mean + self.std * z

    def tell(self, genomes: np.ndarray, fitness: np.ndarray) -> np.ndarray:
        k = max(1, int(round(self.p.elite * len(fitness))))
        elite = genomes[np.argsort(-fitness, kind="stable")[:k]].astype(np.float64)
        a = self.p.smoothing
        self.std = (1 - a) * self.std + a * (elite.std(axis=0) + 1e-8)
        return (1 - a) * self.mean + a * elite.mean(axis=0)
