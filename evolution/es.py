"""Evolution strategies on the mean of a search distribution, plugged into the same loop through DEAP's
generate/update protocol (``generate()`` → population, ``update(population)`` after evaluation).

* ``openai-es``: antithetic Gaussian perturbations of a mean, centred-rank fitness shaping, Adam (or SGD) on
  the mean (Salimans et al. 2017). With an odd population the mean itself is member 0.
* ``sep-cma-es`` (:mod:`.sepcma`): separable (diagonal) CMA-ES on the same shared bookkeeping.

For both, the genome validated each generation is the distribution mean (averaging generalises better than
the best sample on a fixed fitness set).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from evolora.evolution._deap import make_individual
from evolora.evolution.es_params import ESParams
from evolora.evolution.genome import GenomeLayout
from evolora.evolution.mean import MeanStrategy, ab_scale, centred_ranks, cosine, state_hex
from evolora.evolution.strategies import register_strategy

__all__ = ["ESParams", "OpenAIES", "cosine"]

_SCALE_CLIP = 4.0  # hessian preconditioner: a gene's σ stays within [1/4, 4] × the mean's


@register_strategy
class OpenAIES(MeanStrategy):
    """Antithetic ES on the mean (Salimans et al. 2017): each generation scores pairs θ ± σε and steps the mean
    along the shaped differences with Adam, SGD or momentum.

    * ``shaping``: centred ranks, or z-scored antithetic differences (an SPSA / MeZO-style estimate whose step
      does not depend on the fitness scale); ``schedule``: optional cosine decay of the step and of σ.
    * ``perturb="B"``: only the LoRA B factors move (at B = 0 a change of A changes nothing to first order);
      ``a_scale``: A moves at that fraction of B's σ and step (θ = θ₀ + s ⊙ u, s = 1 on B and ``a_scale`` on
      A: LoRA+'s point, Hayou et al. 2024, that A and B want different step sizes).
    * ``blocks="layer"``: block-coordinate ES (as LeZO, Wang et al. 2024): generation g perturbs and updates only
      the genes of the g-th adapted layer, in turn, each block with its own optimiser moments; the layers below
      the block run once per batch (the trunk cache's shared prefix).
    * ``batches="per_pair"``: each antithetic pair is scored on a fitness batch of its own (``ind.batch``), so
      the same example evaluations measure more directions, each on fewer examples; the pair's difference
      cancels its batch's difficulty.
    * ``sampling="one_sided"``: member 0 is the mean and the others θ + σε (FZOO, 2025): each sample's
      difference to the mean's fitness on the same batch, divided by the standard deviation of the samples'
      fitness values (``shaping="zscore"``; centred ranks of the samples otherwise), estimates the ascent
      direction with one forward per direction instead of two."""

    name = "openai-es"
    Params = ESParams
    options = "es"
    min_population = 2  # antithetic pairs
    drawn = ("eps", "z", "delta")

    def __init__(
        self,
        params: ESParams,
        rng: np.random.Generator,
        new_id: Callable[[], int],
        layout: GenomeLayout | None = None,
    ) -> None:
        super().__init__(rng, new_id)
        self.p = params
        self.one_sided = params.sampling == "one_sided"
        # antithetic: pairs (± ε), the mean as member 0 when the population is odd; one-sided: the mean, then samples
        self.pairs = params.population - 1 if self.one_sided else params.population // 2
        self.with_mean = self.one_sided or params.population % 2 == 1
        self.eps: np.ndarray | None = None  # (pairs, genes) of the current generation
        self.m = self.v = None
        self.t = 0
        # (genes,) scale of each gene's σ and step: 1 on B, `a_scale` on A (0 with perturb B); None: all 1
        self.mask: np.ndarray | None = ab_scale(params, layout)
        # blocks="layer": [(layer, gene positions)] in the order the generations visit them; None: every gene
        self.blocks: list[tuple[int, np.ndarray]] | None = None
        if params.blocks == "layer":
            if layout is None:
                raise ValueError("blocks='layer' needs the genome layout")
            self.blocks = list(layout.layer_genes().items())
        self.cone = params.sampling == "cone"
        # sampling cone: EMA of the ascent estimates, (genes,)
        self.direction: np.ndarray | None = None
        # precondition hessian: diagonal curvature estimate, (genes,)
        self.curv: np.ndarray | None = None
        # precondition hessian: the unscaled draws of the generation
        self.z: np.ndarray | None = None
        # DiZO: the layer index (0 … L−1) of every gene, the anchor θ₀ and the ratio draws of a projection generation
        self.gene_layer: np.ndarray | None = None
        self.origin: np.ndarray | None = None
        self.delta: np.ndarray | None = None
        if params.project_every:
            if layout is None:
                raise ValueError("project_every needs the genome layout")
            self.gene_layer = np.zeros(layout.size, np.int64)
            for i, (_, genes) in enumerate(layout.layer_genes().items()):
                self.gene_layer[genes] = i

    def block_at(self, gen: int) -> tuple[int | None, np.ndarray | slice]:
        """(layer, gene positions) that generation ``gen`` perturbs; (None, every gene) without blocks."""
        if self.blocks is None:
            return None, slice(None)
        return self.blocks[gen % len(self.blocks)]

    def sigma_at(self, gen: int) -> float:
        if self.p.schedule == "cosine":
            return float(cosine(self.p.sigma, self.p.sigma_final, gen, self.p.horizon))
        return self.p.sigma

    def lr_at(self, gen: int) -> float:
        if self.p.schedule == "cosine":
            return float(cosine(self.p.learning_rate, self.p.lr_final, gen, self.p.horizon))
        return self.p.learning_rate

    def projecting(self, gen: int) -> bool:
        """Whether generation ``gen`` searches DiZO's per-layer ratios instead of perturbing the genes."""
        return bool(self.p.project_every) and gen > 0 and gen % self.p.project_every == 0

    def scale(self, genes) -> np.ndarray | None:
        """Each gene's σ (and, under Adam, step) factor: the A/B mask times the hessian preconditioner."""
        s = None if self.mask is None else self.mask[genes]
        if self.curv is not None:
            c = self.curv[genes]
            pre = np.clip(np.sqrt(np.mean(c) / c), 1 / _SCALE_CLIP, _SCALE_CLIP).astype(np.float32)
            s = pre if s is None else s * pre
        return s

    def _directions(self, n: int) -> np.ndarray:
        """(pairs, n) search directions: standard normal, or in a cone of ``cone_angle`` around the momentum of
        the ascent estimates (ConMeZO, 2025), each of norm √n like a Gaussian draw."""
        z = self.rng.standard_normal((self.pairs, n), dtype=np.float32)
        if not self.cone or self.direction is None or not np.any(self.direction):
            return z
        m = (self.direction / np.linalg.norm(self.direction)).astype(np.float32)
        perp = z - np.outer(z @ m, m)
        perp /= np.linalg.norm(perp, axis=1, keepdims=True) + 1e-12
        a = np.deg2rad(self.p.cone_angle)
        return (np.sqrt(n) * (np.cos(a) * m + np.sin(a) * perp)).astype(np.float32)

    def generate(self, gen: int):
        self.draw_state = self.rng.bit_generator.state  # a replica rebuilds this generation from it
        if self.origin is None and self.gene_layer is not None:
            self.origin = self.mean.copy()  # DiZO's anchor: the seed genome
        if self.projecting(gen):
            return self._generate_projection(gen)
        draw = state_hex(self.rng)
        layer, genes = self.block_at(gen)
        n = self.mean.size if layer is None else len(genes)
        if self.p.precondition == "hessian" and self.curv is None:
            self.curv = np.ones(self.mean.size)
        self.eps = self._directions(n)  # (pairs, genes of the block)
        self.z = self.eps.copy() if self.curv is not None else None
        scale = self.scale(genes)
        if scale is not None:
            self.eps *= scale
        sigma = self.sigma_at(gen)
        extra = {} if layer is None else {"layer": layer}
        pop, events = [], []
        if self.with_mean:
            # the mean itself, scored like any member
            ind = make_individual(self.mean, self.mean_id)
            pop.append(ind)
        per_pair = self.p.batches == "per_pair"
        for k in range(self.pairs):
            for sign in (1,) if self.one_sided else (1, -1):
                values = self.mean.copy()
                values[genes] += sign * sigma * self.eps[k]
                ind, ev = self._sample(
                    values, gen, "es-sample", draw, sigma=sigma, pair=k, sign=sign, **extra
                )
                if per_pair:
                    ind.batch = k  # the evaluator scores both signs of pair k on the batch (gen, k)
                pop.append(ind)
                events.append(ev)
        return pop, events

    def _generate_projection(self, gen: int):
        """DiZO (Tan et al. 2025): antithetic draws of one ratio per adapted layer, each sample the anchor plus
        the current displacement scaled layer by layer, θ₀ + (1 ± σ_p δ)[layer] ⊙ (θ − θ₀)."""
        draw = state_hex(self.rng)
        layers = int(self.gene_layer.max()) + 1
        self.delta = self.rng.standard_normal((self.pairs, layers))
        disp = self.mean - self.origin
        pop = [make_individual(self.mean, self.mean_id)] if self.with_mean else []
        events = []
        for k in range(self.pairs):
            for sign in (1, -1):
                ratio = 1.0 + sign * self.p.project_sigma * self.delta[k]
                values = (self.origin + ratio[self.gene_layer] * disp).astype(np.float32)
                ind, ev = self._sample(
                    values, gen, "dizo-sample", draw, sigma=self.p.project_sigma, pair=k, sign=sign
                )
                if self.p.batches == "per_pair":
                    ind.batch = k
                pop.append(ind)
                events.append(ev)
        return pop, events

    def _update_projection(self, population: list, gen: int) -> list[dict]:
        """One z-scored step on the per-layer ratios (from 1, DiZO's re-initialisation), clipped to
        [1 − clip, 1 + clip]; the new mean is the anchor plus the displacement scaled by them."""
        samples = population[1:] if self.with_mean else population
        f = np.array([ind.fitness.values[0] for ind in samples])
        diff = f[0::2] - f[1::2]
        w = diff / (np.sqrt(np.mean(diff * diff)) + 1e-12)
        ratio = np.clip(
            1.0 + self.p.project_step * (w @ self.delta) / self.pairs,
            1 - self.p.project_clip,
            1 + self.p.project_clip,
        )
        mean = self.origin + ratio[self.gene_layer] * (self.mean - self.origin)
        return [
            self._new_mean(
                mean, gen, [self.mean_id], "dizo-project", ratios=[float(r) for r in ratio]
            )
        ]

    def update(self, population: list, gen: int) -> list[dict]:
        if self.projecting(gen - 1):
            return self._update_projection(population, gen)
        samples = population[1:] if self.with_mean else population
        f = np.array([ind.fitness.values[0] for ind in samples])
        sigma = self.sigma_at(gen - 1)  # the generation that was just scored
        layer, genes = self.block_at(gen - 1)
        scale = self.scale(genes)  # the generation's own (before the curvature moves)
        grad = self._ascent(f, population[0].fitness.values[0], sigma)
        if self.p.weight_decay:
            grad = grad - self.p.weight_decay * self.mean[genes]
        lr = self.lr_at(gen - 1)
        step = self._step(grad, lr, layer, genes)
        if scale is not None:
            # The update of ``u`` with θ = θ₀ + s ⊙ u (s: the mask times the preconditioner): the estimate above
            # (``eps`` holds s ⊙ ε) is s ⊙ ĝ_u, which Adam's per-gene normalisation undoes, so its step is scaled
            # once here; SGD and momentum steps already carry the factor (s² ⊙ g: the preconditioned gradient).
            step = step * (scale if self.p.optimizer == "adam" else (scale > 0))
        if self.cone:
            d = self.direction if self.direction is not None else np.zeros_like(grad)
            self.direction = (self.p.cone_beta * d + (1 - self.p.cone_beta) * grad).astype(
                np.float32
            )
        if self.curv is not None:
            self._update_curvature(f, population[0].fitness.values[0], sigma, scale)
        mean = self.mean.copy()
        mean[genes] += step
        extra = {} if layer is None else {"layer": layer}
        return [
            self._new_mean(
                mean,
                gen,
                [self.mean_id],
                "es-update",
                lr=lr,
                sigma=sigma,
                optimizer=self.p.optimizer,
                shaping=self.p.shaping,
                **extra,
            )
        ]

    def _ascent(self, f: np.ndarray, f_mean: float, sigma: float) -> np.ndarray:
        """The ascent direction estimated from the generation's (shaped) fitness values, (genes,)."""
        if self.one_sided:
            return self._one_sided(f, f_mean, sigma)
        if self.p.shaping == "zscore":
            diff = f[0::2] - f[1::2]  # (pairs,)
            w = (diff / (np.sqrt(np.mean(diff * diff)) + 1e-12)).astype(np.float32)
            return (w @ self.eps) / self.pairs  # unit-scale ascent direction
        u = centred_ranks(f)
        w = (u[0::2] - u[1::2]).astype(np.float32)  # antithetic pairs: (+ε, −ε)
        return (w @ self.eps) / (len(f) * sigma)

    def _step(self, grad: np.ndarray, lr: float, layer, genes) -> np.ndarray:
        """The optimiser's step on the genes updated this generation (Adam: one step count per block)."""
        if self.m is None and self.p.optimizer != "sgd":
            self.m = np.zeros_like(self.mean)
            if self.p.optimizer == "adam":
                self.v = np.zeros_like(self.mean)
        self.t += 1
        if self.p.optimizer == "momentum":
            m = self.m[genes] = self.p.momentum * self.m[genes] + grad
            return lr * m
        if self.p.optimizer == "adam":
            # a block's own step count: the blocks are visited in turn, one per update
            t = self.t if layer is None else (self.t - 1) // len(self.blocks) + 1
            b1, b2 = 0.9, 0.999
            m = self.m[genes] = b1 * self.m[genes] + (1 - b1) * grad
            v = self.v[genes] = b2 * self.v[genes] + (1 - b2) * grad * grad
            return lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + 1e-8)
        return lr * grad

    def _update_curvature(
        self, f: np.ndarray, f_mean: float, sigma: float, scale: np.ndarray
    ) -> None:
        """HiZOO-style diagonal curvature (Zhao et al. 2024) from the same three-point evaluations: pair k's
        second difference Δ_k = f(θ+σε_k) + f(θ−σε_k) − 2f(θ), ε = s ⊙ z, estimates the diagonal through
        E[Δ (z_i² − 1)] = 2σ² s_i² H_ii (Stein's identity; Δ centred over the pairs); its magnitude, averaged
        over the pairs, enters an EMA at ``curvature_rate``. Genes held fixed (s = 0) keep theirs."""
        delta = f[0::2] + f[1::2] - 2.0 * f_mean  # (pairs,)
        # a control variate: E[z² − 1] = 0, and Σ_j H_jj s_j² is common to every pair
        delta = delta - np.mean(delta)
        est = (delta @ (self.z.astype(np.float64) ** 2 - 1.0)) / (2.0 * sigma**2 * len(delta))
        s2 = scale.astype(np.float64) ** 2
        moving = s2 > 0
        h = np.abs(est[moving]) / s2[moving]
        a = self.p.curvature_rate
        self.curv[moving] = (1 - a) * self.curv[moving] + a * (h / (np.mean(h) + 1e-30)) * np.mean(
            self.curv[moving]
        )

    def _one_sided(self, f: np.ndarray, f_mean: float, sigma: float) -> np.ndarray:
        """The ascent direction from one-sided samples: zscore — (f_i − f(θ)) / std(f) (FZOO's normalisation:
        a unit-scale step whatever the fitness scale); centred ranks of the samples otherwise."""
        if self.p.shaping == "zscore":
            w = ((f - f_mean) / (np.std(f) + 1e-12)).astype(np.float32)
            return (w @ self.eps) / self.pairs
        return (centred_ranks(f).astype(np.float32) @ self.eps) / (len(f) * sigma)

    def state_dict(self) -> dict:
        return {
            "mean": self.mean,
            "mean_id": self.mean_id,
            "eps": self.eps,
            "m": self.m,
            "v": self.v,
            "t": self.t,
            "direction": self.direction,
            "curv": self.curv,
            "z": self.z,
            "origin": self.origin,
            "delta": self.delta,
        }

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.mean_id, self.eps = state["mean"], state["mean_id"], state["eps"]
        self.m, self.v, self.t = state["m"], state["v"], state["t"]
        # absent in checkpoints from before the levers
        for name in (
            "direction",
            "curv",
            "z",
            "origin",
            "delta",
        ):
            setattr(self, name, state.get(name))
