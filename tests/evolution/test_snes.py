"""evolora's SNES: one update equals EvoTorch's (the reference implementation the bench's peer row runs) on the
same samples; mirrored pairs; the per-gene σ and its rate; the A/B levers."""

import numpy as np
import pytest

from evolora.evolution import SNES, ESParams
from evolora.evolution._deap import make_individual
from evolora.evolution.genome import GenomeLayout
from evolora.evolution.snes import nes_utilities, sigma_rate


def _strategy(**over):
    ids = iter(range(10_000))
    s = SNES(
        ESParams(**{"population": 8, "sigma": 0.1, **over}),
        np.random.default_rng(0),
        ids.__next__,
    )
    pop, _ = s.initial(np.linspace(-1, 1, 20).astype(np.float32))
    return s, pop


def _tell(s, pop, fitness, gen=1):
    for ind, f in zip(pop, fitness):
        ind.fitness.values = (float(f),)
    return s.next_generation(pop, gen)


def test_one_update_is_evotorchs_snes_update():
    torch = pytest.importorskip("torch")
    from evotorch.distributions import ExpSeparableGaussian

    s, pop = _strategy(mirrored=False)
    mu, sigma = s.mean.astype(np.float64), s.sigma.copy()
    xs = np.stack([np.asarray(p, np.float64) for p in pop])
    fitness = np.random.default_rng(1).standard_normal(len(pop))
    dist = ExpSeparableGaussian({"mu": torch.as_tensor(mu), "sigma": torch.as_tensor(sigma)})
    grads = dist.compute_gradients(
        torch.as_tensor(xs), torch.as_tensor(fitness), objective_sense="max", ranking_method="nes"
    )
    ref = dist.update_parameters(
        grads, learning_rates={"mu": 1.0, "sigma": sigma_rate(mu.size)}
    ).parameters
    _tell(s, pop, fitness)
    # the samples were rounded to float32 (what a genome is): the reference sees the rounded ones
    np.testing.assert_allclose(s.mean, ref["mu"].numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(s.sigma, ref["sigma"].numpy(), rtol=1e-5)


def test_utilities_are_evotorchs_nes_ranking_and_sum_to_zero():
    torch = pytest.importorskip("torch")
    from evotorch.tools.ranking import rank

    f = np.random.default_rng(2).standard_normal(13)
    u = np.empty(13)
    u[np.argsort(-f, kind="stable")] = nes_utilities(13)
    want = rank(torch.as_tensor(f), "nes", higher_is_better=True).numpy()
    np.testing.assert_allclose(u, want, atol=1e-12)
    assert abs(nes_utilities(13).sum()) < 1e-12 and 0 < (nes_utilities(13) > 0).sum() < 13 / 2


def test_mirrored_samples_come_in_pairs_and_an_odd_one_is_unpaired():
    s, pop = _strategy(population=7)
    d = np.stack([np.asarray(p, np.float64) for p in pop]) - s.mean
    for k in range(3):
        np.testing.assert_allclose(d[2 * k], -d[2 * k + 1], atol=1e-6)
    assert not np.allclose(d[6], -d[5], atol=1e-3)
    plain, pop = _strategy(mirrored=False)
    d = np.stack([np.asarray(p, np.float64) for p in pop]) - plain.mean
    assert not np.allclose(d[0], -d[1], atol=1e-3)


def test_sigma_rate_zero_holds_sigma_and_the_mean_still_moves():
    s, pop = _strategy(sigma_rate=0.0)
    before, mean = s.sigma.copy(), s.mean.copy()
    _tell(s, pop, np.arange(len(pop), dtype=float))
    assert np.array_equal(s.sigma, before) and not np.array_equal(s.mean, mean)
    s, pop = _strategy()
    _tell(s, pop, np.arange(len(pop), dtype=float))
    assert not np.array_equal(s.sigma, before)


def test_a_genes_start_at_a_scale_and_perturb_b_holds_them():
    layout = GenomeLayout.from_shapes({"m.lora_A.weight": (2, 5), "m.lora_B.weight": (5, 2)})
    ids = iter(range(1000))
    s = SNES(
        ESParams(population=6, sigma=0.1, a_scale=0.25),
        np.random.default_rng(0),
        ids.__next__,
        layout,
    )
    pop, _ = s.initial(np.zeros(layout.size, np.float32))
    b = layout.mask("B")
    np.testing.assert_allclose(s.sigma[b], 0.1)
    np.testing.assert_allclose(s.sigma[~b], 0.025)
    held = SNES(
        ESParams(population=6, sigma=0.1, perturb="B"),
        np.random.default_rng(0),
        ids.__next__,
        layout,
    )
    pop, _ = held.initial(np.zeros(layout.size, np.float32))
    for _ in range(3):
        pop, _ = _tell(held, pop, np.random.default_rng(0).standard_normal(6))
    assert not held.mean[~b].any() and held.mean[b].any()
    assert (held.sigma[~b] == 0).all()


def test_the_mean_is_what_is_validated():
    s, pop = _strategy()
    genome, gid = s.candidate(pop, make_individual(np.zeros(20, np.float32), 99))
    assert gid == s.mean_id and np.array_equal(genome, s.mean)
