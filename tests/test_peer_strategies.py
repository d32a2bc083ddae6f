"""The bench's peers as evolora strategies (benchmarks/peer_strategies.py): one ask/tell update equals a step of
EvoTorch's own searcher class on the same samples, and a study names them by their entry points."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
evotorch = pytest.importorskip("evotorch")

from evolora.evolution.strategies import strategy_class, strategy_names  # noqa: E402

N = 40
TARGET = np.linspace(-0.5, 0.5, N).astype(np.float32)


def _problem(seed=0):
    from evotorch import Problem

    def f(xs):  # vectorised: (population, genes) → (population,)
        return -((xs - torch.from_numpy(TARGET)) ** 2).sum(dim=1)

    return Problem("max", f, solution_length=N, dtype=torch.float32, vectorized=True, seed=seed)


def _adapter(name, population, **params):
    cls = strategy_class(name)
    ids = iter(range(10_000))
    s = cls(cls.make_params(population, 10, params), np.random.default_rng(0), ids.__next__)
    s.initial(np.zeros(N, np.float32))
    return s


def _searcher_step(searcher):
    """The samples EvoTorch's searcher drew last and their fitness, then its next step (which updates the
    distribution from them before it samples again: ``status`` is then the state after that update)."""
    pop = searcher.population
    xs, fits = pop.values.numpy().copy(), pop.evals[:, 0].numpy().astype(np.float64).copy()
    searcher.step()
    return xs, fits


def test_entry_points_name_the_peers():
    assert {"evotorch-snes", "evotorch-pgpe"} <= set(strategy_names())


def test_one_snes_update_is_evotorchs_snes_step():
    from evotorch.algorithms import SNES

    searcher = SNES(_problem(), stdev_init=0.1, center_init=torch.zeros(N))
    searcher.step()  # the first step samples and scores only
    xs, fits = _searcher_step(searcher)
    s = _adapter("evotorch-snes", 12, stdev_init=0.1)
    assert s.n_samples == len(xs) == 4 + int(np.floor(3 * np.log(N)))  # SNES's default population
    centre = s.tell(xs, fits)
    np.testing.assert_allclose(centre, searcher.status["center"].numpy(), rtol=0, atol=1e-7)
    np.testing.assert_allclose(s.sigma, searcher.status["stdev"].numpy(), rtol=1e-6)
    assert not np.allclose(s.sigma, 0.1)  # σ moved: the comparison covers the σ update too


def test_one_pgpe_update_is_evotorchs_pgpe_step():
    from evotorch.algorithms import PGPE

    from evolora.benchmarks.peer_strategies import RADIUS_PER_SPEED

    radius = 0.1 * np.sqrt(N)
    speed = radius / RADIUS_PER_SPEED
    searcher = PGPE(
        _problem(),
        popsize=12,
        center_learning_rate=speed / 2,
        stdev_learning_rate=0.1,
        radius_init=radius,
        optimizer="clipup",
        optimizer_config={"max_speed": speed},
        center_init=torch.zeros(N),
    )
    s = _adapter("evotorch-pgpe", 12, stdev_init=0.1)
    np.testing.assert_allclose(s.stdev, searcher.status["stdev"].numpy(), rtol=1e-6)
    searcher.step()  # the first step samples and scores only
    for _ in range(3):  # ClipUp's velocity carries over: three steps
        xs, fits = _searcher_step(searcher)
        centre = s.tell(xs, fits)
        np.testing.assert_allclose(centre, searcher.status["center"].numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(s.stdev, searcher.status["stdev"].numpy(), rtol=1e-5)


def test_pgpe_asks_symmetric_pairs_an_even_population():
    s = _adapter("evotorch-pgpe", 7, stdev_init=0.1)
    xs = s.ask()
    assert xs.shape == (8, N)
    d = xs - s.center
    np.testing.assert_allclose(d[0::2], -d[1::2], atol=1e-6)
