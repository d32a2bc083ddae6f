"""The search space ↔ Optuna: a study file's ``search`` entries sampled define-by-run as Optuna
distributions, stored params decoded back into config values, a trial's concrete config and seed, and the
study's sampler and pruner."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna

from evolora.orchestrator.study.paths import choice_label, value_at, with_values
from evolora.orchestrator.study.sections import SearchSpec, StudyConfig, resolved
from evolora.orchestrator.study.space import baseline_params

__all__ = [
    "objectives",
    "suggest",
    "sample",
    "baseline_params",
    "decode",
    "trial_seed",
    "trial_config",
    "make_sampler",
    "make_pruner",
]


def suggest(trial: optuna.Trial, path: str, spec: SearchSpec) -> Any:
    if spec.type == "float":
        return trial.suggest_float(path, spec.low, spec.high, log=spec.log, step=spec.step)
    if spec.type == "int":
        return trial.suggest_int(
            path, int(spec.low), int(spec.high), log=spec.log, step=int(spec.step or 1)
        )
    labels = [choice_label(c) for c in spec.choices]
    return spec.choices[labels.index(trial.suggest_categorical(path, labels))]


def sample(trial: optuna.Trial, cfg: StudyConfig) -> dict[str, Any]:
    """Sample the search space define-by-run, in file order: an entry with ``when`` is sampled only if the
    paths it names (sampled just before, or fixed in the file) hold one of its listed values."""
    fixed = resolved(cfg)
    values: dict[str, Any] = {}

    def current(path: str) -> Any:
        return values[path] if path in values else value_at(fixed, path)

    for path, spec in cfg.search.items():
        if all(current(c) in accepted for c, accepted in (spec.when or {}).items()):
            values[path] = suggest(trial, path, spec)
    return values


def decode(spec: SearchSpec, value: Any) -> Any:
    """A stored Optuna param value → the config value (categorical lists are stored as JSON labels)."""
    if spec.type == "categorical":
        labels = [choice_label(c) for c in spec.choices]
        return spec.choices[labels.index(value)] if value in labels else value
    return value


def trial_seed(study_seed: int, root: int) -> int:
    return int(np.random.SeedSequence([study_seed, root]).generate_state(1)[0] & 0x7FFFFFFF)


def trial_config(base: StudyConfig, params: dict[str, Any], seed: int, threads: int) -> StudyConfig:
    values = {p: decode(base.search[p], v) if p in base.search else v for p, v in params.items()}
    return with_values(base, {**values, "seed": seed, "model.threads": threads})


def objectives(cfg: StudyConfig) -> list[tuple[str, str]]:
    """(name, direction) of each value a trial reports: ``sweep.objectives`` for a Pareto sweep, else the
    validation metric alone."""
    if cfg.sweep.objectives:
        return [(o.metric, "maximize") for o in cfg.sweep.objectives]  # terms: higher is better
    return [(cfg.validation.metric, cfg.sweep.direction)]


def make_sampler(cfg: StudyConfig, n: int = 0) -> optuna.samplers.BaseSampler:
    """Seeded from (study seed, number of trials so far): workers and resumed sweeps don't replay the same
    draws, and a sequential sweep is deterministic."""
    seed = trial_seed(cfg.seed, 1_000_000 + n)
    if cfg.sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sweep.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(cfg: StudyConfig) -> optuna.pruners.BasePruner:
    """``sweep.pruner`` on the validation metric; none for a Pareto sweep (Optuna prunes single-objective
    studies only)."""
    if cfg.sweep.objectives:
        return optuna.pruners.NopPruner()
    if cfg.sweep.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=2, n_warmup_steps=cfg.sweep.pruner_warmup
        )
    if cfg.sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=cfg.evolution.generations
        )
    return optuna.pruners.NopPruner()
