"""Every strategy improves a small problem, is deterministic, and resumes exactly from a checkpoint."""

from dataclasses import dataclass

import numpy as np
import pytest

from evolora.evolution import (
    SNES,
    AskTell,
    ConfigError,
    ESParams,
    Evolution,
    GAParams,
    GeneticAlgorithm,
    LoopParams,
    Observer,
    OpenAIES,
    SepCMAES,
)
from evolora.evolution.checkpoint import load_checkpoint_file, save_checkpoint
from evolora.evolution.es import cosine
from evolora.evolution.genome import GenomeLayout
from evolora.evolution.options import option
from evolora.evolution.speciation import SpeciationParams
from evolora.evolution.strategies import strategy_class

TARGET = np.linspace(-0.5, 0.5, 64).astype(np.float32)
# two LoRA matrices of 32 genes each: the toy target moves B (genes 32..63) the most; A is genes 0..31
LAYOUT = GenomeLayout.from_shapes({"m.lora_A.weight": (4, 8), "m.lora_B.weight": (8, 4)})
# the same 64 genes as two layers' LoRA matrices (layer 0: genes 0..31, layer 1: genes 32..63)
LAYERED = GenomeLayout.from_shapes(
    {
        "enc.0.v.lora_A.weight": (2, 8),
        "enc.0.v.lora_B.weight": (8, 2),
        "enc.1.v.lora_A.weight": (2, 8),
        "enc.1.v.lora_B.weight": (8, 2),
    }
)


def ev(genomes, gen, batches=None):
    """Squared distance to TARGET; with ``batches`` (one fitness batch per ES pair), each batch sees the
    target through its own offset: a pair's difference cancels it, as on real batches of varying difficulty."""
    offsets = [
        0.0 if b is None else float(np.sin(1.0 + gen * 31 + b))
        for b in (batches or [None] * len(genomes))
    ]
    return [
        (-float(np.mean((np.asarray(g) - TARGET) ** 2)) + o, {}) for g, o in zip(genomes, offsets)
    ]


def val(g):
    return ev([g], 0)[0][0]


@dataclass(frozen=True)
class ToyCEMParams:
    sigma: float = option(0.05, gt=0)
    elite: float = option(0.25, gt=0, le=1)


class ToyCEM(AskTell):
    """A strategy as a user writes one: the cross-entropy method in ask/tell."""

    name, Params, state = "toy-cem", ToyCEMParams, ("std", "history")

    def start(self, x0):
        self.std, self.history = np.full(x0.size, self.p.sigma), []

    def ask(self):
        return self.mean + self.std * self.rng.standard_normal((self.population, self.mean.size))

    def tell(self, genomes, fitness):
        elite = genomes[
            np.argsort(-fitness, kind="stable")[: max(1, int(self.p.elite * len(fitness)))]
        ]
        self.std = 0.5 * self.std + 0.5 * (elite.std(axis=0) + 1e-8)
        self.history.append(float(fitness.max()))  # a list in the state: checkpointed as data
        return elite.mean(axis=0)


