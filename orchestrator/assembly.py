"""The resolved study config → what the packages build from: the task's :class:`fitness.TaskSpec`, the
loop's parameters, the search strategy. Shared by a trial (:mod:`.runner`), its Ray actors
(:mod:`.ray_actor`) and the benchmarks, so that each builds the same things from the same config."""

from __future__ import annotations

import dataclasses

from evolora.evolution import GAParams, GeneticAlgorithm, LoopParams
from evolora.evolution.es import ESParams, OpenAIES
from evolora.evolution.sepcma import SepCMAES
from evolora.evolution.speciation import SpeciationParams
from evolora.fitness import TaskSpec

from evolora.orchestrator.study.sections import BLOCK_MODULES, LoraConfig, StudyConfig, columns

__all__ = ["task_spec", "loop_params", "ga_params", "from_section", "strategy_factory"]


_SPEC_FIELDS = {f.name for f in dataclasses.fields(TaskSpec)}
_SPEC_SECTIONS = ("model", "lora", "data", "fitness")  # their keys fill the TaskSpec fields of the same name


def task_spec(cfg: StudyConfig) -> TaskSpec:
    """The resolved config → the plain values ``fitness`` builds a task from: every key of the model, lora,
    data and fitness sections named as a TaskSpec field is copied by name; the rest is derived here."""
    named = {k: _plain(getattr(sec, k)) for sec in (getattr(cfg, n) for n in _SPEC_SECTIONS)
             for k in type(sec).model_fields if k in _SPEC_FIELDS and k != "seed"}  # data.seed is data_seed
    v = cfg.validation
    return TaskSpec(**{
        **named, "seed": cfg.seed, "data_seed": cfg.data.seed, "val_sources": tuple(cfg.data.val_sources or ()),
        "columns": columns(cfg.data), "blocks": _blocks(cfg.lora), "trunk_memo": _trunk_memo(cfg),
        "terms": tuple((t.name, t.weight, dict(t.params)) for t in cfg.fitness.terms),
        "validation": v.metric, "validation_params": dict(v.params),
        "budget": tuple((g.metric, dict(g.params), g.max_drop, g.min) for g in v.budget)
        + tuple((w.metric, dict(w.params), None, None) for w in v.watch),
        "objectives": tuple((o.metric, dict(o.params)) for o in cfg.sweep.objectives or ()),
    })


def _plain(value):
    """A config value as a TaskSpec holds it: lists as tuples (a spec is frozen and hashable by value)."""
    return tuple(value) if isinstance(value, list) else value


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
    return {name: {"modules": b.modules or BLOCK_MODULES[name], "rank": b.rank or lora.rank,
                   "alpha": b.alpha or lora.alpha, "layers": b.layers}
            for name, b in lora.blocks.items() if b.enabled}


def loop_params(cfg: StudyConfig, checkpoint_every: int = 0) -> LoopParams:
    return LoopParams(generations=cfg.evolution.generations, validate_every=cfg.validation.every,
                      reevaluate=cfg.data.rotate, hall_of_fame=cfg.evolution.hall_of_fame,
                      checkpoint_every=checkpoint_every)


def from_section(cls, *sections, **extra):
    """A parameter dataclass of the evolution package built from config sections by field name (the
    sections take their defaults from the dataclass: one source of defaults)."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: getattr(sec, k) for sec in sections for k in type(sec).model_fields if k in names}
    return cls(**{**values, **extra})


def ga_params(cfg: StudyConfig) -> GAParams:
    return from_section(GAParams, cfg.evolution)


def strategy_factory(cfg: StudyConfig, layout):
    """(rng, new_id) → the configured Strategy: the one place that maps config to search strategies."""
    e = cfg.evolution
    if e.strategy in ("openai-es", "sep-cma-es"):
        es = from_section(ESParams, e.es, population=e.population, horizon=e.generations)
        if e.strategy == "openai-es":
            return lambda rng, new_id: OpenAIES(es, rng, new_id, layout)
        return lambda rng, new_id: SepCMAES(es, rng, new_id)
    sp = None
    if e.speciation.enabled:
        sp = from_section(SpeciationParams, e.speciation)
    return lambda rng, new_id: GeneticAlgorithm(ga_params(cfg), rng, new_id, sp, layout)
