"""The resolved study config → what the packages build from: the task's :class:`~evolora.fitness.TaskSpec`,
the loop's parameters, the strategy (by name, from the strategy registry) and the one :class:`Evolution`.
Shared by a trial, its Ray actors and the benchmarks, so that each builds the same things from the same config."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from evolora.evolution import Evolution, LoopParams, Observer
from evolora.evolution.speciation import SpeciationParams
from evolora.evolution.strategies import strategy_class
from evolora.fitness import TaskSpec
from evolora.fitness.settings import DataSettings, FitnessSettings, LoraSettings, ModelSettings
from evolora.orchestrator.study.sections import BLOCK_MODULES, LoraConfig, StudyConfig, columns

__all__ = [
    "task_spec",
    "settings",
    "loop_params",
    "strategy_params",
    "strategy_factory",
    "build_evolution",
]


def task_spec(cfg: StudyConfig) -> TaskSpec:
    """The resolved config → the plain values ``fitness`` builds a task from. The model, lora, data and fitness
    sections are generated from the task's settings (:mod:`evolora.fitness.settings`): each becomes its settings
    by name; what a study writes otherwise (block types, columns, terms, trunk_memo's ``auto``) is resolved here."""
    v = cfg.validation
    return TaskSpec(
        model=settings(ModelSettings, cfg.model, trunk_memo=_trunk_memo(cfg)),
        lora=settings(LoraSettings, cfg.lora, blocks=_blocks(cfg.lora)),
        data=settings(DataSettings, cfg.data, columns=columns(cfg.data)),
        fitness=settings(
            FitnessSettings,
            cfg.fitness,
            terms=tuple((t.name, t.weight, dict(t.params)) for t in cfg.fitness.terms),
        ),
        seed=cfg.seed,
        validation=v.metric,
        validation_params=dict(v.params),
        budget=tuple((g.metric, dict(g.params), g.max_drop, g.min) for g in v.budget)
        + tuple((w.metric, dict(w.params), None, None) for w in v.watch),
        objectives=tuple((o.metric, dict(o.params)) for o in cfg.sweep.objectives or ()),
    )


def settings(cls: type, section, **resolved):
    """A settings dataclass from the study section generated from it: each of its keys by name (lists as the
    tuples a frozen dataclass holds), and the ``resolved`` values in place of keys the study writes otherwise."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: getattr(section, k) for k in type(section).model_fields if k in names}
    values = {k: tuple(x) if isinstance(x, list) else x for k, x in values.items()}
    return cls(**{**values, **resolved})


def _trunk_memo(cfg: StudyConfig) -> bool | str:
    """True (required), "auto" (if the model allows) or False: auto means on where it pays, where every
    antithetic pair draws a small batch of its own each generation (the per-batch trunk cache never hits)."""
    memo = cfg.model.trunk_memo
    if memo == "auto":
        per_pair = cfg.evolution.strategy == "openai-es" and cfg.evolution.es.batches == "per_pair"
        return "auto" if per_pair and cfg.model.kind == "encoder" else False
    return memo


def _blocks(lora: LoraConfig) -> dict | None:
    if lora.blocks is None:
        return None
    return {
        name: {
            "modules": b.modules or BLOCK_MODULES[name],
            "rank": b.rank or lora.rank,
            "alpha": b.alpha or lora.alpha,
            "layers": b.layers,
        }
        for name, b in lora.blocks.items()
        if b.enabled
    }


def loop_params(cfg: StudyConfig, checkpoint_every: int = 0) -> LoopParams:
    return LoopParams(
        generations=cfg.evolution.generations,
        validate_every=cfg.validation.every,
        reevaluate=cfg.data.rotate,
        hall_of_fame=cfg.evolution.hall_of_fame,
        checkpoint_every=checkpoint_every,
    )


def strategy_params(cfg: StudyConfig):
    """The configured strategy's parameters: its ``Params`` filled from the evolution section (or the
    sub-section the strategy names), the population and the run's length."""
    e = cfg.evolution
    cls = strategy_class(e.strategy)
    if cls.options == "params":  # a strategy from the user's code: its own settings
        return cls.make_params(e.population, e.generations, e.params)
    section = getattr(e, cls.options) if cls.options else e
    options = {k: getattr(section, k) for k in type(section).model_fields}
    return cls.make_params(e.population, e.generations, options)


def strategy_factory(cfg: StudyConfig, layout):
    """(rng, new_id) → the configured Strategy, looked up by name in the strategy registry."""
    e = cfg.evolution
    cls, params = strategy_class(e.strategy), strategy_params(cfg)
    speciation = None
    if cls.speciates and e.speciation.enabled:
        speciation = settings(SpeciationParams, e.speciation)
    return lambda rng, new_id: cls.create(params, rng, new_id, layout, speciation)


def build_evolution(
    cfg: StudyConfig,
    task,
    evaluate=None,
    observers: Sequence[Observer] = (),
    checkpoint_every: int = 0,
) -> Evolution:
    """The one generation loop a study makes (a trial, its benchmarks): the task's seed genome and
    validation, the configured strategy, scored by ``evaluate`` (default: the task in this process)."""
    return Evolution(
        loop_params(cfg, checkpoint_every),
        None,
        task.seed_genome(),
        evaluate or task.evaluate,
        task.validate,
        seed=cfg.seed,
        observers=list(observers),
        strategy=strategy_factory(cfg, task.layout),
    )
