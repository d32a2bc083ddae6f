"""The study file's ``evolution`` section: the strategy, the population and the GA's operators, speciation,
and the evolution strategies' settings. Defaults come from the inner loop's own parameter dataclasses (the
runner builds those from these sections by name): one source of each default."""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import Field, model_validator

from evolora.evolution import GAParams
from evolora.evolution.errors import ConfigError
from evolora.evolution.es_params import BATCHES, BLOCKS, OPTIMIZERS, PERTURB, PRECONDITIONS, SAMPLINGS, SCHEDULES, SHAPINGS, ESParams
from evolora.evolution.speciation import SpeciationParams

from evolora.orchestrator.study.strict import Strict

__all__ = ["EvolutionConfig", "ESConfig", "SpeciationConfig"]

_GA, _ES, _SP = GAParams(), ESParams(), SpeciationParams()


class SpeciationConfig(Strict):
    """NEAT-style speciation of the GA population (compatibility distance, adaptive threshold, sharing)."""

    enabled: bool = Field(False, description="NEAT-style speciation of the GA population")
    distance: Literal["l2", "cosine", "delta_l2"] = Field(_SP.distance, description="compatibility distance: RMS gene "
                                                          "difference, 1 − cosine, or RMS difference of the LoRA deltas B·A")
    threshold: float | None = Field(_SP.threshold, gt=0, description="initial compatibility threshold, adapted each "
                                    "generation toward target_species (null: the first population's mean distance)")
    target_species: int = Field(_SP.target_species, ge=1, description="the threshold moves toward this many species")
    threshold_step: float = Field(_SP.threshold_step, gt=0, lt=1, description="relative threshold change per generation")
    stagnation: int = Field(_SP.stagnation, ge=1, description="generations without improvement before a species is removed")
    sharing: bool = Field(_SP.sharing, description="explicit fitness sharing (adjusted fitness = fitness / species size)")
    elitism: int = Field(_SP.elitism, ge=0, description="best members of each species copied unchanged")


class ESConfig(Strict):
    """The evolution strategies' settings (openai-es; sigma also for sep-cma-es)."""

    sigma: float = Field(_ES.sigma, gt=0, description="perturbation std (openai-es) / initial step size (sep-cma-es)")
    learning_rate: float = Field(_ES.learning_rate, gt=0, description="openai-es: step size of the optimiser on the mean")
    optimizer: Literal[OPTIMIZERS] = Field(_ES.optimizer, description="openai-es: update of the mean")
    momentum: float = Field(_ES.momentum, ge=0, lt=1, description="openai-es, optimizer=momentum: heavy-ball coefficient")
    weight_decay: float = Field(_ES.weight_decay, ge=0)
    shaping: Literal[SHAPINGS] = Field(
        _ES.shaping, description="openai-es fitness shaping: centred ranks, or antithetic differences "
        "f(θ+σε) − f(θ−σε) divided by their RMS over the pairs (SPSA/MeZO-like, scale-free)")
    schedule: Literal[SCHEDULES] = Field(
        _ES.schedule, description="openai-es: learning rate and σ constant, or decayed along a half cosine over "
        "evolution.generations to lr_final × learning_rate and sigma_final × sigma")
    lr_final: float = Field(_ES.lr_final, ge=0, le=1, description="cosine schedule: final learning rate / learning_rate")
    sigma_final: float = Field(_ES.sigma_final, gt=0, le=1, description="cosine schedule: final σ / sigma")
    perturb: Literal[PERTURB] = Field(
        _ES.perturb, description="openai-es: perturb every gene, or only the LoRA B factors (A stays at its "
        "initialisation; at B = 0 a change of A does nothing to first order, so perturbing it is pure noise)")
    a_scale: float = Field(
        _ES.a_scale, ge=0, le=1, description="openai-es: σ and step on the LoRA A genes as a fraction of those on B "
        "(LoRA+-style; 1: the same, 0: A fixed, which is what perturb B does)")
    batches: Literal[BATCHES] = Field(
        _ES.batches, description="openai-es: every pair on the generation's batch, or each antithetic pair on a "
        "batch of its own (data.train_subset examples drawn from the generation and the pair): more directions "
        "for the same number of example evaluations; needs shaping zscore and data.rotate")
    blocks: Literal[BLOCKS] = Field(
        _ES.blocks, description="openai-es: perturb every gene each generation, or one adapted layer's genes per "
        "generation in turn (block-coordinate ES): every member shares the mean's adapter below that layer, so the "
        "layers beneath it run once per batch and each member only the layers from it up")
    sampling: Literal[SAMPLINGS] = Field(
        _ES.sampling, description="openai-es: antithetic pairs θ ± σε, or one_sided samples θ + σε scored against the "
        "mean on the same batch (FZOO: with shaping zscore each difference to the mean's fitness is divided by the "
        "samples' standard deviation): one forward per direction; needs batches: shared; or cone: antithetic pairs "
        "along directions at cone_angle from the momentum of the past ascent estimates (ConMeZO)")
    cone_angle: float = Field(_ES.cone_angle, gt=0, le=90, description="sampling cone: degrees between every "
                              "direction and the momentum (90: orthogonal to it)")
    cone_beta: float = Field(_ES.cone_beta, ge=0, lt=1, description="sampling cone: EMA coefficient of the momentum")
    precondition: Literal[PRECONDITIONS] = Field(
        _ES.precondition, description="openai-es: none, or hessian (HiZOO-like): each gene's σ and step scaled by "
        "1/√ of a diagonal curvature estimated from the same evaluations (f(θ+σε) + f(θ−σε) − 2f(θ)); needs an odd "
        "population (the mean scored with the pairs), antithetic or cone sampling, batches shared, blocks all")
    curvature_rate: float = Field(_ES.curvature_rate, gt=0, le=1,
                                  description="precondition hessian: EMA rate of the curvature estimate per generation")
    project_every: int = Field(_ES.project_every, ge=0, description="openai-es, DiZO: every k-th generation searches "
                               "one ratio per adapted layer that scales the displacement from the seed genome, and "
                               "takes one step on them; 0: never")
    project_sigma: float = Field(_ES.project_sigma, gt=0, description="DiZO: perturbation std of the per-layer ratios")
    project_step: float = Field(_ES.project_step, gt=0, description="DiZO: step on the ratios (z-scored estimate)")
    project_clip: float = Field(_ES.project_clip, gt=0, lt=1, description="DiZO: each ratio stays within 1 ± clip")

    def params(self, population: int) -> ESParams:
        """The inner loop's parameters for a population: the options' rules are :class:`evolution.es_params.ESParams`'s
        own (some depend on the population: the evolution section checks them with its own)."""
        try:
            return ESParams(population=population, **{f.name: getattr(self, f.name) for f in dataclasses.fields(ESParams)
                                                      if f.name in type(self).model_fields})
        except ConfigError as e:
            raise e.under("evolution.es") from None


