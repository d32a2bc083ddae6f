"""Speciation on planted populations (no torch)."""

import json

import numpy as np

from evolora.evolution import (
    Evolution,
    GAParams,
    GeneticAlgorithm,
    GenomeLayout,
    LoopParams,
    Speciation,
    SpeciationParams,
    allocate,
    distance,
)
from evolora.evolution._deap import make_individual


def _clusters(n=10, genes=40, sep=1.0, noise=0.01, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(0, noise, (n, genes)) + sep
    b = rng.normal(0, noise, (n, genes)) - sep
    return [x.astype(np.float32) for x in np.concatenate([a, b])]


def test_two_planted_clusters_give_two_species():
    genomes = _clusters()
    sp = Speciation(SpeciationParams(threshold=0.5, target_species=2))
    res = sp.assign(genomes, np.zeros(len(genomes)), gen=0)
    labels = res["labels"]
    assert len(set(labels[:10])) == 1 and len(set(labels[10:])) == 1 and labels[0] != labels[10]
    assert res["stats"]["species"] == 2 and json.loads(res["stats"]["species_sizes"]) == {
        "0": 10,
        "1": 10,
    }
    assert abs(res["stats"]["species_entropy"] - np.log(2)) < 1e-12


def test_threshold_adapts_toward_the_target_count():
    genomes = _clusters()
    too_many = Speciation(SpeciationParams(threshold=1e-3, target_species=2, threshold_step=0.5))
    before = too_many.threshold
    n = too_many.assign(genomes, np.zeros(20), 0)["stats"]["species"]
    assert n > 2 and too_many.threshold == before * 1.5
    too_few = Speciation(SpeciationParams(threshold=100.0, target_species=4, threshold_step=0.5))
    assert (
        too_few.assign(genomes, np.zeros(20), 0)["stats"]["species"] == 1
        and too_few.threshold == 50.0
    )
    # iterating on the same population converges to the target
    sp = Speciation(SpeciationParams(threshold=100.0, target_species=2, threshold_step=0.3))
    counts = [sp.assign(genomes, np.zeros(20), g)["stats"]["species"] for g in range(40)]
    assert counts[0] == 1 and counts[-1] == 2


def test_auto_threshold_starts_at_the_mean_distance():
    genomes = _clusters()
    sp = Speciation(SpeciationParams(threshold=None, target_species=2))
    mean = sp.mean_distance(genomes)
    sp.assign(genomes, np.zeros(20), 0)
    assert abs(sp.threshold - mean) < 1e-12


def test_a_stagnant_species_is_removed_but_never_the_best():
    genomes = _clusters()
    sp = Speciation(SpeciationParams(threshold=0.5, target_species=2, stagnation=3))
    fit = np.r_[np.ones(10), np.zeros(10)]  # species of cluster A holds the best
    removed = []
    for gen in range(6):
        removed.append(sp.assign(genomes, fit, gen)["removed"])
    # cluster B never improves after gen 0: removed once 3 generations passed; A (the best) is kept
    assert removed[:3] == [[], [], []] and removed[3] == [1]
    stuck = Speciation(SpeciationParams(threshold=0.5, target_species=2, stagnation=1))
    for gen in range(4):
        res = stuck.assign(genomes, fit, gen)
    assert 0 not in res["removed"]  # the species with the population's best survives stagnation


def test_sharing_divides_by_species_size_and_allocation_follows_it():
    sp = Speciation(SpeciationParams(sharing=True))
    fit = np.array([3.0, 3.0, 3.0, 1.0])
    labels = np.array([0, 0, 0, 1])
    adj = sp.adjusted(fit, labels)
    shifted = fit - fit.min() + 1e-9
    assert np.allclose(adj, [shifted[0] / 3] * 3 + [shifted[3] / 1])
    no_share = Speciation(SpeciationParams(sharing=False)).adjusted(fit, labels)
    assert np.allclose(no_share, shifted)
    assert allocate(np.array([3.0, 1.0]), 8).tolist() == [6, 2]
    assert allocate(np.array([1.0, 1.0, 1.0]), 8).tolist() == [3, 3, 2]
    assert allocate(np.array([0.0, 0.0]), 5).sum() == 5


def test_speciated_ga_breeds_within_species_by_shared_fitness():
    rng = np.random.default_rng(0)
    ids = iter(range(10_000))
    ga = GeneticAlgorithm(
        GAParams(population=20, tournament_size=2, crossover_prob=0.0, mutation_prob=0.0),
        rng,
        lambda: next(ids),
        SpeciationParams(threshold=0.5, target_species=2, elitism=1),
    )
    pop = [make_individual(g, next(ids)) for g in _clusters()]
    for i, ind in enumerate(pop):
        ind.fitness.values = (2.0 if i < 10 else 1.0,)
    ga.describe(pop, 0)
    kids, _ = ga.next_generation(pop, 1)
    # shifted fitness: A ≈ 1, B ≈ 0 → nearly every offspring comes from species A; copies stay in their cluster
    side = np.array([np.sign(np.asarray(k).mean()) for k in kids])
    assert len(kids) == 20 and (side > 0).sum() >= 19


def test_distances():
    a, b = np.ones(8, np.float32), -np.ones(8, np.float32)
    assert (
        distance(a, b, "l2") == 2.0
        and abs(distance(a, b, "cosine") - 2.0) < 1e-12
        and distance(a, a, "cosine") < 1e-12
    )
    lay = GenomeLayout.from_shapes({"m.lora_A.weight": (1, 2), "m.lora_B.weight": (2, 1)})
    g1 = np.array([1, 0, 1, 0], np.float32)  # A = [1, 0], B = [1, 0]^T → delta [[1, 0], [0, 0]]
    g2 = np.array([2, 0, 0.5, 0], np.float32)  # A = [2, 0], B = [0.5, 0]^T → the same delta
    assert distance(g1, g2, "delta_l2", lay) == 0.0 and distance(g1, g2, "l2") > 0


def test_speciated_run_is_deterministic_and_emits_species_rows():
    target = np.linspace(-1, 1, 30).astype(np.float32)

    def ev(gs, gen):
        return [(-float(np.sum((np.asarray(g) - target) ** 2)), {}) for g in gs]

    def run(seed):
        rows = []

        class R:
            def __getattr__(self, name):
                return lambda *a: rows.append(a[0]) if name == "on_generation" else None

        def strat(rng, new_id):
            return GeneticAlgorithm(
                GAParams(population=12, mutation_sigma=0.2),
                rng,
                new_id,
                SpeciationParams(target_species=3),
            )

        res = Evolution(
            LoopParams(generations=12),
            None,
            np.zeros(30, np.float32),
            ev,
            lambda g: ev([g], 0)[0][0],
            seed,
            [R()],
            strategy=strat,
        ).run()
        return res, rows

    (a, rows), (b, _) = run(4), run(4)
    assert a.champion.tobytes() == b.champion.tobytes()
    assert all(
        {"species", "species_sizes", "species_entropy", "species_mean_distance"} <= set(r)
        for r in rows
    )
    assert rows[-1]["fit_best"] > rows[0]["fit_best"]