STRATEGIES = {
    "ga": lambda rng, new_id: GeneticAlgorithm(
        GAParams(population=12, mutation_sigma=0.05), rng, new_id
    ),
    "ga-speciated": lambda rng, new_id: GeneticAlgorithm(
        GAParams(population=12, mutation_sigma=0.05),
        rng,
        new_id,
        SpeciationParams(target_species=2),
    ),
    "openai-es": lambda rng, new_id: OpenAIES(
        ESParams(population=12, sigma=0.05, learning_rate=0.05), rng, new_id
    ),
    "openai-es-odd-sgd": lambda rng, new_id: OpenAIES(
        ESParams(population=11, sigma=0.05, learning_rate=0.01, optimizer="sgd"), rng, new_id
    ),
    "openai-es-zscore-cosine": lambda rng, new_id: OpenAIES(
        ESParams(
            population=12,
            sigma=0.05,
            learning_rate=0.02,
            optimizer="momentum",
            shaping="zscore",
            schedule="cosine",
            sigma_final=0.5,
            lr_final=0.1,
            horizon=25,
        ),
        rng,
        new_id,
    ),
    "openai-es-B": lambda rng, new_id: OpenAIES(
        ESParams(population=12, sigma=0.05, learning_rate=0.05, perturb="B"), rng, new_id, LAYOUT
    ),
    "openai-es-A-scaled": lambda rng, new_id: OpenAIES(
        ESParams(population=12, sigma=0.05, learning_rate=0.05, a_scale=0.25), rng, new_id, LAYOUT
    ),
    "openai-es-per-pair": lambda rng, new_id: OpenAIES(
        ESParams(
            population=13, sigma=0.05, learning_rate=0.05, shaping="zscore", batches="per_pair"
        ),
        rng,
        new_id,
    ),
    "openai-es-layer-blocks": lambda rng, new_id: OpenAIES(
        ESParams(population=12, sigma=0.05, learning_rate=0.05, blocks="layer", a_scale=0.5),
        rng,
        new_id,
        LAYERED,
    ),
    "openai-es-one-sided": lambda rng, new_id: OpenAIES(
        ESParams(
            population=12, sigma=0.05, learning_rate=0.05, sampling="one_sided", shaping="zscore"
        ),
        rng,
        new_id,
    ),
    "openai-es-one-sided-ranks": lambda rng, new_id: OpenAIES(
        ESParams(population=12, sigma=0.05, learning_rate=0.05, sampling="one_sided"), rng, new_id
    ),
    "openai-es-cone": lambda rng, new_id: OpenAIES(
        ESParams(population=12, sigma=0.05, learning_rate=0.05, sampling="cone", cone_angle=60.0),
        rng,
        new_id,
    ),
    "openai-es-hessian": lambda rng, new_id: OpenAIES(
        ESParams(
            population=13, sigma=0.05, learning_rate=0.05, precondition="hessian", a_scale=0.5
        ),
        rng,
        new_id,
        LAYOUT,
    ),
    "openai-es-dizo": lambda rng, new_id: OpenAIES(
        ESParams(population=12, sigma=0.05, learning_rate=0.05, project_every=3),
        rng,
        new_id,
        LAYERED,
    ),
    "sep-cma-es": lambda rng, new_id: SepCMAES(ESParams(population=12, sigma=0.1), rng, new_id),
    "asktell-cem": lambda rng, new_id: ToyCEM(
        ToyCEM.make_params(12, 25, {"sigma": 0.1}), rng, new_id
    ),
    "snes": lambda rng, new_id: SNES(ESParams(population=12, sigma=0.1), rng, new_id),
    # the bench's peers as ask/tell strategies (EvoTorch's SNES and functional PGPE, benchmarks/peer_strategies)
    "asktell-evotorch-snes": lambda rng, new_id: strategy_class("evotorch-snes")(
        strategy_class("evotorch-snes").make_params(12, 25, {"stdev_init": 0.1}), rng, new_id
    ),
    "asktell-evotorch-pgpe": lambda rng, new_id: strategy_class("evotorch-pgpe")(
        strategy_class("evotorch-pgpe").make_params(12, 25, {"stdev_init": 0.1}), rng, new_id
    ),
    "snes-odd-plain": lambda rng, new_id: SNES(
        ESParams(
            population=11, sigma=0.1, mirrored=False, schedule="cosine", lr_final=0.3, horizon=25
        ),
        rng,
        new_id,
    ),
    "snes-A-scaled": lambda rng, new_id: SNES(
        ESParams(population=12, sigma=0.1, a_scale=0.5), rng, new_id, LAYOUT
    ),
}


class States(Observer):
    def __init__(self):
        self.states = []

    def on_checkpoint(self, state):
        self.states.append(state)


def run(name, seed=0, generations=25, obs=()):
    return run_with(STRATEGIES[name], seed, generations, obs)


