"""The study file's ``search`` and ``sweep`` sections: what Optuna samples, and how the study runs — its
objectives, sampler, pruner, seeds, retries."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.study.strict import Strict

__all__ = ["SearchSpec", "SweepConfig", "ObjectiveConfig"]


class ObjectiveConfig(Strict):
    """One objective of a multi-objective (Pareto) sweep: a registered term scored for each trial's champion
    on the validation split once its evolution has ended (never on the test split). Maximised, like every
    term (higher is better: ``kl_to_base`` is minus the KL)."""

    metric: str = Field(
        ..., description="a registered term, e.g. likelihood, kl_to_base, distinct_n"
    )
    params: dict[str, Any] = Field({}, description="the term's parameters (as in fitness.terms)")


class SearchSpec(Strict):
    """One searched config path: ``{type: float, low: 0.005, high: 0.1, log: true}``,
    ``{type: int, low: 8, high: 32, step: 8}`` or ``{type: categorical, choices: [[4, 5], [5]]}``."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(None, gt=0)
    choices: list[Any] | None = None
    when: dict[str, list[Any]] | None = Field(
        None,
        description="sample this entry only if each named config path (searched earlier, or fixed in the "
        "file) holds one of the listed values, e.g. {evolution.strategy: [ga]}; otherwise the file's value stays "
        "and the trial records no parameter for it (Optuna's define-by-run)",
    )

    def check(self, path: str) -> None:
        where = f"search.{path}"
        if self.type == "categorical":
            if not self.choices:
                raise ConfigError(f"{where}.choices", "must be a non-empty list", self.choices)
            if self.low is not None or self.high is not None:
                raise ConfigError(
                    where,
                    "categorical takes `choices`, not low/high",
                    self.model_dump(exclude_none=True),
                )
            return
        if self.choices is not None:
            raise ConfigError(
                f"{where}.choices", f"only for categorical, not {self.type}", self.choices
            )
        if self.low is None or self.high is None:
            raise ConfigError(
                where, f"{self.type} needs `low` and `high`", self.model_dump(exclude_none=True)
            )
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ConfigError(where, "int bounds must be integers", [self.low, self.high])
        if self.type == "int" and self.step is not None and self.step != int(self.step):
            raise ConfigError(
                f"{where}.step", "an int range's step must be a whole number", self.step
            )
        if not self.low < self.high:
            raise ConfigError(f"{where}.low", f"must be < high ({self.high})", self.low)
        if self.log and self.low <= 0:
            raise ConfigError(f"{where}.low", "must be > 0 on a log scale", self.low)
        if self.log and self.step is not None:
            raise ConfigError(f"{where}.step", "cannot be combined with log", self.step)

    def extremes(self) -> list[Any]:
        """Values that must each give a valid config (checked at load time)."""
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]


class SweepConfig(Strict):
    """The outer loop (`evolora sweep`): Optuna's direction or objectives, sampler, pruner, seeds, retries."""

    direction: Literal["maximize", "minimize"] = Field(
        "maximize", description="of the validation metric"
    )
    objectives: list[ObjectiveConfig] | None = Field(
        None,
        min_length=2,
        description="several objectives at once (a Pareto front) instead of the validation "
        "metric alone; trials are then not pruned (Optuna prunes single-objective studies only)",
    )
    sampler: Literal["tpe", "random", "nsga2"] = Field(
        "tpe",
        description="tpe (single or multi-objective), random, nsga2 (NSGA-II, for objectives)",
    )
    pruner: Literal["median", "hyperband", "none"] = "median"
    pruner_warmup: int = Field(
        2, ge=0, description="generations before pruning may start (median pruner)"
    )
    report_every: int = Field(
        2, ge=1, description="report the validation metric to Optuna every k generations"
    )
    stale_after: float = Field(
        300.0,
        gt=0,
        description="seconds without heartbeat (a background thread beats "
        "every stale_after/4, at most every 30 s) before a RUNNING trial of "
        "another host is declared dead (same-host dead workers are detected at once)",
    )
    max_retries: int = Field(2, ge=0, description="retries of a trial whose worker died")
    seeds: Literal["per_trial", "study"] = Field(
        "per_trial",
        description="per_trial: each trial's seed is derived from the study seed and its number "
        "(configurations compared across seeds); study: every trial runs with the study's seed (common random "
        "numbers: configurations compared on the same draws, so a short sweep ranks them, not their seeds)",
    )
    baseline: bool = Field(
        False,
        description="the first trial runs the file's own values of the searched paths "
        "(each must lie in its entry's range or choices), so the sweep measures the configuration "
        "it starts from beside what it samples, on the same terms",
    )
