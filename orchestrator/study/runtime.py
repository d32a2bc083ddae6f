"""The study file's ``mlflow`` and ``ray`` sections: where a run is tracked and registered, and whether its
population is scored on Ray actors."""

from __future__ import annotations

import importlib.util
import re

from pydantic import Field, model_validator

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.study.strict import NAME, Strict

__all__ = ["MlflowConfig", "RayConfig"]


class MlflowConfig(Strict):
    """Tracking: the experiment each run is logged under, and the Model Registry."""

    experiment: str = Field(
        "evolora",
        pattern=NAME,
        description="MLflow experiment (a name like the study's: it "
        "is also the directory of its artifacts in a local store)",
    )
    flush_every: int = Field(5, ge=1, description="generations between metric flushes")
    system_metrics: bool = Field(
        True, description="log CPU, memory (and GPU) as system/* metrics every 10 s"
    )
    registered_model: str | None = Field(
        None,
        pattern=NAME,
        description="Model Registry name champions are "
        "registered under, alias `champion` on the best (default: the study name)",
    )
    register_best: bool = Field(
        True, description="sweeps: register each new best trial's model, move the alias"
    )
    register_run: bool = Field(
        False,
        description="`evolora run`: register the run's champion as a version (as "
        "`--register` does); the alias moves to it if it beats the current one on validation",
    )


_RAY_ADDRESS = r"^(auto|(ray://)?[A-Za-z0-9_.\-]+:[0-9]{1,5})$"


class RayConfig(Strict):
    """Population evaluation on Ray actors: each holds the task (model, data, trunk cache) and a replica of the
    strategy; a generation sends each what it needs to rebuild its genomes (ES: the fitness values and the
    generator's state) and gets fitness values back. Not part of a checkpoint's identity: a run may resume on
    another number of actors."""

    actors: int = Field(
        0,
        ge=0,
        le=10_000,
        description="Ray actors scoring each generation (0: this process scores it)",
    )
    address: str | None = Field(
        None,
        description="null: a local Ray started by the trial "
        "(ray.init()); auto, host:port or ray://host:port: an existing cluster",
    )
    num_gpus: float = Field(
        0.0, ge=0, description="GPUs per actor (the batched-genomes path runs where it has one)"
    )
    threads: int | None = Field(
        None,
        ge=1,
        description="torch threads per actor (default: model.threads, else 1); "
        "the same threads as one process gives the same result to the last bit",
    )
    retries: int = Field(
        3,
        ge=0,
        description="actors replaced within one generation before the trial fails "
        "(a cluster that went away)",
    )

    @model_validator(mode="after")
    def _check(self):
        if self.actors and importlib.util.find_spec("ray") is None:
            raise ConfigError(
                "ray.actors", "needs the ray package (pip install 'ray>=2.40')", self.actors
            )
        if self.address is not None and not re.match(_RAY_ADDRESS, self.address):
            raise ConfigError(
                "ray.address",
                "must be auto, host:port or ray://host:port (null: a local Ray)",
                self.address,
            )
        if self.address is not None and not self.actors:
            raise ConfigError(
                "ray.address", "names a cluster for actors: set ray.actors ≥ 1", self.address
            )
        return self