def run_with(strategy, seed=0, generations=25, obs=()):
    loop = Evolution(
        LoopParams(generations=generations, checkpoint_every=1),
        None,
        np.zeros(64, np.float32),
        ev,
        val,
        seed,
        list(obs),
        strategy=strategy,
    )
    return loop, loop.run()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_strategy_improves_a_small_problem(name):
    _, res = run(name)
    # B-only can remove at most the B half of the error; A at a quarter of B's step gets little of its half
    share = 0.15 if name in ("openai-es-B", "openai-es-A-scaled") else 0.3
    assert res.champion_val > res.base_val + share * abs(res.base_val)
    if not name.startswith("ga"):
        assert res.champion_id != 0  # the validated candidate is the (moving) distribution mean


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_same_seed_same_champion_bytes(name):
    a, b, c = run(name, seed=3)[1], run(name, seed=3)[1], run(name, seed=4)[1]
    assert a.champion.tobytes() == b.champion.tobytes()
    assert [r["fit_best"] for r in a.logbook] == [r["fit_best"] for r in b.logbook]
    assert a.champion.tobytes() != c.champion.tobytes()


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_resume_from_a_checkpoint_is_exact(name, tmp_path):
    _, full = run(name, seed=5, generations=12)
    rec = States()
    loop = Evolution(
        LoopParams(generations=12, checkpoint_every=1),
        None,
        np.zeros(64, np.float32),
        ev,
        val,
        5,
        [rec],
        strategy=STRATEGIES[name],
    )
    for _ in range(6):
        loop.step()
    save_checkpoint(tmp_path / "ck.npz", rec.states[-1])
    state = load_checkpoint_file(tmp_path / "ck.npz")  # as it comes back from disk: data only
    fresh = Evolution(
        LoopParams(generations=12, checkpoint_every=1),
        None,
        np.zeros(64, np.float32),
        ev,
        val,
        5,
        [],
        strategy=STRATEGIES[name],
    )
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
    Evolution(
        LoopParams(generations=1),
        None,
        np.zeros(64, np.float32),
        ev,
        val,
        0,
        [o],
        strategy=STRATEGIES["openai-es-odd-sgd"],
    ).run()
    mean, rest = o.pop[0], o.pop[1:]
    assert np.all(mean == 0) and len(rest) == 10
    for plus, minus in zip(rest[0::2], rest[1::2]):
        assert np.allclose(plus - mean, -(minus - mean))


def test_zscore_shaping_points_along_the_gradient():
    """Antithetic differences / their RMS: on a linear fitness the update is a positive multiple of the true
    gradient's projection onto the drawn directions, whatever the fitness scale."""
    g = np.linspace(1.0, -1.0, 64).astype(np.float32)
    steps = []
    for scale in (1.0, 1000.0):

        def lin(genomes, gen, scale=scale):
            return [(scale * float(np.asarray(x) @ g), {}) for x in genomes]

        es = OpenAIES(
            ESParams(
                population=400, sigma=0.1, learning_rate=0.1, optimizer="sgd", shaping="zscore"
            ),
            np.random.default_rng(0),
            iter(range(10**6)).__next__,
        )
        loop = Evolution(
            LoopParams(generations=2),
            None,
            np.zeros(64, np.float32),
            lin,
            lambda x: 0.0,
            0,
            [],
            strategy=lambda rng, new_id, es=es: es,
        )
        loop.run()
        steps.append(es.mean.copy())
    cos = steps[0] @ g / (np.linalg.norm(steps[0]) * np.linalg.norm(g))
    assert cos > 0.7  # 200 directions in 64 dimensions: a good estimate of the direction
    assert np.allclose(steps[0], steps[1], atol=1e-6)  # scale-free


def test_per_pair_batches_give_both_signs_of_a_pair_one_batch_and_every_pair_its_own():
    seen = []

    def spy(genomes, gen, batches=None):
        seen.append((gen, batches))
        return ev(genomes, gen, batches)

    Evolution(
        LoopParams(generations=3),
        None,
        np.zeros(64, np.float32),
        spy,
        val,
        0,
        [],
        strategy=STRATEGIES["openai-es-per-pair"],
    ).run()
    assert [gen for gen, _ in seen] == [0, 1, 2]
    for _, batches in seen:  # member 0 is the mean (odd population): the generation's shared batch
        assert batches == [None] + [k for k in range(6) for _ in (1, -1)]
    with pytest.raises(ConfigError, match="^batches: per_pair needs shaping: zscore"):
        OpenAIES(
            ESParams(population=12, batches="per_pair"),
            np.random.default_rng(0),
            iter(range(99)).__next__,
        )
    shared = []
    Evolution(
        LoopParams(generations=2),
        None,
        np.zeros(64, np.float32),
        lambda g, gen: shared.append(gen) or ev(g, gen),
        val,
        0,
        [],
        strategy=STRATEGIES["openai-es"],
    ).run()
    assert shared == [0, 1]  # a strategy without batches: called as before, (genomes, gen)


