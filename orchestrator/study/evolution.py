"""The study file's ``evolution`` section: the strategy, the population, the GA's operators, speciation and
the evolution strategies' settings. Each setting is declared once, on the inner loop's parameter dataclass
(:class:`~evolora.evolution.GAParams`, :class:`~evolora.evolution.ESParams`,
:class:`~evolora.evolution.SpeciationParams`: type, default, description, bounds); the sections here are
generated from those declarations, and the assembly builds the dataclasses back from them by name."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from evolora.evolution import GAParams
from evolora.evolution.errors import ConfigError, RegistryError
from evolora.evolution.es_params import ESParams
from evolora.evolution.speciation import SpeciationParams
from evolora.evolution.strategies import strategy_class, strategy_names
from evolora.orchestrator.study.strict import declared_fields, section

__all__ = ["EvolutionConfig", "ESConfig", "SpeciationConfig"]


SpeciationConfig = section(
    __name__,
    "SpeciationConfig",
    "NEAT-style speciation of the GA population (compatibility distance, adaptive threshold, "
    "sharing).",
    {
        "enabled": (bool, Field(False, description="NEAT-style speciation of the GA population")),
        **declared_fields(SpeciationParams),
    },
)

ESConfig = section(
    __name__,
    "ESConfig",
    "The evolution strategies' settings (openai-es; sigma also for sep-cma-es; snes reads sigma, "
    "mean_rate, sigma_rate, mirrored and the A/B levers).",
    declared_fields(ESParams, exclude=("population", "horizon")),
)


def es_params(es, population: int) -> ESParams:
    """The ES parameters a section and a population make: their rules are :class:`ESParams`'s own (some depend
    on the population); a ConfigError names the study key."""
    try:
        return ESParams(population=population, **dict(es))
    except ConfigError as e:
        raise e.under("evolution.es") from None


def _check(self):
    try:
        cls = strategy_class(self.strategy)
    except RegistryError as e:
        raise ConfigError("evolution.strategy", str(e), self.strategy) from None
    if (
        cls.options == "params"
    ):  # a strategy from the user's code: its Params check evolution.params
        cls.make_params(self.population, self.generations, self.params)
    elif self.params:
        raise ConfigError(
            "evolution.params",
            f"{self.strategy} takes its settings from evolution{'.' + cls.options if cls.options else ''}; "
            "params are for strategies from installed packages",
            self.params,
        )
    if self.population < cls.min_population:
        raise ConfigError(
            "evolution.population", f"{self.strategy} needs ≥ {cls.min_population}", self.population
        )
    if self.speciation.enabled and not cls.speciates:
        raise ConfigError(
            "evolution.speciation.enabled",
            f"speciation applies to the ga strategy, not {self.strategy}",
            True,
        )
    if self.tournament_size > self.population:
        raise ConfigError(
            "evolution.tournament_size",
            f"must be ≤ evolution.population ({self.population})",
            self.tournament_size,
        )
    if self.elitism >= self.population:
        raise ConfigError(
            "evolution.elitism", f"must be < evolution.population ({self.population})", self.elitism
        )
    es_params(self.es, self.population)  # the section's rules, with the population they depend on
    return self


_GA = declared_fields(GAParams)
EvolutionConfig = section(
    __name__,
    "EvolutionConfig",
    "The inner loop: strategy, population, generations and the GA's operators.",
    {
        "strategy": (
            Literal[tuple(strategy_names())],
            Field(
                "ga",
                description="ga: DEAP GA (optionally speciated); openai-es: antithetic ES with rank shaping and "
                "Adam; sep-cma-es: diagonal CMA-ES; snes: separable natural ES (per-gene σ, mirrored samples, "
                "NES utilities); or a strategy an installed package adds (entry-point group evolora.strategies). "
                "The ES variants validate the distribution mean.",
            ),
        ),
        "population": _GA.pop("population"),
        "generations": (int, Field(10, ge=1, description="generations including generation 0")),
        **_GA,
        "hall_of_fame": (int, Field(1, ge=1)),
        "speciation": (SpeciationConfig, SpeciationConfig()),
        "es": (ESConfig, ESConfig()),
        "params": (
            dict[str, Any],
            Field(
                default_factory=dict,
                description="a strategy from an installed package (evolution.AskTell): its own settings, "
                "checked by its Params",
            ),
        ),
    },
    check=model_validator(mode="after")(_check),
)