class EvolutionConfig(Strict):
    """The inner loop: strategy, population, generations and the GA's operators."""

    strategy: Literal["ga", "openai-es", "sep-cma-es"] = Field(
        "ga", description="ga: DEAP GA (optionally speciated); openai-es: antithetic ES with rank shaping and Adam; "
        "sep-cma-es: diagonal CMA-ES (cma package). ES variants validate the distribution mean.")
    population: int = Field(_GA.population, ge=2, le=100_000, description="genomes per generation")
    generations: int = Field(10, ge=1, description="generations including generation 0")
    tournament_size: int = Field(_GA.tournament_size, ge=1)
    elitism: int = Field(_GA.elitism, ge=0, description="best individuals copied unchanged into the next generation")
    crossover_prob: float = Field(_GA.crossover_prob, ge=0, le=1)
    mutation_prob: float = Field(_GA.mutation_prob, ge=0, le=1)
    mutation_sigma: float = Field(_GA.mutation_sigma, gt=0, description="std of the Gaussian mutation")
    gene_prob: float = Field(_GA.gene_prob, gt=0, le=1, description="probability that a gene is mutated")
    blend_alpha: float = Field(_GA.blend_alpha, ge=0, description="BLX-alpha crossover extent")
    hall_of_fame: int = Field(1, ge=1)
    speciation: SpeciationConfig = SpeciationConfig()
    es: ESConfig = ESConfig()

    @model_validator(mode="after")
    def _check(self):
        if self.strategy == "openai-es" and self.population < 2:
            raise ConfigError("evolution.population", "openai-es needs ≥ 2 (antithetic pairs)", self.population)
        if self.speciation.enabled and self.strategy != "ga":
            raise ConfigError("evolution.speciation.enabled", f"speciation applies to the ga strategy, not {self.strategy}", True)
        if self.tournament_size > self.population:
            raise ConfigError("evolution.tournament_size", f"must be ≤ evolution.population ({self.population})", self.tournament_size)
        if self.elitism >= self.population:
            raise ConfigError("evolution.elitism", f"must be < evolution.population ({self.population})", self.elitism)
        self.es.params(self.population)  # the section's rules, with the population they depend on
        return self
