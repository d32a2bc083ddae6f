"""What a sweep stores with each trial in Optuna beside its params and values, as one typed record: who
claimed it and whether it lives, what it retries, what ran, how it ended. Stored as Optuna user attributes
under ``evolora:<field>`` (what the storage holds is unchanged); read with :meth:`TrialRecord.of`, written
with :func:`store` or :func:`attrs`, so a field is spelt once, here, and a misspelt one is an error."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from evolora.orchestrator.sweep.storage import ATTR

__all__ = ["TrialRecord", "store", "attrs", "key", "BASE_CONFIG", "PARENT_RUN_ID"]

# study attribute: the resolved base config every trial derives from
BASE_CONFIG = ATTR + "base_config"
PARENT_RUN_ID = ATTR + "parent_run_id"  # study attribute: the sweep's parent MLflow run


@dataclass(frozen=True)
class TrialRecord:
    # the claim: which process holds the trial, and its last sign of life
    host: str | None = None
    pid: int | None = None
    heartbeat: float | None = None
    # a retry of a trial whose worker died: the chain's first trial (its checkpoint's name), how many so far
    root: int | None = None
    retries: int = 0
    retry_of: int | None = None
    threads: int | None = None  # torch threads pinned for the retry (the retried trial's own)
    baseline: bool = False  # sweep.baseline: the file's own values
    # what ran
    seed: int | None = None
    config: dict | None = None  # the trial's resolved config
    run_id: str | None = None  # its MLflow run
    resumed_from_gen: int | None = None
    # how it ended
    failure: str | None = None
    failure_detail: str | None = None
    pruned: str | None = None
    champion_sha256: str | None = None
    best_fitness: float | None = None
    val_base: float | None = None
    val_champion: float | None = None
    test: dict | None = None  # the test split, scored once (reported only)
    objectives: dict | None = None  # a Pareto sweep's objectives on validation

    @classmethod
    def of(cls, trial) -> TrialRecord:
        """The record of a trial (``optuna.Trial`` or ``FrozenTrial``): absent fields read their defaults."""
        stored = trial.user_attrs
        return cls(**{f.name: stored[ATTR + f.name] for f in _FIELDS if ATTR + f.name in stored})


_FIELDS = dataclasses.fields(TrialRecord)
_NAMES = {f.name for f in _FIELDS}


def key(name: str) -> str:
    """The storage key of a record field (KeyError for a name the record has not)."""
    if name not in _NAMES:
        raise KeyError(f"TrialRecord has no field {name!r}")
    return ATTR + name


def attrs(**values: Any) -> dict[str, Any]:
    """Record fields as Optuna user attributes (for ``enqueue_trial`` and the like)."""
    return {key(k): v for k, v in values.items()}


def store(trial, **values: Any) -> None:
    """Write record fields on a live ``optuna.Trial``."""
    for k, v in attrs(**values).items():
        trial.set_user_attr(k, v)
