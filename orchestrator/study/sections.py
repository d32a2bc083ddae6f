"""The study schema: one strict, frozen pydantic section per concern (model, lora, data, fitness,
validation, evolution, mlflow, ray, search, sweep), each in the module of its concern; here the fitness and
validation sections, the checks across sections and the whole :class:`StudyConfig`. Reading a file into it is
:mod:`.load`'s job. ``resolved(cfg)`` is the single source of truth that is logged to MLflow and stored with each
trial."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from evolora.evolution.errors import ConfigError
from evolora.fitness.settings import FitnessSettings, check_sampling
from evolora.fitness.spec import make_term
from evolora.orchestrator.study.data import ColumnsConfig, DataConfig, columns
from evolora.orchestrator.study.evolution import ESConfig, EvolutionConfig, SpeciationConfig
from evolora.orchestrator.study.model import BLOCK_MODULES, BlockConfig, LoraConfig, ModelConfig
from evolora.orchestrator.study.runtime import MlflowConfig, RayConfig
from evolora.orchestrator.study.strict import NAME, Strict, declared_fields, section
from evolora.orchestrator.study.sweep import ObjectiveConfig, SearchSpec, SweepConfig

__all__ = [
    "StudyConfig",
    "SearchSpec",
    "SweepConfig",
    "ObjectiveConfig",
    "LoraConfig",
    "BlockConfig",
    "ModelConfig",
    "DataConfig",
    "ColumnsConfig",
    "columns",
    "MlflowConfig",
    "RayConfig",
    "EvolutionConfig",
    "ESConfig",
    "SpeciationConfig",
    "resolved",
    "BLOCK_MODULES",
    "NAME",
]


class TermConfig(Strict):
    """One fitness term: a registered name (built-in or a plug-in; `evolora terms` lists them), its weight and params."""  # noqa: E501 (the schema's description, one line)

    name: str = Field(description="a registered fitness term")
    weight: float = Field(1.0, description="weight in the combined fitness")
    params: dict[str, Any] = Field(
        {}, description="arguments of the term (e.g. keyword: {keywords: [...]})"
    )


def _check_fitness(self):
    check_sampling(self.temperature, self.completions)
    return self


FitnessConfig = section(
    __name__,
    "FitnessConfig",
    FitnessSettings.__doc__,
    declared_fields(
        FitnessSettings,
        study={
            "terms": (list[TermConfig], Field([TermConfig(name="stsb_spearman")], min_length=1))
        },
    ),
    check=model_validator(mode="after")(_check_fitness),
)


class GuardConfig(Strict):
    """A guard of a budgeted study: a registered term scored on the same held-out data as the validation
    metric; a genome whose guard leaves the budget cannot be the champion (it is logged as excluded, with why)."""

    metric: str = Field(..., description="a registered term, e.g. likelihood or kl_to_base")
    params: dict[str, Any] = Field({}, description="the term's parameters (as in fitness.terms)")
    max_drop: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="the guard may fall at most this "
        "far below the base model's value on the validation data",
    )
    min: float | None = Field(
        None, allow_inf_nan=False, description="the guard must stay at least this value"
    )

    @model_validator(mode="after")
    def _check(self):
        if self.max_drop is None and self.min is None:
            raise ConfigError(
                "validation.budget",
                f"a guard on {self.metric} needs max_drop or min (or both)",
                self.model_dump(exclude_defaults=True),
            )
        return self


class WatchConfig(Strict):
    """A term watched at each validation: scored on the same held-out outputs as the validation metric and
    logged as ``val_<metric>`` (and on the test split at the end); it chooses nothing."""

    metric: str = Field(
        ..., description="a registered term, e.g. likelihood, kl_to_base, distinct_n"
    )
    params: dict[str, Any] = Field({}, description="the term's parameters (as in fitness.terms)")


class ValidationConfig(Strict):
    """What chooses the champion: a metric on held-out validation data, optionally within guards."""

    metric: str = Field(
        "stsb_spearman",
        description="registered term scored on the validation data (higher is "
        "better): what chooses the champion (a reward study: the reward on held-out prompts)",
    )
    params: dict[str, Any] = Field({}, description="the metric's parameters (as in fitness.terms)")
    every: int = Field(1, ge=1, description="validate the generation's best every k generations")
    budget: list[GuardConfig] = Field(
        [],
        description="guards the champion must keep within bounds on the same "
        "validation data, e.g. [{metric: likelihood, max_drop: 0.1}]: the champion "
        "is the best validation metric among the genomes within budget",
    )
    watch: list[WatchConfig] = Field(
        [],
        description="more terms scored at each validation on the same "
        "held-out outputs and logged as val_<metric> (and on the test split at the "
        "end), choosing nothing: e.g. the likelihood in a study without a budget",
    )


def _check_term(name_field: str, params_field: str, name: str, params: dict, task: str) -> None:
    """A registered term, for this kind of task, that accepts its params (built here: terms are light)."""
    make_term(name, params, task, name_field, params_field)


def _check_terms(cfg: StudyConfig) -> None:
    """Every term the study names — fitness, validation, guards, watched, objectives — registered, for this
    kind of task, with params it accepts; each guard, watched term and objective once."""
    task = "causal" if cfg.model.kind == "causal" else "pairs"
    for i, t in enumerate(cfg.fitness.terms):
        _check_term(f"fitness.terms.{i}.name", f"fitness.terms.{i}.params", t.name, t.params, task)
    _check_term(
        "validation.metric", "validation.params", cfg.validation.metric, cfg.validation.params, task
    )
    seen: list[str] = []
    for field in ("budget", "watch"):
        for i, g in enumerate(getattr(cfg.validation, field)):
            where = f"validation.{field}.{i}"
            _check_term(f"{where}.metric", f"{where}.params", g.metric, g.params, task)
            if g.metric in seen:
                raise ConfigError(
                    f"{where}.metric", "each term once among validation.budget and watch", g.metric
                )
            seen.append(g.metric)
    names = [o.metric for o in cfg.sweep.objectives or ()]
    for i, o in enumerate(cfg.sweep.objectives or ()):
        _check_term(
            f"sweep.objectives.{i}.metric", f"sweep.objectives.{i}.params", o.metric, o.params, task
        )
        if o.metric in names[:i]:
            raise ConfigError(f"sweep.objectives.{i}.metric", "each objective once", o.metric)


def _check_per_pair(cfg: StudyConfig) -> None:
    """``evolution.es.batches: per_pair`` with the sections it reaches across (its own rules: ESParams)."""
    if cfg.evolution.es.batches != "per_pair":
        return
    if cfg.evolution.strategy != "openai-es":
        raise ConfigError(
            "evolution.es.batches",
            f"per_pair is an openai-es option (strategy is {cfg.evolution.strategy})",
            "per_pair",
        )
    if not cfg.data.rotate:
        raise ConfigError(
            "evolution.es.batches",
            "per_pair draws a batch per pair and generation: it needs data.rotate: true",
            "per_pair",
        )


def _check_xs(cfg: StudyConfig) -> None:
    """``lora.genome: xs`` against the evolution options that read LoRA A and B (its LoRA rules: check_genome)."""
    if cfg.lora.genome != "xs":
        return
    e = cfg.evolution
    if e.strategy == "openai-es" and e.es.perturb == "B":
        raise ConfigError(
            "evolution.es.perturb",
            "B selects LoRA B factors; with lora.genome: xs every gene is a core (use all)",
            "B",
        )
    if e.strategy == "openai-es" and e.es.a_scale != 1:
        raise ConfigError(
            "evolution.es.a_scale",
            "scales the LoRA A genes; with lora.genome: xs every gene is a core (use 1)",
            e.es.a_scale,
        )
    if e.speciation.enabled and e.speciation.distance == "delta_l2":
        raise ConfigError(
            "evolution.speciation.distance",
            "delta_l2 reads LoRA A and B; with lora.genome: xs use l2 or cosine",
            "delta_l2",
        )


class StudyConfig(Strict):
    name: str = Field(
        "evolora",
        pattern=NAME,
        description="the study's name: its Optuna study, its checkpoint "
        "directory and its registered model (letters, digits, _ . -; starting with a letter or digit; "
        "at most 100 characters)",
    )
    seed: int = Field(
        0, ge=0, lt=2**63, description="trial seed: every random draw derives from it"
    )
    model: ModelConfig = ModelConfig()
    lora: LoraConfig = LoraConfig()
    data: DataConfig = DataConfig()
    fitness: FitnessConfig = FitnessConfig()
    validation: ValidationConfig = ValidationConfig()
    evolution: EvolutionConfig = EvolutionConfig()
    mlflow: MlflowConfig = MlflowConfig()
    ray: RayConfig = RayConfig()
    search: dict[str, SearchSpec] = Field(
        {}, description="config path → search-space entry (for `evolora sweep`)"
    )
    sweep: SweepConfig = SweepConfig()

    @model_validator(mode="after")
    def _check(self):
        """The rules that reach across sections. No file is read here: the data are checked where they are
        loaded (:func:`evolora.fitness.build.load_data`), once."""
        if self.lora.blocks is not None and self.model.kind != "causal":
            raise ConfigError(
                "lora.blocks",
                "block-type targeting is for hybrid causal models (model.kind: causal); "
                "an encoder adapts lora.target_modules of lora.layers",
                sorted(self.lora.blocks),
            )
        _check_terms(self)
        _check_per_pair(self)
        _check_xs(self)
        if self.model.trunk_memo is True and self.model.kind != "encoder":
            raise ConfigError("model.trunk_memo", "the trunk memo is for encoder pair tasks", True)
        if self.data.val_sources is not None and self.model.kind != "encoder":
            raise ConfigError(
                "data.val_sources",
                "holds out sources of sentence pairs: an encoder pair task "
                f"(model.kind is {self.model.kind})",
                self.data.val_sources,
            )
        return self


def resolved(cfg: StudyConfig) -> dict:
    """The fully concrete config as plain data: what is logged and stored."""
    return cfg.model_dump(mode="json")
