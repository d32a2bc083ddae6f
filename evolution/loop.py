"""The generation loop: evaluate, record, validate, hand rows to observers, vary. Model-agnostic.

The loop receives the evaluator and the validator as callables:

* ``evaluate(genomes, gen) -> [(fitness, {term: value}), ...]`` scores a list of flat float32 vectors;
  ``gen`` lets the evaluator rotate its fitness batch (the same batch for every genome of a generation).
  When the strategy gives its individuals a ``batch`` index (an ES with one batch per antithetic pair), it
  is called as ``evaluate(genomes, gen, batches)``: genome i is scored on the batch (gen, batches[i]); None
  means the generation's shared batch.
  An evaluator may also give ``describe() -> {name: number}``: figures of the generation it just scored
  (a pool of workers: its actors, the bytes it sent), added to the generation's row.
* ``validate(genome) -> float | Validation`` scores one genome on held-out data (higher is better); a
  :class:`Validation` also says whether the genome is *admissible* (its guard metrics within the study's
  budget) and gives the guard values.

The run's answer is the *champion*: the genome with the best validation score among the admissible ones
validated (the best-by-fitness genome every ``validate_every`` generations, generation 0 and the last
generation always). The seed genome (the base model) is the champion until one beats it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from deap import tools

from evolora.evolution._deap import copy_individual, make_individual
from evolora.evolution.observers import Observer
from evolora.evolution.records import EvaluationEvent, GenerationRow, LineageEvent, ValidationEvent
from evolora.evolution.seeding import TrialRandom
from evolora.evolution.strategies import GAParams, GeneticAlgorithm, Strategy

__all__ = ["LoopParams", "Evolution", "RunResult", "Evaluator", "Validator", "Validation"]


@dataclass(frozen=True)
class Validation:
    """One genome's held-out score, and whether it may be the champion: ``admissible`` is False when a guard
    metric (``guards``: name → value on the same held-out data) left its budget; ``reason`` says which and by
    how much."""

    value: float
    admissible: bool = True
    guards: dict[str, float] = field(default_factory=dict)
    reason: str = ""


def _validation(v) -> Validation:
    return v if isinstance(v, Validation) else Validation(float(v))


Evaluator = Callable[..., list[tuple[float, dict]]]  # (genomes, gen[, batches])
Validator = Callable[[np.ndarray], "float | Validation"]


@dataclass(frozen=True)
class LoopParams:
    generations: int = 10
    validate_every: int = 1
    # re-score survivors each generation (needed when the fitness batch rotates)
    reevaluate: bool = False
    hall_of_fame: int = 1
    checkpoint_every: int = 1


@dataclass
class RunResult:
    """The generation loop's answer: ``champion`` (the best genome on validation, as a flat float32 vector:
    ``task.save_adapter`` or ``evolora export`` turn it into a PEFT adapter), its ``champion_id`` (0: the base
    model, which stays the champion when no genome beats it), ``champion_gen``, ``champion_val`` against
    ``base_val`` (the base model's validation value), the hall of fame's ``best_genome`` and ``best_fitness``
    (on its own train batch: climbed, not chosen), ``generations`` run, and DEAP's ``logbook`` (one row per
    generation, the curves MLflow draws)."""

    champion: np.ndarray
    champion_id: int
    champion_gen: int
    champion_val: float
    base_val: float
    best_fitness: float  # hall-of-fame fitness (on the batch it was scored on)
    best_genome: np.ndarray
    generations: int
    logbook: tools.Logbook = field(repr=False)


class Evolution:
    def __init__(
        self,
        params: LoopParams,
        ga: GAParams | None,
        seed_genome: np.ndarray,
        evaluate: Evaluator,
        validate: Validator,
        seed: int,
        observers: Sequence[Observer] = (),
        strategy: Callable[..., Strategy] | None = None,
    ) -> None:
        self.params = params
        self.evaluate, self.validate = evaluate, validate
        self.observers = list(observers)
        self.random = TrialRandom(seed)
        self._next_id = 0
        # (rng, new_id) → Strategy
        factory = strategy or (lambda rng, new_id: GeneticAlgorithm(ga, rng, new_id))
        self.strategy = factory(self.random.np, self._new_id)
        self.seed_genome = np.asarray(seed_genome, dtype=np.float32)
        self.hof = tools.HallOfFame(params.hall_of_fame, similar=np.array_equal)
        stats = tools.Statistics(lambda ind: ind.fitness.values[0])
        for name, fn in (("best", np.max), ("mean", np.mean), ("std", np.std), ("min", np.min)):
            stats.register(name, fn)
        self.stats = stats
        self.logbook = tools.Logbook()
        self.population: list = []
        self.gen = -1  # last completed generation
        self.end = params.generations - 1  # the last generation: earlier after stop()
        self.champion: dict | None = None
        self.base_val = float("nan")
        for o in self.observers:
            o.bind(self)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    # ---- public API -------------------------------------------------------------------------------
    def run(self) -> RunResult:
        resumed = self.gen >= 0
        for o in self.observers:
            o.on_start(
                {"resumed": resumed, "gen": self.gen, "genome_size": int(self.seed_genome.size)}
            )
        if not resumed and self.params.checkpoint_every:
            # the starting point: a run killed during generation 0 resumes from here
            state = self.state_dict()
            for o in self.observers:
                o.on_checkpoint(state)
        while self.gen < self.end:
            self.step()
        result = self.result()
        for o in self.observers:
            o.on_end(result)
        return result

    def stop(self) -> None:
        """End :meth:`run` early (an observer's early stopping or time budget): the next generation is the last,
        validated and checkpointed as a last one is, so the champion is chosen on validation as always."""
        self.end = min(self.end, self.gen + 1)

    def step(self) -> GenerationRow:
        """Run one generation (generation 0 is the initial population) and return its row."""
        t0 = time.perf_counter()
        gen = self.gen + 1
        if gen == 0:
            pop, events = self.strategy.initial(self.seed_genome)
        else:
            pop, events = self.strategy.next_generation(self.population, gen)
        nevals, eval_s = self._evaluate(pop, gen, events)
        self.population = pop
        self.hof.update(pop)
        record = self.stats.compile(pop)
        best = max(pop, key=lambda i: i.fitness.values[0])
        row: GenerationRow = {
            "gen": gen,
            "nevals": nevals,
            **{f"fit_{k}": float(v) for k, v in record.items()},
        }
        row.update({f"term_{k}": float(v) for k, v in best.terms.items()})
        row["diversity"] = _diversity(pop)
        row.update(self.strategy.describe(pop, gen))
        # e.g. a pool's actors and bytes sent
        row.update(getattr(self.evaluate, "describe", dict)())
        last = gen >= self.end
        val_s = 0.0
        if gen == 0 or last or gen % self.params.validate_every == 0:
            t_val = time.perf_counter()
            self._validate(pop, best, gen, row, events)
            val_s = time.perf_counter() - t_val
        for o in self.observers:
            o.on_population(gen, pop)
        total = time.perf_counter() - t0
        row["evals_per_s"] = nevals / eval_s if eval_s > 0 else float("nan")
        row["gen_s"] = total
        row["overhead_share"] = max(0.0, total - eval_s - val_s) / total if total > 0 else 0.0
        self.logbook.record(**row)
        self.gen = gen
        for o in self.observers:
            o.on_events(events)
        for o in self.observers:
            o.on_generation(row)
        if self.params.checkpoint_every and (gen % self.params.checkpoint_every == 0 or last):
            state = self.state_dict()
            for o in self.observers:
                o.on_checkpoint(state)
        return row

    def _evaluate(self, pop: list, gen: int, events: list[LineageEvent]) -> tuple[int, float]:
        """Score the individuals of ``pop`` without a valid fitness (all of them when re-evaluating), each
        on its batch; their evaluations appended to ``events``. Returns (evaluations, seconds)."""
        if self.params.reevaluate:
            for ind in pop:
                del ind.fitness.values
        todo = [ind for ind in pop if not ind.fitness.valid]
        t_eval = time.perf_counter()
        batches = [getattr(ind, "batch", None) for ind in todo]
        if not todo:
            scores = []
        elif any(b is not None for b in batches):
            scores = self.evaluate(todo, gen, batches)
        else:
            scores = self.evaluate(todo, gen)
        eval_s = time.perf_counter() - t_eval
        for ind, (fit, terms) in zip(todo, scores):
            ind.fitness.values = (float(fit),)
            ind.terms = dict(terms)
            events.append(
                EvaluationEvent(
                    event="eval",
                    gen=gen,
                    id=ind.gid,
                    fitness=float(fit),
                    terms=dict(terms),
                )
            )
        return len(todo), eval_s

    def _validate(
        self, pop: list, best, gen: int, row: GenerationRow, events: list[LineageEvent]
    ) -> None:
        """Validate the generation's candidate (at generation 0 the base model too), crown it if it is
        admissible and beats the champion; the figures go into ``row``, the validation into ``events``."""
        cand, cand_id = self.strategy.candidate(pop, best)
        checked = _validation(self.validate(np.asarray(cand)))
        val = checked.value
        self.candidate = {
            "genome": np.array(cand, dtype=np.float32),
            "id": cand_id,
            "gen": gen,
            "val": val,
        }
        if gen == 0:
            # the seed genome (the base model) is always a candidate: evolution never answers worse than it
            base = (
                checked
                if np.array_equal(cand, self.seed_genome)
                else _validation(self.validate(self.seed_genome))
            )
            self.base_val = base.value
            row["val_base"] = self.base_val
            row.update({f"val_base_{k}": float(v) for k, v in base.guards.items()})
            self.champion = {
                "genome": self.seed_genome.copy(),
                "id": 0,
                "gen": 0,
                "val": self.base_val,
            }
        row["val"] = val
        row.update({f"val_{k}": float(v) for k, v in checked.guards.items()})
        event = ValidationEvent(event="validation", gen=gen, id=cand_id, value=val)
        # a budgeted study: what the guards said, and whether it could be the champion
        if checked.guards:
            row["val_admissible"] = float(checked.admissible)
            row["val_id"] = cand_id
            event.update(admissible=checked.admissible, guards=dict(checked.guards))
            if not checked.admissible:
                row["val_excluded"] = checked.reason
                event["excluded"] = checked.reason
        events.append(event)
        if checked.admissible and val > self.champion["val"]:
            self.champion = {
                "genome": np.array(cand, dtype=np.float32),
                "id": cand_id,
                "gen": gen,
                "val": val,
            }
        row["val_champion"] = self.champion["val"]
        row["champion_id"] = self.champion["id"]

    def result(self) -> RunResult:
        assert self.champion is not None, "result() before any generation ran"
        return RunResult(
            champion=self.champion["genome"],
            champion_id=self.champion["id"],
            champion_gen=self.champion["gen"],
            champion_val=self.champion["val"],
            base_val=self.base_val,
            best_fitness=float(self.hof[0].fitness.values[0]),
            best_genome=np.array(self.hof[0], dtype=np.float32),
            generations=self.gen + 1,
            logbook=self.logbook,
        )

    # ---- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue exactly: population, hall of fame, logbook, RNG states, champion."""

        def pack(ind) -> dict:
            return {
                "genes": np.array(ind, dtype=np.float32),
                "gid": ind.gid,
                "species": getattr(ind, "species", None),
                "fitness": ind.fitness.values if ind.fitness.valid else None,
                "terms": dict(ind.terms),
            }

        return {
            "gen": self.gen,
            "next_id": self._next_id,
            "population": [pack(i) for i in self.population],
            "hof": [pack(i) for i in self.hof],
            "logbook": list(self.logbook),
            "random": self.random.state(),
            "champion": self.champion,
            "base_val": self.base_val,
            "strategy": self.strategy.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        def unpack(d: dict):
            ind = make_individual(d["genes"], d["gid"])
            if d["fitness"] is not None:
                ind.fitness.values = tuple(d["fitness"])
            ind.terms = dict(d["terms"])
            if d.get("species") is not None:
                ind.species = d["species"]
            return ind

        self.gen = int(state["gen"])
        self._next_id = int(state["next_id"])
        self.population = [unpack(d) for d in state["population"]]
        self.hof.clear()
        self.hof.update([copy_individual(unpack(d)) for d in state["hof"]])
        self.logbook = tools.Logbook()
        for row in state["logbook"]:
            self.logbook.record(**row)
        self.random.restore(state["random"])
        self.champion = state["champion"]
        self.base_val = float(state["base_val"])
        self.strategy.load_state_dict(state.get("strategy", {}))


def _diversity(pop: list) -> float:
    """Mean L2 distance of the genomes to the population centroid."""
    x = np.stack([np.asarray(i) for i in pop])  # (population, genes)
    return float(np.linalg.norm(x - x.mean(axis=0), axis=1).mean())