def test_perturb_B_never_moves_A():
    loop, res = run("openai-es-B", generations=6)
    assert np.all(res.champion[:32] == 0) and np.any(res.champion[32:] != 0)


def test_a_scale_is_the_same_es_on_rescaled_genes():
    """a_scale s: the ES on θ = s ⊙ u (s = 1 on B, s on A) is the plain ES on u, draw for draw; its ends 0 and
    1 are perturb B and the default, bit for bit."""
    s = np.where(np.arange(64) < 32, 0.25, 1.0).astype(np.float32)
    for optimizer in ("adam", "sgd", "momentum"):

        def on_u(genomes, gen):
            return ev([s * np.asarray(g) for g in genomes], gen)

        def es(optimizer=optimizer, **kw):
            return lambda rng, new_id: OpenAIES(
                ESParams(population=12, sigma=0.05, learning_rate=0.02, optimizer=optimizer, **kw),
                rng,
                new_id,
                LAYOUT,
            )

        scaled = Evolution(
            LoopParams(generations=8),
            None,
            np.zeros(64, np.float32),
            ev,
            val,
            0,
            [],
            strategy=es(a_scale=0.25),
        )
        scaled.run()
        plain = Evolution(
            LoopParams(generations=8),
            None,
            np.zeros(64, np.float32),
            on_u,
            val,
            0,
            [],
            strategy=es(),
        )
        plain.run()
        theta, u = scaled.strategy.mean, plain.strategy.mean
        assert np.any(theta[:32] != 0)  # A moves
        assert np.allclose(theta, s * u, rtol=1e-4, atol=1e-6), optimizer
    _, zero = run_with(
        lambda rng, new_id: OpenAIES(
            ESParams(population=12, sigma=0.05, learning_rate=0.05, a_scale=0.0),
            rng,
            new_id,
            LAYOUT,
        )
    )
    _, b = run("openai-es-B")
    assert zero.champion.tobytes() == b.champion.tobytes()
    _, one = run_with(
        lambda rng, new_id: OpenAIES(
            ESParams(population=12, sigma=0.05, learning_rate=0.05, a_scale=1.0),
            rng,
            new_id,
            LAYOUT,
        )
    )
    _, default = run("openai-es")
    assert one.champion.tobytes() == default.champion.tobytes()
    with pytest.raises(ConfigError, match="^a_scale: perturb='B' holds A fixed"):
        OpenAIES(
            ESParams(perturb="B", a_scale=0.5),
            np.random.default_rng(0),
            iter(range(9)).__next__,
            LAYOUT,
        )


def test_layer_blocks_perturb_and_update_one_layer_per_generation_in_turn():
    """blocks='layer': generation g's members differ from the mean only in the genes of layer g mod 2, the
    update moves only those, and each block's Adam counts its own steps (its first step is lr per gene)."""
    for optimizer in ("adam", "sgd", "momentum"):
        es = OpenAIES(
            ESParams(
                population=12, sigma=0.05, learning_rate=0.02, optimizer=optimizer, blocks="layer"
            ),
            np.random.default_rng(3),
            iter(range(10**6)).__next__,
            LAYERED,
        )
        pop, events = es.initial(np.zeros(64, np.float32))
        layer_genes = {0: np.arange(32), 1: np.arange(32, 64)}
        for gen in range(1, 6):
            block = (gen - 1) % 2
            other = layer_genes[1 - block]
            mean = es.mean.copy()
            assert all(np.array_equal(np.asarray(ind)[other], mean[other]) for ind in pop)
            assert all(
                np.any(np.asarray(ind)[layer_genes[block]] != mean[layer_genes[block]])
                for ind in pop
            )
            assert all(e["params"]["layer"] == block for e in events if e["op"] == "es-sample")
            for ind, (f, _) in zip(pop, ev(pop, gen)):
                ind.fitness.values = (f,)
            pop, events = es.next_generation(pop, gen)
            step = es.mean - mean
            assert np.all(step[other] == 0) and np.any(step[layer_genes[block]] != 0), (
                optimizer,
                gen,
            )
            assert events[0]["params"]["layer"] == block
            # each block's first Adam step: lr × sign, whatever came before
            if optimizer == "adam" and gen <= 2:
                assert np.allclose(np.abs(step[layer_genes[block]]), 0.02, rtol=1e-4), gen
    with pytest.raises(ValueError, match="blocks='layer' needs the genome layout"):
        OpenAIES(ESParams(blocks="layer"), np.random.default_rng(0), iter(range(9)).__next__)


