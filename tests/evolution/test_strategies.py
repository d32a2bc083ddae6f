"""Every strategy improves a small problem, is deterministic, and resumes exactly from a checkpoint."""

import numpy as np
import pytest

from evolution import ESParams, Evolution, GAParams, GeneticAlgorithm, LoopParams, Observer, OpenAIES, SepCMAES

TARGET = np.linspace(-0.5, 0.5, 64).astype(np.float32)


def ev(genomes, gen):
    return [(-float(np.mean((np.asarray(g) - TARGET) ** 2)), {}) for g in genomes]


def val(g):
    return ev([g], 0)[0][0]


STRATEGIES = {
    "ga": lambda rng, new_id: GeneticAlgorithm(GAParams(population=12, mutation_sigma=0.05), rng, new_id),
    "openai-es": lambda rng, new_id: OpenAIES(ESParams(population=12, sigma=0.05, learning_rate=0.05), rng, new_id),
    "openai-es-odd-sgd": lambda rng, new_id: OpenAIES(ESParams(population=11, sigma=0.05, learning_rate=0.01,
                                                               optimizer="sgd"), rng, new_id),
    "sep-cma-es": lambda rng, new_id: SepCMAES(ESParams(population=12, sigma=0.1), rng, new_id),
}


class States(Observer):
    def __init__(self):
        self.states = []

    def on_checkpoint(self, state):
        self.states.append(state)


def run(name, seed=0, generations=25, obs=()):
    loop = Evolution(LoopParams(generations=generations, checkpoint_every=1), None, np.zeros(64, np.float32), ev, val,
                     seed, list(obs), strategy=STRATEGIES[name])
    return loop, loop.run()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_strategy_improves_a_small_problem(name):
    _, res = run(name)
    assert res.champion_val > res.base_val + 0.3 * abs(res.base_val)  # at least 30% of the error removed
    if name != "ga":
        assert res.champion_id != 0  # the validated candidate is the (moving) distribution mean


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_same_seed_same_champion_bytes(name):
    a, b, c = run(name, seed=3)[1], run(name, seed=3)[1], run(name, seed=4)[1]
    assert a.champion.tobytes() == b.champion.tobytes()
    assert [r["fit_best"] for r in a.logbook] == [r["fit_best"] for r in b.logbook]
    assert a.champion.tobytes() != c.champion.tobytes()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_resume_from_a_checkpoint_is_exact(name):
    _, full = run(name, seed=5, generations=12)
    rec = States()
    loop = Evolution(LoopParams(generations=12, checkpoint_every=1), None, np.zeros(64, np.float32), ev, val, 5,
                     [rec], strategy=STRATEGIES[name])
    for _ in range(6):
        loop.step()
    import pickle

    state = pickle.loads(pickle.dumps(rec.states[-1]))  # as it comes back from disk
    fresh = Evolution(LoopParams(generations=12, checkpoint_every=1), None, np.zeros(64, np.float32), ev, val, 5,
                      [], strategy=STRATEGIES[name])
    np.random.default_rng(99).random(5)
    fresh.load_state_dict(state)
    res = fresh.run()
    assert res.champion.tobytes() == full.champion.tobytes()
    assert [r["fit_best"] for r in res.logbook] == [r["fit_best"] for r in full.logbook]


def test_openai_es_uses_antithetic_pairs():
    class Pop(Observer):
        def on_population(self, gen, population):
            if gen == 0:
                self.pop = [np.asarray(p) for p in population]

    o = Pop()
    Evolution(LoopParams(generations=1), None, np.zeros(64, np.float32), ev, val, 0, [o],
              strategy=STRATEGIES["openai-es-odd-sgd"]).run()
    mean, rest = o.pop[0], o.pop[1:]
    assert np.all(mean == 0) and len(rest) == 10
    for plus, minus in zip(rest[0::2], rest[1::2]):
        assert np.allclose(plus - mean, -(minus - mean))
