"""The evolution strategies' options and their rules, in one place: the study file's ``evolution.es`` is
checked by building :class:`ESParams` (a ConfigError names the option)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from evolora.evolution.errors import ConfigError
from evolora.evolution.options import option

__all__ = [
    "ESParams",
    "SHAPINGS",
    "OPTIMIZERS",
    "SCHEDULES",
    "PERTURB",
    "BATCHES",
    "BLOCKS",
    "SAMPLINGS",
    "PRECONDITIONS",
]


SHAPINGS = ("centered_rank", "zscore")
OPTIMIZERS = ("adam", "sgd", "momentum")
SCHEDULES = ("constant", "cosine")
PERTURB = ("all", "B")
BATCHES = ("shared", "per_pair")
BLOCKS = ("all", "layer")
SAMPLINGS = ("antithetic", "one_sided", "cone")
PRECONDITIONS = ("none", "hessian")
_CHOICES = {
    "optimizer": OPTIMIZERS,
    "shaping": SHAPINGS,
    "schedule": SCHEDULES,
    "perturb": PERTURB,
    "batches": BATCHES,
    "blocks": BLOCKS,
    "sampling": SAMPLINGS,
    "precondition": PRECONDITIONS,
}


@dataclass(frozen=True)
class ESParams:
    """The evolution strategies' parameters (openai-es; ``sigma`` also for sep-cma-es). Each field is the study
    file's ``evolution.es`` key of its name, declared here once (the population and the horizon come from the
    ``evolution`` section: its population and generations)."""

    population: int = option(16, "genomes per generation (the evolution section's)")
    sigma: float = option(
        0.02, "perturbation std (openai-es) / initial step size (sep-cma-es)", gt=0
    )
    learning_rate: float = option(0.01, "openai-es: step size of the optimiser on the mean", gt=0)
    optimizer: Literal[OPTIMIZERS] = option("adam", "openai-es: update of the mean")
    momentum: float = option(
        0.9, "openai-es, optimizer=momentum: heavy-ball coefficient", ge=0, lt=1
    )
    weight_decay: float = option(0.0, ge=0)
    shaping: Literal[SHAPINGS] = option(
        "centered_rank",
        "openai-es fitness shaping: centred ranks, or antithetic differences "
        "f(θ+σε) − f(θ−σε) divided by their RMS over the pairs (SPSA/MeZO-like, scale-free)",
    )
    schedule: Literal[SCHEDULES] = option(
        "constant",
        "openai-es: learning rate and σ constant, or decayed along a half cosine over "
        "evolution.generations to lr_final × learning_rate and sigma_final × sigma",
    )
    lr_final: float = option(
        0.0, "cosine schedule: final learning rate / learning_rate", ge=0, le=1
    )
    sigma_final: float = option(1.0, "cosine schedule: final σ / sigma", gt=0, le=1)
    perturb: Literal[PERTURB] = option(
        "all",
        "openai-es: perturb every gene, or only the LoRA B factors (A stays at its "
        "initialisation; at B = 0 a change of A does nothing to first order, so perturbing it is pure noise)",
    )
    a_scale: float = option(
        1.0,
        "openai-es: σ and step on the LoRA A genes as a fraction of those on B "
        "(LoRA+-style; 1: the same, 0: A fixed, which is what perturb B does)",
        ge=0,
        le=1,
    )
    mean_rate: float = option(
        1.0,
        "snes: step of the mean in units of the utility-weighted σ-scaled samples (SNES's η_μ; "
        "decayed by schedule cosine to lr_final × mean_rate)",
        gt=0,
    )
    sigma_rate: float = option(
        1.0,
        "snes: learning rate of the per-gene σ as a multiple of SNES's (3 + ln d) / (5√d) for d "
        "moving genes; 0: σ fixed",
        ge=0,
    )
    mirrored: bool = option(
        True, "snes: draw the samples in mirrored pairs μ ± σ⊙z (an odd population's last unpaired)"
    )
    horizon: int = option(
        0, "generations the schedule spans (the evolution section's generations); 0: none"
    )
    batches: Literal[BATCHES] = option(
        "shared",
        "openai-es: every pair on the generation's batch, or each antithetic pair on a "
        "batch of its own (data.train_subset examples drawn from the generation and the pair): more directions "
        "for the same number of example evaluations; needs shaping zscore and data.rotate",
    )
    blocks: Literal[BLOCKS] = option(
        "all",
        "openai-es: perturb every gene each generation, or one adapted layer's genes per "
        "generation in turn (block-coordinate ES): every member shares the mean's adapter below that layer, so the "
        "layers beneath it run once per batch and each member only the layers from it up",
    )
    sampling: Literal[SAMPLINGS] = option(
        "antithetic",
        "openai-es: antithetic pairs θ ± σε, or one_sided samples θ + σε scored against the "
        "mean on the same batch (FZOO: with shaping zscore each difference to the mean's fitness is divided by the "
        "samples' standard deviation): one forward per direction; needs batches: shared; or cone: antithetic pairs "
        "along directions at cone_angle from the momentum of the past ascent estimates (ConMeZO)",
    )
    cone_angle: float = option(
        80.0,
        "sampling cone: degrees between every direction and the momentum (90: orthogonal to it)",
        gt=0,
        le=90,
    )
    cone_beta: float = option(0.9, "sampling cone: EMA coefficient of the momentum", ge=0, lt=1)
    precondition: Literal[PRECONDITIONS] = option(
        "none",
        "openai-es: none, or hessian (HiZOO-like): each gene's σ and step scaled by "
        "1/√ of a diagonal curvature estimated from the same evaluations (f(θ+σε) + f(θ−σε) − 2f(θ)); needs an odd "
        "population (the mean scored with the pairs), antithetic or cone sampling, batches shared, blocks all",
    )
    curvature_rate: float = option(
        0.05, "precondition hessian: EMA rate of the curvature estimate per generation", gt=0, le=1
    )
    project_every: int = option(
        0,
        "openai-es, DiZO: every k-th generation searches one ratio per adapted layer "
        "that scales the displacement from the seed genome, and takes one step on them; "
        "0: never",
        ge=0,
    )
    project_sigma: float = option(0.1, "DiZO: perturbation std of the per-layer ratios", gt=0)
    project_step: float = option(0.1, "DiZO: step on the ratios (z-scored estimate)", gt=0)
    project_clip: float = option(0.2, "DiZO: each ratio stays within 1 ± clip", gt=0, lt=1)

    def __post_init__(self) -> None:
        """The options' rules, in one place (the study file's ``evolution.es`` is checked by building this):
        ConfigError naming the option otherwise."""
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(name, f"must be one of {', '.join(allowed)}", getattr(self, name))
        if self.batches == "per_pair" and self.shaping != "zscore":
            raise ConfigError(
                "batches",
                "per_pair needs shaping: zscore (ranks of fitnesses scored on different "
                "batches would rank the batches, not the perturbations)",
                self.batches,
            )
        if self.sampling == "one_sided" and self.batches == "per_pair":
            raise ConfigError(
                "sampling",
                "one_sided scores every sample against the mean on one shared batch: it "
                "needs batches: shared",
                self.sampling,
            )
        if self.sampling == "one_sided" and self.population < 2:
            raise ConfigError(
                "sampling",
                "one_sided needs a population of the mean and at least one sample",
                self.population,
            )
        self._check_levers()
        if not 0.0 <= self.a_scale <= 1.0:
            raise ConfigError("a_scale", "must be between 0 and 1", self.a_scale)
        if self.perturb == "B" and self.a_scale != 1.0:
            raise ConfigError(
                "a_scale",
                "perturb='B' holds A fixed (an a_scale of 0): give one or the other",
                self.a_scale,
            )

    def _check_levers(self) -> None:
        """The rules of the zeroth-order levers (cone sampling, the hessian preconditioner, DiZO projections)."""
        if self.sampling == "cone":
            if not 0.0 < self.cone_angle <= 90.0:
                raise ConfigError(
                    "cone_angle",
                    "must be in (0, 90] degrees (90: plain Gaussian directions "
                    "orthogonal to the momentum)",
                    self.cone_angle,
                )
            if not 0.0 <= self.cone_beta < 1.0:
                raise ConfigError("cone_beta", "must be in [0, 1)", self.cone_beta)
            if self.blocks != "all":
                raise ConfigError(
                    "sampling",
                    "cone follows the momentum of the whole genome: it needs blocks: all",
                    self.sampling,
                )
        if self.precondition == "hessian":
            if self.sampling == "one_sided" or self.population % 2 == 0:
                raise ConfigError(
                    "precondition",
                    "hessian estimates curvature from f(θ+σε) + f(θ−σε) − 2f(θ): it "
                    "needs antithetic (or cone) pairs and an odd population (the mean scored with them); "
                    f"population is {self.population}, sampling {self.sampling}",
                    self.precondition,
                )
            if self.batches != "shared" or self.blocks != "all":
                raise ConfigError(
                    "precondition",
                    "hessian compares each pair with the mean on the same batch and "
                    "keeps one curvature for the whole genome: it needs batches: shared and blocks: all",
                    self.precondition,
                )
            if not 0.0 < self.curvature_rate <= 1.0:
                raise ConfigError("curvature_rate", "must be in (0, 1]", self.curvature_rate)
        if self.project_every < 0:
            raise ConfigError("project_every", "must be ≥ 0 (0: no projection)", self.project_every)
        if self.project_every:
            if self.blocks != "all" or self.sampling == "one_sided":
                raise ConfigError(
                    "project_every",
                    "DiZO projections scale every layer at once with antithetic pairs: "
                    "they need blocks: all and antithetic (or cone) sampling",
                    self.project_every,
                )
            for name in ("project_sigma", "project_step"):
                if getattr(self, name) <= 0:
                    raise ConfigError(name, "must be > 0", getattr(self, name))
            if not 0.0 < self.project_clip < 1.0:
                raise ConfigError("project_clip", "must be in (0, 1)", self.project_clip)
