"""The evolution strategies' options and their rules, in one place: the study file's ``evolution.es`` is
checked by building :class:`ESParams` (a ConfigError names the option)."""

from __future__ import annotations

from dataclasses import dataclass

from evolora.evolution.errors import ConfigError

__all__ = ["ESParams", "SHAPINGS", "OPTIMIZERS", "SCHEDULES", "PERTURB", "BATCHES", "BLOCKS", "SAMPLINGS",
           "PRECONDITIONS"]


SHAPINGS = ("centered_rank", "zscore")
OPTIMIZERS = ("adam", "sgd", "momentum")
SCHEDULES = ("constant", "cosine")
PERTURB = ("all", "B")
BATCHES = ("shared", "per_pair")
BLOCKS = ("all", "layer")
SAMPLINGS = ("antithetic", "one_sided", "cone")
PRECONDITIONS = ("none", "hessian")
_CHOICES = {"optimizer": OPTIMIZERS, "shaping": SHAPINGS, "schedule": SCHEDULES, "perturb": PERTURB,
            "batches": BATCHES, "blocks": BLOCKS, "sampling": SAMPLINGS, "precondition": PRECONDITIONS}


@dataclass(frozen=True)
class ESParams:
    population: int = 16
    sigma: float = 0.02  # perturbation std (openai-es) / initial step size (sep-cma-es)
    learning_rate: float = 0.01  # openai-es
    optimizer: str = "adam"  # adam | sgd | momentum
    momentum: float = 0.9  # for optimizer=momentum
    weight_decay: float = 0.0
    shaping: str = "centered_rank"  # centered_rank | zscore (antithetic differences / their std: SPSA-like)
    schedule: str = "constant"  # constant | cosine: learning rate (and sigma) over `horizon` generations
    sigma_final: float = 1.0  # sigma at the horizon, as a fraction of `sigma` (cosine schedule)
    lr_final: float = 0.0  # learning rate at the horizon, as a fraction of `learning_rate` (cosine schedule)
    perturb: str = "all"  # all | B: perturb only the LoRA B factors (A stays at its initialisation)
    a_scale: float = 1.0  # σ and step on the LoRA A genes as a fraction of those on B (LoRA+-style; perturb B = 0)
    horizon: int = 0  # generations the schedule spans (the run's length); 0: no schedule
    batches: str = "shared"  # shared | per_pair: each antithetic pair scored on its own fitness batch
    blocks: str = "all"  # all | layer: each generation perturbs and updates one adapted layer's genes, in turn
    sampling: str = "antithetic"  # antithetic pairs θ ± σε | one_sided: θ + σε against the mean scored on the same batch
    #                               | cone: antithetic pairs along directions in a cone around the estimates' momentum
    cone_angle: float = 80.0  # sampling cone: degrees between each direction and the momentum (ConMeZO)
    cone_beta: float = 0.9  # sampling cone: the momentum's EMA coefficient over the ascent estimates
    precondition: str = "none"  # none | hessian: per-gene σ and step from a diagonal curvature estimate (HiZOO)
    curvature_rate: float = 0.05  # precondition hessian: EMA rate of the diagonal curvature per generation
    project_every: int = 0  # DiZO: every k-th generation searches per-layer scales of the displacement; 0: never
    project_sigma: float = 0.1  # DiZO: perturbation std of the per-layer ratios
    project_step: float = 0.1  # DiZO: step of the ratios along the z-scored estimate
    project_clip: float = 0.2  # DiZO: each ratio stays within [1 − clip, 1 + clip]

    def __post_init__(self) -> None:
        """The options' rules, in one place (the study file's ``evolution.es`` is checked by building this):
        ConfigError naming the option otherwise."""
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(name, f"must be one of {', '.join(allowed)}", getattr(self, name))
        if self.batches == "per_pair" and self.shaping != "zscore":
            raise ConfigError("batches", "per_pair needs shaping: zscore (ranks of fitnesses scored on different "
                              "batches would rank the batches, not the perturbations)", self.batches)
        if self.sampling == "one_sided" and self.batches == "per_pair":
            raise ConfigError("sampling", "one_sided scores every sample against the mean on one shared batch: it "
                              "needs batches: shared", self.sampling)
        if self.sampling == "one_sided" and self.population < 2:
            raise ConfigError("sampling", "one_sided needs a population of the mean and at least one sample",
                              self.population)
        self._check_levers()
        if not 0.0 <= self.a_scale <= 1.0:
            raise ConfigError("a_scale", "must be between 0 and 1", self.a_scale)
        if self.perturb == "B" and self.a_scale != 1.0:
            raise ConfigError("a_scale", "perturb='B' holds A fixed (an a_scale of 0): give one or the other",
                              self.a_scale)


    def _check_levers(self) -> None:
        """The rules of the zeroth-order levers (cone sampling, the hessian preconditioner, DiZO projections)."""
        if self.sampling == "cone":
            if not 0.0 < self.cone_angle <= 90.0:
                raise ConfigError("cone_angle", "must be in (0, 90] degrees (90: plain Gaussian directions "
                                  "orthogonal to the momentum)", self.cone_angle)
            if not 0.0 <= self.cone_beta < 1.0:
                raise ConfigError("cone_beta", "must be in [0, 1)", self.cone_beta)
            if self.blocks != "all":
                raise ConfigError("sampling", "cone follows the momentum of the whole genome: it needs blocks: all",
                                  self.sampling)
        if self.precondition == "hessian":
            if self.sampling == "one_sided" or self.population % 2 == 0:
                raise ConfigError("precondition", "hessian estimates curvature from f(θ+σε) + f(θ−σε) − 2f(θ): it "
                                  "needs antithetic (or cone) pairs and an odd population (the mean scored with them); "
                                  f"population is {self.population}, sampling {self.sampling}", self.precondition)
            if self.batches != "shared" or self.blocks != "all":
                raise ConfigError("precondition", "hessian compares each pair with the mean on the same batch and "
                                  "keeps one curvature for the whole genome: it needs batches: shared and blocks: all",
                                  self.precondition)
            if not 0.0 < self.curvature_rate <= 1.0:
                raise ConfigError("curvature_rate", "must be in (0, 1]", self.curvature_rate)
        if self.project_every < 0:
            raise ConfigError("project_every", "must be ≥ 0 (0: no projection)", self.project_every)
        if self.project_every:
            if self.blocks != "all" or self.sampling == "one_sided":
                raise ConfigError("project_every", "DiZO projections scale every layer at once with antithetic pairs: "
                                  "they need blocks: all and antithetic (or cone) sampling", self.project_every)
            for name in ("project_sigma", "project_step"):
                if getattr(self, name) <= 0:
                    raise ConfigError(name, "must be > 0", getattr(self, name))
            if not 0.0 < self.project_clip < 1.0:
                raise ConfigError("project_clip", "must be in (0, 1)", self.project_clip)
