"""What a task is built from: :class:`TaskSpec` (plain values the orchestrator fills from a resolved study),
its fitness terms made and checked by name and params, and its lengths checked against the model's."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from evolora.evolution.errors import ConfigError, RegistryError
from evolora.fitness.plugins import FITNESS_TERMS
from evolora.fitness.registry import FitnessTerm
from evolora.fitness.settings import DataSettings, FitnessSettings, LoraSettings, ModelSettings

__all__ = [
    "TaskSpec",
    "make_term",
    "make_terms",
    "build_terms",
    "check_lengths",
    "LISTED",
]


@dataclass(frozen=True)
class TaskSpec:
    """Everything a task needs, as plain values, by section as in a study file: ``model``, ``lora``, ``data``
    and ``fitness`` (each declared once, in :mod:`evolora.fitness.settings`; a section may be given as a dict of
    its keys), the trial's seed (LoRA A's initialisation), and the validation metric, the guards and the
    objectives that choose among genomes on held-out data. A study fills it through
    ``evolora.orchestrator.assembly.task_spec``."""

    model: ModelSettings = ModelSettings()
    lora: LoraSettings = LoraSettings()
    data: DataSettings = DataSettings()
    fitness: FitnessSettings = FitnessSettings()
    seed: int = 0  # for the LoRA A initialisation
    validation: str = "stsb_spearman"
    validation_params: dict = dataclasses.field(default_factory=dict)
    # (metric, params, max_drop, min): guards on validation the champion must stay within (no bounds: watched)
    budget: tuple = ()
    objectives: tuple = ()  # (name, params): terms scored on validation for a Pareto sweep's champion

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, _section(cls, name, value))

    def replace(self, **sections: dict) -> TaskSpec:
        """A copy with some keys of some sections changed: ``spec.replace(lora={"init": "eva"})``."""
        return dataclasses.replace(
            self,
            **{
                name: dataclasses.replace(getattr(self, name), **changes)
                for name, changes in sections.items()
            },
        )


_SECTIONS = {
    "model": ModelSettings,
    "lora": LoraSettings,
    "data": DataSettings,
    "fitness": FitnessSettings,
}


def _section(cls: type, name: str, values: dict):
    """A section from a dict of its keys; an unknown key is an error naming it."""
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise ConfigError(f"{name}.{key}", f"not a {name} setting", values[key])
    return cls(**values)


LISTED = {
    "fitness.terms": "name",
    "sweep.objectives": "metric",
    "validation.budget": "metric",
}  # list fields → the key naming the term


def make_term(
    name: str, params: dict, task: str, name_field: str, params_field: str
) -> FitnessTerm:
    """The one check of a term a study names, wherever it is named: registered (an installed plug-in loads
    here, the first time), scoring this kind of task, accepting its params → the term, built. ConfigError
    naming the field otherwise."""
    if name not in FITNESS_TERMS:
        raise ConfigError(
            name_field, f"unknown term; known: {', '.join(FITNESS_TERMS.names())}", name
        )
    try:
        cls = FITNESS_TERMS.get(name)
    except RegistryError as e:
        raise ConfigError(name_field, str(e), name) from None
    if cls.task != task:
        raise ConfigError(
            name_field, f"scores '{cls.task}' tasks, this study is a '{task}' task", name
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise ConfigError(params_field, str(e), params) from None


def make_terms(
    terms: Sequence[tuple], task: str, field: str = "fitness.terms"
) -> list[tuple[str, float, FitnessTerm]]:
    """(name, weight[, params]) → (name, weight, term instance); errors name ``field`` (list items by index)."""
    out = []
    for i, (name, weight, *rest) in enumerate(terms):
        params = rest[0] if rest else {}
        item = f"{field}.{i}" if field in LISTED else None
        name_path = f"{item}.{LISTED[field]}" if item else field
        out.append(
            (
                name,
                float(weight),
                make_term(name, params, task, name_path, f"{item or field}.params"),
            )
        )
    return out


def check_lengths(spec: TaskSpec, model) -> None:
    """``data.max_length`` (plus, for causal models, the generated tokens) within the model's positions: a
    longer text would fail inside the model, possibly only on the test split after the whole evolution."""
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    need = spec.data.max_length + (
        spec.fitness.max_new_tokens if spec.model.kind == "causal" else 0
    )
    if positions and need > positions:
        extra = (
            f" + fitness.max_new_tokens ({spec.fitness.max_new_tokens})"
            if spec.model.kind == "causal"
            else ""
        )
        raise ConfigError(
            "data.max_length",
            f"{spec.data.max_length}{extra} exceeds the model's {positions} positions",
            spec.data.max_length,
        )


def build_terms(spec: TaskSpec, kind: str) -> tuple[list, FitnessTerm, list, list]:
    """Every term a task scores: (fitness terms, the validation metric, Pareto objectives, guards — the budget's
    and the watched ones). Built before a model loads too, to fail early on bad names and params."""
    return (
        make_terms(spec.fitness.terms, kind),
        make_terms([(spec.validation, 1.0, spec.validation_params)], kind, "validation.metric")[0][
            2
        ],
        make_terms([(n, 1.0, p) for n, p in spec.objectives], kind, "sweep.objectives"),
        make_terms([(n, 1.0, p) for n, p, *_ in spec.budget], kind, "validation.budget"),
    )
