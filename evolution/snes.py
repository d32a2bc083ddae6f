"""Separable natural evolution strategies (SNES; Schaul, Glasmachers & Schmidhuber 2011) on the mean of a
search distribution, with mirrored sampling and evolora's A/B levers, implemented on numpy so its state is
plain arrays (data-only checkpoints) and every draw comes from the trial's generator."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from evolora.evolution.es_params import ESParams
from evolora.evolution.genome import GenomeLayout
from evolora.evolution.mean import MeanStrategy, ab_scale, cosine, state_hex
from evolora.evolution.strategies import register_strategy

__all__ = ["SNES", "nes_utilities", "sigma_rate"]


def nes_utilities(n: int) -> np.ndarray:
    """NES fitness shaping for ``n`` samples ranked best first: max(0, ln(n/2 + 1) − ln k), normalised to sum
    to one, minus 1/n. They sum to zero; fewer than half are positive."""
    raw = np.maximum(0.0, np.log(n / 2 + 1) - np.log(np.arange(1, n + 1)))
    return raw / raw.sum() - 1.0 / n


def sigma_rate(d: int) -> float:
    """SNES's learning rate of the per-gene σ for ``d`` searched dimensions: (3 + ln d) / (5√d)."""
    return (3 + np.log(d)) / (5 * np.sqrt(d))


@register_strategy
class SNES(MeanStrategy):
    """SNES: samples x = μ + σ⊙z, ranks them into utilities u (summing to zero), moves the mean by
    ``mean_rate`` · σ⊙Σu·z (a step that scales with σ: no optimiser, no learning rate to tune against the
    fitness scale) and each gene's σ by exp(½·η_σ·Σu·(z² − 1)).

    * ``mirrored``: samples come in pairs μ ± σ⊙z (Brockhoff et al. 2010): the pair's difference cancels
      what the batch does to both, and every draw is used twice.
    * ``perturb: B`` / ``a_scale``: the A genes start at ``a_scale`` × σ (0: held fixed); η_σ is SNES's default
      for the genes that move, times ``sigma_rate`` (0: σ fixed, the ablation that isolates the update rule).
    * ``schedule: cosine``: ``mean_rate`` decays along a half cosine to ``lr_final`` × itself.

    The genome validated each generation is the mean."""

    name = "snes"
    Params = ESParams
    options = "es"
    reads = (
        "sigma",
        "mean_rate",
        "sigma_rate",
        "mirrored",
        "perturb",
        "a_scale",
        "schedule",
        "lr_final",
    )
    min_population = 2
    drawn = ("z",)

    def __init__(
        self,
        params: ESParams,
        rng: np.random.Generator,
        new_id: Callable[[], int],
        layout: GenomeLayout | None = None,
    ) -> None:
        super().__init__(rng, new_id)
        self.p = params
        self.scale = ab_scale(params, layout)  # (genes,) 1 on B, a_scale on A; None: all 1
        self.sigma: np.ndarray | None = None  # (genes,) per-gene σ; 0 on genes that never move
        self.z: np.ndarray | None = (
            None  # (λ, genes) standard normal draws of the current generation
        )

    def _initial_sigma(self, n: int) -> np.ndarray:
        sigma = np.full(n, self.p.sigma, np.float64)
        return sigma if self.scale is None else sigma * self.scale

    def mean_rate_at(self, gen: int) -> float:
        if self.p.schedule == "cosine":
            return float(cosine(self.p.mean_rate, self.p.lr_final, gen, self.p.horizon))
        return self.p.mean_rate

    def generate(self, gen: int):
        self.draw_state = self.rng.bit_generator.state  # a replica rebuilds this generation from it
        n, lam = self.mean.size, self.p.population
        if self.sigma is None:
            self.sigma = self._initial_sigma(n)
        draw = state_hex(self.rng)
        if self.p.mirrored:
            half = self.rng.standard_normal(((lam + 1) // 2, n))
            self.z = np.empty((lam, n))
            self.z[0::2], self.z[1::2] = half[: (lam + 1) // 2], -half[: lam // 2]
        else:
            self.z = self.rng.standard_normal((lam, n))
        xs = self.mean + self.sigma * self.z
        pop, events = [], []
        for k, x in enumerate(xs):
            ind, ev = self._sample(x.astype(np.float32), gen, "snes-sample", draw, pair=k // 2)
            pop.append(ind)
            events.append(ev)
        return pop, events

    def update(self, population: list, gen: int) -> list[dict]:
        f = np.array([ind.fitness.values[0] for ind in population])
        order = np.argsort(-f, kind="stable")  # best first (fitness is maximised)
        u = np.empty(len(f))
        u[order] = nes_utilities(len(f))
        moving = self.sigma > 0
        rate = self.p.sigma_rate * sigma_rate(max(int(moving.sum()), 1))
        step = self.mean_rate_at(gen) * self.sigma * (u @ self.z)
        new_mean = self.mean.astype(np.float64) + step
        self.sigma = self.sigma * np.exp(0.5 * rate * (u @ (self.z * self.z - 1.0)))
        spread = float(np.sqrt(np.mean(self.sigma[moving] ** 2))) if moving.any() else 0.0
        return [self._new_mean(new_mean, gen, [self.mean_id], "snes-update", sigma=spread)]

    def describe(self, population: list, gen: int) -> dict:
        """The root mean square of the moving genes' σ: how far the search distribution has narrowed."""
        moving = self.sigma > 0
        return {
            "sigma_rms": float(np.sqrt(np.mean(self.sigma[moving] ** 2))) if moving.any() else 0.0
        }

    def state_dict(self) -> dict:
        return {"mean": self.mean, "mean_id": self.mean_id, "sigma": self.sigma, "z": self.z}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.mean_id = state["mean"], state["mean_id"]
        self.sigma, self.z = state["sigma"], state["z"]
