"""Peer rows of ``evolora bench --quality`` and ``--reward``: what a user would pick instead of evolora — a general
evolution library's own optimiser — on the same task as evolora's row (its LoRA shape and genome, its splits,
its fitness batch per generation) for the same wall-clock budget.

Each peer is used through its public API, at its documented settings:

* ``evotorch-pgpe``   EvoTorch's PGPE with ClipUp (its functional ``pgpe_ask`` / ``pgpe_tell``): symmetric
                      sampling, centred ranking, stdev learning rate 0.1, centre learning rate = max speed / 2,
                      proportioned as EvoTorch's MuJoCo examples (initial radius 18 × max speed), the initial
                      radius that of the study's σ on every gene; the study's population.
* ``evotorch-snes``   EvoTorch's SNES at its defaults (population 4 + 3 ln n, NES learning rates), initial standard
                      deviation the study's σ.
* ``nevergrad-ngopt`` Nevergrad's NGOpt (it picks its algorithm from the dimension, budget and workers) through
                      ask/tell, on an Array around the base genome with the study's σ as its mutation scale; the
                      study's population of asks per generation (``num_workers``), so a generation shares one
                      fitness batch; its budget the evaluations the wall-clock budget affords at the rate measured
                      on the first generation.

The EvoTorch peers are evolora strategies (:mod:`evolora.benchmarks.peer_strategies`, ask/tell adapters under
the entry-point group ``evolora.strategies``): their row is evolora's loop with ``evolution.strategy`` set to
the peer, so validation, champion, lineage and time are counted exactly as for evolora's own rows. NGOpt is
driven here: Nevergrad's optimiser state is pickled Python objects, which a checkpoint of evolora's (arrays and
JSON) cannot hold, so it is not an evolora strategy. As evolora's loop does, every ``validation.every``
generations its centre (its recommendation) is validated, and the champion is the best validated one within
the study's budget, if it has one (the base model first); the test split only draws the curve.
"""

from __future__ import annotations

import importlib.metadata

import numpy as np

__all__ = ["ADAPTED", "PEERS", "peer_evolution", "peer_row", "validated"]

PEERS = ("evotorch-pgpe", "evotorch-snes", "nevergrad-ngopt")
ADAPTED = (
    "evotorch-pgpe",
    "evotorch-snes",
)  # peers that run as evolora strategies (peer_strategies)


def peer_evolution(row: str, evolution: dict, sigma: float) -> dict:
    """The study's ``evolution`` section for an adapted peer's row: the peer as the strategy, its initial
    standard deviation the study's σ (SNES at its own default population, PGPE at the study's)."""
    params = {"stdev_init": float(sigma)}
    return {**evolution, "strategy": row, "params": params}


def validated(task, genome) -> tuple[float, bool]:
    """``genome``'s validation value and whether it may be the champion (in a budgeted study, its guards
    within budget), as evolora's loop judges it."""
    v = task.validate(genome)
    return float(getattr(v, "value", v)), bool(getattr(v, "admissible", True))


def _fitness(task, genomes, gen: int) -> np.ndarray:
    return np.array(
        [f for f, _ in task.evaluate([np.asarray(g, np.float32) for g in genomes], gen)]
    )


class NevergradPeer:
    """Nevergrad's NGOpt through ask/tell: ``workers`` asks per generation, told the negated fitness
    (Nevergrad minimises). Its budget: the evaluations left in the wall-clock budget at the rate of a first
    timed population (the base genome ``workers`` times: a probe, counted against the time, not told)."""

    def __init__(
        self, task, x0: np.ndarray, sigma: float, workers: int, seed: int, budget_s: float, clock
    ) -> None:
        import nevergrad as ng

        self.task, self.workers, self.gen, self.evals = task, workers, 0, 0
        t0 = clock.elapsed()
        _fitness(task, [x0] * workers, 0)
        rate = workers / max(clock.elapsed() - t0, 1e-6)
        budget = max(2 * workers, int(rate * (budget_s - clock.elapsed())))
        param = ng.p.Array(init=x0.astype(np.float64)).set_mutation(sigma=sigma)
        param.random_state = np.random.RandomState(seed)
        self.opt = ng.optimizers.NGOpt(parametrization=param, budget=budget, num_workers=workers)

    def step(self) -> None:
        asks = [self.opt.ask() for _ in range(self.workers)]
        fits = _fitness(self.task, [a.value for a in asks], self.gen)
        for a, f in zip(asks, fits):
            self.opt.tell(a, -float(f))
        self.evals += len(asks)
        self.gen += 1

    def centre(self) -> np.ndarray:
        return np.asarray(self.opt.provide_recommendation().value, np.float32)

    def name(self) -> str:
        """The algorithm NGOpt chose for this dimension, budget and number of workers."""
        opt = getattr(self.opt, "optim", None)
        return type(opt).__name__ if opt is not None else type(self.opt).__name__


def peer_row(row: str, cfg, budget_s: float, out, clock_cls, curve_cls) -> dict:
    """The peer's run on ``cfg``'s task for ``budget_s`` seconds: its curve, generations, evaluations, the
    champion's validation, and its champion saved as a stock PEFT adapter in ``out / "adapter"``. An adapted
    peer's ``cfg`` already names it as the strategy (:func:`peer_evolution`): evolora's loop runs it."""
    if row in ADAPTED:
        from evolora.benchmarks.rows import evolora_row

        res = evolora_row(cfg, budget_s, out)
        from evolora.evolution.strategies import strategy_class

        return {**res, "peer": _about(row, strategy_class(row).algorithm)}
    from evolora.fitness import build_task
    from evolora.orchestrator.assembly import task_spec
    from evolora.orchestrator.run.trial import prepare_torch

    prepare_torch(cfg)
    task = build_task(task_spec(cfg))
    x0 = task.seed_genome()
    sigma, pop, seed = cfg.evolution.es.sigma, cfg.evolution.population, cfg.seed
    clock = clock_cls(budget_s)  # from here: model loading is not part of the budget
    curve = curve_cls(clock, task.test)
    peer = NevergradPeer(task, x0, sigma, pop, seed, budget_s, clock)
    base_val = validated(task, x0)[0]
    champion = {"genome": x0.copy(), "val": base_val, "gen": 0, "key": 0}
    curve.maybe(0, lambda: x0)
    every = cfg.validation.every
    while peer.gen < 1 or not clock.over():
        peer.step()
        if peer.gen % every == 0 or clock.over():
            centre = peer.centre()
            val, admissible = validated(task, centre)
            if admissible and val > champion["val"]:
                champion = {"genome": centre, "val": val, "gen": peer.gen, "key": peer.gen}
        curve.maybe(champion["key"], lambda: champion["genome"])  # noqa: B023 (called now, if at all)
    curve.maybe(champion["key"], lambda: champion["genome"], force=True)
    task.save_adapter(champion["genome"], out / "adapter")
    return {
        "curve": curve.points,
        "generations": peer.gen,
        "evaluations": peer.evals,
        "val_final": champion["val"],
        "val_base": base_val,
        "champion_gen": champion["gen"],
        "seconds": round(clock.elapsed(), 1),
        "peer": _about(row, peer.name()),
    }


def _about(row: str, algorithm: str) -> dict:
    """Which library's which algorithm a peer row ran, and the library's version."""
    library = row.split("-")[0]
    return {
        "algorithm": algorithm,
        "library": library,
        "version": importlib.metadata.version(library),
    }
