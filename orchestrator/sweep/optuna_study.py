"""The sweep's Optuna study: opened (or made) on its storage with the study file's sampler, pruner and
directions, and its uid, made once and shared by every host."""

from __future__ import annotations

import uuid
import warnings

import optuna

from evolora.evolution.errors import ConfigError
from evolora.orchestrator.study.sections import resolved
from evolora.orchestrator.sweep.context import SweepContext
from evolora.orchestrator.sweep.record import BASE_CONFIG
from evolora.orchestrator.sweep.sampling import make_pruner, make_sampler, objectives
from evolora.orchestrator.sweep.storage import open_storage, storage_lock

__all__ = ["open_study", "STUDY_UID"]


def open_study(ctx: SweepContext, create: bool = True) -> optuna.Study:
    storage = open_storage(ctx.storage_url)
    cfg = ctx.cfg
    if not create:
        return optuna.load_study(
            study_name=cfg.name, storage=storage, sampler=make_sampler(cfg), pruner=make_pruner(cfg)
        )
    study = optuna.create_study(
        study_name=cfg.name,
        storage=storage,
        sampler=make_sampler(cfg),
        pruner=make_pruner(cfg),
        directions=[d for _, d in objectives(cfg)],
        load_if_exists=True,
    )
    stored = study.user_attrs.get(BASE_CONFIG)
    conf = resolved(cfg)
    ctx.study_uid = _study_uid(ctx, study)
    if stored is None:
        study.set_user_attr(BASE_CONFIG, conf)
        # what optuna-dashboard and Optuna's plots call each value: the metric, not "Objective 0"
        with (
            warnings.catch_warnings()
        ):  # "experimental" since Optuna 3.2, and what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([f"val {name}" for name, _ in objectives(cfg)])
    elif stored != conf:
        diff = next(k for k in sorted(set(stored) | set(conf)) if stored.get(k) != conf.get(k))
        raise ConfigError(
            diff,
            f"study '{cfg.name}' already exists in {ctx.storage_url} with a different value here; "
            "change `name` to start a new study",
            conf.get(diff),
        )
    return study


STUDY_UID = "evolora.study_uid"


def _study_uid(ctx: SweepContext, study: optuna.Study) -> str:
    """The study's own random id, made once under the storage lock (hosts creating it at once agree): its
    trials' checkpoints live under it and record it, so a study of the same name in another storage never
    adopts them. A study made before ids existed keeps "" (its checkpoints where they were)."""
    with storage_lock(ctx.storage_url, f"uid-{ctx.cfg.name}"):
        attrs = study.user_attrs  # read from the storage, under the lock
        if STUDY_UID in attrs:
            return attrs[STUDY_UID]
        uid = "" if study.trials else uuid.uuid4().hex[:16]
        study.set_user_attr(STUDY_UID, uid)
        return uid
