"""Separable (diagonal) CMA-ES on the distribution mean: the variant the SLIM-EVO seed ran through the ``cma``
package, implemented here on numpy so that its state is plain arrays (data-only checkpoints) and its draws
come from the trial's generator."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from evolora.evolution.es_params import ESParams
from evolora.evolution.mean import MeanStrategy, state_hex
from evolora.evolution.strategies import register_strategy

__all__ = ["SepCMAES"]


@register_strategy
class SepCMAES(MeanStrategy):
    """Separable (diagonal) CMA-ES (Ros & Hansen 2008) with the default parameters of Hansen's tutorial and
    the (n + 2) / 3 learning-rate boost of the diagonal variant. Its whole state is arrays and numbers (mean,
    σ, diagonal covariance, both evolution paths), so it checkpoints as data; every draw comes from the
    trial's generator."""

    name = "sep-cma-es"
    Params = ESParams
    options = "es"
    reads = ("sigma",)  # its other parameters are Hansen's defaults
    drawn = ("z",)

    def __init__(
        self, params: ESParams, rng: np.random.Generator, new_id: Callable[[], int], layout=None
    ) -> None:
        super().__init__(rng, new_id)
        self.p = params
        self.sigma = float(params.sigma)
        self.diag: np.ndarray | None = None  # (genes,) diagonal of C
        self.ps = self.pc = None  # evolution paths, (genes,)
        # (λ, genes) standard normal draws of the current generation
        self.z: np.ndarray | None = None
        self.count = 0  # updates done

    def _constants(self, n: int) -> dict:
        lam = self.p.population
        mu = lam // 2
        w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
        w = w / w.sum()
        mueff = 1.0 / float(np.sum(w * w))
        cs = (mueff + 2) / (n + mueff + 5)
        ds = 1 + 2 * max(0.0, np.sqrt((mueff - 1) / (n + 1)) - 1) + cs
        cc = (4 + mueff / n) / (n + 4 + 2 * mueff / n)
        c1 = 2 / ((n + 1.3) ** 2 + mueff)
        cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / ((n + 2) ** 2 + mueff))
        boost = (n + 2) / 3  # diagonal-only: the covariance learns (n + 2) / 3 times faster
        c1, cmu = c1 * boost, cmu * boost
        if c1 + cmu > 1:
            c1, cmu = c1 / (c1 + cmu), cmu / (c1 + cmu)
        chi = np.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
        return {
            "mu": mu,
            "w": w,
            "mueff": mueff,
            "cs": cs,
            "ds": ds,
            "cc": cc,
            "c1": c1,
            "cmu": cmu,
            "chi": chi,
        }

    def generate(self, gen: int):
        self.draw_state = self.rng.bit_generator.state  # a replica rebuilds this generation from it
        n = self.mean.size
        if self.diag is None:
            self.diag, self.ps, self.pc = np.ones(n), np.zeros(n), np.zeros(n)
        draw = state_hex(self.rng)
        self.z = self.rng.standard_normal((self.p.population, n))  # (λ, genes)
        xs = self.mean + self.sigma * self.z * np.sqrt(self.diag)
        pop, events = [], []
        for x in xs:
            ind, ev = self._sample(x.astype(np.float32), gen, "cma-sample", draw, sigma=self.sigma)
            pop.append(ind)
            events.append(ev)
        return pop, events

    def update(self, population: list, gen: int) -> list[dict]:
        c = self._constants(self.mean.size)
        f = np.array([ind.fitness.values[0] for ind in population])
        order = np.argsort(-f, kind="stable")[: c["mu"]]  # best first (fitness is maximised)
        zw = c["w"] @ self.z[order]  # (genes,)
        sd = np.sqrt(self.diag)
        yw = sd * zw
        self.count += 1
        self.ps = (1 - c["cs"]) * self.ps + np.sqrt(c["cs"] * (2 - c["cs"]) * c["mueff"]) * zw
        norm = float(np.linalg.norm(self.ps))
        hs = (
            norm / np.sqrt(1 - (1 - c["cs"]) ** (2 * self.count))
            < (1.4 + 2 / (self.mean.size + 1)) * c["chi"]
        )
        self.pc = (1 - c["cc"]) * self.pc + hs * np.sqrt(c["cc"] * (2 - c["cc"]) * c["mueff"]) * yw
        y = self.z[order] * sd  # (μ, genes)
        self.diag = (
            (1 - c["c1"] - c["cmu"]) * self.diag
            + c["c1"] * (self.pc**2 + (1 - hs) * c["cc"] * (2 - c["cc"]) * self.diag)
            + c["cmu"] * (c["w"] @ (y * y))
        )
        new_mean = self.mean.astype(np.float64) + self.sigma * yw
        self.sigma = float(self.sigma * np.exp(c["cs"] / c["ds"] * (norm / c["chi"] - 1)))
        return [self._new_mean(new_mean, gen, [self.mean_id], "cma-update", sigma=self.sigma)]

    def state_dict(self) -> dict:
        return {
            "mean": self.mean,
            "mean_id": self.mean_id,
            "sigma": self.sigma,
            "diag": self.diag,
            "ps": self.ps,
            "pc": self.pc,
            "z": self.z,
            "count": self.count,
        }

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.mean_id, self.sigma = state["mean"], state["mean_id"], float(state["sigma"])
        self.diag, self.ps, self.pc, self.z = state["diag"], state["ps"], state["pc"], state["z"]
        self.count = int(state["count"])