def test_cosine_schedule_ends_where_it_says():
    assert cosine(0.1, 0.2, 0, 11) == pytest.approx(0.1)
    assert cosine(0.1, 0.2, 5, 11) == pytest.approx(0.06)
    assert cosine(0.1, 0.2, 10, 11) == pytest.approx(0.02)
    # past the horizon: stays at the end value
    assert cosine(0.1, 0.2, 50, 11) == pytest.approx(0.02)


def test_one_sided_samples_score_against_the_mean_on_one_batch_with_fzoos_normalised_step():
    """sampling one_sided (FZOO): member 0 is the mean, the other 11 are θ + σε_i (no mirror images); the
    SGD step is lr · Σ (f_i − f(θ)) / std(f) · ε_i / 11, computed here by hand from the scored population."""
    seen = {}

    class Pop(Observer):
        def on_population(self, gen, population):
            seen[gen] = [(np.asarray(p).copy(), p.fitness.values[0]) for p in population]

    es = ESParams(
        population=12,
        sigma=0.05,
        learning_rate=0.1,
        optimizer="sgd",
        shaping="zscore",
        sampling="one_sided",
    )
    loop = Evolution(
        LoopParams(generations=2),
        None,
        np.zeros(64, np.float32),
        ev,
        val,
        0,
        [Pop()],
        strategy=lambda rng, new_id: OpenAIES(es, rng, new_id),
    )
    loop.run()
    pop0 = seen[0]
    # the mean, scored with them
    assert len(pop0) == 12 and np.array_equal(pop0[0][0], np.zeros(64, np.float32))
    eps = np.stack([g for g, _ in pop0[1:]]) / 0.05
    assert not any(
        np.allclose(eps[i], -eps[j], atol=1e-6) for i in range(11) for j in range(11) if i != j
    )
    f = np.array([v for _, v in pop0[1:]])
    want = (
        0.1
        * (((f - pop0[0][1]) / (np.std(f) + 1e-12)).astype(np.float32) @ eps.astype(np.float32))
        / 11
    )
    # generation 1's member 0: the new mean
    np.testing.assert_allclose(seen[1][0][0], want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "over,field",
    [
        ({"sampling": "one_sided", "batches": "per_pair", "shaping": "zscore"}, "sampling"),
        ({"sampling": "both"}, "sampling"),
    ],
)
def test_one_sided_sampling_rules(over, field):
    with pytest.raises(ConfigError, match=f"^{field}: "):
        ESParams(**over)


class Populations(Observer):
    """Every generation's scored population: (genome, fitness) per member."""

    def __init__(self):
        self.seen = {}

    def on_population(self, gen, population):
        self.seen[gen] = [(np.asarray(p).copy(), p.fitness.values[0]) for p in population]


def test_cone_directions_keep_their_angle_to_the_momentum_of_the_estimates():
    """sampling cone (ConMeZO): from generation 1 on, every pair's direction ε (θ+σε − θ, over σ) makes
    cone_angle with the momentum of the past ascent estimates and has the norm √n of a Gaussian draw."""
    pops = Populations()
    es = ESParams(
        population=12,
        sigma=0.05,
        learning_rate=0.05,
        optimizer="sgd",
        sampling="cone",
        cone_angle=70.0,
    )
    holder = {}

    def make(rng, new_id):
        holder["es"] = OpenAIES(es, rng, new_id)
        return holder["es"]

    loop = Evolution(
        LoopParams(generations=4), None, np.zeros(64, np.float32), ev, val, 0, [pops], strategy=make
    )
    # the 4th step updates on generation 2's scores, then draws generation 3 around the momentum
    for _ in range(4):
        loop.step()
    strat = holder["es"]
    direction = strat.direction / np.linalg.norm(strat.direction)
    mean = strat.mean
    eps = (np.stack([g for g, _ in pops.seen[3][0::2]]) - mean) / 0.05  # the + member of each pair
    np.testing.assert_allclose(np.linalg.norm(eps, axis=1), np.sqrt(64), rtol=1e-3)
    cos = eps @ direction / np.linalg.norm(eps, axis=1)
    np.testing.assert_allclose(cos, np.cos(np.deg2rad(70.0)), atol=1e-3)


def test_hessian_preconditioner_learns_which_genes_are_curved():
    """precondition hessian: on a quadratic whose first 16 genes are 25× as curved as the rest, the
    curvature estimate from the pairs' second differences ranks them higher, so they get the smaller σ."""
    weight = np.where(np.arange(64) < 16, 25.0, 1.0)

    def quad(genomes, gen, batches=None):
        return [(-float(np.sum(weight * (np.asarray(g) - 0.1) ** 2)), {}) for g in genomes]

    holder = {}

    def make(rng, new_id):
        holder["es"] = OpenAIES(
            ESParams(
                population=33,
                sigma=0.01,
                learning_rate=0.001,
                optimizer="sgd",
                precondition="hessian",
                curvature_rate=0.2,
            ),
            rng,
            new_id,
        )
        return holder["es"]

    Evolution(
        LoopParams(generations=30),
        None,
        np.zeros(64, np.float32),
        quad,
        lambda g: quad([g], 0)[0][0],
        0,
        [],
        strategy=make,
    ).run()
    es = holder["es"]
    assert np.median(es.curv[:16]) > 4 * np.median(es.curv[16:])
    s = es.scale(slice(None))
    assert np.median(s[:16]) < np.median(s[16:])


def test_dizo_projection_scales_each_layers_displacement_within_the_clip():
    """project_every 3: generations 3, 6, … score θ₀ + (1 ± σ_p δ)[layer] ⊙ (θ − θ₀) — per layer a multiple of
    the mean's displacement — and the new mean is the displacement scaled by ratios within 1 ± clip."""
    pops = Populations()
    es = ESParams(population=12, sigma=0.05, learning_rate=0.05, project_every=3, project_clip=0.2)
    loop = Evolution(
        LoopParams(generations=5),
        None,
        np.zeros(64, np.float32),
        ev,
        val,
        0,
        [pops],
        strategy=lambda rng, new_id: OpenAIES(es, rng, new_id, LAYERED),
    )
    loop.run()
    layers = LAYERED.layer_genes()
    # the mean entering generation 3 is every projection sample's common anchor-relative direction
    samples = np.stack([g for g, _ in pops.seen[3]])
    base_disp = None
    for genes in layers.values():
        # each row: ratio × the mean's displacement on this layer (θ₀ = 0 here)
        d = samples[:, genes]
        ref = d[0] / np.linalg.norm(d[0])
        np.testing.assert_allclose(np.abs(d @ ref), np.linalg.norm(d, axis=1), rtol=1e-4)
        base_disp = d
    assert base_disp is not None
    # generation 4 samples around the projected mean: their average is that mean
    after = pops.seen[4]
    projected = np.mean(np.stack([g for g, _ in after]), axis=0)
    for genes in layers.values():
        # antithetic ratios average to 1: the pre-projection mean
        pre = np.mean(samples[:, genes], axis=0)
        ratio = (projected[genes] @ pre) / (pre @ pre)
        assert 0.8 - 1e-4 <= ratio <= 1.2 + 1e-4


@pytest.mark.parametrize(
    "over,field",
    [
        ({"precondition": "hessian", "population": 12}, "precondition"),
        ({"precondition": "hessian", "population": 13, "sampling": "one_sided"}, "precondition"),
        ({"precondition": "hessian", "population": 13, "blocks": "layer"}, "precondition"),
        ({"precondition": "hessian", "population": 13, "curvature_rate": 0.0}, "curvature_rate"),
        ({"sampling": "cone", "cone_angle": 95.0}, "cone_angle"),
        ({"sampling": "cone", "blocks": "layer"}, "sampling"),
        ({"project_every": -1}, "project_every"),
        ({"project_every": 5, "sampling": "one_sided"}, "project_every"),
        ({"project_every": 5, "project_clip": 1.0}, "project_clip"),
        ({"precondition": "newton"}, "precondition"),
    ],
)
def test_lever_rules(over, field):
    with pytest.raises(ConfigError, match=f"^{field}: "):
        ESParams(**over)
